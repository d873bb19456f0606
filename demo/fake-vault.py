#!/usr/bin/env python3
"""Fake Vault nodes for the Meridian demo, on 127.0.1.1-6:8200.

Each node answers GET /v1/sys/health as Vault 1.19 does (200 active, 429 standby, 474 a
standby that lost its heartbeat to the active node, 503 sealed, with Vault's JSON body)
and GET /v1/sys/leader with the leader's api_addr, http://nodeN.vault.kemp:8200.

    python3 demo/fake-vault.py serve            # nodes 1-6, node 1 leads
    python3 demo/fake-vault.py step-down 4      # node 4 becomes the leader
    python3 demo/fake-vault.py seal 4           # node 4 answers 503 (sealed)
    python3 demo/fake-vault.py unseal 4
    python3 demo/fake-vault.py election         # nobody leads: every node 429, no leader named
    python3 demo/fake-vault.py heartbeat-lost 3 # node 3 answers 474
    python3 demo/fake-vault.py heartbeat 3      # node 3 is a plain standby again
    python3 demo/fake-vault.py stale 2          # node 2 also claims to lead, and names itself
    python3 demo/fake-vault.py reset            # node 1 leads, nothing else

`serve` takes --nodes (default 127.0.1.1-127.0.1.6), --port (default 8200) and --first
(the node number of the first address, default 1: one node per container). The state is
kept in a small file ($MERIDIAN_DEMO_STATE, default /tmp/meridian-demo-vault.json), read
on every request, so the commands work from any shell.
"""
import argparse
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATE = os.environ.get("MERIDIAN_DEMO_STATE", "/tmp/meridian-demo-vault.json")
FRESH = {"leader": 1, "sealed": [], "heartbeat_lost": [], "stale": []}


def read_state():
    try:
        with open(STATE) as f:
            return {**FRESH, **json.load(f)}
    except (OSError, ValueError):
        return dict(FRESH)


def write_state(state):
    tmp = STATE + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.replace(tmp, STATE)


def api_addr(node, port):
    return f"http://node{node}.vault.kemp:{port}"


def health(node, state):
    """Vault's status code and body for this node."""
    sealed = node in state["sealed"]
    active = not sealed and (node == state["leader"] or node in state["stale"])
    if sealed:
        code = 503
    elif active:
        code = 200
    elif node in state["heartbeat_lost"]:
        code = 474
    else:
        code = 429
    body = {"initialized": True, "sealed": sealed, "standby": not sealed and not active,
            "performance_standby": False, "replication_dr_mode": "disabled",
            "replication_performance_mode": "disabled", "server_time_utc": 1796140800,
            "version": "1.19.0", "cluster_name": "vault-cluster-kemp",
            "ha_connection_healthy": code != 474}
    return code, body


def leader(node, state, port):
    if node in state["sealed"]:
        return 503, {"errors": ["Vault is sealed"]}
    named = node if node in state["stale"] else state["leader"]
    address = api_addr(named, port) if named else ""
    return 200, {"ha_enabled": True, "is_self": named == node, "leader_address": address,
                 "leader_cluster_address": "", "performance_standby": False,
                 "raft_committed_index": 1042, "raft_applied_index": 1042}


def handler_for(node, port):
    class Vault(BaseHTTPRequestHandler):
        def do_GET(self):
            state = read_state()
            path = self.path.split("?")[0]
            if path == "/v1/sys/health":
                code, body = health(node, state)
            elif path == "/v1/sys/leader":
                code, body = leader(node, state, port)
            else:
                code, body = 404, {"errors": []}
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_HEAD = do_GET

        def log_message(self, *args):
            pass

    return Vault


def demo_token():
    """The admin token of the demo's server file beside this directory, if it has one."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "meridian.yaml")
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.strip().partition(":")
                if key == "token" and value.strip():
                    return value.split("#")[0].strip()
    except OSError:
        pass
    return None


def serve(nodes, port, first):
    if not os.path.exists(STATE):
        write_state(dict(FRESH))
    for i, addr in enumerate(nodes, start=first):
        srv = ThreadingHTTPServer((addr, port), handler_for(i, port))
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        print(f"node{i}: http://{addr}:{port}/v1/sys/health", flush=True)
    print(f"leader: node{read_state()['leader']} (state in {STATE})", flush=True)
    token = demo_token()
    if token:
        print(
            f"Meridian's admin token (meridian.yaml): export TOKEN={token}\n"
            f"  e.g. curl -s -X POST -H \"Authorization: Bearer $TOKEN\" "
            "127.0.0.1:9153/members/vault.kemp.local/127.0.1.1/disable",
            flush=True,
        )
    print("stop: Ctrl-C (or kill %1 if started with &); reset the nodes: fake-vault.py reset",
          flush=True)
    threading.Event().wait()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--nodes", default=",".join(f"127.0.1.{i}" for i in range(1, 7)))
    s.add_argument("--port", type=int, default=8200)
    s.add_argument("--first", type=int, default=1, help="node number of the first address")
    for cmd, what in [("step-down", "make node N the leader"), ("seal", "seal node N (503)"),
                      ("unseal", "unseal node N"), ("heartbeat-lost", "node N answers 474"),
                      ("heartbeat", "node N is a plain standby again"),
                      ("stale", "node N also claims to lead")]:
        sub.add_parser(cmd, help=what).add_argument("node", type=int)
    sub.add_parser("election", help="nobody leads")
    sub.add_parser("reset", help="node 1 leads, nothing else")
    a = p.parse_args()
    if a.cmd == "serve":
        serve(a.nodes.split(","), a.port, a.first)
        return
    state = read_state()
    add = lambda key: sorted(set(state[key]) | {a.node})
    drop = lambda key: [n for n in state[key] if n != a.node]
    if a.cmd == "step-down":
        state["leader"] = a.node
        state["stale"] = drop("stale")
    elif a.cmd == "seal":
        state["sealed"] = add("sealed")
    elif a.cmd == "unseal":
        state["sealed"] = drop("sealed")
    elif a.cmd == "heartbeat-lost":
        state["heartbeat_lost"] = add("heartbeat_lost")
    elif a.cmd == "heartbeat":
        state["heartbeat_lost"] = drop("heartbeat_lost")
    elif a.cmd == "stale":
        state["stale"] = add("stale")
    elif a.cmd == "election":
        state["leader"] = None
    else:
        state = dict(FRESH)
    write_state(state)
    print(json.dumps(state))


if __name__ == "__main__":
    sys.exit(main())
