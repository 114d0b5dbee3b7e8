"""A local HTTP server speaking the subset of Slack's Web API and incoming webhooks we use.

Scripted: ``responses`` is a list of (status, headers, body) popped per request; when empty,
it answers like Slack does for a valid call. Requests are recorded for assertions.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class SlackServer:
    def __init__(self, token: str = "xoxb-test", channels: tuple[str, ...] = ("#ml",)):
        self.token = token
        self.channels = set(channels)
        self.requests: list[dict] = []
        self.responses: list[tuple[int, dict, dict | str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length).decode()
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    body = {"raw": raw}
                server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status, headers, payload = server.answer(self.path, self.headers, body)
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "text/plain" if isinstance(payload, str) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def answer(self, path, headers, body):
        if self.responses:
            return self.responses.pop(0)
        if path == "/webhook":
            return 200, {}, "ok"
        if path == "/api/chat.postMessage":
            if headers.get("Authorization") != f"Bearer {self.token}":
                return 200, {}, {"ok": False, "error": "invalid_auth"}
            if body.get("channel") not in self.channels:
                return 200, {}, {"ok": False, "error": "channel_not_found"}
            return 200, {}, {"ok": True, "channel": "C123", "ts": "1700000000.000100"}
        return 404, {}, {"ok": False, "error": "unknown_method"}

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
