"""Fault injection: things break on purpose; each case states what must survive.

Every case checks that nothing is lost or half-done: no orphan processes (pids and process
groups from /proc), status files that still parse, no temporary files left, repositories that
pass `git fsck`, exit codes and one-line errors as the CLI contract says.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import BIN, MLOPS, git, run_mlops, write_experiment
from tests.fakes.slack import SlackServer
from tests.reliability.conftest import alive, group_members

CANARY = "xoxb-RELIABILITY-c4n4ry"


def wait_until(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def mlops_env(extra: dict | None = None) -> dict:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "SLACK_"))}
    return {**inherited, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **(extra or {})}


def condition(doc: dict) -> dict:
    return next(c for c in reversed(doc["status"]["conditions"]) if c["status"] == "True")


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert lines and "Traceback" not in err, err
    return lines[-1]


# -- the local Experiment engine ---------------------------------------------------------------------
# A trial that records its pid and its child's pid (same process group), then blocks, while the
# file `block` exists; otherwise it reports a metric at once.
BLOCKING_TRIAL = """\
import os, subprocess, sys, time
from pathlib import Path
here = Path(__file__).resolve().parent
if (here / "block").exists():
    child = subprocess.Popen(["sleep", "120"])
    (here / "pids" / f"{os.getpid()}-{child.pid}").touch()
    time.sleep(120)
