"""`mlops experiment report`: Markdown summary and PNG plot from a status document."""

from __future__ import annotations

import shutil
import struct

import pytest

from pyhelpers.config import default_config
from tests._model_project import EXAMPLE, git, metric, write_status

NAME = "taxi-fare-tuning"


def trial(i: int, value: float | None, lr: str, condition: str = "Succeeded") -> dict:
    metrics = [metric("validation-rmse", value), metric("train-rmse", value / 2)] if value is not None else []
    return {"name": f"{NAME}-{i:04d}", "parameterAssignments": [{"name": "learning-rate", "value": lr},
                                                               {"name": "max-depth", "value": str(i)}],
            "condition": condition, "observation": {"metrics": metrics}, "exitCode": 0 if value else 3,
            "startTime": f"2024-01-01T00:00:0{i}Z", "completionTime": f"2024-01-01T00:00:1{i}Z",
            "log": f"trials/{NAME}-{i:04d}.log"}


@pytest.fixture
def cfg(tmp_path):
    (tmp_path / "katib").mkdir()
    shutil.copy(EXAMPLE / "katib" / "experiment.yaml", tmp_path / "katib" / "experiment.yaml")
    git(tmp_path, "init", "-q")  # write_status records the HEAD commit
    git(tmp_path, "commit", "-q", "--allow-empty", "-m", "x")
    return default_config(tmp_path)


def trials_doc(cfg, trials):
    # best = the lowest validation-rmse among the succeeded ones, as the engine would record it
    best = min((t for t in trials if t["condition"] == "Succeeded"),
               key=lambda t: float(t["observation"]["metrics"][0]["min"]))
    ordered = [best, *[t for t in trials if t is not best]]
    return write_status(cfg, {}, name=NAME, data_version="dv-42", trials=ordered)


def png_size(path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_report_summarises_best_and_top_trials_and_plots(cfg):
    from pyhelpers.experiment.report import build_report

    trials = [trial(1, 3.5, "0.02"), trial(2, None, "0.3", "Failed"), trial(3, 2.25, "0.1"),
              trial(4, 2.75, "0.05"), trial(5, None, "0.2", "MetricsUnavailable")]
    trials_doc(cfg, trials)
    out = build_report(cfg, NAME, top=2)
    assert out["best_trial"]["name"] == f"{NAME}-0003" and out["best_trial"]["objective"] == 2.25
    assert [r["name"] for r in out["top_trials"]] == [f"{NAME}-0003", f"{NAME}-0004"]
    assert out["counts"] == {"Succeeded": 3, "Failed": 1, "MetricsUnavailable": 1, "Killed": 0, "Running": 0}
    assert out["duration_seconds"] == 60
    assert out["summary"] == (f"Experiment {NAME} Succeeded: best validation-rmse 2.25 ({NAME}-0003) "
                              "over 5 trials in 1m 00s, data dv-42")
    md = open(out["markdown"]).read()
    assert out["markdown"] == str(cfg.state_path("experiments", NAME, "report.md"))
    assert f"### Best trial `{NAME}-0003`" in md
    assert "**validation-rmse = 2.25** (train-rmse = 1.125)" in md
    assert "| learning-rate | 0.1 |" in md
    assert f"| 1 | `{NAME}-0003` | 2.25 | 0.1 | 3 |" in md and f"| 2 | `{NAME}-0004` | 2.75 | 0.05 | 4 |" in md
    assert "1 failed, 1 without metrics" in md and "`dv-42`" in md and "Duration: 1m 00s" in md
    assert "![validation-rmse per trial, best so far, parameter importances](trials.png)" in md
    assert png_size(cfg.state_path("experiments", NAME, "trials.png")) == (1200, 800)  # history + 2 Optuna panels


def test_trials_go_into_an_optuna_study_for_its_plots(cfg):
    import json

    from optuna.distributions import FloatDistribution, IntDistribution

    from pyhelpers.experiment.report import objective_of, trial_rows, trials_study

    # max-depth is trial(i)'s i: trial 1's 1 lies outside the spec's 2..5 (an edited spec) and is left out
    path = trials_doc(cfg, [trial(1, 1.0, "0.1"), trial(2, 3.5, "0.02"), trial(3, None, "0.3", "Failed"),
                            trial(4, 2.25, "0.1"), trial(5, 2.75, "0.05")])
    doc = json.loads(path.read_text())
    objective = objective_of(doc)
    study = trials_study(doc["spec"], trial_rows(doc, objective), objective)
    assert [t.value for t in study.trials] == [3.5, 2.25, 2.75]  # the failed trial reported nothing
    assert study.best_trial.params == {"learning-rate": 0.1, "max-depth": 4}
    dists = study.trials[0].distributions
    assert dists["learning-rate"] == FloatDistribution(0.02, 0.3, log=True)  # logUniform in the spec
    assert dists["max-depth"] == IntDistribution(2, 5)


def test_report_is_deterministic_and_honours_maximize(cfg, tmp_path):
    import json

    from pyhelpers.experiment.report import best_so_far, build_report

    path = trials_doc(cfg, [trial(1, 0.5, "0.1"), trial(2, 0.9, "0.2"), trial(3, 0.7, "0.3")])
    doc = json.loads(path.read_text())
    doc["spec"]["objective"]["type"] = "maximize"
    doc["status"]["currentOptimalTrial"]["bestTrialName"] = f"{NAME}-0002"
    path.write_text(json.dumps(doc))
    first = build_report(cfg, str(path), out_dir=tmp_path / "r1")  # an experiment.json path works too
    build_report(cfg, str(path), out_dir=tmp_path / "r2")
    assert [r["name"] for r in first["top_trials"]] == [f"{NAME}-0002", f"{NAME}-0003", f"{NAME}-0001"]
    for name in ("report.md", "trials.png"):
        assert (tmp_path / "r1" / name).read_bytes() == (tmp_path / "r2" / name).read_bytes()
    assert best_so_far([0.5, None, 0.9, 0.7], minimize=False) == [0.5, 0.5, 0.9, 0.9]
    assert best_so_far([None, 3.0, 4.0, 2.0], minimize=True) == [None, 3.0, 3.0, 2.0]


def test_report_without_a_succeeded_trial_says_so(cfg):
    import json

    from pyhelpers.experiment.report import build_report

    path = trials_doc(cfg, [trial(1, 1.0, "0.1")])
    doc = json.loads(path.read_text())
    doc["trials"] = [trial(1, None, "0.1", "Failed"), trial(2, None, "0.2", "Failed")]
    doc["status"]["currentOptimalTrial"] = {"bestTrialName": "", "parameterAssignments": [], "observation": {}}
    doc["status"]["conditions"][-1].update(type="Failed", reason="ExperimentMaxFailedTrialsReached")
    path.write_text(json.dumps(doc))
    out = build_report(cfg, NAME)
    assert out["best_trial"] is None and out["phase"] == "Failed"
    assert out["summary"] == f"Experiment {NAME} Failed: no trial succeeded (2 trials)"
    assert "No trial succeeded" in open(out["markdown"]).read()
    assert png_size(cfg.state_path("experiments", NAME, "trials.png")) == (800, 450)  # the "no objective" picture


def test_unknown_experiment_is_bad_input(cfg):
    from pyhelpers.errors import BadInput
    from pyhelpers.experiment.report import build_report

    with pytest.raises(BadInput, match="no results for experiment 'nope'"):
        build_report(cfg, "nope")
