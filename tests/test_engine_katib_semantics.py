"""The local engine against Katib's semantics, end to end through `mlops experiment run --local`.

Each rule names where Katib defines it:
- File collector: the metrics file is on a volume of the trial's own pod (Katib's pod webhook mounts
  the file's directory per pod), so a trial sees only what it wrote;
- maxFailedTrialCount and the metric strategies: pkg/controller.v1beta1/experiment/util/status_util.go;
- resumePolicy: IsCompletedExperimentRestartable (status_util.go) and the webhook's edit rules
  (pkg/webhook/v1beta1/experiment/validator/validator.go).
"""

from __future__ import annotations

import json
import os
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import write_experiment

SPEC = """\
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: {name}
spec:
  objective:
    type: minimize
    objectiveMetricName: loss
{strategy}  algorithm:
    algorithmName: {algorithm}
  parallelTrialCount: {parallel}
  maxTrialCount: {max_trials}
{extra}  parameters:
    - name: kind
      parameterType: categorical
      feasibleSpace: {{list: [{kinds}]}}
  trialTemplate:
    primaryContainerName: main
    trialParameters:
      - {{name: kind, reference: kind}}
      - {{name: trialName, reference: "${{trialSpec.Name}}"}}
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: main
                image: example/trial:1
                command: ["python", "trial.py", "--kind=${{trialParameters.kind}}", "--name=${{trialParameters.trialName}}"{args}]
            restartPolicy: Never
"""


def spec_file(folder: Path, script: str, name: str = "sem", algorithm: str = "grid", kinds=("a", "b", "c"),
              parallel: int = 1, max_trials: int = 3, strategy: str | None = None, extra: str = "",
              args: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "trial.py").write_text(textwrap.dedent(script))
    strategy_yaml = (f"    metricStrategies:\n      - {{name: loss, value: {strategy}}}\n" if strategy else "")
    path = folder / "experiment.yaml"
    path.write_text(SPEC.format(name=name, algorithm=algorithm, parallel=parallel, max_trials=max_trials,
                                strategy=strategy_yaml, extra=textwrap.indent(extra, "  "), args=args,
                                kinds=", ".join(f'"{k}"' for k in kinds)))
    return path


def run(mlops, path: Path, *extra: str, env: dict | None = None):
    return mlops("experiment", "run", "--local", "--json", str(path), *extra, cwd=path.parent, env=env)


def condition(doc: dict) -> dict:
    return next(c for c in reversed(doc["status"]["conditions"]) if c["status"] == "True")


def params(trial: dict) -> dict:
    return {a["name"]: a["value"] for a in trial["parameterAssignments"]}


def status_doc(folder: Path, name: str) -> dict:
    return json.loads((folder / ".mlops" / "experiments" / name / "experiment.json").read_text())


# -- File collector: each trial sees only what it wrote ------------------------------------------------
FILE_TRIAL = """\
import argparse, time
p = argparse.ArgumentParser()
p.add_argument("--kind"); p.add_argument("--name"); p.add_argument("--metrics")
a = p.parse_args()
value = {"a": 1.5, "b": 2.5, "c": 3.5, "d": 4.5}[a.kind]
number = int(a.name.rsplit("-", 1)[1])
time.sleep(0.4)  # two trials at a time: each writes while its neighbour runs
if number % 2 == 1:  # odd trials report; even ones print nothing at all
    with open(a.metrics, "a") as fh:
        fh.write(f"loss={value}\\n")
"""


