"""Katib's metric strategies and metric collection: which value of a trial's log is its objective.

Katib's trial controller keeps min, max and latest of every reported metric; the Experiment's
``objective.metricStrategies`` picks one per metric, defaulting to min for ``minimize`` and max for
``maximize`` (pkg/webhook/v1beta1/experiment/validator and the Experiment defaults). The logs below
rank the trials differently under each strategy, so a wrong strategy picks a different best trial.
The metric lines follow Katib's default StdOut format ``name=value``.
"""

from __future__ import annotations

import pytest

from pyhelpers.errors import BadInput
from pyhelpers.experiment import metrics as m

# loss reported three times by each trial; under minimize:
#   min    -> a (1)     max -> b (3)     latest -> c (2.5)
# under maximize:
#   max    -> c (9)     min -> b (3)     latest -> a (6)
LOSSES = {"a": [4.0, 1.0, 6.0], "b": [3.0, 3.0, 3.0], "c": [9.0, 2.0, 2.5]}

TRIAL = """\
import argparse
p = argparse.ArgumentParser(); p.add_argument("--shape"); a = p.parse_args()
for value in {losses!r}[a.shape]:
    print(f"epoch done: loss={{value}}")
"""

SPEC = """\
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: strategies
spec:
  objective:
    type: {kind}
    objectiveMetricName: loss
{strategies}  algorithm:
    algorithmName: grid
  parallelTrialCount: 1
  maxTrialCount: 3
  parameters:
    - name: shape
      parameterType: categorical
      feasibleSpace: {{list: ["a", "b", "c"]}}
  trialTemplate:
    primaryContainerName: main
    trialParameters:
      - {{name: shape, reference: shape}}
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: main
                image: example/trial:1
                command: ["python", "trial.py", "--shape=${{trialParameters.shape}}"]
            restartPolicy: Never
"""


def run_experiment(folder, kind: str, strategy: str | None) -> dict:
    """Run the Experiment on the local engine in this process; the best trial's shape and doc."""
    from pyhelpers.experiment.engine import LocalEngine
    from pyhelpers.experiment.spec import load_spec

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "trial.py").write_text(TRIAL.format(losses=LOSSES))
    strategies = f"    metricStrategies:\n      - {{name: loss, value: {strategy}}}\n" if strategy else ""
    path = folder / "experiment.yaml"
    path.write_text(SPEC.format(kind=kind, strategies=strategies))
    spec = load_spec(path)
    doc = LocalEngine(spec, folder / ".mlops" / "experiments" / "strategies", {}, "strategies").run()
    assert len(doc["trials"]) == 3, doc["status"]
    best = doc["status"]["currentOptimalTrial"]
    shape = {a["name"]: a["value"] for a in best["parameterAssignments"]}["shape"]
    return {"shape": shape, "doc": doc}


@pytest.mark.parametrize(("kind", "strategy", "best"), [
    ("minimize", None, "a"),       # default for minimize: min
    ("minimize", "min", "a"),
    ("minimize", "max", "b"),
    ("minimize", "latest", "c"),
    ("maximize", None, "c"),       # default for maximize: max
    ("maximize", "min", "b"),
    ("maximize", "latest", "a"),
])
def test_the_strategy_decides_which_trial_is_best(tmp_path, kind, strategy, best):
    assert run_experiment(tmp_path, kind, strategy)["shape"] == best


def test_every_trial_reports_min_max_and_latest_whatever_the_strategy(tmp_path):
    doc = run_experiment(tmp_path, "minimize", "latest")["doc"]
    observed = {}
    for trial in doc["trials"]:
        shape = {a["name"]: a["value"] for a in trial["parameterAssignments"]}["shape"]
        (metric,) = trial["observation"]["metrics"]
        observed[shape] = (metric["name"], metric["min"], metric["max"], metric["latest"])
    assert observed == {"a": ("loss", "1.0", "6.0", "6.0"), "b": ("loss", "3.0", "3.0", "3.0"),
                        "c": ("loss", "2.0", "9.0", "2.5")}


# -- the strategy on one metric's log -----------------------------------------------------------
def test_metric_log_values_by_strategy():
    log = m.MetricLog("loss", [4.0, 1.0, 6.0, 2.0])
    assert (log.value("min"), log.value("max"), log.value("latest")) == (1.0, 6.0, 2.0)
    assert log.observation() == {"name": "loss", "min": "1.0", "max": "6.0", "latest": "2.0"}


def test_an_unknown_strategy_is_an_error_not_a_silent_latest():
    with pytest.raises(ValueError, match="unknown metric strategy 'avg'"):
        m.MetricLog("loss", [1.0, 2.0]).value("avg")


def test_observation_values_are_katib_style_float_strings():
    assert m.MetricLog("acc", [1, 0.25]).observation() == {"name": "acc", "min": "0.25", "max": "1.0",
                                                          "latest": "0.25"}


