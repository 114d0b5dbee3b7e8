"""A local smart-HTTP git server: git's own ``git http-backend`` (CGI) behind a tiny HTTP(S) server.

Every request must carry ``Authorization: Basic base64(x-access-token:<token>)``, as GitHub
accepts a token; anything else gets 401 with a Basic challenge (what makes git ask its
askpass for credentials). Repositories live under ``root`` (bare, created with ``create``).
With ``tls=True`` it serves HTTPS with a throw-away self-signed certificate for 127.0.0.1
(``ca_file`` is what git needs in ``GIT_SSL_CAINFO``). Requests are recorded for assertions
(method, path, whether the credentials were missing/wrong/ok, answer code) — never the header.
"""

from __future__ import annotations

import base64
import os
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

USER = "x-access-token"


def backend() -> str:
    exec_path = subprocess.run(["git", "--exec-path"], check=True, capture_output=True, text=True).stdout.strip()
    return str(Path(exec_path) / "git-http-backend")


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate (and key) for 127.0.0.1, valid one day."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


class GitHttpServer:
    def __init__(self, root: Path, token: str, tls: bool = False):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.expected = "Basic " + base64.b64encode(f"{USER}:{token}".encode()).decode()
        self.requests: list[dict] = []
        self.backend = backend()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                server._handle(self)

            def do_POST(self):
                server._handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.ca_file = None
        if tls:
            cert, key = self_signed(self.root)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            self.ca_file = cert
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def create(self, name: str, branch: str = "main") -> Path:
        path = self.root / name
        subprocess.run(["git", "init", "-q", "--bare", "-b", branch, str(path)], check=True, capture_output=True)
        # a force push (non-fast-forward) would be refused, as on a protected branch
        subprocess.run(["git", "config", "receive.denyNonFastForwards", "true"], cwd=path, check=True)
        return path

    def repo_url(self, name: str) -> str:
        return f"{self.url}/{name}"

    # -- HTTP side --------------------------------------------------------------------------------
    def _body(self, h) -> bytes:
        if h.headers.get("Transfer-Encoding", "").lower() == "chunked":  # large pushes stream in chunks
            out = bytearray()
            while True:
                size = int(h.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    h.rfile.readline()
                    return bytes(out)
                out += h.rfile.read(size)
                h.rfile.readline()
        length = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(length) if length else b""

    def _send(self, h, code: int, headers: dict[str, str], data: bytes) -> None:
        h.send_response(code)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _handle(self, h) -> None:
        parts = urlsplit(h.path)
        body = self._body(h)
        given = h.headers.get("Authorization")
        auth = "missing" if given is None else ("ok" if given == self.expected else "wrong")
        record = {"method": h.command, "path": parts.path, "query": parts.query, "auth": auth}
        self.requests.append(record)
        if auth != "ok":
            record["code"] = 401
            return self._send(h, 401, {"WWW-Authenticate": 'Basic realm="git"', "Content-Type": "text/plain"},
                              b"Unauthorized\n")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.root),
            "GIT_PROJECT_ROOT": str(self.root), "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": parts.path, "QUERY_STRING": parts.query, "REQUEST_METHOD": h.command,
            "CONTENT_TYPE": h.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": USER, "REMOTE_ADDR": "127.0.0.1", "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
        }
        if h.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = h.headers["Content-Encoding"]
        if h.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = h.headers["Git-Protocol"]
        proc = subprocess.run([self.backend], input=body, env=env, capture_output=True)
        sep = b"\r\n\r\n" if b"\r\n\r\n" in proc.stdout else b"\n\n"  # CGI headers end with a blank line
        head, _, data = proc.stdout.partition(sep)
        code, headers = 200, {}
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                code = int(value.split()[0])
            elif name:
                headers[name] = value.strip()
        record["code"] = code
        self._send(h, code, headers, data)