def test_file_collector_isolates_parallel_trials_and_ignores_stale_files(mlops, tmp_path):
    collector = ("metricsCollectorSpec:\n  collector:\n    kind: File\n  source:\n    fileSystemPath:\n"
                 "      path: /out/metrics.log\n      kind: File\n      format: TEXT\n")
    path = spec_file(tmp_path, FILE_TRIAL, kinds=("a", "b", "c", "d"), parallel=2, max_trials=4, extra=collector,
                     args=', "--metrics=/out/metrics.log"')
    out = tmp_path / "out"
    out.mkdir()
    stale = out / "metrics.log"
    stale.write_text("loss=-100\n")  # left from before the run, where /out maps: never read
    r = run(mlops, path, "--path-map", f"/out={out}")
    doc = r.json()
    by_number = {int(t["name"].rsplit("-", 1)[1]): t for t in doc["trials"]}
    assert sorted(by_number) == [1, 2, 3, 4], r
    spans = sorted((t["startTime"], t["completionTime"]) for t in doc["trials"])
    assert spans[1][0] <= spans[0][1], "the two trials did not overlap"
    expected = {"a": "1.5", "b": "2.5", "c": "3.5", "d": "4.5"}
    for number, trial in by_number.items():
        if number % 2:
            assert trial["condition"] == "Succeeded", trial
            (metric,) = trial["observation"]["metrics"]
            assert metric["latest"] == metric["min"] == expected[params(trial)["kind"]], trial  # its own value only
        else:
            assert trial["condition"] == "MetricsUnavailable", trial  # not its neighbour's, not the stale file's
    assert stale.read_text() == "loss=-100\n"
    best = doc["status"]["currentOptimalTrial"]["observation"]["metrics"][0]["min"]
    assert best != "-100.0"
    pods = tmp_path / ".mlops" / "experiments" / "sem" / "pods"
    assert (pods / "sem-0001" / "out" / "metrics.log").read_text() == f"loss={expected[params(by_number[1])['kind']]}\n"
    assert not (pods / "sem-0002" / "out" / "metrics.log").exists()


# -- maxFailedTrialCount --------------------------------------------------------------------------------
@pytest.mark.parametrize("max_failed, trials, phase, reason", [
    (0, 1, "Failed", "ExperimentFailed"),  # an explicit 0 fails at the first failed trial
    (None, 3, "Succeeded", "ExperimentMaxTrialsReached"),  # absent: no limit
    (2, 2, "Failed", "ExperimentFailed"),
])
def test_max_failed_trial_count(mlops, tmp_path, max_failed, trials, phase, reason):
    path = write_experiment(tmp_path, max_trials=3, max_failed=max_failed)
    r = run(mlops, path, env={"TRIAL_MODE": "fail"})
    assert r.code == 1, r
    doc = r.json()
    assert (condition(doc)["type"], condition(doc)["reason"]) == (phase, reason)
    assert doc["status"]["trials"] == trials and doc["status"]["trialsFailed"] == trials


def test_max_failed_counts_metrics_unavailable(mlops, tmp_path):
    path = write_experiment(tmp_path, max_trials=3, max_failed=0)
    doc = run(mlops, path, env={"TRIAL_MODE": "nometric"}).json()
    assert condition(doc)["reason"] == "ExperimentFailed" and doc["status"]["trialMetricsUnavailable"] == 1


# -- metric strategies: three trials that rank differently under min, max and latest --------------------
STRATEGY_TRIAL = """\
import argparse
p = argparse.ArgumentParser()
p.add_argument("--kind"); p.add_argument("--name")
a = p.parse_args()
# min / max / latest:  a 1 / 9 / 9,  b 5 / 5 / 5,  c 3 / 7 / 2
for value in {"a": [1, 9, 9], "b": [5, 5, 5], "c": [3, 7, 2]}[a.kind]:
    print(f"loss={value}")
"""


@pytest.mark.parametrize("strategy, best_kind, value", [("min", "a", "1.0"), ("max", "b", "5.0"), ("latest", "c", "2.0")])
def test_metric_strategy_decides_the_best_trial(mlops, tmp_path, strategy, best_kind, value):
    path = spec_file(tmp_path, STRATEGY_TRIAL, strategy=strategy)
    r = run(mlops, path)
    assert r.code == 0, r
    doc = r.json()
    best = doc["status"]["currentOptimalTrial"]
    winner = next(t for t in doc["trials"] if t["name"] == best["bestTrialName"])
    assert params(winner)["kind"] == best_kind
    assert best["observation"]["metrics"][0][strategy] == value


