"""A finished Experiment in MLflow: parent run, one child run per trial, dataset input, report attached."""

from __future__ import annotations

import json

import pytest

from pyhelpers.config import load_config
from tests.conftest import run_mlops, write_experiment


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow-log")
    (root / "mlops.yaml").write_text("project: mlflow-log\nmlflow:\n  experiment: tuning\n")
    spec = write_experiment(root / "exp", name="logged", max_trials=3, max_failed=3)
    assert run_mlops("experiment", "run", "--local", str(spec), cwd=root).code == 0
    doc_path = root / ".mlops" / "experiments" / "logged" / "experiment.json"
    doc = json.loads(doc_path.read_text())
    doc["metadata"].setdefault("annotations", {})["mlops.io/data-version"] = "dv-0123456789ab"
    doc["trials"][1]["condition"] = "Failed"  # one failed trial: a FAILED child run, still compared
    doc_path.write_text(json.dumps(doc))
    return root, doc


def test_trials_become_child_runs_of_the_experiment_run(finished):
    from mlflow import MlflowClient

    from pyhelpers.experiment.mlflow_log import log_experiment_quietly

    root, doc = finished
    cfg = load_config(root / "mlops.yaml", environ={})
    logged = log_experiment_quietly(cfg, doc)
    assert "error" not in logged and logged["trials"] == 3, logged
    assert sorted(logged["report"]) == ["report.md", "trials.png"]

    client = MlflowClient(cfg.tracking_uri)
    parent = client.get_run(logged["parent_run_id"])
    assert parent.info.status == "FINISHED" and parent.info.run_name == "logged"
    assert parent.data.tags["mlops.data_version"] == "dv-0123456789ab"
    assert parent.data.params["algorithm"] == "random" and parent.data.metrics["trials"] == 3
    (dataset,) = parent.inputs.dataset_inputs
    assert dataset.dataset.digest == "dv-0123456789ab" and dataset.dataset.source_type == "local"
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "report")} == {"report/report.md",
                                                                                      "report/trials.png"}
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    by_name = {r.info.run_name: r for r in children}
    assert set(by_name) == {t["name"] for t in doc["trials"]}
    for trial in doc["trials"]:
        run = by_name[trial["name"]]
        assert run.data.params == {a["name"]: a["value"] for a in trial["parameterAssignments"]}
        assert run.info.status == ("FINISHED" if trial["condition"] == "Succeeded" else "FAILED")
        assert [a.path for a in client.list_artifacts(run.info.run_id, "log")] == [f"log/{trial['name']}.log"]
    ok = by_name[doc["trials"][0]["name"]]
    assert ok.data.metrics["loss"] == pytest.approx(float(doc["trials"][0]["observation"]["metrics"][0]["latest"]))

    again = log_experiment_quietly(cfg, doc)  # a rerun logs nothing twice
    assert again["unchanged"] and again["parent_run_id"] == parent.info.run_id
    assert len(client.search_runs([parent.info.experiment_id])) == 4
