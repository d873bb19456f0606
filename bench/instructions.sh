#!/usr/bin/env bash
# User-space instructions per query, counted by callgrind: repeatable for the same binary
# and load whatever else the machine does, so it shows the cost of a query-path change
# that run-to-run noise in bench/run.sh would hide.
#
#   bench/instructions.sh [BINARY...]   # default: target/release/meridian (built here)
#
# Per binary and load, the server runs under callgrind twice, answering N and 3N queries at
# a fixed rate; the difference over 2N is the cost of one query, start-up excluded. Loads:
#   mixed   the benchmark's mixed queries
#   ecs     its ECS proximity name, for a GeoIP-located client
#   rrl     the mixed queries with response rate limiting on (at a rate nothing reaches)
#   cookie  the mixed queries, each with a valid DNS Cookie (first fetched with dig)
# The zone is bench/conf/kemp.local.yaml without health checks, so probes add nothing.
# Needs valgrind and dnsperf (apt-get install valgrind dnsperf); loopback only.
set -euo pipefail
cd "$(dirname "$0")"
BENCH=$PWD
ROOT=$(cd .. && pwd)
N=${N:-10000}
RATE=${RATE:-2000}
PORT=${PORT:-5411}
for t in valgrind callgrind_annotate dnsperf dig; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install valgrind dnsperf dnsutils)" >&2; exit 1; }
done
if [ $# -eq 0 ]; then
  (cd "$ROOT" && cargo build --release --quiet)
  set -- "$ROOT/target/release/meridian"
fi

DIR=$(mktemp -d /tmp/meridian-instructions.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
mkdir -p "$DIR/zones"
sed -e "s|@PORT@|$PORT|" -e "s|@GEOIP@|$ROOT/geoip/maxmind-test-data/GeoIP2-City-Test.mmdb|" \
  conf/meridian.yaml > "$DIR/meridian.yaml"
{ cat "$DIR/meridian.yaml"; echo "rate-limit: { responses-per-second: 1000000 }"; } > "$DIR/rrl.yaml"
grep -v "check:" conf/kemp.local.yaml > "$DIR/zones/kemp.local.yaml"

# total BINARY QUERIES SERVERFILE QUERYFILE [dnsperf args]: instructions of a whole server
# run. A dnsperf argument @COOKIE@ becomes a valid COOKIE option, fetched from the server.
total() {
  local bin=$1 queries=$2 server=$3 file=$4 out=$DIR/callgrind.out vp cookie
  shift 4
  valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" serve -c "$server" \
    > "$DIR/log" 2>&1 &
  vp=$!
  local ready=0
  for _ in $(seq 100); do
    kill -0 "$vp" 2>/dev/null || break  # it refused the server file (an older binary)
    if dig +short +time=1 +tries=1 @127.0.0.1 -p "$PORT" vault.kemp.local 2>/dev/null | grep -q '^127\.0\.1\.'; then
      ready=1
      break
    fi
    sleep 0.3
  done
  if [ $ready = 0 ]; then
    kill -TERM "$vp" 2>/dev/null; wait "$vp" || true
    echo -
    return
  fi
  if [[ " $* " == *" @COOKIE@ "* ]]; then
    cookie=
    for _ in $(seq 5); do
      cookie=$(dig +cookie +time=3 +tries=1 @127.0.0.1 -p "$PORT" vault.kemp.local 2>/dev/null | awk '/^; COOKIE:/ {print $3}')
      [ -n "$cookie" ] && break
    done
    if [ -z "$cookie" ]; then
      kill -TERM "$vp"; wait "$vp" || true
      echo - # a server without DNS Cookies
      return
    fi
    set -- "${@/@COOKIE@/10:$cookie}"
  fi
  dnsperf -s 127.0.0.1 -p "$PORT" -d "$BENCH/$file" -n $((queries / $(wc -l < "$BENCH/$file"))) \
    -Q "$RATE" -c 4 "$@" > "$DIR/dnsperf" 2>&1
  kill -TERM "$vp"; wait "$vp" || true
  # awk reads to the end: quitting early would fail the pipeline (pipefail).
  callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ && !done {gsub(",", "", $1); print $1; done = 1}'
}

# The ECS option of 81.2.69.142/32 (London in MaxMind's test database).
ECS=8:000120005102458e
printf '%-40s %8s %8s %8s %8s\n' binary mixed ecs rrl cookie
for bin in "$@"; do
  row=()
  for load in mixed ecs rrl cookie; do
    case $load in
      mixed) args=("$DIR/meridian.yaml" queries.txt) ;;
      ecs) args=("$DIR/meridian.yaml" queries-ecs.txt -E "$ECS") ;;
      rrl) args=("$DIR/rrl.yaml" queries.txt) ;;
      cookie) args=("$DIR/meridian.yaml" queries.txt -E @COOKIE@) ;;
    esac
    small=$(total "$bin" "$N" "${args[@]}")
    large=$(total "$bin" $((3 * N)) "${args[@]}")
    if [ "$small" = - ]; then row+=(-); else row+=("$(( (large - small) / (2 * N) ))"); fi
  done
  printf '%-40s %8s %8s %8s %8s\n' "$bin" "${row[@]}"
done
echo "(user-space instructions per query)"
