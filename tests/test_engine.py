"""The local engine against Katib's completion rules, through the real `mlops` command."""

import json
import os
import signal
import subprocess
import time

import pytest

from tests.conftest import MLOPS, write_experiment


def run(mlops, path, env=None, *extra):
    return mlops("experiment", "run", "--local", "--json", str(path), *extra, cwd=path.parent, env=env)


def condition(doc):
    return next(c for c in reversed(doc["status"]["conditions"]) if c["status"] == "True")


def test_max_trials_status_document(mlops, tmp_path):
    path = write_experiment(tmp_path, parallel=2, max_trials=5)
    r = run(mlops, path)
    assert r.code == 0, r
    doc = r.json()
    assert (doc["apiVersion"], doc["kind"]) == ("kubeflow.org/v1beta1", "Experiment")
    s = doc["status"]
    assert condition(doc)["type"] == "Succeeded" and condition(doc)["reason"] == "ExperimentMaxTrialsReached"
    assert {c["type"]: c["status"] for c in s["conditions"]} == {"Created": "True", "Running": "False", "Succeeded": "True"}
    assert s["trials"] == 5 and s["trialsSucceeded"] == 5 and s["trialsFailed"] == 0
    assert s["startTime"] and s["completionTime"]
    # the optimal trial is the one with the lowest loss, and its assignments reproduce that loss
    losses = {t["name"]: float(t["observation"]["metrics"][0]["min"]) for t in doc["trials"]}
    best = s["currentOptimalTrial"]
    assert best["bestTrialName"] == min(losses, key=losses.get)
    params = {a["name"]: a["value"] for a in best["parameterAssignments"]}
    expected = (float(params["x"]) - 1) ** 2 + int(params["n"]) + (0.5 if params["kind"] == "b" else 0)
    metric = best["observation"]["metrics"][0]
    assert metric["name"] == "loss" and float(metric["min"]) == pytest.approx(expected)
    assert float(metric["max"]) == pytest.approx(expected + 1) and float(metric["latest"]) == pytest.approx(expected)
    # results on disk: the same document and one log per trial
    out = tmp_path / ".mlops" / "experiments" / "exp"
    assert json.loads((out / "experiment.json").read_text())["status"]["currentOptimalTrial"] == best
    assert sorted(p.name for p in (out / "trials").iterdir()) == [f"exp-000{i}.log" for i in range(1, 6)]


def test_parallel_trials_overlap(mlops, tmp_path):
    path = write_experiment(tmp_path, parallel=2, max_trials=4)
    r = run(mlops, path, {"TRIAL_SLEEP": "0.6"})
    assert r.code == 0, r
    spans = sorted((t["startTime"], t["completionTime"]) for t in r.json()["trials"])
    # with two at a time, the second trial starts before the first one ends
    assert spans[1][0] <= spans[0][1]
    assert r.json()["status"]["trials"] == 4


def test_goal_reached_stops_early(mlops, tmp_path):
    path = write_experiment(tmp_path, parallel=2, max_trials=20, goal=100.0)
    r = run(mlops, path)
    assert r.code == 0, r
    doc = r.json()
    assert condition(doc)["reason"] == "ExperimentGoalReached"
    assert doc["status"]["trials"] <= 3


def test_maximize_uses_max_strategy(mlops, tmp_path):
    path = write_experiment(tmp_path, objective="maximize", max_trials=4)
    doc = run(mlops, path).json()
    values = {t["name"]: float(t["observation"]["metrics"][0]["max"]) for t in doc["trials"]}
    assert doc["status"]["currentOptimalTrial"]["bestTrialName"] == max(values, key=values.get)


def test_failed_trials_fail_the_experiment(mlops, tmp_path):
    path = write_experiment(tmp_path, max_trials=6, max_failed=2)
    r = run(mlops, path, {"TRIAL_MODE": "fail"})
    assert r.code == 1, r
    doc = r.json()
    # Katib's reason and message (status_util.go)
    assert condition(doc)["type"] == "Failed" and condition(doc)["reason"] == "ExperimentFailed"
    assert condition(doc)["message"] == "Experiment has failed because max failed count has reached"
    assert doc["status"]["trialsFailed"] == 2 and doc["status"]["trials"] == 2
    assert "currentOptimalTrial" not in doc["status"]
    assert all(t["exitCode"] == 3 for t in doc["trials"])


def test_all_trials_failing_without_limit_has_no_best_and_exit_1(mlops, tmp_path):
    path = write_experiment(tmp_path, max_trials=3)
    r = mlops("experiment", "run", "--local", str(path), cwd=tmp_path, env={"TRIAL_MODE": "fail"})
    assert r.code == 1, r
    assert "ExperimentMaxTrialsReached" in r.out and "no trial succeeded" in r.out