x = float(sys.argv[1].split("=")[1])
print(f"loss={(x - 1) ** 2}")
"""


def blocking_experiment(folder: Path, **kwargs) -> Path:
    path = write_experiment(folder, **kwargs)
    (folder / "trial.py").write_text(BLOCKING_TRIAL)
    (folder / "pids").mkdir()
    (folder / "block").touch()
    return path


def recorded_pids(folder: Path) -> list[tuple[int, int]]:
    return [tuple(map(int, p.name.split("-"))) for p in (folder / "pids").iterdir()]


def assert_no_orphans(pairs: list[tuple[int, int]]) -> None:
    for trial_pid, child_pid in pairs:
        wait_until(lambda t=trial_pid, c=child_pid: not alive(t) and not alive(c), 10, f"trial {trial_pid} to be gone")
        assert group_members(trial_pid) == [], f"processes left in trial group {trial_pid}"


def assert_status_files_whole(out_dir: Path) -> dict:
    doc = json.loads((out_dir / "experiment.json").read_text())  # parses: never half-written
    assert not [p.name for p in out_dir.iterdir() if p.name.startswith(".")], "temporary files left behind"
    return doc


@pytest.mark.parametrize("max_failed", [None, 1], ids=["no-failure-limit", "maxFailedTrialCount-1"])
def test_trial_killed_mid_run(tmp_path, max_failed):
    """kill -9 of one trial's process: that trial is Failed (its leftover child is killed with it, as
    a container's processes are), and the Experiment goes on by Katib's rules: to maxTrialCount
    without a failure limit, Failed at once with maxFailedTrialCount 1."""
    path = blocking_experiment(tmp_path, max_trials=3, max_failed=max_failed)
    proc = subprocess.Popen([MLOPS, "experiment", "run", "--local", "--json", str(path)], cwd=tmp_path,
                            env=mlops_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        (trial_pid, child_pid), = wait_until(lambda: recorded_pids(tmp_path), what="the first trial")
        (tmp_path / "block").unlink()  # the next trials finish at once
        os.kill(trial_pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    doc = json.loads(out)
    first = doc["trials"][0]
    assert first["condition"] == "Failed" and first["exitCode"] == -9, first
    assert_no_orphans([(trial_pid, child_pid)])
    if max_failed is None:
        assert proc.returncode == 0, err
        assert condition(doc)["reason"] == "ExperimentMaxTrialsReached"
        assert doc["status"]["trials"] == 3 and doc["status"]["trialsSucceeded"] == 2
        assert doc["status"]["currentOptimalTrial"]["bestTrialName"] != first["name"]
    else:
        assert proc.returncode == 1, err
        assert condition(doc)["type"] == "Failed" and condition(doc)["reason"] == "ExperimentFailed"
        assert doc["status"]["trials"] == 1 and doc["status"]["failedTrialList"] == [first["name"]]
    assert assert_status_files_whole(tmp_path / ".mlops" / "experiments" / "exp") == doc


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_engine_interrupted_then_rerun(tmp_path, sig):
    """SIGINT (Ctrl-C) or SIGTERM (Jenkins abort) of the engine: every trial's whole process group
    is stopped (children included), the status says Failed/ExperimentInterrupted, and a rerun
    replaces the interrupted result instead of mixing old and new trials."""
    path = blocking_experiment(tmp_path, parallel=2, max_trials=4)
    proc = subprocess.Popen([MLOPS, "experiment", "run", "--local", "--json", str(path)], cwd=tmp_path,
                            env=mlops_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pairs = wait_until(lambda: len(recorded_pids(tmp_path)) == 2 and recorded_pids(tmp_path),
                           what="two running trials")
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    assert_no_orphans(pairs)
    out_dir = tmp_path / ".mlops" / "experiments" / "exp"
    doc = assert_status_files_whole(out_dir)
    assert doc == json.loads(out)
    assert condition(doc)["type"] == "Failed" and condition(doc)["reason"] == "ExperimentInterrupted"
    assert doc["status"]["trialsKilled"] == 2 and doc["status"]["trials"] == 2
    assert {t["condition"] for t in doc["trials"]} == {"Killed"}

    (tmp_path / "block").unlink()
    r = run_mlops("experiment", "run", "--local", "--json", str(path), cwd=tmp_path)
    assert r.code == 0, r
    again = r.json()
    assert [t["name"] for t in again["trials"]] == [f"exp-000{i}" for i in range(1, 5)]
    assert {t["condition"] for t in again["trials"]} == {"Succeeded"}
    assert sorted(p.name for p in (out_dir / "trials").iterdir()) == [f"exp-000{i}.log" for i in range(1, 5)]
    assert condition(assert_status_files_whole(out_dir))["reason"] == "ExperimentMaxTrialsReached"
    assert not list(out_dir.parent.glob(".exp.old-*"))


def _limit_file_size(limit: int):
    def apply():  # in the child: every file it writes is capped, like a disk that is full
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_disk_full_during_an_experiment(tmp_path):
    """The disk fills up while trials run (RLIMIT_FSIZE: writes past 10 kB fail with EFBIG): exit 1
    with one line naming the file, no trial left running, and experiment.json is the last
    complete snapshot (it parses), with no temporary file beside it."""
    path = write_experiment(tmp_path, parallel=2, max_trials=30)
    (tmp_path / "pids").mkdir()
    (tmp_path / "trial.py").write_text(textwrap.dedent("""\
        import os, sys, time
        from pathlib import Path
        (Path(__file__).resolve().parent / "pids" / str(os.getpid())).touch()
        time.sleep(0.3)
        print("loss=1.5")
    """))
    proc = subprocess.run([MLOPS, "experiment", "run", "--local", str(path)], cwd=tmp_path, env=mlops_env(),
                          capture_output=True, text=True, timeout=120, preexec_fn=_limit_file_size(10_000))
    assert proc.returncode == 1, proc.stderr
    line = one_line_error(proc.stderr)
    assert "cannot write" in line and "experiment.json" in line and "File too large" in line, line
    pids = [int(p.name) for p in (tmp_path / "pids").iterdir()]
    assert 4 < len(pids) < 30  # it failed mid-run, with trials started
    for pid in pids:
        wait_until(lambda p=pid: not alive(p), 10, f"trial {pid} to be stopped")
    doc = assert_status_files_whole(tmp_path / ".mlops" / "experiments" / "exp")
    assert doc["kind"] == "Experiment" and doc["status"]["conditions"]


def test_disk_full_keeps_the_processed_marker_whole(tmp_path):
    """processed.json (which data version line 1 handled) is replaced atomically: a write that
    fails for lack of space leaves the previous marker intact and no temporary file."""
    (tmp_path / "mlops.yaml").write_text("project: full-disk\n")
    code = textwrap.dedent("""\
        import sys
        from pyhelpers.config import load_config
        from pyhelpers.data import mark_processed
        cfg = load_config("mlops.yaml")
        mark_processed(cfg, sys.argv[1], "c0ffee", experiment=sys.argv[2])
    """)
    first = subprocess.run([sys.executable, "-c", code, "dv-000000000001", "small"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    marker = tmp_path / ".mlops" / "data" / "processed.json"
    before = marker.read_bytes()
    second = subprocess.run([sys.executable, "-c", code, "dv-000000000002", "x" * 20000], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, preexec_fn=_limit_file_size(8192))
    assert second.returncode != 0 and "cannot write" in second.stderr and "processed.json" in second.stderr
    assert marker.read_bytes() == before and json.loads(before)["data_version"] == "dv-000000000001"
    assert [p.name for p in marker.parent.iterdir()] == ["processed.json"]


def _can_mount_read_only() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount --bind / / 2>/dev/null"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_mount_read_only(), reason="needs `unshare -m` (root or user namespaces) for a read-only mount")
def test_read_only_state_folder_keeps_previous_results(tmp_path):
    """`.mlops/` is read-only (a read-only bind mount in a private mount namespace; chmod does not
    stop root): the rerun fails with one line naming the folder, and the previous result is
    untouched — not half-deleted."""
    path = write_experiment(tmp_path, max_trials=2)
    assert run_mlops("experiment", "run", "--local", str(path), cwd=tmp_path).code == 0
    state = tmp_path / ".mlops"
    before = {p: p.read_bytes() for p in state.rglob("*") if p.is_file()}
    script = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" && shift && exec "$@"'
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(state), MLOPS, "experiment", "run",
                           "--local", str(path)], cwd=tmp_path, env=mlops_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1, proc.stderr
    line = one_line_error(proc.stderr)
    assert "Read-only file system" in line and str(state) in line, line
    assert {p: p.read_bytes() for p in state.rglob("*") if p.is_file()} == before


# -- GitOps ------------------------------------------------------------------------------------------
GIT_RACER = """\
#!/bin/sh
# A `git` in front of the real one: before each of our pushes, another pipeline lands a commit first.
sub=""; skip=0
for a in "$@"; do  # the subcommand: the first argument that is neither `-c` nor its value
  if [ $skip = 1 ]; then skip=0; elif [ "$a" = "-c" ]; then skip=1; else sub=$a; break; fi
