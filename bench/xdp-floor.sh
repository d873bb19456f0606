#!/usr/bin/env bash
# What a kernel-bypass path could save: answers per CPU-second on loopback for
#   xdp-floor  queries off an AF_XDP ring, each answered with one canned record
#              (bench/xdp-floor.c: no lookup, so all of its cost is the kernel's and
#              the rings'),
#   meridian   through its UDP sockets, the benchmark's zone,
#   gdnsd      the same,
# each pinned to CPU $SERVER_CPU under the mixed dnsperf load from CPU $CLIENT_CPU, in a
# network namespace of its own (whose loopback must accept local sources for AF_XDP's
# sends; the host's is left alone). Medians of ROUNDS runs of DURATION s, one line each.
#
#   bench/xdp-floor.sh   # as root; needs cc, dnsperf, gdnsd, dig, ip; builds Meridian
set -euo pipefail
cd "$(dirname "$0")"
BENCH=$PWD
ROOT=$(cd .. && pwd)
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
NS=meridian-xdp-floor
[ "$(id -u)" = 0 ] || { echo "run as root: AF_XDP and network namespaces need it" >&2; exit 1; }
for t in cc dnsperf gdnsd dig ip taskset python3; do
  command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }
done
MERIDIAN=${MERIDIAN_BIN:-}
if [ -z "$MERIDIAN" ]; then
  (cd "$ROOT" && cargo build --release --quiet)
  MERIDIAN=$ROOT/target/release/meridian
fi
DIR=$(mktemp -d /tmp/meridian-xdp-floor.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
cc -O2 -Wall -o "$DIR/xdp-floor" xdp-floor.c
ip netns del "$NS" 2>/dev/null || true
ip netns add "$NS"
in_ns() { ip netns exec "$NS" "$@"; }
in_ns ip link set lo up
in_ns sysctl -qw net.ipv4.conf.lo.accept_local=1 net.ipv4.conf.lo.route_localnet=1

# Servers start as `ip netns exec ... &` (not through in_ns): ip and taskset exec them, so
# $! is the server's own pid.
fill() { sed -e "s|@RUNDIR@|$1|g" -e "s|@PORT@|$2|g" -e "s|@GEOIP@|$ROOT/geoip/maxmind-test-data/GeoIP2-City-Test.mmdb|g" "$3"; }
ip netns exec "$NS" python3 tcp-listeners.py --lifetime 3600 127.0.1.1 127.0.1.2 127.0.1.3 & PIDS+=("$!")
mkdir -p "$DIR/meridian/zones" "$DIR/gdnsd/zones" "$DIR/gdnsd/run" "$DIR/gdnsd/state"
fill "$DIR/meridian" 5401 conf/meridian.yaml > "$DIR/meridian/meridian.yaml"
cp conf/kemp.local.yaml "$DIR/meridian/zones/"
RUST_LOG=warn ip netns exec "$NS" taskset -c "$SERVER_CPU" "$MERIDIAN" serve -c "$DIR/meridian/meridian.yaml" > "$DIR/meridian.log" 2>&1 &
PIDS+=("$!"); echo $! > "$DIR/meridian.pid"
fill "$DIR/gdnsd" 5402 conf/gdnsd.config > "$DIR/gdnsd/config"
cp conf/gdnsd.zone "$DIR/gdnsd/zones/kemp.local"
ip netns exec "$NS" taskset -c "$SERVER_CPU" gdnsd -c "$DIR/gdnsd" start > "$DIR/gdnsd.log" 2>&1 &
PIDS+=("$!"); echo $! > "$DIR/gdnsd.pid"
ip netns exec "$NS" taskset -c "$SERVER_CPU" "$DIR/xdp-floor" 1 5420 > "$DIR/xdp-floor.log" 2>&1 &
PIDS+=("$!"); echo $! > "$DIR/xdp-floor.pid"

port_of() { case $1 in meridian) echo 5401 ;; gdnsd) echo 5402 ;; xdp-floor) echo 5420 ;; esac; }
for s in meridian gdnsd xdp-floor; do
  ok=0
  for _ in $(seq 60); do
    if [ -n "$(in_ns dig +short +norec +time=1 +tries=1 @127.0.0.1 -p "$(port_of $s)" vault.kemp.local)" ]; then ok=1; break; fi
    sleep 0.5
  done
  [ $ok = 1 ] || { echo "$s did not answer:" >&2; tail "$DIR/$s.log" >&2; exit 1; }
done

# One run: the server's CPU ticks across a bounded dnsperf run; prints answers per CPU-s.
run() {
  local s=$1 pid c0 c1 done
  pid=$(cat "$DIR/$s.pid")
  c0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  in_ns taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$(port_of "$s")" -d queries.txt -T 1 -c 8 \
    -q 200 -t 1 -l "$DURATION" > "$DIR/dnsperf.out" 2>&1
  c1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  done=$(awk '/Queries completed/ {print $3}' "$DIR/dnsperf.out")
  echo $(( done * $(getconf CLK_TCK) / (c1 - c0) ))
}
for s in meridian gdnsd xdp-floor; do run "$s" > /dev/null; done  # warm-up
declare -A RESULTS
for r in $(seq "$ROUNDS"); do
  for s in meridian gdnsd xdp-floor; do RESULTS[$s]+="$(run "$s") "; done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
m=$(echo "${RESULTS[meridian]}" | median)
g=$(echo "${RESULTS[gdnsd]}" | median)
x=$(echo "${RESULTS[xdp-floor]}" | median)
echo "answers per CPU-second, medians of $ROUNDS runs of ${DURATION}s (each run: ${RESULTS[meridian]}/ ${RESULTS[gdnsd]}/ ${RESULTS[xdp-floor]})"
printf '%-10s %9s\n' meridian "$m" gdnsd "$g" xdp-floor "$x"
python3 -c "import sys; m,g,x=map(float,sys.argv[1:]); print(f'meridian / gdnsd {m/g:.2f}; xdp-floor / gdnsd {x/g:.2f}; xdp-floor / meridian {x/m:.2f}')" "$m" "$g" "$x"
