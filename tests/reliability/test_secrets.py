"""Secrets and injection: both lines with a canary in every credential variable, and shell
metacharacters in every user-controlled string.

Where a canary must never appear: stdout/stderr of every command, any file of the project
(``.mlops/`` included: logs, status documents, notifications, the MLflow SQLite store read as
bytes, rendered manifests, pull-request bodies), the GitOps repository's history (messages and
content), and the bodies the fake Slack and GitHub servers received. Payloads such as
``$(touch pwned)`` must stay data: no ``pwned`` file may appear anywhere.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.conftest import git, make_project, run_mlops
from tests.fakes.github import GitHubServer
from tests.fakes.slack import SlackServer

MARK = "c4n4ry7d1f"  # every secret below contains it; finding it anywhere is a leak
SECRETS = {
    "AWS_ACCESS_KEY_ID": f"AKIA{MARK}",
    "AWS_SECRET_ACCESS_KEY": f"aws-secret-{MARK}",
    "AWS_SESSION_TOKEN": f"aws-session-{MARK}",
    "MLFLOW_TRACKING_TOKEN": f"mlflow-token-{MARK}",
    "MLFLOW_TRACKING_PASSWORD": f"mlflow-pass-{MARK}",
    "SLACK_BOT_TOKEN": f"xoxb-{MARK}",
    "GITHUB_TOKEN": f"ghp_{MARK}",
    "JENKINS_USER": f"jenkins-{MARK}",
    "JENKINS_TOKEN": f"jenkins-token-{MARK}",
}
PAYLOADS = ["$(touch pwned)", "`touch pwned2`", "'; touch pwned3; '", "a\nb; touch pwned4", '" && touch pwned5 "']
PAYLOAD = " ".join(PAYLOADS)

TRIAL = """\
import sys
kind = sys.argv[1].split("=", 1)[1]
print(f"kind={kind!r}")
print(f"loss={len(kind)}")
"""

EXPERIMENT = """\
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: payloads
spec:
  objective: {type: minimize, objectiveMetricName: loss}
  algorithm: {algorithmName: grid}
  parallelTrialCount: 1
  maxTrialCount: 5  # one trial per payload: Katib's grid refuses more trials than combinations
  parameters:
    - name: kind
      parameterType: categorical
      feasibleSpace:
        list: %s
  trialTemplate:
    primaryContainerName: main
    trialParameters:
      - {name: kind, reference: kind}
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: main
                image: example/trial:1
                command: ["python", "trial.py", "--kind=${trialParameters.kind}"]
            restartPolicy: Never
