"""`mlops pr open` against a local GitHub API server, and the local profile's Markdown file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import add_batch, git, run_mlops
from tests.fakes.github import GitHubServer

CANARY = "ghp_CANARY_pr_0b7c41"
REPO = "example-org/taxi-fare"


@pytest.fixture
def branch_project(project):
    """The example on branch data/batch-2 with a second data batch committed, and an experiment for it."""
    git(project, "checkout", "-q", "-b", "data/batch-2")
    add_batch(project, 2, rows=300)
    write_status(project)
    return project


def write_status(project: Path) -> str:
    """A finished Katib Experiment for HEAD's data, in the status-document shape (as `experiment best` writes it)."""
    from pyhelpers.config import load_config
    from pyhelpers.data import data_version
    from pyhelpers.experiment import katib
    from pyhelpers.experiment.spec import load_spec
    from pyhelpers.line.data_line import experiment_name
    from tests.fakes.k8s import katib_experiment_status, katib_trial

    cfg = load_config(project / "mlops.yaml")
    spec = load_spec(cfg.experiment_file)
    name = experiment_name(spec.name, data_version(cfg, "HEAD"))
    exp = {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
           "metadata": {"name": name, "namespace": "kubeflow", "creationTimestamp": "2024-05-01T10:00:00Z",
                        "annotations": {"mlops.io/data-version": data_version(cfg, "HEAD")}},
           "spec": spec.spec}
    trials = [katib_trial(exp, 1, {"learning-rate": "0.1"}, "Succeeded", {"validation-rmse": 2.25}),
              katib_trial(exp, 2, {"learning-rate": "0.2"}, "Succeeded", {"validation-rmse": 1.75})]
    exp["status"] = katib_experiment_status(exp, trials, "Succeeded", "ExperimentMaxTrialsReached", "done", best=trials[1])
    katib.save(cfg, katib.status_document(exp, trials))
    return name


def with_api(project: Path, url: str) -> None:
    path = project / "mlops.yaml"
    text = re.sub(r"\n  api_url: .*", "", path.read_text())
    path.write_text(text.replace(f"github:\n  repo: {REPO}\n", f"github:\n  repo: {REPO}\n  api_url: {url}\n"))


def run(project, *args, token=CANARY):
    r = run_mlops("pr", "open", "--json", *args, cwd=project, env={"GITHUB_TOKEN": token, "BRANCH_NAME": ""})
    assert CANARY not in r.out + r.err
    return r


def assert_no_canary_in_files(root: Path) -> None:
    for path in (root / ".mlops").rglob("*"):
        if path.is_file() and path.suffix in (".md", ".json", ".jsonl", ".txt", ""):
            assert CANARY not in path.read_text(errors="replace"), path


def test_local_profile_writes_the_body_to_a_file(branch_project):
    r = run(branch_project, token="")
    assert r.code == 0, r
    data = r.json()
    assert data["via"] == "file" and data["action"] == "written" and data["reason"] == "no GITHUB_TOKEN"
    path = branch_project / ".mlops" / "pull-requests" / "data-batch-2.md"
    assert Path(data["file"]) == path
    body = path.read_text()
    assert body.startswith(f"# Data update {data['data_version']}\n")
    assert f"`{data['data_version']}`" in body and data["summary"]["added"] + data["summary"]["modified"] >= 1
    changed = [line for line in body.splitlines() if line.startswith(("| added |", "| modified |"))]
    assert changed and all("data/trips/" in line and " kB |" in line for line in changed), body
    assert "batch-1" not in body  # only what changed since main
    assert data["experiment"] and f"Experiment `{data['experiment']}`" in body and "1.75" in body
    plot = (path.parent / f"../experiments/{data['experiment']}/trials.png").resolve()
    assert f"](../experiments/{data['experiment']}/trials.png)" in body and plot.is_file()

    again = run(branch_project, token="")
    assert again.code == 0 and again.json()["action"] == "unchanged", again


