"""`mlops jenkins seed` against a local HTTP server speaking the part of Jenkins' REST API that
python-jenkins uses: crumb issuer, job lookup, createItem, config.xml, buildWithParameters,
queue items, build info, console text, and the 401/404 answers."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse
from xml.etree import ElementTree

import pytest

ROOT = Path(__file__).resolve().parents[1]
USER, TOKEN, CRUMB = "seeder", "api-token-123", "crumb-xyz"


class FakeJenkins:
    """State of the fake server; the Job DSL build reports items derived from its PROJECTS parameter."""

    def __init__(self):
        self.jobs: dict[str, str] = {}
        self.generated: set[str] = set()
        self.queue: dict[int, dict] = {}
        self.builds: dict[int, dict] = {}
        self.requests: list[tuple[str, str]] = []
        self.queue_polls_before_start = 1
        self.build_result = "SUCCESS"
        self.lock = threading.Lock()

    def run_seed(self, params: dict) -> dict:
        projects = json.loads(params["PROJECTS"][0])
        lines = ["Started by user seeder", "Processing provided DSL script"]
        added, existing = [], []
        for p in projects:
            for item in (p["name"], f"{p['name']}/pipeline", f"{p['name']}/deploy"):
                (existing if item in self.generated else added).append(item)
                self.generated.add(item)
        if added:
            lines += ["Added items:"] + [f"    GeneratedJob{{name='{n}'}}" for n in added]
        if existing:
            lines += ["Existing items:"] + [f"    GeneratedJob{{name='{n}'}}" for n in existing]
        lines += ["Added views:"] + [f"    GeneratedView{{name='{p['name']}/MLOps'}}" for p in projects]
        lines.append(f"Finished: {self.build_result}")
        return {"console": "\n".join(lines) + "\n", "params": params}


def make_handler(state: FakeJenkins):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

        def _authorized(self) -> bool:
            expected = "Basic " + base64.b64encode(f"{USER}:{TOKEN}".encode()).decode()
            if self.headers.get("Authorization") != expected:
                self._send(401, "text/html", "<html>Unauthorized</html>")
                return False
            return True

        def _send(self, code, ctype="application/json", body="", headers=None):
            data = body.encode() if isinstance(body, str) else body
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _job(self, path):
            m = re.match(r"^/job/([^/]+)(/.*)?$", path)
            return (unquote(m.group(1)), m.group(2) or "/") if m else (None, None)

        def do_GET(self):
            url = urlparse(self.path)
            state.requests.append(("GET", url.path))
            if not self._authorized():
                return
            if url.path == "/crumbIssuer/api/json":
                return self._send(200, body=json.dumps({"crumbRequestField": "Jenkins-Crumb", "crumb": CRUMB}))
            q = re.match(r"^/queue/item/(\d+)/api/json$", url.path)
            if q:
                item = state.queue.get(int(q.group(1)))
                if item is None:
                    return self._send(404, "text/html", "not found")
                with state.lock:
                    item["polls"] += 1
                    doc = {"id": item["id"], "why": "Waiting for next available executor"}
                    if item["polls"] > state.queue_polls_before_start:
                        doc = {"id": item["id"], "executable": {"number": item["build"], "url": "x"}}
                return self._send(200, body=json.dumps(doc))
            name, rest = self._job(url.path)
            if name is None or name not in state.jobs:
                return self._send(404, "text/html", "<html>Not Found</html>")
            if rest == "/api/json":
                return self._send(200, body=json.dumps({"name": name, "fullName": name}))
            if rest == "/config.xml":
                return self._send(200, "application/xml", state.jobs[name])
            b = re.match(r"^/(\d+)/(api/json|consoleText)$", rest)
            if b and int(b.group(1)) in state.builds:
                build = state.builds[int(b.group(1))]
                if b.group(2) == "consoleText":
                    return self._send(200, "text/plain", build["console"])
                return self._send(200, body=json.dumps({"number": int(b.group(1)), "building": False,
                                                        "result": state.build_result,
                                                        "url": f"http://jenkins/job/{name}/{b.group(1)}/"}))
            return self._send(404, "text/html", "<html>Not Found</html>")

        def do_POST(self):
            url = urlparse(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            state.requests.append(("POST", url.path))
            if not self._authorized():
                return
            if self.headers.get("Jenkins-Crumb") != CRUMB:
                return self._send(403, "text/html", "No valid crumb was included in the request")
            if url.path == "/createItem":
                name = parse_qs(url.query)["name"][0]
                if name in state.jobs:
                    return self._send(400, "text/html", "A job already exists with the name")
                ElementTree.fromstring(body)  # Jenkins rejects malformed XML too
                state.jobs[name] = body
                return self._send(200, "text/html", "")
            name, rest = self._job(url.path)
            if name is None or name not in state.jobs:
                return self._send(404, "text/html", "<html>Not Found</html>")
            if rest == "/config.xml":
                ElementTree.fromstring(body)
                state.jobs[name] = body
                return self._send(200, "text/html", "")
            if rest == "/buildWithParameters":
                with state.lock:
                    number = len(state.builds) + 1
                    queue_id = 100 + number
                    state.builds[number] = state.run_seed(parse_qs(url.query))
                    state.queue[queue_id] = {"id": queue_id, "build": number, "polls": 0}
                return self._send(201, "text/html", "", {"Location": f"http://127.0.0.1/queue/item/{queue_id}/"})
            return self._send(404, "text/html", "<html>Not Found</html>")

    return Handler


@pytest.fixture
def jenkins_server():
    state = FakeJenkins()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", state
    server.shutdown()
    server.server_close()


@pytest.fixture
def projects_file(tmp_path):
    path = tmp_path / "projects.yaml"
    path.write_text("- name: fraud-detect\n  repo: acme-ml/fraud-detect\n  credentialsId: acme-gh\n"
                    "- name: churn\n  repo: acme-ml/churn\n")
    return path


def mlops(*args, env_extra=None):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("JENKINS_")}
    env.update({"JENKINS_USER": USER, "JENKINS_TOKEN": TOKEN})
    env.update(env_extra or {})
    proc = subprocess.run([sys.executable, "-m", "pyhelpers", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)
    return proc


def seed_json(url, projects_file, *extra, env_extra=None):
    proc = mlops("jenkins", "seed", "--url", url, "--projects", str(projects_file), "--json", *extra, env_extra=env_extra)
    return proc, (json.loads(proc.stdout) if proc.returncode == 0 else None)


def test_creates_runs_and_reports_then_is_idempotent(jenkins_server, projects_file):
    url, state = jenkins_server
    proc, out = seed_json(url, projects_file)
    assert proc.returncode == 0, proc.stderr
    assert out["action"] == "create"
    assert out["build"] == {"number": 1, "result": "SUCCESS", "url": "http://jenkins/job/mlops-seed/1/"}
    assert out["items"]["added"] == ["fraud-detect", "fraud-detect/pipeline", "fraud-detect/deploy",
                                     "churn", "churn/pipeline", "churn/deploy"]
    assert out["items"]["added_views"] == ["fraud-detect/MLOps", "churn/MLOps"]
    assert "fraud-detect/MLOps" in out["expected_items"]

    # the job holds the DSL script and the projects, XML-escaped, and was built with the same projects
    config = ElementTree.fromstring(state.jobs["mlops-seed"])
    assert config.find(".//scriptText").text == (ROOT / "jobs/mlopsJobs.groovy").read_text()
    projects = json.loads(config.find(".//hudson.model.TextParameterDefinition/defaultValue").text)
    assert [p["name"] for p in projects] == ["fraud-detect", "churn"]
    assert json.loads(state.builds[1]["params"]["PROJECTS"][0]) == projects
    assert ("POST", "/createItem") in state.requests

    # second run: same script and projects -> the job is left alone, the seed runs again
    state.requests.clear()
    proc, again = seed_json(url, projects_file)
    assert proc.returncode == 0, proc.stderr
    assert again["action"] == "unchanged"
    assert again["items"]["existing"] == out["items"]["added"] and "added" not in again["items"]
    assert not any(path.endswith("config.xml") for method, path in state.requests if method == "POST")


def test_changed_projects_update_the_job(jenkins_server, projects_file, tmp_path):
    url, state = jenkins_server
    assert seed_json(url, projects_file)[0].returncode == 0
    projects_file.write_text(projects_file.read_text() + "- name: ltv\n  repo: acme-ml/ltv\n")
    proc, out = seed_json(url, projects_file)
    assert proc.returncode == 0, proc.stderr
    assert out["action"] == "update"
    assert ("POST", "/job/mlops-seed/config.xml") in state.requests
    assert out["items"]["added"] == ["ltv", "ltv/pipeline", "ltv/deploy"]


def test_dry_run_changes_nothing(jenkins_server, projects_file):
    url, state = jenkins_server
    proc, out = seed_json(url, projects_file, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert out["action"] == "would create" and out["dry_run"]
    assert state.jobs == {} and not [r for r in state.requests if r[0] == "POST"]


def test_wrong_token_is_bad_input_naming_the_variables(jenkins_server, projects_file):
    url, state = jenkins_server
    proc, _ = seed_json(url, projects_file, env_extra={"JENKINS_TOKEN": "wrong"})
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mlops: error: Jenkins at ")
    assert "refused" in err[0] and "JENKINS_USER and JENKINS_TOKEN" in err[0]
    assert "wrong" not in proc.stderr


def test_failed_seed_build_is_exit_1_with_its_last_line(jenkins_server, projects_file):
    url, state = jenkins_server
    state.build_result = "FAILURE"
    proc, _ = seed_json(url, projects_file)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "mlops: error: seed build mlops-seed #1 ended FAILURE: Finished: FAILURE"


def test_404_paths_are_operation_failures(jenkins_server):
    import jenkins

    from pyhelpers.errors import OperationFailed
    from pyhelpers.jenkins.seed import _call

    url, _ = jenkins_server
    client = jenkins.Jenkins(url, username=USER, password=TOKEN)
    assert not client.job_exists("nope")
    with pytest.raises(OperationFailed, match=r"reading build nope #3: not found"):
        _call(url, "reading build nope #3", client.get_build_info, "nope", 3)
    with pytest.raises(OperationFailed, match=r"updating job nope: not found"):
        _call(url, "updating job nope", client.reconfig_job, "nope", "<project/>")


def test_bad_input_paths(tmp_path, jenkins_server):
    url, _ = jenkins_server
    bad = tmp_path / "bad.yaml"
    bad.write_text("- name: Bad Name\n  repo: a/b\n")
    proc = mlops("jenkins", "seed", "--url", url, "--projects", str(bad))
    assert proc.returncode == 2 and "project #1: name must be lowercase" in proc.stderr and str(bad) in proc.stderr
    bad.write_text("- name: ok\n  repo: nope\n")
    proc = mlops("jenkins", "seed", "--url", url, "--projects", str(bad))
    assert proc.returncode == 2 and "project #1 (ok): repo must be OWNER/NAME (got 'nope')" in proc.stderr
    proc = mlops("jenkins", "seed", "--url", "jenkins.example.com", "--projects", str(bad))
    assert proc.returncode == 2 and "--url: expected http(s)://" in proc.stderr
    proc = mlops("jenkins", "seed", "--url", url, env_extra={"JENKINS_TOKEN": ""})
    assert proc.returncode == 2 and "set both JENKINS_USER and JENKINS_TOKEN" in proc.stderr


def test_unreachable_server_is_exit_1():
    proc = mlops("jenkins", "seed", "--url", "http://127.0.0.1:9/")
    assert proc.returncode == 1 and "unreachable" in proc.stderr
