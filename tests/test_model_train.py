"""`mlops model train`: best parameters from the status document -> MLflow run with model and lineage."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from pyhelpers.errors import BadInput, OperationFailed
from tests._model_project import CHEAP, EXPERIMENT, GOOD, git, load, make_project, run_cli, write_status

FEATURES = ["pickup_zone", "dropoff_zone", "passenger_count", "trip_distance", "trip_minutes",
            "pickup_hour", "pickup_weekday", "is_card", "is_airport"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("train") / "taxi-fare")


@pytest.fixture(scope="module")
def trained(project):
    """One training of the best trial through the Experiment's trial template (as Katib ran it)."""
    from pyhelpers.model.train import train

    cfg = load(project)
    write_status(cfg, GOOD, data_version="dv-0001")
    mp = pytest.MonkeyPatch()
    mp.setenv("BUILD_URL", "http://jenkins.local/job/taxi-fare/7/")
    mp.setenv("JOB_NAME", "taxi-fare/main")
    try:
        return cfg, train(cfg, None)
    finally:
        mp.undo()


def test_best_parameters_are_trained_and_logged(trained):
    from mlflow import MlflowClient

    cfg, out = trained
    assert out["unchanged"] is False
    run = MlflowClient(cfg.tracking_uri).get_run(out["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params == GOOD  # the hand-over of status.currentOptimalTrial.parameterAssignments
    assert 0 < run.data.metrics["validation-rmse"] < 20
    assert "train-rmse" in run.data.metrics
    assert "rows" not in run.data.metrics  # only the Experiment's metrics are collected, as Katib does
    assert out["objective_metric"] == "validation-rmse"
    assert out["objective_value"] == pytest.approx(run.data.metrics["validation-rmse"])


def test_run_carries_lineage_tags(trained):
    from mlflow import MlflowClient

    cfg, out = trained
    tags = MlflowClient(cfg.tracking_uri).get_run(out["run_id"]).data.tags
    assert tags["mlops.data_version"] == "dv-0001"
    assert tags["mlops.git_commit"] == git(cfg.root, "rev-parse", "HEAD")
    assert tags["mlops.experiment"] == EXPERIMENT
    assert tags["mlops.best_trial"] == f"{EXPERIMENT}-0001"
    assert tags["mlops.objective_metric"] == "validation-rmse"
    assert float(tags["mlops.objective_value"]) == pytest.approx(out["objective_value"])
    assert tags["mlops.build_url"] == "http://jenkins.local/job/taxi-fare/7/"
    assert tags["mlops.job_name"] == "taxi-fare/main"


def test_logged_model_has_flavor_signature_example_and_artifacts(trained):
    import mlflow
    import pandas as pd
    from mlflow import MlflowClient

    cfg, out = trained
    mlflow.set_tracking_uri(cfg.tracking_uri)  # models:/ URIs below resolve against this store
    client = MlflowClient(cfg.tracking_uri)
    logged = client.get_logged_model(out["model_id"])
    assert logged.source_run_id == out["run_id"]
    assert logged.tags["mlops.data_version"] == "dv-0001"
    # MLflow 3 layout, under the project's artifact root (not ./mlruns)
    root = Path(cfg.mlflow_artifact_root)
    model_dir = root / cfg.mlflow_experiment / "models" / out["model_id"] / "artifacts"
    assert (model_dir / "MLmodel").is_file()
    info = mlflow.models.get_model_info(out["model_uri"])
    assert "sklearn" in info.flavors and "python_function" in info.flavors
    assert [c.name for c in info.signature.inputs] == FEATURES
    assert {c.type.name for c in info.signature.inputs} == {"double"}  # the trainer's float64, not guessed ints
    example = json.loads((model_dir / "input_example.json").read_text())
    assert example["columns"] == FEATURES
    model = mlflow.pyfunc.load_model(out["model_uri"])
    assert len(model.predict(pd.DataFrame(example["data"], columns=FEATURES))) == len(example["data"])
    assert "mlflow" in (model_dir / "requirements.txt").read_text()
    run_files = {f.path for f in client.list_artifacts(out["run_id"])}
    assert {"trainer.log", "validation"} <= run_files
    log = Path(client.download_artifacts(out["run_id"], "trainer.log", str(root.parent / "dl"))).read_text()
    assert "validation-rmse=" in log


def test_rerun_with_same_data_parameters_and_commit_is_a_no_op(trained):
    from mlflow import MlflowClient

    from pyhelpers.model.train import train

    cfg, out = trained
    again = train(cfg, str(cfg.root / "katib" / "experiment.yaml"))  # the FILE form names the same experiment
    assert again["unchanged"] is True
    assert again["run_id"] == out["run_id"]
    runs = MlflowClient(cfg.tracking_uri).search_runs([out["mlflow_experiment_id"]])
    assert len(runs) == 1


def test_new_data_version_trains_again_with_training_command(project):
    """`training.command` + --<param>=<value> replaces the trial template when configured."""
    from pyhelpers.model.train import train

    cfg = load(project)
    cfg.model.training.command = ["python", "train.py", "--data-dir=data/trips"]
    write_status(cfg, CHEAP, data_version="dv-0002")
    out = train(cfg, EXPERIMENT)
    assert out["unchanged"] is False
    assert out["data_version"] == "dv-0002"
    assert out["tags"]["mlops.data_version"] == "dv-0002"


def test_trainer_using_mlflow_logs_into_the_same_run(tmp_path):
    """MLFLOW_RUN_ID/MLFLOW_TRACKING_URI are set: a trainer's own mlflow calls land in our run."""
    from mlflow import MlflowClient

    from pyhelpers.model.train import train

    config = make_project(tmp_path / "p", rows=60, extra_config={"training": {"command": ["python", "own.py"]}})
    (tmp_path / "p" / "own.py").write_text(textwrap.dedent("""
        import json, os, sys
        import joblib, mlflow, pandas as pd
        from sklearn.linear_model import LinearRegression
        X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]}); y = 2 * X.a + X.b
        with mlflow.start_run():  # resumes $MLFLOW_RUN_ID
            mlflow.log_metric("trainer-own-metric", 7.0)
            mlflow.set_tag("trainer.experiment", os.environ["MLFLOW_EXPERIMENT_NAME"])
        out = os.environ["MLOPS_MODEL_DIR"]
        joblib.dump(LinearRegression().fit(X, y), f"{out}/m.joblib")
        X.assign(y=y).to_csv(f"{out}/val.csv", index=False)
        open(f"{out}/ex.json", "w").write(X.head(2).to_json(orient="split", index=False))
        json.dump({"flavor": "sklearn", "model": "m.joblib", "target": "y", "validation": "val.csv",
                   "input_example": "ex.json"}, open(f"{out}/mlops-model.json", "w"))
        print("validation-rmse=0.0")
    """))
    cfg = load(config)
    write_status(cfg, {"alpha": "1"})
    out = train(cfg, EXPERIMENT)
    run = MlflowClient(cfg.tracking_uri).get_run(out["run_id"])
    assert run.data.metrics["trainer-own-metric"] == 7.0
    assert run.data.tags["trainer.experiment"] == cfg.mlflow_experiment
    assert run.data.params == {"alpha": "1"}
    assert run.info.status == "FINISHED"


def test_failing_trainer_fails_the_run_and_keeps_its_log(tmp_path):
    from mlflow import MlflowClient

    from pyhelpers.model.train import train

    config = make_project(tmp_path / "p", rows=60, extra_config={"training": {"command": ["python", "bad.py"]}})
    (tmp_path / "p" / "bad.py").write_text("import sys\nprint('loading data')\nsys.exit(3)\n")
    cfg = load(config)
    write_status(cfg, CHEAP)
    with pytest.raises(OperationFailed, match="exit code 3"):
        train(cfg, EXPERIMENT)
    client = MlflowClient(cfg.tracking_uri)
    [run] = client.search_runs([client.get_experiment_by_name(cfg.mlflow_experiment).experiment_id])
    assert run.info.status == "FAILED"
    assert "mlops.model_id" not in run.data.tags
    log = Path(client.download_artifacts(run.info.run_id, "trainer.log", str(tmp_path))).read_text()
    assert "loading data" in log


def test_trainer_without_handover_is_bad_input(tmp_path):
    from pyhelpers.model.train import train

    config = make_project(tmp_path / "p", rows=60, extra_config={"training": {"command": ["python", "plain.py"]}})
    (tmp_path / "p" / "plain.py").write_text("print('validation-rmse=1.0')\n")
    cfg = load(config)
    write_status(cfg, CHEAP)
    with pytest.raises(BadInput, match="mlops-model.json"):
        train(cfg, EXPERIMENT)


def test_cli_unfinished_or_unknown_experiment_exits_2(tmp_path):
    config = make_project(tmp_path / "p", rows=60)
    write_status(load(config), CHEAP, condition="Running")
    res = run_cli(config, "model", "train", "--json")
    assert res.returncode == 2, res.stderr
    assert res.stdout == ""
    assert res.stderr.strip().splitlines() == [
        f"mlops: error: experiment '{EXPERIMENT}' is Running, not Succeeded: there is no final best trial to train"]
    res = run_cli(config, "model", "train", "--experiment", "nope")
    assert res.returncode == 2
    assert "no results for experiment 'nope'" in res.stderr


def test_cli_json_reports_unchanged_rerun(tmp_path):
    config = make_project(tmp_path / "p", rows=200)
    write_status(load(config), CHEAP)
    first = run_cli(config, "model", "train", "--json")
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["unchanged"] is False and doc["parameters"] == CHEAP
    assert "validation-rmse=" in first.stderr  # the trainer's output is progress on stderr
    second = run_cli(config, "model", "train", "--json")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout) | {"unchanged": False} == doc
    assert json.loads(second.stdout)["unchanged"] is True



def test_data_version_comes_from_the_work_tree_and_must_match_the_experiment(tmp_path):
    """Best parameters of one data version are never trained (and tagged) on other data."""
    from mlflow import MlflowClient

    from pyhelpers.data import data_version
    from pyhelpers.model.train import train

    config = make_project(tmp_path / "p", rows=60, extra_config={"training": {"command": ["python", "plain.py"]}})
    (tmp_path / "p" / "plain.py").write_text("raise SystemExit('must not run')\n")
    (tmp_path / "p" / "data" / "trips.dvc").write_text(
        "outs:\n- md5: 0123456789abcdef0123456789abcdef.dir\n  size: 10\n  nfiles: 1\n  path: trips\n")
    cfg = load(config)
    here = data_version(cfg, None)
    write_status(cfg, CHEAP, data_version="dv-other")
    with pytest.raises(BadInput, match=f"tuned on data dv-other but the work tree has data {here}"):
        train(cfg, EXPERIMENT)
    path = write_status(cfg, CHEAP)
    doc = json.loads(path.read_text())
    del doc["metadata"]["annotations"]["mlops.io/data-version"]  # an Experiment run outside the data line
    path.write_text(json.dumps(doc))
    with pytest.raises(OperationFailed, match="exit code 1"):  # got as far as the trainer
        train(cfg, EXPERIMENT)
    client = MlflowClient(cfg.tracking_uri)
    [run] = client.search_runs([client.get_experiment_by_name(cfg.mlflow_experiment).experiment_id])
    assert run.data.tags["mlops.data_version"] == here
