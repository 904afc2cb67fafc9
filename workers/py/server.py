# A worker in Python, to show that a worker can be any program: it serves HTTP on PORT and HOST,
# answers GET /health, and stops on SIGTERM. worker.yaml runs it with `command:`; tqserver holds
# it to the rest of the contract (it is stopped if the server dies).
import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            self.reply(200, "text/plain", b"ok")
            return
        body = {
            "hello": "from Python",
            "path": self.path,
            "prefix": self.headers.get("X-Forwarded-Prefix"),
            "pid": os.getpid(),
        }
        self.reply(200, "application/json", json.dumps(body).encode())

    def reply(self, status, content_type, body):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        if self.path != "/health":  # the server probes /health; one line per real request
            print(f"{self.command} {self.path} {args[1]}", flush=True)


server = ThreadingHTTPServer((os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8000"))), Handler)
# The server has drained us before SIGTERM: stop at once.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print(f"python worker listening on {server.server_address[0]}:{server.server_address[1]}", flush=True)
server.serve_forever()