# -- resumePolicy ------------------------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["LongRunning", "FromVolume"])
def test_resume_policy_continues_the_same_study_when_max_trials_is_raised(mlops, tmp_path, policy):
    path = write_experiment(tmp_path, algorithm="grid", settings={}, step="1", max_trials=3)
    path.write_text(path.read_text().replace("  maxTrialCount: 3\n", f"  maxTrialCount: 3\n  resumePolicy: {policy}\n"))
    first = run(mlops, path)
    assert first.code == 0 and condition(first.json())["reason"] == "ExperimentMaxTrialsReached", first
    path.write_text(path.read_text().replace("maxTrialCount: 3", "maxTrialCount: 5"))
    second = run(mlops, path)
    assert second.code == 0, second
    doc = second.json()
    assert doc["trials"][:3] == first.json()["trials"]  # the completed trials are kept as they were
    assert [t["name"] for t in doc["trials"]] == [f"exp-000{i}" for i in range(1, 6)]
    points = [tuple(sorted(params(t).items())) for t in doc["trials"]]
    assert len(set(points)) == 5  # the grid continues: no point is visited twice
    assert condition(doc)["reason"] == "ExperimentMaxTrialsReached" and doc["status"]["trials"] == 5
    assert {c["type"] for c in doc["status"]["conditions"]} >= {"Restarting", "Succeeded"}
    assert "restarting" in second.err
    # not raised above the trial count: Katib's webhook refuses the edit
    path.write_text(path.read_text().replace("maxTrialCount: 5", "maxTrialCount: 4"))
    lowered = run(mlops, path)
    assert lowered.code == 2 and "must be greater than status.trials count (5)" in lowered.err, lowered
    assert status_doc(tmp_path, "exp") == doc


def test_resume_policy_is_not_a_restart_for_a_goal_reached(mlops, tmp_path):
    path = write_experiment(tmp_path, max_trials=3, goal=100.0)
    path.write_text(path.read_text().replace("  maxTrialCount: 3\n", "  maxTrialCount: 3\n  resumePolicy: LongRunning\n"))
    first = run(mlops, path)
    assert condition(first.json())["reason"] == "ExperimentGoalReached", first
    path.write_text(path.read_text().replace("maxTrialCount: 3", "maxTrialCount: 6"))
    r = run(mlops, path)
    assert r.code == 0 and r.json() == first.json(), r  # reported as it is, not restarted
    assert "succeeded by reaching max trials" in r.err


def test_an_unfinished_run_continues_only_with_the_same_spec(mlops, tmp_path):
    path = write_experiment(tmp_path, max_trials=2)
    status = tmp_path / ".mlops" / "experiments" / "exp" / "experiment.json"
    status.parent.mkdir(parents=True)
    doc = {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "exp"},
           "spec": {"maxTrialCount": 2}, "trials": [],
           "status": {"conditions": [{"type": "Running", "status": "True", "reason": "ExperimentRunning"}]}}
    status.write_text(json.dumps(doc))  # what a killed engine of another spec left
    r = run(mlops, path)
    assert r.code == 2 and "did not finish and its spec has changed" in r.err and "--name" in r.err, r
    assert json.loads(status.read_text()) == doc


def test_a_spec_the_engine_refuses_leaves_a_finished_result_untouched(mlops, tmp_path):
    """A metricsFormat Python's re accepts but RE2 (Katib's engine) refuses stops the run before
    anything is written: the finished result stays byte for byte."""
    path = write_experiment(tmp_path, max_trials=2)
    assert run(mlops, path).code == 0
    status = tmp_path / ".mlops" / "experiments" / "exp" / "experiment.json"
    before = status.read_bytes()
    bad = 'metricsCollectorSpec:\n  source:\n    filter:\n      metricsFormat:\n        - "(?=x)(\\\\w+)=(\\\\d+)"\n'
    path.write_text(path.read_text().replace("  parameters:\n", "  " + bad.replace("\n", "\n  ").rstrip(" ") +
                                             "  parameters:\n", 1))
    r = run(mlops, path)
    assert r.code == 2 and "Traceback" not in r.err, r
    assert status.read_bytes() == before
    assert sorted(p.name for p in status.parent.iterdir()) == ["experiment.json", "pods", "trials"]


# -- why a trial failed ---------------------------------------------------------------------------------
FAILING_TRIAL = """\
import argparse, sys
p = argparse.ArgumentParser()
p.add_argument("--kind"); p.add_argument("--name")
a = p.parse_args()
if a.kind == "a":
    print("loading data", flush=True)
    print("Traceback (most recent call last):\\nValueError: column 'fare' is missing", file=sys.stderr)
    sys.exit(3)
print("loss: 0.25")  # a colon: Katib's default format wants name=value
"""


