"""Line 1 on the sample project: data change -> Experiment (>= 6 trials) -> notification; idempotent."""

import json

from tests.conftest import add_batch, make_project


def notifications(project):
    log = project / ".mlops" / "notifications.jsonl"
    return log.read_text().splitlines() if log.exists() else []


def test_data_line_runs_once_per_data_version(mlops, tmp_path):
    project = make_project(tmp_path / "taxi-fare", rows=500, max_trials=6)
    r = mlops("line", "data", "--local", "--json", cwd=project)
    assert r.code == 0, r
    first = r.json()
    assert first["status"] == "completed" and first["phase"] == "Succeeded"
    assert first["experiment"] == "taxi-fare-tuning-" + first["data_version"][3:11]
    status = json.loads((project / ".mlops" / "experiments" / first["experiment"] / "experiment.json").read_text())
    assert status["status"]["trials"] == 6 and status["status"]["trialsSucceeded"] == 6
    assert status["metadata"]["annotations"]["mlops.io/data-version"] == first["data_version"]
    best = first["best_trial"]
    assert set(best["parameters"]) == {"learning-rate", "n-estimators", "max-depth", "subsample", "loss"}
    assert float(best["metrics"]["validation-rmse"]["min"]) > 0
    assert first["diff"]["summary"]["added"] == 1
    assert len(notifications(project)) == 1
    assert (project / ".mlops" / "dvc-remote").is_dir()

    # unchanged data: a no-op that says so
    r = mlops("line", "data", "--local", cwd=project)
    assert r.code == 0 and "unchanged" in r.out, r
    assert len(notifications(project)) == 1
    assert len(list((project / ".mlops" / "experiments").glob("taxi-fare-tuning-*"))) == 1

    # new data arrives: a new experiment named after the new data version
    add_batch(project, 2, rows=500)
    r = mlops("line", "data", "--local", "--json", cwd=project)
    assert r.code == 0, r
    second = r.json()
    assert second["data_version"] != first["data_version"] and second["experiment"] != first["experiment"]
    assert [f["path"] for f in second["diff"]["files"]] == ["data/trips/batch-0002.csv"]
    assert len(notifications(project)) == 2


def test_uncommitted_data_and_bad_spec_stop_the_line(mlops, project):
    csv = project / "data" / "trips" / "batch-0001.csv"
    csv.write_text(csv.read_text() + "2024-01-01 00:00:00,1,1,1,1.0,5.0,card,9.0\n")
    r = mlops("line", "data", "--local", cwd=project)
    assert r.code == 2 and "uncommitted data changes" in r.err, r
    spec = project / "katib" / "experiment.yaml"
    spec.write_text(spec.read_text().replace("maxTrialCount: 8", "maxTrialCount: 1"))
    r = mlops("line", "data", "--local", cwd=project)
    assert r.code == 2 and "experiment.yaml" in r.err and "maxTrialCount" in r.err, r
    assert len(r.err.strip().splitlines()) == 1, r
    assert not (project / ".mlops" / "experiments").exists()


def test_the_line_reaches_either_engine_through_one_seam(tmp_path):
    """backend_for picks the engine; both backends offer the same calls, so line 1 never branches on it."""
    from types import SimpleNamespace

    import pytest

    from pyhelpers.errors import BadInput
    from pyhelpers.experiment.backends import KatibBackend, LocalBackend, backend_for

    cfg = SimpleNamespace(experiment=SimpleNamespace(engine="katib", timeout_minutes=2), image_path_map=dict)
    assert isinstance(backend_for(cfg, local=False), KatibBackend)
    assert backend_for(cfg, local=False).timeout_seconds == 120
    assert isinstance(backend_for(cfg, local=True), LocalBackend)
    cfg.experiment.engine = "local"
    assert isinstance(backend_for(cfg, local=False), LocalBackend)
    with pytest.raises(BadInput, match="--image is for Experiments on Katib"):
        backend_for(cfg, local=True, image="registry/x:1")
    for cls in (LocalBackend, KatibBackend):
        assert {"submit", "wait", "run", "best", "status_document"} <= set(dir(cls))
    assert (LocalBackend.engine, KatibBackend.engine) == ("local", "katib")
