"""A tiny Python HTTP service, the Python example workload of remocal's
cluster tests (image remocal.local/examples/pyservice, built by
`make images` from Debian's python3.11 and only the modules imported here).

GET /       -> {"service": NAME, "hostname": ..., "greeting": GREETING}
GET /env/X  -> the value of environment variable X (404 if unset)
GET /healthz -> ok

Environment: LISTEN_PORT (default 8080), SERVICE_NAME, GREETING.
"""

import json
import os
import signal
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def _send(self, code, body, ctype="application/json"):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/healthz":
            self._send(200, "ok\n", "text/plain")
        elif self.path.startswith("/env/"):
            val = os.environ.get(self.path[len("/env/"):])
            if val is None:
                self._send(404, "unset\n", "text/plain")
            else:
                self._send(200, val + "\n", "text/plain")
        elif self.path == "/":
            self._send(200, json.dumps({
                "service": os.environ.get("SERVICE_NAME", "pyservice"),
                "hostname": socket.gethostname(),
                "greeting": os.environ.get("GREETING", "hello from python"),
            }) + "\n")
        else:
            self._send(404, "not found\n", "text/plain")

    def log_message(self, fmt, *args):
        sys.stdout.write("%s %s\n" % (self.address_string(), fmt % args))
        sys.stdout.flush()


def main():
    port = int(os.environ.get("LISTEN_PORT", "8080"))
    server = ThreadingHTTPServer(("", port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("pyservice listening on :%d" % port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