def test_failed_and_metrics_unavailable_trials_say_why(mlops, tmp_path):
    path = spec_file(tmp_path, FAILING_TRIAL, kinds=("a", "b"), max_trials=2)
    r = mlops("experiment", "run", "--local", str(path), cwd=tmp_path)
    assert r.code == 1, r
    log = tmp_path / ".mlops" / "experiments" / "sem" / "trials"
    names = {params(t)["kind"]: t["name"] for t in status_doc(tmp_path, "sem")["trials"]}

    def report_of(event: str) -> str:  # the lines under a trial's end, up to the next event
        rest = r.err[r.err.index(event):].split("\n", 1)[1]
        return rest.split("\ntrial ", 1)[0].split("\nexperiment ", 1)[0]

    failed = report_of(f"trial {names['a']} failed")
    assert "exit code 3" in failed and "ValueError: column 'fare' is missing" in failed
    assert str(log / f"{names['a']}.log") in failed
    unavailable = report_of(f"trial {names['b']} metricsunavailable")
    assert "tried metricsFormat" in unavailable and r"([\w|-]+)\s*=" in unavailable
    assert "nearest line: 'loss: 0.25'" in unavailable
    # the stderr also reached the trial's log (the StdOut collector reads both streams)
    assert "column 'fare' is missing" in (log / f"{names['a']}.log").read_text()


# -- names become folders: refused unless they are Katib names -------------------------------------------
@pytest.mark.parametrize("name", ["../mlflow", "../../data", "Bad_Name", "a" * 41, "1abc"])
def test_bad_names_are_refused_and_nothing_is_deleted(mlops, tmp_path, name):
    path = write_experiment(tmp_path / "proj", max_trials=1)
    registry = tmp_path / "proj" / ".mlops" / "mlflow"
    registry.mkdir(parents=True)
    (registry / "mlflow.db").write_text("precious")
    data = tmp_path / "data"
    data.mkdir()
    (data / "keep.csv").write_text("x\n")
    r = run(mlops, path, "--name", name)
    assert r.code == 2 and "--name" in r.err and "Traceback" not in r.err, r
    assert (registry / "mlflow.db").read_text() == "precious" and (data / "keep.csv").exists()
    assert not (tmp_path / "proj" / ".mlops" / "experiments").exists()


def test_bad_name_through_the_jenkins_params_file(mlops, tmp_path):
    path = write_experiment(tmp_path, max_trials=1)
    registry = tmp_path / ".mlops" / "mlflow"
    registry.mkdir(parents=True)
    (registry / "mlflow.db").write_text("precious")
    params_file = tmp_path / "params.json"
    params_file.write_text(json.dumps({"local": True, "name": "../mlflow", "file": str(path)}))
    r = mlops("experiment", "run", cwd=tmp_path, env={"MLOPS_PARAMS_FILE": str(params_file)})
    assert r.code == 2 and "--name" in r.err and "../mlflow" in r.err, r
    assert (registry / "mlflow.db").read_text() == "precious"