done
if [ "$sub" = "push" ]; then
  echo "$*" >> "$RACE_DIR/pushes"
  n=$(cat "$RACE_DIR/count" 2>/dev/null || echo 0)
  if [ "$n" -lt "$RACES" ]; then
    echo $((n + 1)) > "$RACE_DIR/count"
    (cd "$RACE_DIR/other" && "$REAL_GIT" pull -q --ff-only \
      && echo "race $n" > "other-$n.txt" && "$REAL_GIT" add -A && "$REAL_GIT" commit -qm "other pipeline $n" \
      && "$REAL_GIT" push -q origin HEAD:main) >/dev/null 2>&1 || exit 99
  fi
fi
exec "$REAL_GIT" "$@"
"""


def champion_file(folder: Path, version: str) -> Path:
    model_dir = folder / "models" / f"m-{version}" / "artifacts"
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "MLmodel").write_text("flavors: {}\n")  # deploy push checks that the model exists
    path = folder / f"champion-{version}.json"
    path.write_text(json.dumps({"name": "racer", "version": version, "artifact_uri": str(model_dir),
                                "run_id": f"run{version}", "data_version": f"dv-00000000000{version}"}))
    return path


@pytest.fixture
def gitops_project(tmp_path):
    """A project whose GitOps repository holds version 1, a clone of "another pipeline", and a racing `git`."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "mlops.yaml").write_text("project: racer\ngitops:\n  push_retries: 2\n")
    r = run_mlops("deploy", "push", "--champion", str(champion_file(root, "1")), "--json", cwd=root)
    assert r.code == 0, r
    race = tmp_path / "race"
    race.mkdir()
    git(race, "clone", "-q", str(root / ".mlops" / "gitops.git"), "other")
    git(race / "other", "config", "user.name", "other")
    git(race / "other", "config", "user.email", "other@localhost")
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "git").write_text(GIT_RACER)
    (fake_bin / "git").chmod(0o755)
    return root, race, fake_bin


def racing_push(root: Path, race: Path, fake_bin: Path, races: int):
    env = {"PATH": f"{fake_bin}{os.pathsep}{BIN}{os.pathsep}{os.environ['PATH']}", "RACE_DIR": str(race),
           "RACES": str(races), "REAL_GIT": shutil.which("git")}
    return run_mlops("deploy", "push", "--champion", str(champion_file(root, "2")), "--json", cwd=root, env=env)


