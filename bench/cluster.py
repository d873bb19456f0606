#!/usr/bin/env python3
"""How fast a change that one server of a cluster sees reaches all of them, and what the
gossip costs, with 3, 10 and 30 servers on this machine.

    sudo bench/cluster.py [MERIDIAN] [SIZES...]     # default: target/release/meridian 3 10 30

Server 0 runs in a network namespace of the script's own (as the tests do), where backend
Y listens on the namespace's loopback: only server 0 sees Y up. The others run on
127.0.93.x and reach server 0 over a veth pair on link-local addresses. Every server
serves one name, `y`, with `quorum: all` (up while any server sees it up), so each
answers Y as long as server 0's view has reached it.

Then Y stops. Server 0 sees it down at its next probe (every 200 ms); every other server
answers nothing once server 0's view has reached it. The script asks every server in
turn, over and over, and prints when each one changed. Before that, with the cluster
settled, it reads each server's meridian_cluster_bytes_total and messages over 10 s:
the cost of the exchange at rest.

Root is needed for the namespace. Nothing leaves the machine: the link-local /24 has an
`unreachable` route behind the veth. Every wait is bounded.
"""

import os
import random
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.realpath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "../target/release/meridian"))
SIZES = [int(a) for a in sys.argv[2:]] or [3, 10, 30]
NS = f"meridian-bench-{os.getpid() % 100000}"
HOST_IF, PEER_IF = f"mrbh{os.getpid() % 100000}", f"mrbp{os.getpid() % 100000}"
NEAR, FAR = "169.254.85.1", "169.254.85.2"
Y, Y_PORT = "127.0.98.11", 7000
KEY = "bench cluster key, at least 32 characters long"
TOKEN = "bench admin token, 16+ chars"


def sh(cmd, check=True):
    return subprocess.run(cmd, shell=True, check=check, capture_output=True)


def netns_up():
    netns_down()
    for cmd in [
        "ip route add unreachable 169.254.85.0/24",
        f"ip netns add {NS}",
        f"ip link add {HOST_IF} type veth peer name {PEER_IF}",
        f"ip link set {PEER_IF} netns {NS}",
        f"ip addr add {NEAR}/29 dev {HOST_IF}",
        f"ip link set {HOST_IF} up",
        f"ip netns exec {NS} ip addr add {FAR}/29 dev {PEER_IF}",
        f"ip netns exec {NS} ip link set {PEER_IF} up",
        f"ip netns exec {NS} ip link set lo up",
    ]:
        sh(cmd)


def netns_down():
    sh(f"ip netns del {NS}", check=False)
    sh(f"ip link del {HOST_IF}", check=False)
    sh("ip route del unreachable 169.254.85.0/24", check=False)


def start_y():
    """Backend Y: a TCP listener on the namespace's loopback."""
    code = (
        "import socket,time\n"
        f"s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('{Y}', {Y_PORT})); s.listen(64)\n"
        "s.settimeout(1)\n"
        "end=time.time()+600\n"
        "while time.time()<end:\n"
        "    try:\n"
        "        c,_=s.accept(); c.close()\n"
        "    except OSError:\n"
        "        pass\n"
    )
    return subprocess.Popen(["ip", "netns", "exec", NS, sys.executable, "-c", code])


def query(name):
    qid = random.randrange(65536)
    q = struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0)
    for label in name.strip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return qid, q + b"\x00" + struct.pack(">HH", 1, 1)


def answers(sock, addr, name="y.c.test"):
    """The answer count of `name` A from the server at `addr`, or None without a reply."""
    qid, q = query(name)
    sock.sendto(q, addr)
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        try:
            data, _ = sock.recvfrom(4096)
        except socket.timeout:
            return None
        if len(data) >= 12 and struct.unpack(">H", data[:2])[0] == qid:
            return struct.unpack(">H", data[6:8])[0]
    return None