def test_missing_metric_counts_as_failed(mlops, tmp_path):
    path = write_experiment(tmp_path, max_trials=4, max_failed=1)
    doc = run(mlops, path, {"TRIAL_MODE": "nometric"}).json()
    assert doc["status"]["trialMetricsUnavailable"] == 1
    assert doc["trials"][0]["condition"] == "MetricsUnavailable"
    assert condition(doc)["type"] == "Failed"


def test_custom_metrics_format(mlops, tmp_path):
    collector = 'metricsCollectorSpec:\n  source:\n    filter:\n      metricsFormat:\n        - "([\\\\w-]+):\\\\s*([+-]?\\\\d+(?:\\\\.\\\\d+)?)"\n'
    path = write_experiment(tmp_path, max_trials=2, collector=collector)
    r = run(mlops, path, {"TRIAL_MODE": "custom"})
    assert r.code == 0, r
    assert r.json()["status"]["trialsSucceeded"] == 2


def test_file_collector(mlops, tmp_path):
    collector = "metricsCollectorSpec:\n  collector:\n    kind: File\n  source:\n    fileSystemPath:\n      path: /out/metrics.json\n      kind: File\n      format: JSON\n"
    path = write_experiment(tmp_path, max_trials=1, collector=collector)
    (tmp_path / "writer.py").write_text("import json, sys\njson.dump({'loss': 0.25}, open(sys.argv[1], 'w'))\n")
    path.write_text(path.read_text().replace('command: ["python", "trial.py"',
                                             'command: ["python", "writer.py", "/out/metrics.json"'))
    (tmp_path / "out").mkdir()
    r = run(mlops, path, None, "--path-map", f"/out={tmp_path / 'out'}")
    assert r.code == 0, r
    assert r.json()["status"]["currentOptimalTrial"]["observation"]["metrics"][0]["latest"] == "0.25"


def test_grid_is_exhausted_without_duplicates(mlops, tmp_path):
    path = write_experiment(tmp_path, algorithm="grid", settings={}, step="1", parallel=2, max_trials=30)
    path.write_text(path.read_text().replace("  maxTrialCount: 30\n", ""))  # no limit: the grid ends it
    r = run(mlops, path)
    assert r.code == 0, r
    doc = r.json()
    assert condition(doc)["reason"] == "ExperimentSuggestionEndReached"
    combos = {tuple(a["value"] for a in t["parameterAssignments"]) for t in doc["trials"]}
    assert len(doc["trials"]) == len(combos) == 5 * 3 * 2


def test_rerun_of_a_finished_experiment_reports_it(mlops, tmp_path):
    """resumePolicy Never (the default): a finished Experiment is final. The same spec again reports
    it (nothing reruns); an edited spec reports it too, with a warning saying why it stands."""
    path = write_experiment(tmp_path, max_trials=3)
    first = run(mlops, path)
    assert first.code == 0, first
    again = run(mlops, path)
    assert again.code == 0 and again.json()["trials"] == first.json()["trials"], again
    assert "already Succeeded" in again.err and "warning" not in again.err
    path.write_text(path.read_text().replace("maxTrialCount: 3", "maxTrialCount: 5"))
    edited = run(mlops, path)
    assert edited.code == 0 and edited.json() == first.json(), edited
    assert "warning: the spec of experiment exp changed" in edited.err and "LongRunning" in edited.err
    doc = json.loads((tmp_path / ".mlops" / "experiments" / "exp" / "experiment.json").read_text())
    assert doc == first.json()
    assert len(list((tmp_path / ".mlops" / "experiments" / "exp" / "trials").iterdir())) == 3


def test_sigterm_stops_trials_and_records_failure(tmp_path):
    path = write_experiment(tmp_path, parallel=2, max_trials=4)
    pids = tmp_path / "pids"
    pids.mkdir()
    script = tmp_path / "trial.py"
    script.write_text(f"import os, time, pathlib\npathlib.Path(r'{pids}', str(os.getpid())).touch()\ntime.sleep(60)\n")
    proc = subprocess.Popen([MLOPS, "experiment", "run", "--local", "--json", str(path)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while len(list(pids.iterdir())) < 2 and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1
    doc = json.loads(out)
    assert condition(doc)["reason"] == "ExperimentInterrupted"
    assert doc["status"]["trialsKilled"] == 2
    for pid_file in pids.iterdir():  # no orphan trial survives
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid_file.name), 0)
