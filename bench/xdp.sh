#!/usr/bin/env bash
# UDP through AF_XDP (`xdp:`) beside the sockets: answers per CPU-second on a loopback for
#   meridian       through its UDP sockets, the benchmark's zone (bench/conf),
#   meridian-xdp   the same with `xdp: { interface: lo }`,
#   gdnsd          through its sockets, the same content,
# and Meridian's ECS load (the proximity name, one GeoIP-placed client subnet) both ways.
# Each server is pinned to CPU $SERVER_CPU under the mixed dnsperf load from CPU
# $CLIENT_CPU, all in a network namespace of the script's own: AF_XDP's answers carry no
# route, so that namespace's loopback must accept local sources (accept_local and
# route_localnet), which the host's is left without. Medians of ROUNDS runs of DURATION s.
#
#   sudo bench/xdp.sh   # needs dnsperf, gdnsd, dig, ip; builds Meridian (release) unless
#                       # MERIDIAN_BIN names a binary; bench/run.sh runs it too (XDP=0 skips)
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(cd .. && pwd)
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
NS=meridian-bench-xdp
[ "$(id -u)" = 0 ] || { echo "run as root: AF_XDP and network namespaces need it" >&2; exit 1; }
for t in dnsperf gdnsd dig ip taskset python3; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install dnsperf gdnsd dnsutils iproute2)" >&2; exit 1; }
done
MERIDIAN=${MERIDIAN_BIN:-}
if [ -z "$MERIDIAN" ]; then
  (cd "$ROOT" && cargo build --release --quiet)
  MERIDIAN=$ROOT/target/release/meridian
fi
DIR=$(mktemp -d /tmp/meridian-xdp.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
ip netns del "$NS" 2>/dev/null || true
ip netns add "$NS"
in_ns() { ip netns exec "$NS" "$@"; }
in_ns ip link set lo up
in_ns sysctl -qw net.ipv4.conf.lo.accept_local=1 net.ipv4.conf.lo.route_localnet=1

# Servers start as `ip netns exec ... &` (not through in_ns): ip and taskset exec them, so
# $! is the server's own pid.
fill() { sed -e "s|@RUNDIR@|$1|g" -e "s|@PORT@|$2|g" -e "s|@GEOIP@|$ROOT/geoip/maxmind-test-data/GeoIP2-City-Test.mmdb|g" "$3"; }
ip netns exec "$NS" python3 tcp-listeners.py --lifetime 3600 127.0.1.1 127.0.1.2 127.0.1.3 & PIDS+=("$!")
mkdir -p "$DIR/meridian/zones" "$DIR/meridian-xdp/zones" "$DIR/gdnsd/zones" "$DIR/gdnsd/run" "$DIR/gdnsd/state"
fill "$DIR/meridian" 5401 conf/meridian.yaml > "$DIR/meridian/meridian.yaml"
{ fill "$DIR/meridian-xdp" 5403 conf/meridian.yaml; echo "xdp: { interface: lo }"; } > "$DIR/meridian-xdp/meridian.yaml"
for m in meridian meridian-xdp; do
  cp conf/kemp.local.yaml "$DIR/$m/zones/"
  RUST_LOG=warn ip netns exec "$NS" taskset -c "$SERVER_CPU" "$MERIDIAN" serve -c "$DIR/$m/meridian.yaml" > "$DIR/$m.log" 2>&1 &
  PIDS+=("$!"); echo $! > "$DIR/$m.pid"
done
fill "$DIR/gdnsd" 5402 conf/gdnsd.config > "$DIR/gdnsd/config"
cp conf/gdnsd.zone "$DIR/gdnsd/zones/kemp.local"
ip netns exec "$NS" taskset -c "$SERVER_CPU" gdnsd -c "$DIR/gdnsd" start > "$DIR/gdnsd.log" 2>&1 &
PIDS+=("$!"); echo $! > "$DIR/gdnsd.pid"

port_of() { case $1 in meridian) echo 5401 ;; gdnsd) echo 5402 ;; meridian-xdp) echo 5403 ;; esac; }
for s in meridian meridian-xdp gdnsd; do
  ok=0
  for _ in $(seq 60); do
    kill -0 "$(cat "$DIR/$s.pid")" 2>/dev/null || { echo "$s died:" >&2; tail "$DIR/$s.log" >&2; exit 1; }
    if [ "$(in_ns dig +short +norec +time=1 +tries=1 @127.0.0.1 -p "$(port_of $s)" vault.kemp.local | grep -c '^127\.0\.1\.')" = 3 ]; then
      ok=1; break
    fi
    sleep 0.5
  done
  [ $ok = 1 ] || { echo "$s not ready after 30 s:" >&2; tail "$DIR/$s.log" >&2; exit 1; }
done

# run SERVER QUERYFILE [dnsperf args]: the server's CPU ticks across one bounded dnsperf
# run; prints its answers per CPU-second.
run() {
  local s=$1 file=$2 pid c0 c1 done
  shift 2
  pid=$(cat "$DIR/$s.pid")
  c0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  in_ns taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$(port_of "$s")" -d "$file" -T 1 -c 8 \
    -q 200 -t 1 -l "$DURATION" "$@" > "$DIR/dnsperf.out" 2>&1
  c1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  done=$(awk '/Queries completed/ {print $3}' "$DIR/dnsperf.out")
  [ "$c1" -gt "$c0" ] || { echo "$s used no CPU: $(cat "$DIR/dnsperf.out")" >&2; exit 1; }
  echo $(( done * $(getconf CLK_TCK) / (c1 - c0) ))
}
# The ECS option of 81.2.69.142/32 (London in MaxMind's test database), as bench/run.sh.
ECS=8:000120005102458e
LOADS="meridian:mixed meridian-xdp:mixed gdnsd:mixed meridian:ecs meridian-xdp:ecs"
load() {
  case ${1#*:} in
    mixed) run "${1%%:*}" queries.txt ;;
    ecs) run "${1%%:*}" queries-ecs.txt -E "$ECS" ;;
  esac
}
for l in $LOADS; do load "$l" > /dev/null; done  # warm-up
declare -A RESULTS MEDIAN
for _ in $(seq "$ROUNDS"); do
  for l in $LOADS; do RESULTS[$l]+="$(load "$l") "; done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
echo "UDP through AF_XDP: answers per CPU-second in a namespace's loopback, medians of $ROUNDS runs of ${DURATION} s"
for l in $LOADS; do
  MEDIAN[$l]=$(echo "${RESULTS[$l]}" | median)
  printf '%-19s %9s   (%s)\n' "${l/:/ }" "${MEDIAN[$l]}" "${RESULTS[$l]% }"
done
for l in meridian:mixed meridian-xdp:mixed meridian:ecs meridian-xdp:ecs; do
  python3 -c "import sys; print(f'- {sys.argv[1]} / gdnsd mixed: answers per CPU-s ratio **{float(sys.argv[2]) / float(sys.argv[3]):.2f}**')" \
    "${l/:/ }" "${MEDIAN[$l]}" "${MEDIAN[gdnsd:mixed]}"
done
