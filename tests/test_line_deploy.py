"""Line 2 on the sample project: train -> register/gate -> render -> GitOps push, idempotent, with lineage.

Serving is left out here (tests/test_deploy_serve.py runs a real MLServer); `make demo` runs the
whole line with `--local`.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import add_batch, git, make_project


def gitops_log(project):
    repo = project / ".mlops" / "gitops.git"
    return subprocess.run(["git", "-C", str(repo), "log", "--format=%H %s"], capture_output=True, text=True,
                          check=True).stdout.splitlines()


def test_deploy_line_end_to_end(mlops, tmp_path):
    project = make_project(tmp_path / "taxi-fare", rows=500, max_trials=3)
    spec = project / "katib" / "experiment.yaml"
    spec.write_text(spec.read_text().replace("parallelTrialCount: 2", "parallelTrialCount: 1"))
    assert mlops("line", "data", "--local", cwd=project).code == 0

    # a model that cannot be served locally is not pushed and does not stay champion
    config = project / "mlops.yaml"
    good_config = config.read_text()
    config.write_text(good_config.replace("  replicas: 1\n", "  replicas: 1\n  serve_port: 8090\n  metrics_port: 8090\n"))
    r = mlops("line", "deploy", "--local", cwd=project)
    assert r.code == 2 and "manifest not pushed; version 1 withdrawn" in r.err, r
    assert mlops("model", "champion", "--json", cwd=project).json() == {"champion": None}
    assert not (project / ".mlops" / "gitops.git").exists()
    config.write_text(good_config)

    r = mlops("line", "deploy", "--json", cwd=project)
    assert r.code == 0, r
    first = r.json()
    assert first["status"] == "completed" and first["promoted"] is True
    assert first["champion"]["version"] == "1" and first["candidate_version"] == "1"
    log = gitops_log(project)
    assert len(log) == 1 and "Deploy taxi-fare version 1" in log[0] and first["champion"]["data_version"] in log[0]
    assert first["steps"]["train"]["tags"]["mlops.data_version"] == first["champion"]["data_version"]

    # same data, same model: nothing changes
    r = mlops("line", "deploy", "--json", cwd=project)
    assert r.code == 0, r
    again = r.json()
    assert again["status"] == "unchanged" and again["candidate_version"] == "1"
    assert "training key" in again["shortcut"]  # decided from the last run's record, without MLflow
    assert gitops_log(project) == log

    # an unrelated commit (notes, a port change) is not a new model: the key is data + code + parameters
    (project / "NOTES.md").write_text("a newcomer's notes\n")
    git(project, "add", "NOTES.md")
    git(project, "commit", "-qm", "notes")
    r = mlops("line", "deploy", "--json", cwd=project)
    assert r.code == 0, r
    assert r.json()["status"] == "unchanged" and r.json()["candidate_version"] == "1", r
    # the store was written behind the line's back (here: a tag on the registered model): the no-op
    # record is not trusted and the full path runs (and finds nothing to do)
    db = project / ".mlops" / "mlflow" / "mlflow.db"
    subprocess.run([sys.executable, "-c", "import sys; from mlflow import MlflowClient; "
                    "MlflowClient(sys.argv[1]).set_registered_model_tag('taxi-fare', 'note', 'x')",
                    f"sqlite:///{db}"], check=True, capture_output=True)
    r = mlops("line", "deploy", "--json", cwd=project)
    assert r.code == 0 and r.json()["status"] == "unchanged" and "shortcut" not in r.json(), r
    assert "mlops.dirty" not in r.json()["steps"]["train"]["tags"]
    # the champion's model files went missing beside an unchanged store: no no-op, the full path says so
    mlmodel = Path(first["champion"]["artifact_uri"].removeprefix("file://")) / "MLmodel"
    assert mlops("line", "deploy", "--json", cwd=project).json().get("shortcut")
    mlmodel.rename(mlmodel.with_name("MLmodel.away"))
    r = mlops("line", "deploy", cwd=project)
    assert r.code == 1 and "MLmodel" in r.err, r
    mlmodel.with_name("MLmodel.away").rename(mlmodel)

    # the deployed model traces back to the data it was trained on
    r = mlops("lineage", "--json", cwd=project)
    assert r.code == 0, r
    assert first["champion"]["data_version"] in r.out

    # new data: a new version, promoted (new commit) or refused (no commit), with the reason
    add_batch(project, 2, rows=500)
    assert mlops("line", "data", "--local", cwd=project).code == 0
    r = mlops("line", "deploy", "--json", cwd=project)
    assert r.code == 0, r
    second = r.json()
    assert "shortcut" not in second
    assert second["candidate_version"] == "2" and second["reason"]
    if second["promoted"]:
        assert second["champion"]["version"] == "2" and len(gitops_log(project)) == 2
    else:
        assert second["champion"]["version"] == "1" and gitops_log(project) == log
    # people heard about each of the two runs that changed something, not about the no-op rerun
    kinds = [json.loads(line)["kind"] for line in (project / ".mlops" / "notifications.jsonl").read_text().splitlines()]
    assert kinds.count("deployment") == 2
    r = mlops("notify", "deployment", "--json", cwd=project)
    assert r.code == 0 and second["champion"]["data_version"] in r.json()["message"]["text"], r


def test_foreign_server_taking_the_port_during_the_build_fails_the_line_without_a_push(
        mlops, tmp_path, monkeypatch, capsys):
    """Issue 11's false success: while the serving environment was built, another server that answers
    200 on every /v2 path took the serving port. The line must exit 1 naming the port and its setting,
    push nothing and withdraw the champion it promoted."""
    from pyhelpers.cli import main
    from pyhelpers.deploy import serve
    from tests.test_deploy_serve import ENVS_DIR, ForeignV2Server

    project = make_project(tmp_path / "taxi-fare", rows=300, max_trials=3)
    assert mlops("line", "data", "--local", cwd=project).code == 0
    port, metrics_port = serve.free_port(), serve.free_port()

    # the race itself: the port is free when the line starts, taken while the environment builds
    real_build, foreign = serve.ensure_serving_env, []

    def build_while_another_server_starts(cfg, requirements_text):
        foreign.append(ForeignV2Server(port, "taxi-fare", "1"))
        return real_build(cfg, requirements_text)

    monkeypatch.setattr(serve, "ensure_serving_env", build_while_another_server_starts)
    monkeypatch.setenv("MLOPS_SERVING_ENVS_DIR", str(ENVS_DIR))
    monkeypatch.chdir(project)
    try:
        with pytest.raises(SystemExit) as exited:
            main(["line", "deploy", "--local", "--port", str(port), "--metrics-port", str(metrics_port)])
    finally:
        for server in foreign:
            server.close()
    err = capsys.readouterr().err
    assert foreign and exited.value.code == 1, err
    assert f"port {port}" in err and "deploy.serve_port" in err and "manifest not pushed" in err, err
    assert not (project / ".mlops" / "gitops.git").exists()  # nothing pushed: no GitOps commit at all
    assert mlops("model", "champion", "--json", cwd=project).json() == {"champion": None}
