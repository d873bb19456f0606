#!/usr/bin/env python3
"""Helpers of bench/soak.sh, on loopback only.

  soak.py flap LOG SECONDS PERIOD ADDR...   TCP listeners on ADDR:8200; the listener of
                                            ADDR[i] is closed and reopened by turns every
                                            PERIOD seconds; each change goes to LOG
  soak.py sample LOG SECONDS PORT RATE      asks vault.soak.test and www.soak.test RATE
                                            times a second; each answer goes to LOG
  soak.py rewrite ZONEFILE SECONDS PERIOD LOG   rewrites the zone file every PERIOD
                                            seconds (www alternating between two
                                            addresses); each version goes to LOG
  soak.py check FLAPS SAMPLES REWRITES WINDOW RELOAD   compares every answer with what
                                            it should have been; prints a summary line
"""
import json
import selectors
import socket
import struct
import sys
import time

MEMBERS = {"127.0.1.1": 100, "127.0.1.2": 50, "127.0.1.3": 10}
WWW = ["192.0.2.1", "192.0.2.2"]


def loopback(addr):
    if not addr.startswith("127."):
        raise SystemExit(f"refusing {addr}: loopback only")
    return addr


def listener(addr):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((loopback(addr), 8200))
    s.listen(128)
    s.setblocking(False)
    return s


def flap(log, seconds, period, addrs):
    sel = selectors.DefaultSelector()
    up = {}
    out = open(log, "w")

    def note(addr, state):
        out.write(json.dumps({"t": time.time(), "addr": addr, "up": state}) + "\n")
        out.flush()

    for a in addrs:
        up[a] = listener(a)
        sel.register(up[a], selectors.EVENT_READ)
        note(a, True)
    end = time.monotonic() + seconds
    next_flip, turn = time.monotonic() + period, 0
    while time.monotonic() < end:
        for key, _ in sel.select(timeout=0.05):
            try:
                conn, _ = key.fileobj.accept()
                conn.close()
            except OSError:
                pass
        if time.monotonic() >= next_flip:
            a = addrs[turn % len(addrs)]
            if up.get(a):
                sel.unregister(up[a])
                up[a].close()
                up[a] = None
                note(a, False)
            else:
                up[a] = listener(a)
                sel.register(up[a], selectors.EVENT_READ)
                note(a, True)
                turn += 1
            next_flip += period


def query(name, qid):
    q = struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack(">HH", 1, 1)


def answers(reply):
    """The A records of a reply (a minimal parser: our own answers, names compressed)."""
    qd, an = struct.unpack(">HH", reply[4:8])
    i = 12
    for _ in range(qd):
        while reply[i] != 0:
            if reply[i] & 0xC0:
                i += 1
                break
            i += reply[i] + 1
        i += 5
    out = []
    for _ in range(an):
        if reply[i] & 0xC0:
            i += 2
        else:
            while reply[i] != 0:
                i += reply[i] + 1
            i += 1
        rtype, _, _, rdlen = struct.unpack(">HHIH", reply[i:i + 10])
        i += 10
        if rtype == 1:
            out.append(socket.inet_ntoa(reply[i:i + 4]))
        i += rdlen
    return out


def sample(log, seconds, port, rate):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.9", 0))
    sock.settimeout(0.5)
    out = open(log, "w")
    end = time.monotonic() + seconds
    qid, gap = 0, 1.0 / rate
    while time.monotonic() < end:
        for name in ("vault.soak.test", "www.soak.test"):
            qid = (qid + 1) & 0xFFFF
            t = time.time()
            sock.sendto(query(name, qid), ("127.0.0.1", port))
            try:
                while True:
                    reply, _ = sock.recvfrom(4096)
                    if struct.unpack(">H", reply[:2])[0] == qid:
                        break
                got = answers(reply)
            except socket.timeout:
                got = None
            out.write(json.dumps({"t": t, "name": name, "got": got}) + "\n")
        time.sleep(gap)


def rewrite(zonefile, seconds, period, log):
    template = open(zonefile).read()
    out = open(log, "w")
    end = time.monotonic() + seconds
    version = 0
    while time.monotonic() < end:
        time.sleep(period)
        version += 1
        text = template.replace(WWW[0], WWW[version % 2])
        tmp = zonefile + ".tmp~"
        open(tmp, "w").write(text)
        import os
        os.rename(tmp, zonefile)
        out.write(json.dumps({"t": time.time(), "www": WWW[version % 2]}) + "\n")
        out.flush()


def check(flaps, samples, rewrites, window, reload):
    changes = [json.loads(line) for line in open(flaps)]
    versions = [json.loads(line) for line in open(rewrites)]
    up, timeline = {}, []
    for c in changes:
        up[c["addr"]] = c["up"]
        timeline.append((c["t"], dict(up)))
    wrong, lost, total, late = 0, 0, 0, 0
    examples = []
    for line in open(samples):
        s = json.loads(line)
        total += 1
        if s["got"] is None:
            lost += 1
            continue
        t = s["t"]
        if s["name"] == "vault.soak.test":
            # Fixed weight: the heaviest member that is up; all down: the heaviest (fail open).
            state = [st for (tt, st) in timeline if tt <= t]
            if not state:
                continue
            now = state[-1]
            ups = [a for a in MEMBERS if now.get(a)] or list(MEMBERS)
            expect = [max(ups, key=lambda a: MEMBERS[a])]
            recent = any(0 <= t - tt <= window for (tt, _) in timeline)
        else:
            past = [v for v in versions if v["t"] <= t]
            expect = [past[-1]["www"] if past else WWW[0]]
            recent = any(0 <= t - v["t"] <= reload for v in versions)
        if s["got"] != expect:
            if recent:
                late += 1
            else:
                wrong += 1
                if len(examples) < 5:
                    examples.append(s | {"expected": expect})
    print(json.dumps({"samples": total, "unanswered": lost, "within_window": late,
                      "wrong": wrong, "examples": examples}))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "flap":
        flap(args[0], float(args[1]), float(args[2]), args[3:])
    elif cmd == "sample":
        sample(args[0], float(args[1]), int(args[2]), float(args[3]))
    elif cmd == "rewrite":
        rewrite(args[0], float(args[1]), float(args[2]), args[3])
    elif cmd == "check":
        check(args[0], args[1], args[2], float(args[3]), float(args[4]))
    else:
        raise SystemExit(__doc__)