def gitops_state(root: Path) -> tuple[list[str], str]:
    bare = root / ".mlops" / "gitops.git"
    subprocess.run(["git", "-C", str(bare), "fsck", "--strict"], check=True, capture_output=True)
    refs = subprocess.run(["git", "-C", str(bare), "for-each-ref", "--format=%(refname)"], check=True,
                          capture_output=True, text=True).stdout.split()
    return refs, git(bare, "log", "--format=%s", "main")


def test_gitops_push_rejected_non_fast_forward_is_retried_without_force(gitops_project):
    """Another pipeline pushes between our clone and our push (a real non-fast-forward rejection,
    twice): we fetch, re-apply on the new tip and push again; both pipelines' commits survive in
    a linear history, nothing is forced."""
    root, race, fake_bin = gitops_project
    r = racing_push(root, race, fake_bin, races=2)
    assert r.code == 0, r
    assert r.json()["changed"] and r.json()["attempts"] == 3
    pushes = (race / "pushes").read_text().splitlines()
    assert len(pushes) == 3 and not any(" -f" in p or "--force" in p or " +" in p for p in pushes)
    refs, log = gitops_state(root)
    assert refs == ["refs/heads/main"]
    assert log.splitlines() == ["Deploy racer version 2 (data dv-000000000002)", "other pipeline 1",
                                "other pipeline 0", "Deploy racer version 1 (data dv-000000000001)"]


def test_gitops_push_keeps_losing_the_race_bounded(gitops_project):
    """The branch keeps moving: push_retries + 1 attempts, then exit 1 with one line; the other
    pipeline's commits are intact and ours is not in the repository (nothing half-pushed)."""
    root, race, fake_bin = gitops_project
    r = racing_push(root, race, fake_bin, races=100)
    assert r.code == 1, r
    assert "rejected 3 times" in one_line_error(r.err) and "push_retries=2" in r.err
    assert len((race / "pushes").read_text().splitlines()) == 3
    refs, log = gitops_state(root)
    assert refs == ["refs/heads/main"] and "version 2" not in log and log.count("other pipeline") == 3


def test_gitops_remote_unreachable(tmp_path):
    """The GitOps remote does not answer (nothing listens on its port): exit 1 with one line
    naming the repository, in bounded time, with the token never shown and no local copy left."""
    (tmp_path / "mlops.yaml").write_text("project: racer\ngitops:\n  repo: https://127.0.0.1:9/org/gitops.git\n")
    started = time.monotonic()
    r = run_mlops("deploy", "push", "--champion", str(champion_file(tmp_path, "1")), cwd=tmp_path,
                  env={"GITHUB_TOKEN": CANARY, "TMPDIR": str(tmp_path)})
    assert r.code == 1, r
    line = one_line_error(r.err)
    assert "git ls-remote failed" in line and "127.0.0.1" in line, line
    assert CANARY not in r.out + r.err
    assert time.monotonic() - started < 60
    assert not list(tmp_path.glob("mlops-gitops-*")), "a temporary clone was left in $TMPDIR"
    assert not list((tmp_path / ".mlops" / "tmp").glob("*")), "the temporary clone was left behind"
    assert not (tmp_path / ".mlops" / "gitops.git").exists()


# -- Slack and GitHub ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("slack")
    (root / "mlops.yaml").write_text("project: slack-faults\nnotify:\n  slack_channel: '#ml'\n")
    assert run_mlops("experiment", "run", "--local", str(write_experiment(root / "e", name="good", max_trials=1)),
                     cwd=root).code == 0
    return root


def notify(root, slack, how: str):
    env = ({"SLACK_BOT_TOKEN": CANARY, "SLACK_API_URL": slack.url + "/api/"} if how == "bot"
           else {"SLACK_WEBHOOK_URL": slack.url + "/webhook"})
    started = time.monotonic()
    r = run_mlops("notify", "experiment", "--name", "good", "--json", "--no-report", cwd=root, env=env)
    assert CANARY not in r.out + r.err and slack.url not in r.out + r.err
    return r, time.monotonic() - started


