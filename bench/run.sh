#!/usr/bin/env bash
# Meridian beside gdnsd and Knot under the same dnsperf load, on 127.0.0.1.
#
#   bench/run.sh --install    # as root: dnsperf, gdnsd, knot, dig (run.sh does it by itself
#                             # as root when they are missing)
#   bench/run.sh              # build Meridian (release), measure, print the table
#
# Each server is pinned to CPU $SERVER_CPU and dnsperf to CPU $CLIENT_CPU. Rounds
# interleave the servers so that background noise falls on all alike; the table shows
# medians. Loads:
#   mixed  80% health-checked name (vault: all up members, TCP checks), 10% static name,
#          10% NXDOMAIN: Meridian, gdnsd (DYNA multifo + tcp_connect) and Knot (static)
#   tcp    the mixed load over DNS over TCP (dnsperf -m tcp: persistent, pipelined)
#   ecs    Meridian only: a proximity name queried with EDNS Client Subnet options, the
#          client subnets rotating over site networks and GeoIP-placed addresses
#   rrl, cookie   Meridian only, the mixed load on a second instance with response rate
#          limiting on (at a rate nothing reaches, so that every response is counted):
#          plain queries, then queries with a valid DNS Cookie (exempt from the limit)
#   signed the mixed load with DO set, on a second Meridian with the zone signed
#          (`dnssec: {}`) and on Knot with mod-onlinesign (ECDSA P-256, one key); then, once,
#          a cold run on the signed Meridian: names that do not exist, each asked once, so
#          that every answer needs a signature made (its cost per signature, in µs)
#   fixed  Meridian, then gdnsd, at 50% and 80% of Meridian's saturation rate: latency
#          percentiles
#   xdp    Meridian with `xdp: { interface: lo }` beside itself through sockets and gdnsd,
#          the mixed and ECS loads, in a network namespace of its own (bench/xdp.sh;
#          XDP=0 skips it)
#   scale  every server loading the same 100,000 names, then 1,000,000 (bench/scale.sh;
#          SCALE=0 skips both, SCALE_BIG=0 the second)
# Settings (environment): DURATION (s per run, default 10), ROUNDS (3), CLIENTS (8),
# OUTSTANDING (200), SERVER_CPU (0), CLIENT_CPU (1), SERVERS ("meridian gdnsd knot"),
# MERIDIAN_BIN (a meridian binary to measure instead of building this checkout, e.g. an
# earlier commit's for a before/after ratio).
# Everything started is stopped on exit, and every load run is bounded by DURATION.
set -euo pipefail
cd "$(dirname "$0")"
BENCH=$PWD
ROOT=$(cd .. && pwd)

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-8}
OUTSTANDING=${OUTSTANDING:-200}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
SERVERS=${SERVERS:-meridian gdnsd knot}
PORT_MERIDIAN=5401 PORT_GDNSD=5402 PORT_KNOT=5403 PORT_GUARDED=5405 PORT_SIGNED=5406 PORT_KNOT_SIGNED=5407

install() {
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q dnsperf gdnsd knot dnsutils python3
}
if [ "${1:-}" = --install ]; then
  install
  exit 0
fi
# On a fresh machine, as root: install what is missing first.
if [ "$(id -u)" = 0 ] && ! { command -v dnsperf && command -v gdnsd && command -v knotd && command -v dig; } >/dev/null; then
  install
fi
for t in dnsperf dig taskset python3 cargo; do
  command -v "$t" >/dev/null || { echo "missing $t: run $0 --install" >&2; exit 1; }
done
case " $SERVERS " in *" gdnsd "*) command -v gdnsd >/dev/null || { echo "missing gdnsd: run $0 --install" >&2; exit 1; } ;; esac
case " $SERVERS " in *" knot "*) command -v knotd >/dev/null || { echo "missing knotd: run $0 --install" >&2; exit 1; } ;; esac

if [ -z "${MERIDIAN_BIN:-}" ]; then
  echo "building Meridian (release)..." >&2
  (cd "$ROOT" && cargo build --release --quiet)
fi
MERIDIAN=${MERIDIAN_BIN:-$ROOT/target/release/meridian}

RUNDIR=$(mktemp -d /tmp/meridian-bench.XXXXXX)
RESULTS=$RUNDIR/results.tsv
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fill() { sed -e "s|@RUNDIR@|$1|g" -e "s|@PORT@|$2|g" -e "s|@GEOIP@|$ROOT/geoip/maxmind-test-data/GeoIP2-City-Test.mmdb|g" "$3"; }
port_of() { case $1 in meridian) echo $PORT_MERIDIAN ;; guarded) echo $PORT_GUARDED ;; gdnsd) echo $PORT_GDNSD ;; knot) echo $PORT_KNOT ;; signed) echo $PORT_SIGNED ;; knot-signed) echo $PORT_KNOT_SIGNED ;; esac; }

