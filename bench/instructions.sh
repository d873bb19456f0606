#!/usr/bin/env bash
# User-space instructions per query, counted by callgrind: repeatable for the same binary
# and load whatever else the machine does, so it shows the cost of a query-path change
# that run-to-run noise in bench/run.sh would hide.
#
#   bench/instructions.sh [BINARY...]   # default: target/release/meridian (built here)
#
# Per binary and load (the benchmark's mixed queries, and its ECS proximity name with a
# GeoIP-located client), the server runs under callgrind twice, answering N and 3N queries
# at a fixed rate; the difference over 2N is the cost of one query, start-up excluded. The
# zone is bench/conf/kemp.local.yaml without health checks, so probes add nothing. Needs
# valgrind and dnsperf (apt-get install valgrind dnsperf); loopback only.
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
grep -v "check:" conf/kemp.local.yaml > "$DIR/zones/kemp.local.yaml"

# total BINARY QUERIES QUERYFILE [dnsperf args]: instructions of a whole server run.
total() {
  local bin=$1 queries=$2 file=$3 out=$DIR/callgrind.out vp
  shift 3
  valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" serve -c "$DIR/meridian.yaml" \
    > "$DIR/log" 2>&1 &
  vp=$!
  for _ in $(seq 100); do
    dig +short +time=1 +tries=1 @127.0.0.1 -p "$PORT" vault.kemp.local 2>/dev/null | grep -q 127 && break
    sleep 0.3
  done
  dnsperf -s 127.0.0.1 -p "$PORT" -d "$BENCH/$file" -n $((queries / $(wc -l < "$BENCH/$file"))) \
    -Q "$RATE" -c 4 "$@" > "$DIR/dnsperf" 2>&1
  kill -TERM "$vp"; wait "$vp" || true
  # awk reads to the end: quitting early would fail the pipeline (pipefail).
  callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ && !done {gsub(",", "", $1); print $1; done = 1}'
}

# The ECS option of 81.2.69.142/32 (London in MaxMind's test database).
ECS=8:000120005102458e
printf '%-50s %12s %12s\n' binary "mixed" "ecs"
for bin in "$@"; do
  row=()
  for load in mixed ecs; do
    if [ $load = mixed ]; then args=(queries.txt); else args=(queries-ecs.txt -E "$ECS"); fi
    small=$(total "$bin" "$N" "${args[@]}")
    large=$(total "$bin" $((3 * N)) "${args[@]}")
    row+=("$(( (large - small) / (2 * N) ))")
  done
  printf '%-50s %12s %12s\n' "$bin" "${row[0]}" "${row[1]}"
done
echo "(user-space instructions per query)"
