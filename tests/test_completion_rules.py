"""When an Experiment ends, and how: Katib v1beta1's completion rules on the local engine.

From Katib's ``UpdateExperimentStatusCondition`` (pkg/controller.v1beta1/experiment/util/status_util.go),
checked in this order: the objective goal reached -> Succeeded (ExperimentGoalReached); a
``maxFailedTrialCount`` that is set, with failed trials (metrics-unavailable ones included) non-zero
and at least that count -> Failed (ExperimentFailed) — so an explicit 0 fails at the first failed
trial and an absent one never; completed trials at ``maxTrialCount`` -> Succeeded
(ExperimentMaxTrialsReached); the suggestion service exhausted (a finished grid) -> Succeeded
(ExperimentSuggestionEndReached). Goals compare inclusively (``<=`` for minimize, ``>=`` for maximize).
Each case runs real trial processes, one at a time, in this process.
"""

from __future__ import annotations

import pytest

TRIAL = """\
import argparse, sys
p = argparse.ArgumentParser(); p.add_argument("--mode"); p.add_argument("--x", type=float); a = p.parse_args()
if a.mode == "fail":
    sys.exit(2)
if a.mode == "silent":
    print("finished without metrics")
    sys.exit(0)
print(f"loss={a.x}")
"""

SPEC = """\
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: rules
spec:
  objective:
    type: {kind}
    objectiveMetricName: loss
{goal}  algorithm:
    algorithmName: {algorithm}
  parallelTrialCount: 1
{max_trials}{max_failed}  parameters:
    - name: mode
      parameterType: categorical
      feasibleSpace: {{list: {modes}}}
    - name: x
      parameterType: categorical
      feasibleSpace: {{list: {xs}}}
  trialTemplate:
    primaryContainerName: main
    trialParameters:
      - {{name: mode, reference: mode}}
      - {{name: x, reference: x}}
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: main
                image: example/trial:1
                command: ["python", "trial.py", "--mode=${{trialParameters.mode}}", "--x=${{trialParameters.x}}"]
            restartPolicy: Never
"""


def run(folder, modes=("ok",), xs=("0.5",), kind="minimize", goal=None, max_trials=3, max_failed=None,
        algorithm="random") -> tuple[dict, dict, int]:
    """(condition that ended the Experiment, status, exit code of the run)."""
    from pyhelpers.experiment.engine import LocalEngine
    from pyhelpers.experiment.runner import exit_code
    from pyhelpers.experiment.spec import load_spec

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "trial.py").write_text(TRIAL)
    path = folder / "experiment.yaml"
    path.write_text(SPEC.format(
        kind=kind, algorithm=algorithm, modes=list(modes), xs=list(xs),
        goal=f"    goal: {goal}\n" if goal is not None else "",
        max_trials=f"  maxTrialCount: {max_trials}\n" if max_trials is not None else "",
        max_failed=f"  maxFailedTrialCount: {max_failed}\n" if max_failed is not None else ""))
    doc = LocalEngine(load_spec(path), folder / ".mlops" / "experiments" / "rules", {}, "rules").run()
    ended = next(c for c in reversed(doc["status"]["conditions"]) if c["status"] == "True")
    return ended, doc["status"], exit_code(doc)


def test_goal_reached_exactly_ends_a_minimize_experiment_at_once(tmp_path):
    ended, status, code = run(tmp_path, xs=("0.5",), goal=0.5, max_trials=3)
    assert (ended["type"], ended["reason"]) == ("Succeeded", "ExperimentGoalReached")
    assert ended["message"] == "Experiment has succeeded because Objective goal has reached"
    assert status["trials"] == 1 and code == 0


def test_a_goal_not_reached_runs_to_max_trials(tmp_path):
    ended, status, code = run(tmp_path, xs=("0.5",), goal=0.4, max_trials=3)
    assert (ended["type"], ended["reason"]) == ("Succeeded", "ExperimentMaxTrialsReached")
    assert ended["message"] == "Experiment has succeeded because max trial count has reached"
    assert (status["trials"], status["trialsSucceeded"], code) == (3, 3, 0)


def test_maximize_goals_compare_the_other_way(tmp_path):
    ended, status, _ = run(tmp_path / "reached", kind="maximize", xs=("0.5",), goal=0.5)
    assert ended["reason"] == "ExperimentGoalReached" and status["trials"] == 1
    ended, status, _ = run(tmp_path / "not", kind="maximize", xs=("0.5",), goal=0.6)
    assert ended["reason"] == "ExperimentMaxTrialsReached" and status["trials"] == 3
    ended, status, _ = run(tmp_path / "below", kind="maximize", xs=("0.5",), goal=0.4)
    assert ended["reason"] == "ExperimentGoalReached" and status["trials"] == 1


def test_failed_trials_reaching_max_failed_fail_the_experiment(tmp_path):
    ended, status, code = run(tmp_path, modes=("fail",), max_trials=5, max_failed=2)
    assert (ended["type"], ended["reason"]) == ("Failed", "ExperimentFailed")
    assert ended["message"] == "Experiment has failed because max failed count has reached"
    assert (status["trials"], status["trialsFailed"], code) == (2, 2, 1)


def test_an_explicit_zero_fails_at_the_first_failed_trial(tmp_path):
    ended, status, code = run(tmp_path, modes=("fail",), max_trials=5, max_failed=0)
    assert ended["reason"] == "ExperimentFailed" and status["trials"] == 1 and code == 1


def test_an_explicit_zero_does_not_fail_an_experiment_without_failures(tmp_path):
    ended, status, code = run(tmp_path, max_trials=2, max_failed=0)
    assert ended["reason"] == "ExperimentMaxTrialsReached" and status["trials"] == 2 and code == 0


def test_without_max_failed_failures_never_fail_the_experiment(tmp_path):
    ended, status, code = run(tmp_path, modes=("fail",), max_trials=3)
    assert (ended["type"], ended["reason"]) == ("Succeeded", "ExperimentMaxTrialsReached")
    assert (status["trials"], status["trialsFailed"]) == (3, 3)
    assert code == 1  # Succeeded, but without a best trial there is nothing to train


def test_trials_without_metrics_count_as_failed(tmp_path):
    ended, status, code = run(tmp_path, modes=("silent",), max_trials=5, max_failed=2)
    assert ended["reason"] == "ExperimentFailed"
    assert (status["trials"], status["trialMetricsUnavailable"], code) == (2, 2, 1)


def test_an_exhausted_grid_ends_the_experiment(tmp_path):
    ended, status, code = run(tmp_path, xs=("0.5", "0.25"), max_trials=None, algorithm="grid")
    assert (ended["type"], ended["reason"]) == ("Succeeded", "ExperimentSuggestionEndReached")
    assert ended["message"] == "Experiment has succeeded because suggestion service has reached the end"
    assert status["trials"] == 2 and code == 0


def test_max_trials_wins_over_a_larger_grid(tmp_path):
    ended, status, _ = run(tmp_path, xs=("0.5", "0.25", "0.125"), max_trials=2, algorithm="grid")
    assert ended["reason"] == "ExperimentMaxTrialsReached" and status["trials"] == 2


@pytest.mark.parametrize(("kind", "best"), [("minimize", "0.125"), ("maximize", "0.5")])
def test_the_best_trial_follows_the_objective_type(tmp_path, kind, best):
    _, status, _ = run(tmp_path, xs=("0.5", "0.125", "0.25"), kind=kind, max_trials=3, algorithm="grid")
    assigned = {a["name"]: a["value"] for a in status["currentOptimalTrial"]["parameterAssignments"]}
    assert assigned["x"] == best