python3 "$BENCH/tcp-listeners.py" --lifetime 3600 127.0.1.1 127.0.1.2 127.0.1.3 &
PIDS+=("$!")

start() {
  local name=$1 port d
  port=$(port_of "$name"); d=$RUNDIR/$name; mkdir -p "$d"
  if ss -Hlun "sport = :$port" | grep -q .; then echo "port $port is busy" >&2; exit 1; fi
  case $name in
    meridian)
      mkdir -p "$d/zones"
      fill "$d" "$port" conf/meridian.yaml > "$d/meridian.yaml"
      cp conf/kemp.local.yaml "$d/zones/"
      RUST_LOG=warn taskset -c "$SERVER_CPU" "$MERIDIAN" serve -c "$d/meridian.yaml" > "$d/log" 2>&1 & ;;
    guarded)
      mkdir -p "$d/zones"
      { fill "$d" "$port" conf/meridian.yaml; echo "rate-limit: { responses-per-second: 1000000 }"; } > "$d/meridian.yaml"
      cp conf/kemp.local.yaml "$d/zones/"
      RUST_LOG=warn taskset -c "$SERVER_CPU" "$MERIDIAN" serve -c "$d/meridian.yaml" > "$d/log" 2>&1 & ;;
    signed)
      mkdir -p "$d/zones"
      fill "$d" "$port" conf/meridian.yaml > "$d/meridian.yaml"
      { cat conf/kemp.local.yaml; echo "dnssec: {}"; } > "$d/zones/kemp.local.yaml"
      RUST_LOG=error taskset -c "$SERVER_CPU" "$MERIDIAN" serve -c "$d/meridian.yaml" > "$d/log" 2>&1 & ;;
    knot-signed)
      mkdir -p "$d/run" "$d/db"
      fill "$d" "$port" conf/knot-signed.conf > "$d/knot.conf"
      cp conf/knot.zone "$d/kemp.local.zone"
      taskset -c "$SERVER_CPU" knotd -c "$d/knot.conf" > "$d/log" 2>&1 & ;;
    gdnsd)
      mkdir -p "$d/zones" "$d/run" "$d/state"
      fill "$d" "$port" conf/gdnsd.config > "$d/config"
      cp conf/gdnsd.zone "$d/zones/kemp.local"
      taskset -c "$SERVER_CPU" gdnsd -c "$d" start > "$d/log" 2>&1 & ;;
    knot)
      mkdir -p "$d/run" "$d/db"
      fill "$d" "$port" conf/knot.conf > "$d/knot.conf"
      cp conf/knot.zone "$d/kemp.local.zone"
      taskset -c "$SERVER_CPU" knotd -c "$d/knot.conf" > "$d/log" 2>&1 & ;;
  esac
  echo $! > "$d/pid"; PIDS+=("$!")
}

