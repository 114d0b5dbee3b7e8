"""A local HTTP server speaking the subset of Slack's Web API and incoming webhooks we use.

Scripted: ``responses`` is a list of (status, headers, body) popped per request; when empty,
it answers like Slack does for a valid call. Requests are recorded for assertions.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


class SlackServer:
    def __init__(self, token: str = "xoxb-test", channels: tuple[str, ...] = ("#ml",)):
        self.token = token
        self.channels = set(channels)
        self.requests: list[dict] = []
        self.responses: list[tuple[int, dict, dict | str]] = []
        self.uploads: dict[str, dict] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                data = self.rfile.read(length)
                raw = data.decode(errors="replace")
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    body = {"raw": raw}
                if self.path.startswith("/upload/"):
                    body = {"bytes": data}
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
        # files_upload_v2 (slack_sdk): getUploadURLExternal (form: filename, length) -> POST the bytes to the
        # upload URL -> completeUploadExternal (files=[{id, title}], channel_id); as in Slack's API reference,
        # a missing filename/length is invalid_arguments and an unknown file id is file_not_found.
        if path.startswith("/api/files."):
            if headers.get("Authorization") != f"Bearer {self.token}":
                return 200, {}, {"ok": False, "error": "invalid_auth"}
            form = {k: v[0] for k, v in parse_qs(body.get("raw", "")).items()} if "raw" in body else body
            if path == "/api/files.getUploadURLExternal":
                if not form.get("filename") or not str(form.get("length", "")).isdigit():
                    return 200, {}, {"ok": False, "error": "invalid_arguments"}
                self.uploads["F0001"] = {"filename": form["filename"], "length": int(form["length"]), "data": None}
                return 200, {}, {"ok": True, "upload_url": f"{self.url}/upload/F0001", "file_id": "F0001"}
            if path == "/api/files.completeUploadExternal":
                files = json.loads(form.get("files") or "[]")
                if not files or any(f.get("id") not in self.uploads or self.uploads[f["id"]]["data"] is None
                                    for f in files):
                    return 200, {}, {"ok": False, "error": "file_not_found"}
                for f in files:
                    self.uploads[f["id"]].update(title=f.get("title"), channel_id=form.get("channel_id"),
                                                 thread_ts=form.get("thread_ts"))
                return 200, {}, {"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in files]}
        if path.startswith("/upload/"):
            upload = self.uploads.get(path.rsplit("/", 1)[1])
            if upload is None or len(body["bytes"]) != upload["length"]:
                return 400, {}, "length mismatch"
            upload["data"] = body["bytes"]
            return 200, {}, f"OK - {len(body['bytes'])}"
        return 404, {}, {"ok": False, "error": "unknown_method"}

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