@pytest.mark.parametrize("how", ["bot", "webhook"])
def test_slack_rate_limited_until_retries_run_out(finished, how):
    """Slack answers 429 with Retry-After: 1 every time: 3 retries, each after the wait Slack asked
    for, then exit 1 with one line; the message is still recorded locally with the error."""
    log = finished / ".mlops" / "notifications.jsonl"
    with SlackServer(token=CANARY) as slack:
        slack.responses += [(429, {"Retry-After": "1"}, {"ok": False, "error": "ratelimited"})] * 10
        r, took = notify(finished, slack, how)
        assert r.code == 1, r
        assert len(slack.requests) == 4 and took >= 3.0
    line = one_line_error(r.err)
    assert "Slack" in line and ("ratelimited" in line or "429" in line), line
    record = json.loads(log.read_text().splitlines()[-1])
    assert record["error"] and record["message"]["blocks"] and CANARY not in log.read_text()


@pytest.mark.parametrize("how", ["bot", "webhook"])
def test_slack_server_errors_are_retried(finished, how):
    """A 500 then a 503 from Slack are retried (bounded, backed off) and the third attempt delivers;
    a Slack that keeps failing gives exit 1 after 3 attempts."""
    with SlackServer(token=CANARY) as slack:
        slack.responses += [(500, {}, "internal error"), (503, {}, "unavailable")]
        r, _ = notify(finished, slack, how)
        assert r.code == 0, r
        assert len(slack.requests) == 3 and r.json()["delivery"]["via"] == ("chat.postMessage" if how == "bot" else "webhook")
    with SlackServer(token=CANARY) as slack:
        slack.responses += [(500, {}, "internal error")] * 10
        r, _ = notify(finished, slack, how)
        assert r.code == 1 and len(slack.requests) == 3, r
        assert "Slack" in one_line_error(r.err)


def test_github_503_honours_retry_after(project):
    """GitHub answers 503 with Retry-After: 2 once: `mlops pr open` waits as asked, retries and
    opens the pull request exactly once."""
    from tests.fakes.github import GitHubServer
    from tests.test_pr import REPO, with_api

    git(project, "checkout", "-q", "-b", "data/retry-after")
    with GitHubServer(token=CANARY, repos=(REPO,)) as gh:
        times: list[tuple[str, int, float]] = []

        class RetryAfter(gh.httpd.RequestHandlerClass):
            def send_response(self, code, message=None):
                times.append((self.command, code, time.monotonic()))
                super().send_response(code, message)
                if code == 503:
                    self.send_header("Retry-After", "2")

        gh.httpd.RequestHandlerClass = RetryAfter
        with_api(project, gh.url)
        gh.fail("POST", r"/pulls$", 503, times=1)
        r = run_mlops("pr", "open", "--json", cwd=project, env={"GITHUB_TOKEN": CANARY, "BRANCH_NAME": ""})
        assert r.code == 0 and r.json()["action"] == "created", r
        assert CANARY not in r.out + r.err
        posts = [t for t in times if t[0] == "POST"]
        assert [code for _, code, _ in posts] == [503, 201]
        assert posts[1][2] - posts[0][2] >= 1.9  # Retry-After honoured, not the 0.2 s backoff
        assert len(gh.pulls[REPO]) == 1


# -- Kubernetes ----------------------------------------------------------------------------------------
def test_katib_watch_expired_then_api_500_resumes(tmp_path, project):
    """During `experiment wait` the watch expires (410 Gone) and the re-list that follows gets a 500:
    the wait retries, resumes and still writes the finished Experiment's status document once."""
    from tests.fakes.k8s import KubeServer, katib_experiment_status
    from tests.test_katib import CANARY as K8S_CANARY
    from tests.test_katib import EXP, NS, complete, finish, start, submitted, watching

    with KubeServer(token=K8S_CANARY) as kube:
        kube.kubeconfig_path = kube.kubeconfig(tmp_path / "kubeconfig")
        exp = submitted(kube, project)
        name = exp["metadata"]["name"]
        proc = start(kube, "experiment", "wait", "--json", cwd=project)
        first = watching(kube)
        kube.patch(EXP[0], EXP[1], NS, name, {"status": katib_experiment_status(exp, [], None)})
        kube.fail("GET", r"/experiments", 500, times=2, watch=False)  # the re-list after the 410
        kube.expire_watches()
        watching(kube, first["n"] + 1)
        complete(kube, exp)
        code, out, err = finish(proc)
    assert code == 0, err
    assert "410" in err and "500" in err
    assert any(q.get("expired") for q in kube.requests)
    data = json.loads(out)
    assert data["phase"] == "Succeeded" and data["best_trial"]
    status_dir = project / ".mlops" / "experiments" / name
    assert json.loads((status_dir / "experiment.json").read_text())["metadata"]["name"] == name
    assert sorted(p.name for p in status_dir.iterdir()) == ["experiment.json"]