wait_ready() {
  local name=$1 port; port=$(port_of "$name")
  for _ in $(seq 60); do
    kill -0 "$(cat "$RUNDIR/$name/pid")" 2>/dev/null || { echo "$name died:" >&2; tail "$RUNDIR/$name/log" >&2; exit 1; }
    if [ "$(dig +short +norec +time=1 +tries=1 @127.0.0.1 -p "$port" vault.kemp.local | grep -c '^127\.0\.1\.')" = 3 ]; then
      return
    fi
    sleep 0.5
  done
  echo "$name not ready after 30 s" >&2; tail "$RUNDIR/$name/log" >&2; exit 1
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# run LABEL SERVER QUERYFILE SECONDS [dnsperf args...]: one bounded dnsperf run.
run() {
  local label=$1 name=$2 queries=$3 seconds=$4; shift 4
  local pid port out t0 t1
  pid=$(cat "$RUNDIR/$name/pid"); port=$(port_of "$name")
  out=$RUNDIR/$label.$(date +%s%N).out
  t0=$(cpu_ticks "$pid")
  taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$port" -d "$queries" -T 1 -c "$CLIENTS" \
    -q "$OUTSTANDING" -t 1 -l "$seconds" "$@" > "$out" 2>&1
  t1=$(cpu_ticks "$pid")
  python3 - "$out" "$label" "$((t1 - t0))" "$(getconf CLK_TCK)" >> "$RESULTS" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def num(pat, default=0.0):
    m = re.search(pat, text)
    return float(m.group(1)) if m else default
completed = num(r"Queries completed:\s+(\d+)")
lost = num(r"Queries lost:\s+(\d+)")
qps = num(r"Queries per second:\s+([\d.]+)")
runtime = num(r"Run time \(s\):\s+([\d.]+)", 1.0)
avg = num(r"Average Latency \(s\):\s+([\d.]+)")
mx = num(r"Average Latency \(s\):\s+[\d.]+ \(min [\d.]+, max ([\d.]+)\)")
cpu = int(sys.argv[3]) / int(sys.argv[4])
print(f"{sys.argv[2]}\t{completed:.0f}\t{lost:.0f}\t{qps:.1f}\t{runtime:.3f}\t{cpu:.3f}\t{avg*1000:.3f}\t{mx*1000:.3f}")
PY
}

# ECS option values (dnsperf -E code:hex): family, source prefix, scope 0, address bytes.
ecs() { python3 -c "import ipaddress,sys; n=ipaddress.ip_network(sys.argv[1]); f=1 if n.version==4 else 2; b=n.network_address.packed[:(n.prefixlen+7)//8]; print('8:%04x%02x00%s' % (f, n.prefixlen, b.hex()))" "$1"; }
SUBNETS="10.1.7.0/24 10.2.7.0/24 10.3.7.0/24 81.2.69.142/32 89.160.20.112/32 216.160.83.56/32 175.16.199.0/24 214.0.0.1/32"

# The instance with RRL, and the signed one, come with Meridian; signed Knot with Knot.
STARTED=$SERVERS
case " $SERVERS " in *" meridian "*) STARTED="$STARTED guarded" ;; esac
if [ "${SIGNED:-1}" = 1 ]; then
  case " $SERVERS " in *" meridian "*) STARTED="$STARTED signed" ;; esac
  case " $SERVERS " in *" knot "*) STARTED="$STARTED knot-signed" ;; esac
fi
for s in $STARTED; do start "$s"; done
for s in $STARTED; do wait_ready "$s"; done
# A valid DNS Cookie for 127.0.0.1 (dnsperf's source): dig's client cookie and the server's.
COOKIE=""
case " $STARTED " in *" guarded "*)
  COOKIE=$(dig +cookie +time=2 @127.0.0.1 -p "$PORT_GUARDED" vault.kemp.local | awk '/^; COOKIE:/ {print $3}')
  [ -n "$COOKIE" ] || { echo "no DNS Cookie from the guarded instance" >&2; exit 1; } ;;
esac
printf 'label\tcompleted\tlost\tqps\truntime\tcpu\tavg_ms\tmax_ms\n' > "$RESULTS"
echo "warming up..." >&2
for s in $SERVERS; do run "warmup-$s" "$s" queries.txt 2 > /dev/null; done
for s in signed knot-signed; do
  case " $STARTED " in *" $s "*) run "warmup-$s" "$s" queries.txt 2 -D > /dev/null ;; esac
done
sed -i '/^warmup/d' "$RESULTS"
for r in $(seq "$ROUNDS"); do
  for s in $SERVERS; do
    echo "round $r/$ROUNDS: $s, mixed load, ${DURATION}s" >&2
    run "$s mixed" "$s" queries.txt "$DURATION"
  done
  # The same load over TCP: dnsperf keeps one connection per client open and pipelines up
  # to OUTSTANDING queries over them, reconnecting when a server closes one.
  for s in $SERVERS; do
    echo "round $r/$ROUNDS: $s, mixed load over TCP, ${DURATION}s" >&2
    run "$s tcp" "$s" queries.txt "$DURATION" -m tcp
  done
  case " $SERVERS " in *" meridian "*)
    # The ECS run: each client subnet for an equal share of DURATION.
    n=$(echo "$SUBNETS" | wc -w); share=$(( (DURATION + n - 1) / n ))
    echo "round $r/$ROUNDS: meridian, ECS proximity load, $n subnets x ${share}s" >&2
    for net in $SUBNETS; do run "meridian ecs-part" meridian queries-ecs.txt "$share" -E "$(ecs "$net")"; done
    python3 - "$RESULTS" >> "$RESULTS" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.startswith("meridian ecs-part")]
