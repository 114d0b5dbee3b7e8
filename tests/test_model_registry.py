"""`mlops model register|promote|rollback|champion`: the real MLflow registry with the champion alias."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from pyhelpers.errors import BadInput, OperationFailed
from tests._model_project import CHEAP, EXPERIMENT, GOOD, WORSE, load, make_project, run_cli, write_status

CHAMPION_KEYS = {"name", "version", "run_id", "model_uri", "artifact_uri", "data_version", "git_commit",
                 "experiment", "best_trial", "objective_metric", "objective_value"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three training runs of one project: a cheap model, a good one, and a worse one (trained last)."""
    from pyhelpers.model.train import train

    config = make_project(tmp_path_factory.mktemp("registry") / "taxi-fare")
    cfg = load(config)
    out = {}
    for label, params in (("cheap", CHEAP), ("good", GOOD), ("worse", WORSE)):
        write_status(cfg, params, data_version=f"dv-{label}")
        out[label] = train(cfg, EXPERIMENT)["run_id"]
    return config, out


def variant(config: Path, model: str, **mlflow) -> object:
    """The same project (same MLflow store) with its own registered model name: independent tests."""
    doc = yaml.safe_load(config.read_text())
    doc["mlflow"] = {**doc["mlflow"], "registered_model": model, **mlflow}
    path = config.with_name(f"mlops-{model}.yaml")
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load(path)


def client_of(cfg):
    from mlflow import MlflowClient

    return MlflowClient(cfg.tracking_uri)


def champion_of(cfg) -> str:
    return str(client_of(cfg).get_model_version_by_alias(cfg.registered_model, "champion").version)


def test_gate_promotes_the_first_and_a_better_model_and_refuses_a_worse_one(runs):
    from pyhelpers.model.registry import register

    config, run = runs
    cfg = variant(config, "gate", min_improvement=0.01)
    first = register(cfg, run["cheap"])
    assert first["promoted"] is True and first["champion"] is None
    assert "no champion yet" in first["reason"]

    better = register(cfg, run["good"])
    assert better["promoted"] is True, better["reason"]
    assert better["candidate"]["version"] == "2" and better["champion"]["version"] == "1"
    assert better["metric"] == "rmse" and better["objective_metric"] == "validation-rmse"
    assert better["candidate_value"] < better["champion_value"] * 0.99
    assert champion_of(cfg) == "2"

    worse = register(cfg, run["worse"])
    assert worse["promoted"] is False
    assert worse["candidate_value"] > worse["champion_value"]
    assert "worse" in worse["reason"] and "v2" in worse["reason"]
    assert champion_of(cfg) == "2"  # unchanged
    client = client_of(cfg)
    v3 = client.get_model_version("gate", "3")
    assert v3.tags["mlops.gate"] == "rejected" and v3.aliases == []
    assert v3.tags["mlops.data_version"] == "dv-worse"  # lineage copied onto the version
    assert v3.tags["mlops.experiment"] == EXPERIMENT
    assert client.get_registered_model("gate").tags["mlops.previous_champion"] == "1"


def test_gate_value_is_the_real_rmse_on_the_candidates_validation_rows(runs, tmp_path):
    import mlflow
    import numpy as np
    import pandas as pd

    from pyhelpers.model.registry import register

    config, run = runs
    cfg = variant(config, "honest")
    register(cfg, run["good"])
    out = register(cfg, run["cheap"])
    rows = pd.read_csv(Path(client_of(cfg).download_artifacts(run["cheap"], "validation", str(tmp_path)))
                       / "validation.csv")
    X, y = rows.drop(columns=["fare_amount"]), rows["fare_amount"]
    for key, uri in (("candidate_value", "models:/honest/2"), ("champion_value", "models:/honest/1")):
        pred = mlflow.pyfunc.load_model(uri).predict(X)
        assert out[key] == pytest.approx(float(np.sqrt(np.mean((pred - y) ** 2))))
    assert out["validation_rows"] == len(rows)


def test_min_improvement_refuses_a_small_gain(runs):
    from pyhelpers.model.registry import register

    config, run = runs
    cfg = variant(config, "strict", min_improvement=0.99)
    register(cfg, run["cheap"])
    out = register(cfg, run["good"])
    assert out["promoted"] is False
    assert 0 < out["improvement"] < 0.99
    assert "better" in out["reason"] and "needs at least 99.00%" in out["reason"]
    assert champion_of(cfg) == "1"