# -- Katib's StdOut collector ---------------------------------------------------------------------
def default():
    return m.compile_formats(None)


def values(found: dict) -> dict:
    return {name: log.values for name, log in found.items()}


def test_default_format_reads_name_value_pairs_of_the_wanted_metrics():
    text = "epoch=1 loss=0.5 accuracy=0.75\nloss = 0.25\nval-loss=1e-3 lr=0.1\nno metrics here\n"
    found = m.parse_text(text, ["loss", "accuracy", "val-loss"], default())
    assert values(found) == {"loss": [0.5, 0.25], "accuracy": [0.75], "val-loss": [0.001]}
    assert all(found[name].name == name for name in found)


def test_lines_without_a_metric_are_skipped_not_the_end_of_the_log():
    found = m.parse_text("starting up\nepoch=1\nloss=2.5\nsaving\nloss=1.5\n", ["loss"], default())
    assert values(found) == {"loss": [2.5, 1.5]}


def test_values_that_are_not_finite_numbers_are_ignored():
    found = m.parse_text("loss=\nloss=.5\nloss=-2E+1\n", ["loss"], default())
    assert values(found) == {"loss": [0.5, -20.0]}
    assert m.parse_text("nothing=1", ["loss"], default()) == {}


def test_a_custom_format_with_its_own_groups():
    formats = m.compile_formats([r"(\w+):\s*([-+.\deE]+)"])
    found = m.parse_text("loss: 0.5 | acc: 0.9\nloss:  inf\nloss: 1e999\n", ["loss"], formats)
    assert values(found) == {"loss": [0.5]}   # inf and an overflow to inf are not results


def test_names_and_values_are_trimmed_as_katib_does():
    formats = m.compile_formats([r"\|\s*(\w+ ?)\|( ?[\d.]+ )\|"])
    assert values(m.parse_text("| loss | 0.5 |", ["loss"], formats)) == {"loss": [0.5]}


def test_several_formats_are_all_tried():
    formats = m.compile_formats([r"(loss)=([\d.]+)", r"(loss) is ([\d.]+)"])
    assert values(m.parse_text("loss=1.5\nloss is 2.5\n", ["loss"], formats)) == {"loss": [1.5, 2.5]}


def test_a_pattern_that_does_not_compile_in_re2_is_one_line_of_bad_input(capfd):
    with pytest.raises(BadInput) as caught:
        m.compile_formats([m.DEFAULT_FORMAT, "(a)(?<=b)"])  # look-behind: Go's RE2 refuses it
    assert str(caught.value) == ("spec.metricsCollectorSpec.source.filter.metricsFormat[1]: '(a)(?<=b)' is not a "
                                 "valid RE2 pattern (Katib evaluates it with Go's RE2): invalid perl operator: (?<=")
    assert capfd.readouterr().err == ""  # RE2's own log line would repeat it on stderr


def test_a_pattern_with_fewer_than_two_groups_is_bad_input():
    with pytest.raises(BadInput, match=r"metricsFormat\[0\]: '\(loss\)=\[0-9\]\+' needs two capture groups"):
        m.compile_formats(["(loss)=[0-9]+"])


def test_format_text_names_the_formats_tried():
    assert m.format_text(None) == "'" + r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)" + "'"  # Katib's default
    assert m.format_text(["a", "b"]) == "'a', 'b'"


def test_default_format_stays_linear_on_a_huge_line():
    # Python's backtracking re needs minutes here; RE2 is linear (issue 13, item 5)
    line = "x" * 400_000 + " loss=0.5"
    assert values(m.parse_lines([line], ["loss"], default())) == {"loss": [0.5]}


# -- reading logs ------------------------------------------------------------------------------
def test_read_lines_decodes_leniently_and_strips_line_ends(tmp_path):
    log = tmp_path / "trial.log"
    log.write_bytes(b"loss=1.5\r\n\xff\xfe bad bytes\nmodel=XGBOX\nlast=2")
    assert list(m.read_lines(log)) == ["loss=1.5", "\ufffd\ufffd bad bytes", "model=XGBOX", "last=2"]


def test_read_lines_cuts_a_huge_line_into_bounded_pieces(tmp_path, monkeypatch):
    monkeypatch.setattr(m, "MAX_LINE", 8)
    log = tmp_path / "trial.log"
    log.write_text("0123456789abcdef\nloss=1\n")
    assert list(m.read_lines(log)) == ["01234567", "89abcdef", "", "loss=1"]


