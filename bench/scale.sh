#!/usr/bin/env bash
# Memory and load time at scale, Meridian beside gdnsd and Knot on the same content: N
# names (default 100,000) of two IPv4 and one IPv6 address each.
#
#   bench/scale.sh [N] [MERIDIAN]    # run.sh runs it last, at 100,000 and at 1,000,000 names
#
# Rows: Meridian with the names health-checked (round-robin, no checks: this measures the
# table, not probing) and as static records; gdnsd with them as DYNA multifo resources
# (service type `up`) and as static records; Knot with them as static records. Each server
# starts alone, pinned to CPU $SERVER_CPU; "ready" is the time from its start to the first
# correct answer for the last name (asked every 10 ms); RSS is read then and again 2 s
# later (Meridian hands freed memory back after loading), peak is VmHWM, and "peak / RSS"
# compares the load's peak with what the server keeps while serving. gdnsd's DYNA row is
# left out above 100,000 names: it took 106 s to load 100,000 here, and its load time
# grows faster than the name count. Ports 5412-5416, loopback only; everything started
# is stopped on exit, and each wait is bounded (300 s).
# SERVERS="meridian knot" runs only those of meridian, gdnsd and knot (to compare two
# Meridian builds, say, without gdnsd's long DYNA load).
set -euo pipefail
SERVERS=${SERVERS:-meridian gdnsd knot}
want() { [[ " $SERVERS " == *" $1 "* ]]; }
N=${1:-100000}
MERIDIAN=$(realpath "${2:-$(dirname "$0")/../target/release/meridian}")
cd "$(dirname "$0")"
SERVER_CPU=${SERVER_CPU:-0}
d=$(mktemp -d /tmp/meridian-scale.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$d"' EXIT

# gen KIND FILE: the N names in one of the servers' formats.
gen() {
  python3 - "$N" "$1" "$2" <<'PY'
import sys
n, kind, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def addrs(i):
    a, b = divmod(i, 250)
    return (f"127.{20 + a // 250}.{a % 250}.{b + 1}", f"127.{20 + a // 250}.{a % 250}.{b + 2}",
            f"2001:db8::{i // 65536:x}:{i % 65536:x}")
with open(path, "w") as f:
    if kind == "meridian-fqdns":
        f.write("zone: scale.test\nns: [ns1]\nrecords:\n  ns1: { A: 127.0.0.53 }\nfqdns:\n")
        for i in range(n):
            x, y, z = addrs(i)
            f.write(f"  n{i}: {{ selection: round-robin, members: [{{ address: {x} }}, "
                    f"{{ address: {y} }}, {{ address: \"{z}\" }}] }}\n")
    elif kind == "meridian-records":
        f.write("zone: scale.test\nns: [ns1]\nrecords:\n  ns1: { A: 127.0.0.53 }\n")
        for i in range(n):
            x, y, z = addrs(i)
            f.write(f"  n{i}: {{ A: [{x}, {y}], AAAA: \"{z}\" }}\n")
    elif kind in ("zonefile", "gdnsd-dyna"):
        f.write("$TTL 300\n@ SOA ns1.scale.test. hostmaster.scale.test. 1 3600 600 604800 60\n"
                "@ NS ns1.scale.test.\nns1 A 127.0.0.53\n")
        for i in range(n):
            if kind == "zonefile":
                x, y, z = addrs(i)
                f.write(f"n{i} A {x}\nn{i} A {y}\nn{i} AAAA {z}\n")
            else:
                f.write(f"n{i} DYNA multifo!n{i}\n")
    elif kind == "gdnsd-plugins":
        f.write("  multifo => {\n    service_types => up\n")
        for i in range(n):
            x, y, z = addrs(i)
            f.write(f"    n{i} => {{ addrs_v4 => [ {x}, {y} ], addrs_v6 => [ {z} ] }}\n")
        f.write("  }\n")
PY
}

# measure LABEL PORT: waits for the last name, prints a row, stops the server.
measure() {
  local label=$1 port=$2 start_ns=$3
  until dig +short +norec +time=1 +tries=1 @127.0.0.1 -p "$port" "n$((N - 1)).scale.test" A 2>/dev/null | grep -q '^127\.'; do
    kill -0 "$pid" 2>/dev/null || { echo "$label died:" >&2; tail "$d/$label.log" >&2; exit 1; }
    [ $(( ($(date +%s%N) - start_ns) / 1000000000 )) -lt 300 ] || { echo "$label not ready in 300 s" >&2; exit 1; }
    sleep 0.01
  done
  local ready_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
  local rss_ready; rss_ready=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  sleep 2
  local rss peak; rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status"); peak=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
  printf '| %s | %s | %.2f | %d | %d | %d | %.2f | %d |\n' "$label" "$N" "$(awk "BEGIN {print $ready_ms / 1000}")" \
    $((rss_ready / 1024)) $((rss / 1024)) $((peak / 1024)) "$(awk "BEGIN {print $peak / $rss}")" $((rss * 1024 / N))
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
}

echo "| server, content | names | ready s | RSS at ready MiB | RSS 2 s later MiB | peak MiB | peak / RSS | bytes per name |"
echo "|---|---|---|---|---|---|---|---|"

for kind in $(want meridian && echo fqdns records); do
  m=$d/meridian-$kind; mkdir -p "$m/zones"
  printf 'listen: [127.0.0.1:5412]\nzones: zones\nwatch: false\n' > "$m/meridian.yaml"
  gen "meridian-$kind" "$m/zones/scale.yaml"
  start_ns=$(date +%s%N)
  RUST_LOG=warn taskset -c "$SERVER_CPU" "$MERIDIAN" serve -c "$m/meridian.yaml" > "$d/meridian-$kind.log" 2>&1 &
  pid=$!
  measure "meridian-$kind" 5412 "$start_ns"
  rm -rf "$m"
done

# Signed: the health-checked names in a signed zone, then one query with DO for each name
# (every answer signed once): the signature cache's entries and bytes (from the metrics)
# and the RSS it adds, at N names. Up to 100,000 names (the cache holds 131,072).
if want meridian && command -v dnsperf >/dev/null && [ "$N" -le 100000 ]; then
  m=$d/meridian-signed; mkdir -p "$m/zones"
  printf 'listen: [127.0.0.1:5412]\nzones: zones\nwatch: false\nadmin: { listen: "127.0.0.1:5418" }\n' > "$m/meridian.yaml"
  gen meridian-fqdns "$m/zones/scale.yaml"
  echo "dnssec: {}" >> "$m/zones/scale.yaml"
  start_ns=$(date +%s%N)
  RUST_LOG=error taskset -c "$SERVER_CPU" "$MERIDIAN" serve -c "$m/meridian.yaml" > "$d/meridian-signed.log" 2>&1 &
  pid=$!
  until dig +short +norec +time=1 +tries=1 @127.0.0.1 -p 5412 "n$((N - 1)).scale.test" A 2>/dev/null | grep -q '^127\.'; do
    kill -0 "$pid" 2>/dev/null || { echo "signed meridian died:" >&2; tail "$d/meridian-signed.log" >&2; exit 1; }
    [ $(( ($(date +%s%N) - start_ns) / 1000000000 )) -lt 300 ] || { echo "signed meridian not ready in 300 s" >&2; exit 1; }
    sleep 0.05
  done
  sleep 2
  rss_before=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  python3 -c "
import sys
with open(sys.argv[2], 'w') as f:
    for i in range(int(sys.argv[1])):
        f.write(f'n{i}.scale.test A\\n')
" "$N" "$d/signed-queries.txt"
  t0=$(date +%s%N)
  taskset -c "${CLIENT_CPU:-1}" dnsperf -s 127.0.0.1 -p 5412 -d "$d/signed-queries.txt" -n 1 -D -q 100 -t 2 > "$d/signed-dnsperf.out" 2>&1
  took=$(( ($(date +%s%N) - t0) / 1000000 ))
  rss_after=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  python3 - "$N" "$rss_before" "$rss_after" "$took" "$d/signed-dnsperf.out" <<'PY'
import re, sys, urllib.request
n, before, after, took, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
text = urllib.request.urlopen("http://127.0.0.1:5418/metrics", timeout=5).read().decode()
def metric(name, labels):
    m = re.search(re.escape(name) + r"\{" + re.escape(labels) + r"\} (\d+)", text)
    return int(m.group(1)) if m else 0
entries = metric("meridian_dnssec_signature_cache", 'size="entries"')
size = metric("meridian_dnssec_signature_cache", 'size="bytes"')
made = metric("meridian_dnssec_signatures_total", 'result="made"')
done = re.search(r"Queries completed:\s+(\d+)", open(out).read())
print(f"\nSigned, {n:,} health-checked names, one query with DO each ({done.group(1) if done else '?'} answered in {took / 1000:.1f} s): "
      f"{made:,} signatures made, {entries:,} in the cache holding {size / 1048576:.1f} MiB; "
      f"RSS {before / 1024:.0f} -> {after / 1024:.0f} MiB (+{(after - before) / 1024:.0f} MiB, {(after - before) * 1024 / max(entries, 1):.0f} bytes per cached signature)")
PY
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  rm -rf "$m"
fi

if want gdnsd && command -v gdnsd >/dev/null; then
  kinds="dyna records"; [ "$N" -le 100000 ] || kinds=records
  for kind in $kinds; do
    g=$d/gdnsd-$kind; mkdir -p "$g/zones" "$g/run" "$g/state"
    {
      printf 'options => {\n  listen => [ "127.0.0.1:5413" ]\n  udp_threads => 1\n  tcp_threads => 1\n'
      printf '  run_dir => "%s/run"\n  state_dir => "%s/state"\n}\n' "$g" "$g"
      if [ "$kind" = dyna ]; then
        gen gdnsd-plugins "$g/plugins"
        echo "plugins => {"; cat "$g/plugins"; echo "}"
      fi
    } > "$g/config"
    if [ "$kind" = dyna ]; then gen gdnsd-dyna "$g/zones/scale.test"; else gen zonefile "$g/zones/scale.test"; fi
    start_ns=$(date +%s%N)
    taskset -c "$SERVER_CPU" gdnsd -c "$g" start > "$d/gdnsd-$kind.log" 2>&1 &
    pid=$!
    measure "gdnsd-$kind" 5413 "$start_ns"
    rm -rf "$g"
  done
fi

if want knot && command -v knotd >/dev/null; then
  k=$d/knot; mkdir -p "$k/run" "$k/db"
  cat > "$k/knot.conf" <<EOF
server:
    rundir: "$k/run"
    listen: 127.0.0.1@5414
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "$k/db"
log:
  - target: stderr
    any: warning
zone:
  - domain: scale.test
    storage: "$k"
    file: "scale.test.zone"
    zonefile-sync: -1
    journal-content: none
EOF
  gen zonefile "$k/scale.test.zone"
  start_ns=$(date +%s%N)
  taskset -c "$SERVER_CPU" knotd -c "$k/knot.conf" > "$d/knot.log" 2>&1 &
  pid=$!
  measure knot-records 5414 "$start_ns"
fi
