#!/usr/bin/env bash
# A soak run, on 127.0.0.1 only (not a CI test): dnsperf at half of Meridian's saturation
# for DURATION seconds (default 600) while the backends of a health-checked name flap every
# 2 s, the zone file is rewritten every 10 s and SIGHUP comes every 30 s. A sampler asks
# both names 200 times a second; afterwards every answer is checked against what it should
# have been (the heaviest member up; the address the zone file held), allowing the detection
# window after each change. Prints crashes, lost queries, wrong answers and RSS over time.
#
#   bench/soak.sh                # as root it installs dnsperf and dig when missing
#   DURATION=60 bench/soak.sh    # a short run
set -euo pipefail
cd "$(dirname "$0")"
BENCH=$PWD
ROOT=$(cd .. && pwd)
DURATION=${DURATION:-600}
PORT=5406
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
# A member's change shows within a check interval (500 ms) and timeout (400 ms) after it
# happens, one probe being enough (rise 1, fall 1); a zone file's within the watcher's
# 300 ms debounce and the reload. The windows allow for scheduling on a loaded machine.
WINDOW=2
RELOAD=3

if [ "$(id -u)" = 0 ] && ! { command -v dnsperf && command -v dig; } >/dev/null; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q dnsperf dnsutils
fi
for t in dnsperf dig python3 taskset; do
  command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }
done
echo "building Meridian (release)..." >&2
(cd "$ROOT" && cargo build --release --quiet)

RUN=$(mktemp -d /tmp/meridian-soak.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
mkdir -p "$RUN/zones"
cat > "$RUN/meridian.yaml" <<EOF
listen: [127.0.0.1:$PORT]
zones: zones
EOF
cat > "$RUN/zones/soak.yaml" <<'EOF'
zone: soak.test
ns: [ns1]
records:
  ns1: { A: 127.0.0.53 }
  www: { A: 192.0.2.1 }
fqdns:
  vault:
    check: { type: tcp, port: 8200, interval: 500ms, timeout: 400ms, rise: 1, fall: 1 }
    members:
      - { address: 127.0.1.1, weight: 100 }
      - { address: 127.0.1.2, weight: 50 }
      - { address: 127.0.1.3, weight: 10 }
EOF
printf 'vault.soak.test A\nvault.soak.test A\nwww.soak.test A\nnope.soak.test A\n' > "$RUN/queries.txt"

python3 "$BENCH/soak.py" flap "$RUN/flaps.jsonl" $((DURATION + 40)) 2 127.0.1.1 127.0.1.2 127.0.1.3 &
PIDS+=("$!")
sleep 0.5
taskset -c "$SERVER_CPU" "$ROOT/target/release/meridian" serve -c "$RUN/meridian.yaml" > "$RUN/log" 2>&1 &
SERVER=$!
PIDS+=("$SERVER")
for _ in $(seq 60); do
  dig +short +time=1 +tries=1 @127.0.0.1 -p $PORT www.soak.test 2>/dev/null | grep -q '^192\.0\.2\.' && break
  sleep 0.5
done

# Half of saturation, measured on the spot.
taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p $PORT -d "$RUN/queries.txt" -c 8 -q 200 -l 5 > "$RUN/saturation" 2>&1
RATE=$(awk '/Queries per second/ {print int($4 / 2)}' "$RUN/saturation")
echo "saturation: $(awk '/Queries per second/ {print int($4)}' "$RUN/saturation") QPS; soaking at $RATE QPS for ${DURATION}s" >&2

python3 "$BENCH/soak.py" sample "$RUN/samples.jsonl" "$DURATION" $PORT 100 &
PIDS+=("$!")
python3 "$BENCH/soak.py" rewrite "$RUN/zones/soak.yaml" "$DURATION" 10 "$RUN/rewrites.jsonl" &
PIDS+=("$!")
( for _ in $(seq $((DURATION / 30))); do sleep 30; kill -HUP "$SERVER"; done ) &
PIDS+=("$!")
( while kill -0 "$SERVER" 2>/dev/null; do
    echo "$(date +%s) $(awk '/VmRSS/ {print $2}' "/proc/$SERVER/status")"; sleep 10
  done ) > "$RUN/rss" &
PIDS+=("$!")
taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p $PORT -d "$RUN/queries.txt" -c 8 -q 200 \
  -l "$DURATION" -Q "$RATE" > "$RUN/dnsperf" 2>&1
sleep 2

alive=yes
kill -0 "$SERVER" 2>/dev/null || alive=no
panics=$(grep -c -i "panicked" "$RUN/log" || true)
sent=$(awk '/Queries sent/ {print $3}' "$RUN/dnsperf")
lost=$(awk '/Queries lost/ {print $3}' "$RUN/dnsperf")
reloads=$(grep -c "configuration reloaded" "$RUN/log" || true)
checked=$(python3 "$BENCH/soak.py" check "$RUN/flaps.jsonl" "$RUN/samples.jsonl" "$RUN/rewrites.jsonl" $WINDOW $RELOAD)
rss=$(awk 'NR == 1 {first = $2} {if (min == "" || $2 < min) min = $2; if ($2 > max) max = $2; last = $2}
  END {printf "first %.1f, min %.1f, max %.1f, last %.1f MiB (max/min %.3f)", first/1024, min/1024, max/1024, last/1024, max/min}' "$RUN/rss")
echo
echo "soak: ${DURATION}s at $RATE QPS, backends flapping every 2 s, zone rewritten every 10 s, SIGHUP every 30 s"
echo "- server alive at the end: $alive; panics in its log: $panics"
echo "- dnsperf: lost $lost of $sent ($(awk -v l="$lost" -v s="$sent" 'BEGIN {printf "%.1e", l / s}'))"
echo "- reloads: $reloads"
echo "- sampler: $checked"
echo "- RSS: $rss"
echo "raw results: $RUN" >&2
trap - EXIT
cleanup
