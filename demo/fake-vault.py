#!/usr/bin/env python3
"""Fake Vault nodes for the Meridian demo: /v1/sys/health on 127.0.1.1-6:8200.

The leader answers 200, the others 429 (standby), as Vault does.

    python3 demo/fake-vault.py serve          # nodes 1-6, node 1 leads
    python3 demo/fake-vault.py step-down 4    # node 4 becomes the leader
    python3 demo/fake-vault.py seal 4         # node 4 answers 503 (sealed)

`serve` takes --nodes (default 127.0.1.1-127.0.1.6), --port (default 8200) and --first
(the node number of the first address, default 1: one node per container). The leader
is kept in a small state file ($MERIDIAN_DEMO_STATE, default /tmp/meridian-demo-vault.json),
read on every request, so step-down and seal work from any shell.
"""
import argparse
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATE = os.environ.get("MERIDIAN_DEMO_STATE", "/tmp/meridian-demo-vault.json")


def read_state():
    try:
        with open(STATE) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"leader": 1, "sealed": []}


def write_state(state):
    tmp = STATE + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.replace(tmp, STATE)


def handler_for(node):
    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            state = read_state()
            if self.path.split("?")[0] != "/v1/sys/health":
                code = 404
            elif node in state["sealed"]:
                code = 503
            elif node == state["leader"]:
                code = 200
            else:
                code = 429
            body = json.dumps({"initialized": True, "sealed": code == 503,
                               "standby": code == 429, "node": node}).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_HEAD = do_GET

        def log_message(self, *args):
            pass

    return Health


def serve(nodes, port, first):
    if not os.path.exists(STATE):
        write_state({"leader": 1, "sealed": []})
    servers = []
    for i, addr in enumerate(nodes, start=first):
        srv = ThreadingHTTPServer((addr, port), handler_for(i))
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        print(f"node{i}: http://{addr}:{port}/v1/sys/health", flush=True)
    print(f"leader: node{read_state()['leader']} (state in {STATE})", flush=True)
    threading.Event().wait()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--nodes", default=",".join(f"127.0.1.{i}" for i in range(1, 7)))
    s.add_argument("--port", type=int, default=8200)
    s.add_argument("--first", type=int, default=1, help="node number of the first address")
    d = sub.add_parser("step-down", help="make node N the leader")
    d.add_argument("node", type=int)
    z = sub.add_parser("seal", help="seal node N (503)")
    z.add_argument("node", type=int)
    u = sub.add_parser("unseal", help="unseal node N")
    u.add_argument("node", type=int)
    a = p.parse_args()
    if a.cmd == "serve":
        serve(a.nodes.split(","), a.port, a.first)
        return
    state = read_state()
    if a.cmd == "step-down":
        state["leader"] = a.node
    elif a.cmd == "seal":
        state["sealed"] = sorted(set(state["sealed"]) | {a.node})
    else:
        state["sealed"] = [n for n in state["sealed"] if n != a.node]
    write_state(state)
    print(json.dumps(state))


if __name__ == "__main__":
    sys.exit(main())