tot = [sum(float(r[i]) for r in rows) for i in range(1, 8)]
avg_lat = sum(float(r[6]) * float(r[1]) for r in rows) / max(tot[0], 1)
print(f"meridian ecs\t{tot[0]:.0f}\t{tot[1]:.0f}\t{tot[0]/tot[3]:.1f}\t{tot[3]:.3f}\t{tot[4]:.3f}\t{avg_lat:.3f}\t{max(float(r[7]) for r in rows):.3f}")
PY
    sed -i '/^meridian ecs-part/d' "$RESULTS"
    echo "round $r/$ROUNDS: meridian with RRL, mixed load, ${DURATION}s, then with a valid cookie" >&2
    run "meridian+rrl mixed" guarded queries.txt "$DURATION"
    run "meridian+cookie mixed" guarded queries.txt "$DURATION" -E "10:$COOKIE" ;;
  esac
  # The mixed load with DO (dnsperf -D) on the signed zones.
  for s in signed knot-signed; do
    case " $STARTED " in *" $s "*) ;; *) continue ;; esac
    echo "round $r/$ROUNDS: $s, mixed load with DO, ${DURATION}s" >&2
    run "$s mixed-do" "$s" queries.txt "$DURATION" -D
  done
done

# Cold signatures: names that do not exist, each asked once (more than a run can send),
# so that every answer needs its compact denial signed.
case " $STARTED " in *" signed "*)
  python3 -c "
import sys
with open(sys.argv[1], 'w') as f:
    for i in range(2000000):
        f.write(f'cold{i}.kemp.local A\\n')
" "$RUNDIR/queries-cold.txt"
  echo "signed meridian, cold: each name once, ${DURATION}s" >&2
  run "signed cold" signed "$RUNDIR/queries-cold.txt" "$DURATION" -D ;;
esac

for s in $STARTED; do
  echo -e "$s\t$(awk '/VmHWM/ {print $2}' "/proc/$(cat "$RUNDIR/$s/pid")/status")" >> "$RUNDIR/rss.tsv"
done

# Below saturation: 50% and 80% of Meridian's median QPS, fixed rate, for DURATION each,
# with every answer's latency (-v) for the percentiles. Each row also says how busy the
# server's and dnsperf's CPUs were: on loopback dnsperf's core does half of every
# exchange's kernel work, so it can be the one near its limit, and its own queueing is in
# the latencies it reports.
cpu_times() { awk -v s="cpu$SERVER_CPU" -v c="cpu$CLIENT_CPU" '$1 == s || $1 == c {print $1, $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat; }
busy_share() {
  paste -d' ' <(echo "$1") <(echo "$2") | awk -v s="cpu$SERVER_CPU" '{b = 100 * (1 - ($6 - $3) / ($5 - $2)); if ($1 == s) sv = b; else cl = b} END {printf "%.0f %.0f\n", sv, cl}'
}
FIXED=""
case " $SERVERS " in *" meridian "*)
  for share in 50 80; do
    rate=$(awk -F'\t' '$1 == "meridian mixed" {print $4}' "$RESULTS" | sort -n | awk -v s="$share" '{a[NR]=$1} END {print int(a[int((NR+1)/2)] * s / 100)}')
    echo "meridian at $share% of its saturation: ${rate} QPS for ${DURATION}s" >&2
    # gdnsd at the same rate, for a tail to hold Meridian's against.
    for name in meridian gdnsd; do
      case " $STARTED " in *" $name "*) ;; *) continue ;; esac
      out=$RUNDIR/fixed-$name-$share.out
      before=$(cpu_times)
      taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$(port_of "$name")" -d queries.txt -T 1 -c "$CLIENTS" \
        -q "$OUTSTANDING" -t 1 -l "$DURATION" -Q "$rate" -v > "$out" 2>&1
      busy_share "$before" "$(cpu_times)" > "$out.cpu"
      FIXED="$FIXED $name:$share:$out"
    done
  done ;;
esac

python3 - "$RESULTS" "$RUNDIR/rss.tsv" "$DURATION" "$ROUNDS" "$FIXED" <<'PY'
import re, statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
rss = dict(l.split() for l in open(sys.argv[2]))
by = {}
for r in rows:
    by.setdefault(r[0], []).append([float(x) for x in r[1:]])
def med(k, i):
    return statistics.median(v[i] for v in by[k])
def per_cpu(k):
    return statistics.median(v[0] / v[4] for v in by[k] if v[4] > 0)
print(f"\nMeridian beside gdnsd and Knot: {sys.argv[4]} rounds of {sys.argv[3]} s, medians; server and dnsperf pinned to separate cores\n")
print("| server, load | QPS | server CPU s | answers per CPU-s | avg / max latency ms | lost / sent | peak RSS MiB |")
print("|---|---|---|---|---|---|---|")
for k in by:
    server = k.split()[0]
    server = "guarded" if server in ("meridian+rrl", "meridian+cookie") else server
    lost = sum(v[1] for v in by[k]); sent = sum(v[0] + v[1] for v in by[k])
    print(f"| {k} | {med(k,2):,.0f} | {med(k,4):.2f} | {per_cpu(k):,.0f} | {med(k,5):.2f} / {max(v[6] for v in by[k]):.1f} | {lost:.0f} / {sent:,.0f} | {int(rss.get(server, 0))/1024:.1f} |")