class Server:
    def __init__(self, i, root, peers):
        self.i = i
        if i == 0:
            self.dns, self.admin, self.gossip = (FAR, 5300), (FAR, 9153), f"{FAR}:5400"
        else:
            ip = f"127.0.93.{i}"
            self.dns, self.admin, self.gossip = (ip, 5300), (ip, 9153), f"{NEAR}:{5400 + i}"
        self.dir = os.path.join(root, f"s{i}")
        os.makedirs(os.path.join(self.dir, "zones"))
        self.peers = peers
        # A socket bound where the server's answers come back to.
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((NEAR if i == 0 else "127.0.0.1", 0))
        self.sock.settimeout(0.5)

    def write(self):
        peers = ", ".join(p for p in self.peers if p != self.gossip)
        with open(os.path.join(self.dir, "meridian.yaml"), "w") as f:
            f.write(
                f"listen: [{self.dns[0]}:{self.dns[1]}]\nzones: zones\nwatch: false\n"
                f"state-file: state.json\n"
                f"admin: {{ listen: \"{self.admin[0]}:{self.admin[1]}\", token: \"{TOKEN}\" }}\n"
                f"cluster:\n  listen: {self.gossip}\n  peers: [{peers}]\n  key: \"{KEY}\"\n"
            )
        with open(os.path.join(self.dir, "zones/c.yaml"), "w") as f:
            f.write(
                "zone: c.test\nns: [ns1]\nrecords:\n  ns1: { A: 192.0.2.53 }\nfqdns:\n  y:\n"
                "    quorum: all\n    when-all-down: none\n"
                f"    check: {{ type: tcp, port: {Y_PORT}, interval: 200ms, timeout: 100ms, rise: 1, fall: 1 }}\n"
                f"    members: [{{ address: {Y} }}]\n"
            )

    def start(self):
        self.write()
        cmd = [BIN, "serve", "--config", os.path.join(self.dir, "meridian.yaml")]
        if self.i == 0:
            cmd = ["ip", "netns", "exec", NS] + cmd
        self.log = open(os.path.join(self.dir, "log"), "w")
        self.proc = subprocess.Popen(cmd, stderr=self.log, stdout=self.log)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def counters(self):
        url = f"http://{self.admin[0]}:{self.admin[1]}/metrics"
        text = urllib.request.urlopen(url, timeout=2).read().decode()
        out = {}
        for m in re.finditer(r'^meridian_cluster_(bytes|messages)_total\{direction="(\w+)"\} (\d+)$', text, re.M):
            out[(m.group(1), m.group(2))] = int(m.group(3))
        return out


def wait(what, limit, f):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if f():
            return
        time.sleep(0.05)
    raise SystemExit(f"gave up waiting {limit} s for {what}")


def run(n, root):
    seeds = [f"{FAR}:5400", f"{NEAR}:5401"]
    servers = [Server(i, os.path.join(root, str(n)), seeds) for i in range(n)]
    y = start_y()
    try:
        for s in servers:
            s.start()
        # Settled: every server answers Y, so server 0's view has reached each.
        wait("every server to answer Y", 120, lambda: all(answers(s.sock, s.dns) == 1 for s in servers))
        time.sleep(3)
        before = [s.counters() for s in servers]
        time.sleep(10)
        after = [s.counters() for s in servers]
        rate = lambda kind: sum(a[(kind, "sent")] - b[(kind, "sent")] for a, b in zip(after, before)) / n / 10
        bytes_s, msgs_s = rate("bytes"), rate("messages")

        # Y stops: only server 0 can see it.
        y.kill()
        y.wait()
        t0 = time.monotonic()
        changed = {}
        end = t0 + 60
        while len(changed) < n and time.monotonic() < end:
            for s in servers:
                if s.i not in changed and answers(s.sock, s.dns) == 0:
                    changed[s.i] = (time.monotonic() - t0) * 1000
        if len(changed) < n:
            late = [s for s in servers if s.i not in changed]
            for s in late[:2]:
                url = f"http://{s.admin[0]}:{s.admin[1]}/status"
                print(urllib.request.urlopen(url, timeout=2).read().decode()[:3000], file=sys.stderr)
            raise SystemExit(f"{n} servers: {len(late)} never changed within 60 s: {[s.i for s in late]}")
        own = changed[0]
        others = sorted(v for k, v in changed.items() if k != 0)
        return own, others[len(others) // 2], others[-1], bytes_s, msgs_s
    finally:
        if y.poll() is None:
            y.kill()
            y.wait()
        for s in servers:
            s.stop()


def main():
    if os.geteuid() != 0:
        raise SystemExit("needs root (a network namespace)")
    root = tempfile.mkdtemp(prefix="meridian-cluster-bench.")
    netns_up()
    rows = []
    try:
        for n in SIZES:
            rows.append((n,) + run(n, root))
    finally:
        netns_down()
        shutil.rmtree(root, ignore_errors=True)
    print("| servers | seen by server 0 (ms) | reached half of the others (ms) | reached all (ms) | gossip per server at rest (bytes/s, datagrams/s) |")
    print("|---|---|---|---|---|")
    for n, own, median, last, b, m in rows:
        print(f"| {n} | {own:.0f} | {median:.0f} | {last:.0f} | {b:.0f}, {m:.1f} |")


if __name__ == "__main__":
    main()