# -- processes: a daemon a trial starts dies with it -------------------------------------------------------
DAEMON_TRIAL = """\
import argparse, os, sys, time
from pathlib import Path
p = argparse.ArgumentParser()
p.add_argument("--kind"); p.add_argument("--name")
a = p.parse_args()
if os.fork() == 0:  # a daemon: double fork + setsid, out of the trial's session and process group
    os.setsid()
    if os.fork() == 0:
        (Path(__file__).resolve().parent / "daemons" / str(os.getpid())).touch()
        time.sleep(120)
    os._exit(0)
time.sleep(0.3)
print("loss=1.0")
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_setsid_daemon_dies_with_its_trial(mlops, tmp_path):
    path = spec_file(tmp_path, DAEMON_TRIAL, kinds=("a", "b"), max_trials=2)
    (tmp_path / "daemons").mkdir()
    r = run(mlops, path)
    assert r.code == 0, r
    pids = [int(p.name) for p in (tmp_path / "daemons").iterdir()]
    assert len(pids) == 2
    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in pids if alive(p)], "a daemon outlived its trial"
    assert not (tmp_path / ".mlops" / "experiments" / "sem" / "engine.json").exists()


# -- RE2: a 400 kB line without spaces is linear ----------------------------------------------------------
def test_a_400kb_line_is_parsed_in_linear_time(mlops, tmp_path):
    """Python's backtracking re needs about 30 minutes for this line with Katib's default format (it
    names the metric, so Katib's "line mentions a metric" filter does not skip it); RE2 needs
    milliseconds. The run is bounded by a generous timeout; figures are in bench/bench_engine.py."""
    script = 'import sys\nprint("loss" + "A" * 400_000)\nprint("loss=0.5")\n'
    path = write_experiment(tmp_path, max_trials=1)
    (tmp_path / "trial.py").write_text(script)
    r = mlops("experiment", "run", "--local", "--json", str(path), cwd=tmp_path, timeout=120)
    assert r.code == 0, r
    assert r.json()["trials"][0]["observation"]["metrics"][0]["latest"] == "0.5"


# -- human output: 6 significant digits; --json keeps full precision --------------------------------------
def test_human_output_rounds_floats_json_keeps_them(mlops, tmp_path):
    path = write_experiment(tmp_path, max_trials=2)
    r = mlops("experiment", "run", "--local", str(path), cwd=tmp_path)
    assert r.code == 0, r
    doc = status_doc(tmp_path, "exp")
    best = doc["status"]["currentOptimalTrial"]
    x = next(a["value"] for a in best["parameterAssignments"] if a["name"] == "x")
    assert len(x.replace("-", "").replace(".", "").lstrip("0")) > 6  # the document keeps what Optuna chose
    assert f"x = {float(x):.6g}" in r.out and x not in r.out
    assert f"x={float(x):.6g}" in r.err and "engine.py" not in r.err


def test_live_progress_shows_counts_best_and_running_without_source_links():
    import io

    from rich.console import Console

    from pyhelpers.experiment.engine import LiveReporter, Trial

    buffer = io.StringIO()
    reporter = LiveReporter(3, console=Console(file=buffer, force_terminal=True, width=160))
    trial = Trial("exp-0001", 1, {"x": "0.26835279009101565"}, Path("t.log"), Path("pods"))
    reporter.begin("exp", 3, {"Succeeded": 0}, None)
    reporter.started(trial, {"exp-0001": trial})
    trial.condition, trial.objective = "Succeeded", 1.23456789
    reporter.finished(trial, trial, {})
    reporter.progress.refresh()
    reporter.progress.stop()
    text = buffer.getvalue()
    assert "1/3" in text and "best exp-0001 = 1.23457" in text and "0 running" in text
    assert "x=0.268353" in text and "0.26835279009101565" not in text
    assert "engine.py" not in text and "ETA" in text and "elapsed" in text


def test_engine_leaves_only_its_results(mlops, tmp_path):
    path = write_experiment(tmp_path, max_trials=2)
    assert run(mlops, path).code == 0
    folder = tmp_path / ".mlops" / "experiments" / "exp"
    assert sorted(p.name for p in folder.iterdir()) == ["experiment.json", "pods", "trials"]
    assert sorted(os.listdir(folder / "pods")) == ["exp-0001", "exp-0002"]  # each trial's own folder


def test_reading_a_log_stops_at_sigterm(tmp_path):
    """The handler of SIGTERM/SIGINT sets the stop flag; reading a trial's log checks it on every line,
    so even a huge log does not keep the engine from stopping (latency figures: bench_engine.sigterm)."""
    from pyhelpers.experiment.engine import Interrupted, LocalEngine, PlainReporter
    from pyhelpers.experiment.spec import load_spec

    engine = LocalEngine(load_spec(write_experiment(tmp_path, max_trials=1)), tmp_path / "out",
                         reporter=PlainReporter(lambda line: None))
    log = tmp_path / "big.log"
    log.write_text("loss=1\n" * 1000)
    assert len(list(engine._lines(log))) == 1000
    seen = 0
    with pytest.raises(Interrupted):
        for _ in engine._lines(log):
            seen += 1
            if seen == 10:
                engine._stop = True  # what the signal handler does
    assert seen == 10


def test_a_run_warns_about_image_paths_without_a_mapping(mlops, tmp_path):
    path = write_experiment(tmp_path, max_trials=1)
    path.write_text(path.read_text().replace('command: ["python", "trial.py"', 'command: ["python", "/app/trial.py"'))
    r = run(mlops, path)
    assert r.code == 1 and "warning: the trial command names /app/trial.py" in r.err, r  # the trial cannot start
    r = run(mlops, path, "--name", "mapped", "--path-map", f"/app={tmp_path}")
    assert r.code == 0 and "warning" not in r.err, r