print()
for peer in ("gdnsd mixed", "knot mixed"):
    if peer in by:
        for k in ("meridian mixed", "meridian ecs"):
            if k in by:
                print(f"- {k} / {peer}: answers per CPU-s ratio **{per_cpu(k)/per_cpu(peer):.2f}**")
for peer in ("gdnsd tcp", "knot tcp"):
    if peer in by and "meridian tcp" in by:
        print(f"- meridian tcp / {peer}: answers per CPU-s ratio **{per_cpu('meridian tcp')/per_cpu(peer):.2f}**")
if "signed mixed-do" in by and "meridian mixed" in by:
    print(f"- signed mixed-do / meridian mixed (DO, signatures cached / unsigned): answers per CPU-s ratio **{per_cpu('signed mixed-do')/per_cpu('meridian mixed'):.2f}**")
if "signed mixed-do" in by and "knot-signed mixed-do" in by:
    print(f"- signed mixed-do / knot-signed mixed-do (both signing online): answers per CPU-s ratio **{per_cpu('signed mixed-do')/per_cpu('knot-signed mixed-do'):.2f}**")
if "signed cold" in by and "signed mixed-do" in by:
    cost = 1e6 / per_cpu("signed cold") - 1e6 / per_cpu("signed mixed-do")
    print(f"- a signature made (cold) costs **{cost:.1f} µs** of server CPU beyond a cached answer ({per_cpu('signed cold'):,.0f} cold answers per CPU-s)")
for k in ("meridian+rrl mixed", "meridian+cookie mixed"):
    if k in by and "meridian mixed" in by:
        cost = 1 - per_cpu(k) / per_cpu("meridian mixed")
        print(f"- {k} / meridian mixed: answers per CPU-s ratio **{per_cpu(k)/per_cpu('meridian mixed'):.3f}** (cost {cost:+.1%})")
for fixed in sys.argv[5].split() if len(sys.argv) > 5 else []:
    name, share, path = fixed.split(":", 2)
    t = open(path).read()
    def g(p):
        return re.search(p, t).group(1)
    qps = float(g(r"Queries per second:\s+([\d.]+)"))
    lost, sent = g(r"Queries lost:\s+(\d+)"), g(r"Queries sent:\s+(\d+)")
    avg = float(g(r"Average Latency \(s\):\s+([\d.]+)")) * 1000
    mx = float(g(r"max ([\d.]+)\)")) * 1000
    # -v printed every answer with its latency: "> NOERROR name type 0.000158". A query
    # that timed out has no latency at the end of its line ("> T name type"): it is lost.
    def latency(line):
        try:
            return float(line.split()[-1])
        except ValueError:
            return None
    lat = sorted(x for x in (latency(l) for l in t.splitlines() if l.startswith("> ")) if x is not None)
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else float("nan")
    server_busy, client_busy = open(path + ".cpu").read().split()
    print(f"- {name} at {share}% of Meridian's saturation ({qps:,.0f} QPS): lost {lost} of {sent}, "
          f"latency avg {avg:.3f} ms, p50 {pct(0.5):.3f} ms, p99 {pct(0.99):.3f} ms, "
          f"p99.9 {pct(0.999):.3f} ms, max {mx:.3f} ms; CPU busy: server's {server_busy} %, "
          f"dnsperf's {client_busy} %")
PY
# UDP through AF_XDP, beside the sockets and gdnsd, in a namespace of its own.
if [ "${XDP:-1}" = 1 ]; then
  echo
  MERIDIAN_BIN=$MERIDIAN DURATION=$DURATION ROUNDS=$ROUNDS SERVER_CPU=$SERVER_CPU \
    CLIENT_CPU=$CLIENT_CPU "$BENCH/xdp.sh"
fi
# Scale: the same 100,000 names loaded by each server (bench/scale.sh): load time to the
# first answer for the last name, resident memory and its peak, bytes per name.
if [ "${SCALE:-1}" = 1 ]; then
  echo
  SERVER_CPU=$SERVER_CPU "$BENCH/scale.sh" "${SCALE_NAMES:-100000}" "$MERIDIAN"
  if [ "${SCALE_BIG:-1}" = 1 ]; then
    echo
    SERVER_CPU=$SERVER_CPU "$BENCH/scale.sh" "${SCALE_BIG_NAMES:-1000000}" "$MERIDIAN"
  fi
fi
echo "raw results: $RUNDIR" >&2
