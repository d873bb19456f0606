#!/usr/bin/env bash
# 10,000 hostile TCP connections against Meridian with its default TCP limits, while a
# well-behaved TCP client and a UDP client ask (bench/tcp-flood.py); then what the server
# counted. Loopback only (127.0.0.1:5407, admin 127.0.0.1:9157); not a CI test.
#   bench/tcp-flood.sh [MERIDIAN]        CONNECTIONS=10000 FLOOD_SECONDS=20 by default
set -euo pipefail
MERIDIAN=$(realpath "${1:-$(dirname "$0")/../target/release/meridian}")
cd "$(dirname "$0")"
d=$(mktemp -d /tmp/meridian-tcp-flood.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$d"' EXIT
mkdir -p "$d/zones"
printf 'listen: [127.0.0.1:5407]\nzones: zones\nadmin: { listen: 127.0.0.1:9157 }\n' > "$d/meridian.yaml"
printf 'zone: flood.test\nns: [ns1]\nrecords:\n  www: { A: 192.0.2.1 }\n' > "$d/zones/flood.yaml"
# As many descriptors as the flood needs on the client side; the server raises its own.
ulimit -n "$(ulimit -Hn)"
RUST_LOG=warn "$MERIDIAN" serve -c "$d/meridian.yaml" > "$d/log" 2>&1 &
pid=$!
until dig +short +time=1 +tries=1 @127.0.0.1 -p 5407 www.flood.test 2>/dev/null | grep -q .; do
  kill -0 "$pid" 2>/dev/null || { echo "server died:" >&2; cat "$d/log" >&2; exit 1; }
  sleep 0.1
done
cpu0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
python3 tcp-flood.py --port 5407 --connections "${CONNECTIONS:-10000}" --seconds "${FLOOD_SECONDS:-20}"
cpu1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
echo "server CPU during the flood: $(( (cpu1 - cpu0) * 1000 / $(getconf CLK_TCK) )) ms"
curl -s 127.0.0.1:9157/metrics | grep -E '^meridian_tcp_(accepted|closed|refused)_total' || true