"""


def leaks_in_files(root: Path) -> list[str]:
    """Files under ``root`` whose raw bytes hold the canary (SQLite stores and git objects included)."""
    return [str(p) for p in root.rglob("*") if p.is_file() and MARK.encode() in p.read_bytes()]


def test_no_secret_leaks_and_no_injection_through_both_lines(tmp_path):
    project = make_project(tmp_path / "taxi-fare", rows=300, max_trials=2)
    config = project / "mlops.yaml"
    # user-controlled strings carry the payloads: the project's description ...
    config.write_text(re.sub(r"description: .*", "description: " + json.dumps(PAYLOAD), config.read_text()))
    git(project, "commit", "-qam", "description with shell metacharacters")
    outputs: list[str] = []
    received: list[str] = []

    with SlackServer(token=SECRETS["SLACK_BOT_TOKEN"], channels=("#ml",)) as slack, \
            GitHubServer(token=SECRETS["GITHUB_TOKEN"], repos=("example-org/taxi-fare",)) as gh:
        # MLFLOW_TRACKING_USERNAME is an identity, not a secret: MLflow itself records it as each run's
        # user (runs.user_id, tag mlflow.user), so it carries no canary here.
        env = {**SECRETS, "MLFLOW_TRACKING_USERNAME": "mlops-ci", "SLACK_API_URL": slack.url + "/api/",
               "MLOPS_SLACK_CHANNEL": "#ml",
               # unused while the bot token is set, but a secret all the same
               "SLACK_WEBHOOK_URL": f"{slack.url}/hooks/{MARK}", "BUILD_URL": "https://ci.example/job/1/"}
        config.write_text(config.read_text().replace("  repo: example-org/taxi-fare\n",
                                                     f"  repo: example-org/taxi-fare\n  api_url: {gh.url}\n", 1))

        def mlops(*args, **extra_env):
            r = run_mlops(*args, cwd=project, env={**env, **extra_env}, timeout=600)
            outputs.append(r.out + r.err)
            return r

        r = mlops("line", "data", "--local", "--json")
        assert r.code == 0, r
        assert r.json()["notification"]["via"] == "chat.postMessage"
        r = mlops("line", "deploy", "--json")
        assert r.code == 0, r
        assert r.json()["status"] == "completed" and r.json()["steps"]["notify"]["via"] == "chat.postMessage"
        champion = r.json()["champion"]

        # ... parameter values of an Experiment's categorical list (run as argv, never through a shell) ...
        exp_dir = project / "payloads"
        exp_dir.mkdir()
        (exp_dir / "trial.py").write_text(TRIAL)
        (exp_dir / "experiment.yaml").write_text(EXPERIMENT % json.dumps(PAYLOADS))
        r = mlops("experiment", "run", "--local", "--json", "payloads/experiment.yaml")
        assert r.code == 0, r
        seen = {a["value"] for t in r.json()["trials"] for a in t["parameterAssignments"]}
        assert seen == set(PAYLOADS)
        assert mlops("notify", "experiment", "--name", "payloads").code == 0

        # ... branch names of pull requests (GitHub, then the local profile's file) ...
        r = mlops("pr", "open", "--json", "--branch", PAYLOADS[0], "--title", PAYLOAD)
        assert r.code == 0 and r.json()["action"] == "created", r
        r = mlops("pr", "open", "--json", "--branch", PAYLOADS[2], GITHUB_TOKEN="")
        assert r.code == 0 and r.json()["via"] == "file", r

        # ... commit messages of the GitOps repository, and free-text notices
        (project / "champion.json").write_text(json.dumps({**champion, "version": "99"}))
        r = mlops("deploy", "push", "--champion", "champion.json", "--message", PAYLOAD, "--json")
        assert r.code == 0 and r.json()["changed"], r
        assert mlops("notify", "failure", "--message", PAYLOAD).code == 0
        assert mlops("deploy", "render").code == 0

        # uploaded files arrive as bytes (the report picture): scanned as text too
        received += [json.dumps(q["body"], default=lambda raw: raw.decode("latin-1")) for q in slack.requests]
        received += [json.dumps(q["body"]) for q in gh.requests if q["body"]]
        received += [json.dumps(p) for pulls in gh.pulls.values() for p in pulls]
        posts = [q for q in slack.requests if q["path"].endswith("chat.postMessage")]
        assert len(posts) == 4 and gh.pulls["example-org/taxi-fare"]

    # the secrets did reach the servers that need them ...
    assert any(SECRETS["SLACK_BOT_TOKEN"] in q["headers"].get("Authorization", "") for q in slack.requests)
    # ... and nowhere else
    assert not [o for o in outputs if MARK in o], "a secret was printed"
    assert not [b for b in received if MARK in b], "a secret reached a Slack or GitHub body"
    assert leaks_in_files(project) == []
    assert (project / ".mlops" / "mlflow" / "mlflow.db").stat().st_size > 0  # the store was scanned too
    bare = project / ".mlops" / "gitops.git"
    history = subprocess.run(["git", "-C", str(bare), "log", "-p", "--all", "--format=%H%n%an %ae%n%B"],
                             capture_output=True, text=True, check=True).stdout
    assert MARK not in history
    assert git(bare, "log", "-1", "--format=%B", "main").strip() == PAYLOAD.strip()  # the message is data

    # no payload ever ran, anywhere
    assert not [p for p in tmp_path.rglob("pwned*")], "a shell payload was executed"
    assert PAYLOADS[0] in json.dumps(received)  # and the payloads did travel, as text


# -- failure paths: every integration unreachable, refusing the credential (401/403) and failing (5xx) ------
def _failing_server(status: int, body: str) -> tuple[object, str]:
    """Any request gets ``status`` with ``body``; ``{path}`` in the body is replaced by the request path,
    as web frameworks' default error pages do (Express: "Cannot POST /hooks/…")."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _answer(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            data = body.replace("{path}", self.path).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def test_no_secret_leaks_on_failure_paths(tmp_path, project):
    """Slack (bot token and webhook), GitHub, the GitOps remote over HTTPS, MLflow and S3, each
    unreachable, refusing the credential and failing with 5xx, with a canary in every credential:
    the canary never appears on stdout/stderr or in any file written, and each failure is one line."""
    from tests.fakes.git_http import GitHttpServer
    from tests.reliability.test_faults import champion_file

    base_config = (project / "mlops.yaml").read_text()
    champion = str(champion_file(project, "1"))
    dead = "http://127.0.0.1:9"  # nothing listens on the discard port
    hook_path = f"/services/T000/B000/{MARK}"
    outputs: list[tuple[str, str]] = []
    env = {**SECRETS, "SLACK_WEBHOOK_URL": f"{dead}{hook_path}", "MLOPS_SLACK_CHANNEL": "#ml"}

    def failing(case: str, *args: str, code: int = 1, **extra: str) -> None:
        r = run_mlops(*args, cwd=project, env={**env, **extra}, timeout=180)
        outputs.append((case, r.out + r.err))
        assert r.code == code, (case, r)
        assert "Traceback" not in r.err and r.err.strip(), (case, r)

    with SlackServer(token="xoxb-the-right-one") as slack, GitHubServer(token="ghp-the-right-one") as gh, \
            GitHttpServer(tmp_path / "git", token="the-right-one") as githttp:
        errors = {status: _failing_server(status, "<html>Cannot POST {path}</html>") for status in (403, 404, 500)}
        try:
            # Slack incoming webhook: the URL is the credential
            no_bot = {"SLACK_BOT_TOKEN": ""}
            failing("webhook unreachable", "notify", "failure", "--message", "m", **no_bot)
            for status, (_, url) in errors.items():
                failing(f"webhook {status}", "notify", "failure", "--message", "m", **no_bot,
                        SLACK_WEBHOOK_URL=f"{url}{hook_path}")
            # Slack chat.postMessage: a refused token, 5xx, unreachable
            failing("bot invalid_auth", "notify", "failure", "--message", "m", SLACK_API_URL=slack.url + "/api/")
            slack.responses = [(500, {}, "oops")] * 10
            failing("bot 500", "notify", "failure", "--message", "m", SLACK_API_URL=slack.url + "/api/")
            failing("bot unreachable", "notify", "failure", "--message", "m", SLACK_API_URL=dead + "/api/")
            # GitHub pull requests
            gh_config = base_config.replace("  repo: example-org/taxi-fare\n",
                                            "  repo: example-org/taxi-fare\n  api_url: {}\n", 1)
            assert gh_config != base_config
            for case, api in (("github 401", gh.url), ("github 500", errors[500][1]), ("github unreachable", dead)):
                (project / "mlops.yaml").write_text(gh_config.replace("{}", api))
                failing(case, "pr", "open", "--branch", "data/update")
            (project / "mlops.yaml").write_text(base_config)
            # the GitOps remote over HTTPS(-like): a refused token, 5xx, unreachable
            githttp.create("gitops.git")
            for case, repo in (("gitops 401", githttp.repo_url("gitops.git")), ("gitops 500", errors[500][1] + "/g.git"),
                               ("gitops unreachable", dead + "/g.git")):
                failing(case, "deploy", "push", "--champion", champion, MLOPS_GITOPS_REPO=repo)
            # MLflow tracking server: unreachable and failing
            for case, uri in (("mlflow unreachable", dead), ("mlflow 500", errors[500][1]), ("mlflow 403", errors[403][1])):
                failing(case, "model", "champion", MLFLOW_TRACKING_URI=uri)
        finally:
            for httpd, _ in errors.values():
                httpd.shutdown()
                httpd.server_close()
        assert len(slack.requests) >= 2 and gh.requests  # the calls did happen

    printed = [case for case, text in outputs if MARK in text]
    assert printed == [], f"a secret was printed by: {printed}"
    assert leaks_in_files(project) == []
    notes = (project / ".mlops" / "notifications.jsonl").read_text().splitlines()
    assert len(notes) == 7 and all(json.loads(n)["error"] for n in notes)  # recorded, with why, without secrets
