#!/usr/bin/env python3
"""N hostile TCP connections, held open and reopened as the server closes them, from many
loopback addresses; meanwhile a well-behaved TCP client and a UDP client ask, and their
answers and latencies are reported. Loopback only; bounded by --seconds.

  bench/tcp-flood.py --port 5407 --connections 10000 --seconds 20
"""
import argparse, resource, selectors, socket, struct, time

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--connections", type=int, default=10000)
p.add_argument("--seconds", type=float, default=20)
a = p.parse_args()
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

def query(qid):
    q = struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0)
    for label in ("www", "flood", "test"):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack(">HH", 1, 1)

def hostile(i):
    s = socket.socket()
    s.setblocking(False)
    # 100 connections per source address, from 127.0.100.0 up.
    s.bind((f"127.0.{100 + i // 25000}.{(i // 100) % 250 + 1}", 0))
    s.connect_ex(("127.0.0.1", a.port))
    return s

sel = selectors.DefaultSelector()
conns = {}
for i in range(a.connections):
    try:
        s = hostile(i)
    except OSError:
        continue
    conns[s.fileno()] = (i, s)
    sel.register(s, selectors.EVENT_READ)
print(f"opened {len(conns)} hostile connections")

tcp_ok, tcp_lat, udp_ok, udp_lat, reopened = 0, [], 0, [], 0
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("127.0.0.9", 0))
udp.settimeout(1)
end = time.monotonic() + a.seconds
n = 0
while time.monotonic() < end:
    # The server closes hostile connections (idle, or to make room): reopen them, a few
    # hundred at a time so that the clients below keep their pace.
    for key, _ in sel.select(timeout=0)[:500]:
        i, s = conns.pop(key.fd)
        sel.unregister(s)
        s.close()
        try:
            s = hostile(i)
            conns[s.fileno()] = (i, s)
            sel.register(s, selectors.EVENT_READ)
            reopened += 1
        except OSError:
            pass
    n += 1
    # A well-behaved TCP client: a new connection, one query.
    t = time.monotonic()
    try:
        c = socket.create_connection(("127.0.0.1", a.port), timeout=2, source_address=("127.0.0.8", 0))
        q = query(n & 0xFFFF)
        c.sendall(struct.pack(">H", len(q)) + q)
        c.settimeout(2)
        head = c.recv(2)
        if len(head) == 2 and len(c.recv(struct.unpack(">H", head)[0])) > 0:
            tcp_ok += 1
            tcp_lat.append(time.monotonic() - t)
        c.close()
    except OSError:
        pass
    t = time.monotonic()
    udp.sendto(query(n & 0xFFFF), ("127.0.0.1", a.port))
    try:
        udp.recvfrom(4096)
        udp_ok += 1
        udp_lat.append(time.monotonic() - t)
    except socket.timeout:
        pass
    time.sleep(0.02)

def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000 if xs else float("nan")
print(f"hostile connections reopened after the server closed them: {reopened}")
print(f"well-behaved TCP client: {tcp_ok}/{n} answered, median {pct(tcp_lat, 0.5):.2f} ms, p99 {pct(tcp_lat, 0.99):.2f} ms")
print(f"UDP client: {udp_ok}/{n} answered, median {pct(udp_lat, 0.5):.2f} ms, p99 {pct(udp_lat, 0.99):.2f} ms")
