#!/usr/bin/env bash
# Memory and load time of a large static zone: N names with one A record each.
#   bench/zone-size.sh [N] [MERIDIAN]     (N defaults to 1000000)
# Starts the server, times it to the first answer for the last name, reads its resident
# memory and its peak (VmHWM), then adds one name to the file and times the reload the
# same way. Last, it adds a small zone file beside the large one and edits it: only that
# file is compiled again, and the server's log says how long the reload took. Not a test:
# figures for the README. Port 5408; everything started is stopped.
set -euo pipefail
N=${1:-1000000}
MERIDIAN=${2:-target/release/meridian}
PORT=5408
d=$(mktemp -d /tmp/meridian-zone-size.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$d"' EXIT

mkdir -p "$d/zones"
printf 'listen: [127.0.0.1:%s]\nzones: zones\n' "$PORT" > "$d/meridian.yaml"
gen() { # gen COUNT FILE
  python3 - "$1" "$2" <<'PY'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path + ".tmp", "w") as f:
    f.write("zone: size.test\nns: [ns1]\nrecords:\n  ns1: { A: 127.0.0.1 }\n")
    for i in range(n):
        f.write(f"  n{i}: {{ A: 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255} }}\n")
import os
os.rename(path + ".tmp", path)
PY
}
gen "$N" "$d/zones/size.yaml"
echo "zone file: $N names, $(( $(stat -c %s "$d/zones/size.yaml") / 1048576 )) MiB"

wait_for() { # wait_for NAME [ANSWER]: seconds until NAME answers (ANSWER, or any 10.x)
  local start=$(date +%s%N)
  until dig +short +norec +time=1 +tries=1 @127.0.0.1 -p "$PORT" "$1" 2>/dev/null | grep -qx "${2:-10\..*}"; do
    kill -0 "$pid" 2>/dev/null || { echo "server died:" >&2; tail "$d/log" >&2; exit 1; }
    [ $(( ($(date +%s%N) - start) / 1000000000 )) -lt 600 ] || { echo "no answer in 600 s" >&2; exit 1; }
    sleep 0.1
  done
  awk "BEGIN {printf \"%.1f\", ($(date +%s%N) - $start) / 1e9}"
}
mib() { awk -v k="$1" '$1 == k":" {printf "%d", $2 / 1024}' "/proc/$pid/status"; }

RUST_LOG=warn,meridian::state=info "$MERIDIAN" serve -c "$d/meridian.yaml" > "$d/log" 2>&1 &
pid=$!
t=$(wait_for "n$((N - 1)).size.test")
echo "start:  serving after $t s, RSS $(mib VmRSS) MiB, peak $(mib VmHWM) MiB"
gen "$((N + 1))" "$d/zones/size.yaml"
t=$(wait_for "n$N.size.test")
sleep 1
echo "reload: serving after $t s, RSS $(mib VmRSS) MiB, peak $(mib VmHWM) MiB"
printf 'zone: small.test\nns: [ns1]\nrecords:\n  www: { A: 10.9.9.1 }\n' > "$d/zones/small.yaml"
wait_for www.small.test 10.9.9.1 > /dev/null
printf 'zone: small.test\nns: [ns1]\nrecords:\n  www: { A: 10.9.9.2 }\n' > "$d/zones/small.yaml.tmp"
mv "$d/zones/small.yaml.tmp" "$d/zones/small.yaml"
t=$(wait_for www.small.test 10.9.9.2)
took=$(grep "configuration reloaded" "$d/log" | tail -1 | grep -o " elapsed_ms=[0-9]*" | cut -d= -f2)
echo "a small zone beside it, edited: serving after $t s (with the 300 ms settling of file events); the reload took $took ms"