def test_register_rerun_is_a_no_op_and_defaults_to_the_latest_run(runs):
    from pyhelpers.model.registry import register

    config, run = runs
    cfg = variant(config, "rerun")
    assert register(cfg, run["good"])["promoted"] is True
    latest = register(cfg)  # no --run-id: the latest training run (the worse one)
    assert latest["candidate"]["run_id"] == run["worse"] and latest["promoted"] is False
    again = register(cfg)
    assert again["unchanged"] is True and again["promoted"] is False
    assert again["candidate"]["version"] == "2" and again["decision"] == "rejected"
    good_again = register(cfg, run["good"])
    assert good_again["unchanged"] is True and good_again["promoted"] is True
    assert good_again["candidate"]["version"] == "1" and good_again["decision"] == "promoted"
    assert len(client_of(cfg).search_model_versions("name='rerun'")) == 2


def test_promote_and_rollback_walk_the_champion_history(runs):
    from pyhelpers.model.registry import promote, register, rollback

    config, run = runs
    cfg = variant(config, "ops")
    for label in ("cheap", "good", "worse"):
        register(cfg, run[label])
    assert champion_of(cfg) == "2"
    assert promote(cfg, "3") == {"name": "ops", "version": "3", "previous": "2", "unchanged": False}
    assert promote(cfg, "3")["unchanged"] is True
    tags = client_of(cfg).get_registered_model("ops").tags
    assert tags["mlops.champion_history"] == "1,2,3" and tags["mlops.previous_champion"] == "2"
    assert rollback(cfg) == {"name": "ops", "version": "2", "previous": "3"}
    assert client_of(cfg).get_registered_model("ops").tags["mlops.previous_champion"] == "1"
    assert rollback(cfg)["version"] == "1"
    with pytest.raises(BadInput, match="no previous champion"):
        rollback(cfg)
    assert champion_of(cfg) == "1"
    with pytest.raises(BadInput, match="has no version 9"):
        promote(cfg, "9")
    with pytest.raises(BadInput, match="not found in the tracking store"):
        register(cfg, "0" * 32)


def test_get_champion_follows_the_contract(runs):
    import mlflow

    from pyhelpers.model.registry import get_champion, register

    config, run = runs
    cfg = variant(config, "contract")
    assert get_champion(cfg) is None
    register(cfg, run["good"])
    champ = get_champion(cfg)
    assert set(champ) == CHAMPION_KEYS
    assert champ["version"] == "1" and champ["run_id"] == run["good"]
    assert champ["model_uri"] == "models:/contract/1"
    assert (Path(champ["artifact_uri"]) / "MLmodel").is_file()  # a local path in the local profile
    assert Path(champ["artifact_uri"]).is_relative_to(cfg.mlflow_artifact_root)
    assert champ["data_version"] == "dv-good" and champ["experiment"] == EXPERIMENT
    assert champ["best_trial"] == f"{EXPERIMENT}-0001" and champ["objective_metric"] == "validation-rmse"
    assert isinstance(champ["objective_value"], float) and len(champ["git_commit"]) == 40
    assert mlflow.pyfunc.load_model(champ["model_uri"]) is not None


def test_a_failure_during_the_gate_moves_no_alias(runs):
    from pyhelpers.model.registry import register

    config, run = runs
    cfg = variant(config, "midway")
    register(cfg, run["cheap"])
    validation = Path(cfg.mlflow_artifact_root) / cfg.mlflow_experiment / run["good"] / "artifacts" / "validation"
    hidden = validation.with_name("hidden")
    shutil.move(validation, hidden)
    try:
        with pytest.raises(OperationFailed, match="validation artifacts"):
            register(cfg, run["good"])
    finally:
        shutil.move(hidden, validation)
    v2 = client_of(cfg).get_model_version("midway", "2")
    assert "mlops.gate" not in v2.tags and v2.aliases == []
    assert champion_of(cfg) == "1"
    out = register(cfg, run["good"])  # the rerun finishes the job on the same version
    assert out["unchanged"] is False and out["candidate"]["version"] == "2" and out["promoted"] is True
    assert len(client_of(cfg).search_model_versions("name='midway'")) == 2


def test_cli_register_json_rollback_and_promote_errors(runs):
    config, run = runs
    path = config.with_name("mlops-cli.yaml")
    variant(config, "cli")
    res = run_cli(path, "model", "register", "--run-id", run["good"], "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert {"promoted", "reason", "candidate", "champion", "candidate_value", "champion_value"} <= set(doc)
    assert doc["promoted"] is True
    res = run_cli(path, "model", "rollback")
    assert res.returncode == 2
    assert res.stderr.strip() == "mlops: error: model 'cli': champion v1 has no previous champion to roll back to"
    res = run_cli(path, "model", "promote", "x1", "--json")
    assert res.returncode == 2 and res.stdout == ""
    assert "VERSION: expected a version number of model 'cli', got 'x1'" in res.stderr
    res = run_cli(path, "model", "champion", "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["champion"]["run_id"] == run["good"]
