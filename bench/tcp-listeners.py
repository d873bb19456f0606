#!/usr/bin/env python3
"""Health-check targets for the benchmark: accept on ADDR:PORT and close at once.
Loopback addresses only; exits by itself after --lifetime seconds."""
import argparse, selectors, socket, time

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, default=8200)
p.add_argument("--lifetime", type=float, default=1800)
p.add_argument("addrs", nargs="+")
a = p.parse_args()
sel = selectors.DefaultSelector()
for addr in a.addrs:
    if not addr.startswith("127."):
        raise SystemExit(f"refusing {addr}: loopback only")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, a.port))
    s.listen(128)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
end = time.monotonic() + a.lifetime
while time.monotonic() < end:
    for key, _ in sel.select(timeout=1.0):
        try:
            conn, _ = key.fileobj.accept()
            conn.close()
        except OSError:
            pass