# -- the lines: a notice that cannot be delivered does not undo work that succeeded ------------------------
def slack_down(slack: SlackServer) -> dict:
    slack.responses += [(500, {}, "internal error")] * 50
    return {"SLACK_WEBHOOK_URL": slack.url + "/webhook"}


def test_data_line_survives_slack_down(project):
    """Slack is down when line 1 has run its Experiment: the line still exits 0 with the outcome,
    reports the undelivered notice as a warning, records the data version as processed (a rerun
    is a no-op) and keeps the message in the local notification log."""
    spec = project / "katib" / "experiment.yaml"
    spec.write_text(spec.read_text().replace("maxTrialCount: 8", "maxTrialCount: 2")
                    .replace("maxFailedTrialCount: 3", "maxFailedTrialCount: 2"))  # Katib: failed <= max
    git(project, "commit", "-qam", "two trials")
    with SlackServer() as slack:
        r = run_mlops("line", "data", "--local", "--json", cwd=project, env=slack_down(slack))
        assert r.code == 0, r
        assert len(slack.requests) == 3  # retried, bounded
    doc = r.json()
    assert doc["status"] == "completed" and doc["phase"] == "Succeeded"
    assert "Slack webhook failed: HTTP 500" in doc["notification"]["error"] and "warning" in r.err
    record = json.loads((project / ".mlops" / "notifications.jsonl").read_text().splitlines()[-1])
    assert record["error"] and record["message"]["text"] == doc["notification"]["text"]
    r = run_mlops("line", "data", "--local", "--json", cwd=project)
    assert r.code == 0 and r.json()["status"] == "unchanged", r


@pytest.mark.slow
def test_deploy_line_notice_failure_and_failed_serve_keep_the_deployment(tmp_path):
    """Line 2 pushes version 1, then Slack fails: exit 0, the push stands, the notice is a warning.
    New data gives a new candidate whose local serve fails (serve_port == metrics_port fails before
    MLServer starts): exit 2, the champion is back to (or still) version 1, and the GitOps
    repository is unchanged — the same commits and the same manifest."""
    from tests.conftest import add_batch, make_project

    project = make_project(tmp_path / "taxi-fare", rows=400, max_trials=2)
    assert run_mlops("line", "data", "--local", cwd=project).code == 0
    with SlackServer() as slack:
        r = run_mlops("line", "deploy", "--json", cwd=project, env=slack_down(slack))
    assert r.code == 0, r
    first = r.json()
    assert first["status"] == "completed" and first["champion"]["version"] == "1"
    assert "Slack webhook failed" in first["notification"]["error"] and "warning" in r.err
    bare = project / ".mlops" / "gitops.git"
    log = git(bare, "log", "--format=%H %s", "main")
    manifest = git(bare, "show", f"main:{first['manifest']}")
    assert log.count("\n") == 1 and "version 1" in log

    add_batch(project, 2, rows=400)
    assert run_mlops("line", "data", "--local", cwd=project).code == 0
    config = project / "mlops.yaml"
    config.write_text(config.read_text().replace("  replicas: 1\n", "  replicas: 1\n  serve_port: 8091\n  metrics_port: 8091\n"))
    r = run_mlops("line", "deploy", "--local", "--json", cwd=project)
    assert r.code == 2, r
    line = one_line_error(r.err)
    # promoted by the gate -> withdrawn; not promoted -> version 1 kept serving: champion 1 either way
    assert "manifest not pushed" in line and ("version 2 withdrawn" in line or "version 1 stays champion" in line), line
    assert run_mlops("model", "champion", "--json", cwd=project).json()["champion"]["version"] == "1"
    assert git(bare, "log", "--format=%H %s", "main") == log
    assert git(bare, "show", f"main:{first['manifest']}") == manifest
    subprocess.run(["git", "-C", str(bare), "fsck", "--strict"], check=True, capture_output=True)
