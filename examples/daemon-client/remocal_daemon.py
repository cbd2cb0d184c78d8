#!/usr/bin/env python3
"""Drive the remocal daemon from a script: start a session, run a program in
it, show the session's details, stop it.

    remocal_daemon.py TARGET WORKSPACE -- PROGRAM [ARGS...]

It speaks the daemon's protocol (JSON-RPC 2.0 with LSP framing, see
docs/daemon-protocol.md) through `remocal daemon --stdio`, which starts the
daemon if none runs. Standard library only.
"""

import json
import os
import subprocess
import sys


class Daemon:
    """A minimal LSP-framed JSON-RPC client over a subprocess's stdio."""

    def __init__(self, remocal):
        self.proc = subprocess.Popen([remocal, "daemon", "--stdio"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.next_id = 0
        self.notifications = []

    def send(self, msg):
        body = json.dumps(msg).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def read(self):
        length = None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise EOFError("the daemon closed the connection")
            line = line.strip()
            if not line:
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return json.loads(self.proc.stdout.read(length))

    def call(self, method, params=None):
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        while True:
            msg = self.read()
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError("%s failed: %s" % (method, msg["error"]["message"]))
                return msg.get("result")
            self.notifications.append(msg)  # notifications arrive in between

    def notify(self, method, params=None):
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def close(self):
        self.call("shutdown")
        self.notify("exit")
        self.proc.stdin.close()
        self.proc.wait()


def main(argv):
    if len(argv) < 4 or argv[2] != "--":
        sys.exit("usage: remocal_daemon.py TARGET WORKSPACE -- PROGRAM [ARGS...]")
    target, workspace, program = argv[0], os.path.abspath(argv[1]), argv[3:]
    d = Daemon(os.environ.get("REMOCAL", "remocal"))
    info = d.call("initialize", {"processId": os.getpid(), "clientInfo": {"name": "remocal_daemon.py"},
                                 "capabilities": {}, "workspaceFolders": [{"uri": "file://" + workspace, "name": "ws"}]})
    d.notify("initialized", {})
    print("daemon", info["serverInfo"]["version"])
    targets = d.call("remocal/targets", {"kinds": ["pid"]})["targets"]
    print("targets:", len(targets), "including", target, "?", any(t["ref"] == target for t in targets))

    started = d.call("remocal/session/start", {"target": target, "workspaceFolder": workspace,
                                              "program": {"path": program[0], "args": program[1:]}})
    session = started["session"]
    print("session", session["id"], session["state"], "incoming:", session["incoming"])
    argv_to_run = started.get("wrapper") or program
    env = dict(os.environ, **started["env"])
    result = subprocess.run(argv_to_run, env=env, capture_output=True, text=True)
    print("program exit", result.returncode)
    print("program output:", result.stdout.strip())

    detail = d.call("remocal/session/detail", {"id": session["id"]})
    print("remote operations:", {k: v for k, v in sorted(detail["counters"].items()) if k not in ("notified", "continued")})
    print("sessions:", [s["id"] for s in d.call("remocal/session/list")["sessions"]])
    d.call("remocal/session/stop", {"id": session["id"]})
    print("stopped; sessions now:", [s["id"] for s in d.call("remocal/session/list")["sessions"]])
    d.close()


if __name__ == "__main__":
    main(sys.argv[1:])