def test_github_open_then_unchanged_then_update_never_duplicates(branch_project):
    with GitHubServer(token=CANARY, repos=(REPO,)) as gh:
        with_api(branch_project, gh.url)
        r = run(branch_project)
        assert r.code == 0, r
        assert r.json()["action"] == "created" and r.json()["number"] == 1 and r.json()["via"] == "github"
        created = next(q for q in gh.requests if q["method"] == "POST")
        assert created["body"]["head"] == "data/batch-2" and created["body"]["base"] == "main"
        body = created["body"]["body"]
        assert r.json()["data_version"] in body and ("| added |" in body or "| modified |" in body)
        assert "Best trial" in body and "![" not in body  # a local PNG cannot be shown on GitHub

        r = run(branch_project)
        assert r.code == 0 and r.json()["action"] == "unchanged", r
        assert [q["method"] for q in gh.requests].count("PATCH") == 0

        add_batch(branch_project, 3, rows=200)
        r = run(branch_project)
        assert r.code == 0 and r.json()["action"] == "updated" and r.json()["number"] == 1, r
        assert len(gh.pulls[REPO]) == 1 and r.json()["data_version"] in gh.pulls[REPO][0]["body"]
        assert [q["method"] for q in gh.requests].count("POST") == 1
    assert_no_canary_in_files(branch_project)


def test_422_already_exists_updates_the_other_jobs_pull_request(branch_project):
    with GitHubServer(token=CANARY, repos=(REPO,)) as gh:
        with_api(branch_project, gh.url)
        gh.race_next_create = True
        r = run(branch_project)
        assert r.code == 0 and r.json()["action"] == "updated", r
        assert len(gh.pulls[REPO]) == 1 and gh.pulls[REPO][0]["title"].startswith("Data update dv-")


def test_5xx_is_retried_a_bounded_number_of_times(branch_project):
    with GitHubServer(token=CANARY, repos=(REPO,)) as gh:
        with_api(branch_project, gh.url)
        gh.fail("POST", r"/pulls$", 502, times=2)
        r = run(branch_project)
        assert r.code == 0 and r.json()["action"] == "created", r
        assert [q["method"] for q in gh.requests].count("POST") == 3 and len(gh.pulls[REPO]) == 1

    with GitHubServer(token=CANARY, repos=(REPO,)) as gh:
        with_api(branch_project, gh.url)
        gh.fail("GET", r"/pulls$", 500, times=100)
        r = run(branch_project)
        assert r.code == 1 and "GitHub API error 500" in r.err, r
        assert [q["path"].endswith("/pulls") for q in gh.requests].count(True) == 4  # 1 + 3 retries


def test_401_is_a_clear_error_and_the_token_never_shows(branch_project):
    with GitHubServer(token="the-right-one", repos=(REPO,)) as gh:
        with_api(branch_project, gh.url)
        r = run(branch_project)
        assert r.code == 1 and "GitHub rejected GITHUB_TOKEN (401 Bad credentials)" in r.err, r
        assert any(CANARY in q["headers"].get("Authorization", "") for q in gh.requests)  # it was sent, not shown
    assert_no_canary_in_files(branch_project)


def test_unknown_repository_is_bad_input(branch_project):
    with GitHubServer(token=CANARY, repos=("example-org/other",)) as gh:
        with_api(branch_project, gh.url)
        r = run(branch_project)
        assert r.code == 2 and "mlops.yaml" in r.err and "github.repo: 'example-org/taxi-fare' not found" in r.err, r


def test_params_file_and_detached_head(branch_project, tmp_path):
    git(branch_project, "checkout", "-q", "--detach")
    r = run(branch_project, token="")
    assert r.code == 2 and "give --branch" in r.err, r
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"branch": "data/batch-2", "title": "New taxi data"}))
    r = run_mlops("--params-file", str(params), "pr", "open", "--json", cwd=branch_project,
                  env={"GITHUB_TOKEN": "", "BRANCH_NAME": ""})
    assert r.code == 0 and r.json()["title"] == "New taxi data", r


def test_head_equal_to_base_is_refused_with_the_next_step(project):
    """`pr open` on main used to write a main -> main pull request."""
    r = run_mlops("pr", "open", cwd=project, env={"GITHUB_TOKEN": "", "BRANCH_NAME": ""})
    assert r.code == 2 and "head and base are both 'main'" in r.err and "git switch -c" in r.err, r
    assert not (project / ".mlops" / "pull-requests").exists()