# -- Katib's File collector, JSON format -------------------------------------------------------
def test_json_lines_take_wanted_numeric_fields_and_skip_the_rest():
    text = '{"loss": 0.5, "acc": "0.75"}\n\n  \nnot json\n[1, 2]\n{"loss": "nan"}\n{"loss": null}\n{"loss": 2}\n'
    found = m.parse_json_lines(text, ["loss", "acc"])
    assert values(found) == {"loss": [0.5, 2.0], "acc": [0.75]}
    assert found["acc"].name == "acc"


def test_json_lines_from_an_iterable_of_lines():
    assert values(m.parse_json_lines(iter(['{"loss": 1}', ' {"loss": 3} ']), ["loss"])) == {"loss": [1.0, 3.0]}


def test_deeply_nested_json_is_skipped_not_a_crash():
    assert m.parse_json_lines("[" * 100_000 + "]" * 100_000 + '\n{"loss": 1}', ["loss"])["loss"].values == [1.0]


# -- why a trial reported nothing ---------------------------------------------------------------
def test_nearest_line_prefers_the_last_line_naming_the_metric():
    lines = ["start", "Loss: 0.5 (wrong format)", "LOSS was 0.25", "done"]
    assert m.nearest_line(lines, "loss") == "LOSS was 0.25"


def test_nearest_line_falls_back_to_the_most_similar_line():
    assert m.nearest_line(["   ", "training", "los=0.5", "bye"], "loss") == "los=0.5"
    assert m.nearest_line(["nothing", "alike"], "loss") is None


def test_nearest_line_accepts_a_loosely_similar_line():
    assert m.nearest_line(["zzzzzzzzzz", "val=0.1"], "loss") == "val=0.1"  # similarity 0.53 to "loss=0.0"


def test_nearest_line_keeps_only_a_bounded_tail():
    lines = ["los=0.5"] + ["zzzzzzzz"] * 5
    assert m.nearest_line(lines, "loss", keep=5) is None
    assert m.nearest_line(lines, "loss", keep=6) == "los=0.5"
    assert m.nearest_line(["zzzzzzzz", "los=0.5", "zzzzzzzz"], "loss", keep=2) == "los=0.5"
    assert m.nearest_line(["los=0.5"] + ["zzzzzzzz"] * 2000, "loss") is None  # default: the last 2000 lines
    assert m.nearest_line(["los=0.5"] + ["zzzzzzzz"] * 1999, "loss") == "los=0.5"
    assert m.nearest_line(["loss " + "x" * 500], "loss") == "loss " + "x" * 295


# -- the strategies a spec may name ---------------------------------------------------------------
def spec_with(tmp_path, objective: str):
    from pyhelpers.experiment.spec import load_spec

    text = SPEC.format(kind="minimize", strategies="").replace(
        "    type: minimize\n    objectiveMetricName: loss\n", objective)
    (tmp_path / "trial.py").write_text("print('loss=1')\n")
    return load_spec(tmp_path / "experiment.yaml", text=text)


def test_strategy_defaults_follow_the_objective_type_for_every_metric(tmp_path):
    spec = spec_with(tmp_path, "    type: maximize\n    objectiveMetricName: acc\n    additionalMetricNames: [loss]\n"
                               "    metricStrategies: [{name: loss, value: latest}]\n")
    assert spec.strategies == {"acc": "max", "loss": "latest"}
    assert spec.metric_names == ["acc", "loss"]
    spec = spec_with(tmp_path, "    type: minimize\n    objectiveMetricName: loss\n    additionalMetricNames: [acc]\n")
    assert spec.strategies == {"loss": "min", "acc": "min"}


@pytest.mark.parametrize(("objective", "field", "message"), [
    ("    type: minimize\n    objectiveMetricName: loss\n    metricStrategies: [{name: acc, value: max}]\n",
     "spec.objective.metricStrategies[0].name", "'acc' is neither the objective nor an additional metric"),
    ("    type: minimize\n    objectiveMetricName: loss\n    metricStrategies: [{name: loss, value: avg}]\n",
     "spec.objective.metricStrategies[0].value", "must be min, max or latest (got 'avg')"),
    ("    type: minimize\n    objectiveMetricName: loss\n    additionalMetricNames: [acc, acc]\n",
     "spec.objective.additionalMetricNames", "contains a metric twice"),
])
def test_a_strategy_katib_would_not_accept_is_bad_input(tmp_path, objective, field, message):
    with pytest.raises(BadInput) as caught:
        spec_with(tmp_path, objective)
    assert f"{field}: " in str(caught.value) and str(caught.value).endswith(message)


def test_the_objective_names_its_type_metric_and_goal(tmp_path):
    spec = spec_with(tmp_path, "    type: maximize\n    objectiveMetricName: acc\n    goal: 0.9\n")
    assert (spec.objective_type, spec.objective_metric, spec.goal) == ("maximize", "acc", 0.9)
    assert spec_with(tmp_path, "    type: minimize\n    objectiveMetricName: loss\n").goal is None
