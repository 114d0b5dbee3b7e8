"""A local HTTP server speaking the subset of GitHub's REST API that `mlops pr open` uses.

Repositories and pull requests live in memory: GET a repository, list pull requests (``state``,
``head`` as ``owner:branch``, ``base``), create one (422 "A pull request already exists" when an
open one has the same head and base), get and update (PATCH) one. Token authentication (401
"Bad credentials" otherwise). ``fail(...)`` scripts error answers for the next matching requests;
``race_next_create`` makes "another job" open the same pull request just before our create.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

DOCS = "https://docs.github.com/rest"


class GitHubServer:
    def __init__(self, token: str = "ghp-test", repos: tuple[str, ...] = ("example-org/taxi-fare",)):
        self.token = token
        self.repos = set(repos)
        self.pulls: dict[str, list[dict]] = {r: [] for r in repos}
        self.requests: list[dict] = []
        self.failures: list[dict] = []
        self.race_next_create = False
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _do(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                body = json.loads(raw) if raw else None
                with server.lock:
                    server.requests.append({"method": self.command, "path": parts.path, "query": query,
                                            "body": body, "headers": dict(self.headers)})
                    status, payload = server.answer(self.command, parts.path, query, body, self.headers)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = _do

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def fail(self, method: str, path_pattern: str, status: int = 502, times: int = 1) -> None:
        self.failures.append({"method": method, "pattern": re.compile(path_pattern), "status": status, "times": times})

    # -- documents ----------------------------------------------------------------------------------
    def _repo(self, full: str) -> dict:
        owner, name = full.split("/")
        return {"id": abs(hash(full)) % 10**6, "name": name, "full_name": full, "owner": {"login": owner},
                "default_branch": "main", "url": f"{self.url}/repos/{full}", "html_url": f"https://github.example/{full}"}

    def _new_pull(self, full: str, head: str, base: str, title: str, body: str | None) -> dict:
        owner = full.split("/")[0]
        number = sum(len(p) for p in self.pulls.values()) + 1
        pr = {"id": 1000 + number, "number": number, "state": "open", "title": title, "body": body,
              "url": f"{self.url}/repos/{full}/pulls/{number}",
              "html_url": f"https://github.example/{full}/pull/{number}",
              "head": {"ref": head, "label": f"{owner}:{head}", "sha": "0" * 40},
              "base": {"ref": base, "label": f"{owner}:{base}"}, "user": {"login": "mlops-bot"}}
        self.pulls[full].append(pr)
        return pr

    # -- routing -------------------------------------------------------------------------------------
    def answer(self, method, path, query, body, headers):
        failure = next((f for f in self.failures if f["times"] > 0 and f["method"] == method
                        and f["pattern"].search(path)), None)
        if failure:
            failure["times"] -= 1
            return failure["status"], {"message": "Server Error"}
        if headers.get("Authorization") not in (f"token {self.token}", f"Bearer {self.token}"):
            return 401, {"message": "Bad credentials", "documentation_url": DOCS, "status": "401"}
        m = re.match(r"^/repos/([^/]+/[^/]+)(/pulls(?:/(\d+))?)?$", path)
        if not m or m[1] not in self.repos:
            return 404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"}
        full, pulls, number = m[1], m[2], m[3]
        if not pulls:
            return 200, self._repo(full)
        if number is None and method == "GET":
            rows = [p for p in self.pulls[full]
                    if query.get("state", "open") in ("all", p["state"])
                    and ("head" not in query or p["head"]["label"] == query["head"])
                    and ("base" not in query or p["base"]["ref"] == query["base"])]
            return 200, rows
        if number is None and method == "POST":
            missing = [k for k in ("title", "head", "base") if not (body or {}).get(k)]
            if missing:
                return 422, {"message": "Validation Failed", "errors": [{"resource": "PullRequest", "field": missing[0],
                                                                         "code": "missing_field"}]}
            if self.race_next_create:  # another job opened it between our lookup and our create
                self.race_next_create = False
                self._new_pull(full, body["head"], body["base"], "opened by another job", "")
            owner = full.split("/")[0]
            if any(p["state"] == "open" and p["head"]["ref"] == body["head"] and p["base"]["ref"] == body["base"]
                   for p in self.pulls[full]):
                return 422, {"message": "Validation Failed", "documentation_url": DOCS, "status": "422", "errors": [
                    {"resource": "PullRequest", "code": "custom",
                     "message": f"A pull request already exists for {owner}:{body['head']}."}]}
            return 201, self._new_pull(full, body["head"], body["base"], body["title"], body.get("body"))
        pr = next((p for p in self.pulls[full] if p["number"] == int(number or 0)), None)
        if pr is None:
            return 404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"}
        if method == "PATCH":
            for key in ("title", "body", "state", "base"):
                if key in (body or {}):
                    pr[key] = body[key] if key != "base" else {"ref": body[key], "label": body[key]}
        return 200, pr
