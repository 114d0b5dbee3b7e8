"""The champion/challenger gate's decisions: which metric, its value, and when a candidate wins.

Expected values are worked out by hand from the definitions (RMSE, MAE, R², relative gain), never
computed with the module under test.
"""

from __future__ import annotations

import json
import math

import pytest

from pyhelpers.model import gate

# y_true and y_pred differ by (1, 0, 2): squared errors 1, 0, 4.
Y_TRUE = [1.0, 2.0, 3.0]
Y_PRED = [2.0, 2.0, 5.0]


@pytest.mark.parametrize(("objective", "metric"), [
    ("validation-rmse", "rmse"),   # contains "mse" too: rmse must win
    ("Validation-RMSE", "rmse"),
    ("val_mse", "mse"),
    ("validation-mae", "mae"),
    ("r2", "r2"),
    ("test-accuracy", "accuracy"),
    ("loss", "rmse"),              # unknown objective: scored with rmse
    ("", "rmse"),
    (None, "rmse"),
])
def test_metric_is_taken_from_the_objective_name(objective, metric):
    assert gate.metric_for(objective) == metric


def test_each_metric_has_its_natural_direction():
    assert gate.METRICS == {"rmse": "minimize", "mae": "minimize", "mse": "minimize", "r2": "maximize",
                            "accuracy": "maximize"}


@pytest.mark.parametrize(("metric", "expected"), [
    ("mse", 5 / 3),
    ("rmse", math.sqrt(5 / 3)),
    ("mae", 1.0),
    ("r2", 1 - 5 / 2),  # residual sum 5, total sum of squares around the mean 2: 2 -> 1 + 0 + 1
])
def test_regression_scores_match_their_definitions(metric, expected):
    assert gate.score(metric, Y_TRUE, Y_PRED) == pytest.approx(expected, rel=1e-12)


def test_a_model_returning_a_column_is_scored_on_that_column():
    column = [[2.0], [2.0], [5.0]]  # what a pyfunc returning a one-column frame gives
    assert gate.score("mae", Y_TRUE, column) == pytest.approx(1.0)


def test_a_model_returning_several_columns_is_scored_on_the_first():
    frame = [[2.0, 9.0], [2.0, 9.0], [5.0, 9.0]]  # e.g. prediction and its uncertainty
    assert gate.score("mae", Y_TRUE, frame) == pytest.approx(1.0)


def test_scores_are_plain_floats_for_the_registry_tags():
    for metric in ("rmse", "mse", "mae", "r2"):
        assert type(gate.score(metric, Y_TRUE, Y_PRED)) is float
    assert type(gate.score("accuracy", ["a"], ["a"])) is float


def test_accuracy_compares_labels_as_they_are():
    assert gate.score("accuracy", ["a", "b", "c", "d"], ["a", "x", "c", "d"]) == pytest.approx(0.75)
    assert gate.score("accuracy", [1, 0, 1], [1, 0, 1]) == 1.0


def test_perfect_and_constant_cases():
    assert gate.score("rmse", Y_TRUE, Y_TRUE) == 0.0
    assert gate.score("r2", Y_TRUE, Y_TRUE) == 1.0
    # all targets equal: R² is undefined; the gate scores it 0, not a division error
    assert gate.score("r2", [4.0, 4.0], [4.0, 5.0]) == 0.0


def test_unknown_metric_is_an_error():
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        gate.score("auc", Y_TRUE, Y_PRED)


# -- the decision ------------------------------------------------------------------------------
def test_a_tied_candidate_is_not_promoted():
    assert gate.decide(1.25, 1.25, "minimize", 0.0) == (False, 0.0)
    assert gate.decide(0.5, 0.5, "maximize", 0.0) == (False, 0.0)
    assert gate.decide(0.0, 0.0, "minimize", 0.0) == (False, 0.0)  # both perfect: still a tie


def test_a_better_candidate_is_promoted_in_either_direction():
    assert gate.decide(1.5, 2.0, "minimize", 0.0) == (True, 0.25)   # error 2.0 -> 1.5: 25 % better
    assert gate.decide(0.75, 0.5, "maximize", 0.0) == (True, 0.5)   # r2 0.5 -> 0.75: 50 % better


def test_a_worse_candidate_is_refused_in_either_direction():
    assert gate.decide(2.5, 2.0, "minimize", 0.0) == (False, -0.25)
    assert gate.decide(0.25, 0.5, "maximize", 0.0) == (False, -0.5)


def test_min_improvement_is_a_relative_threshold_that_counts_when_met_exactly():
    assert gate.decide(1.5, 2.0, "minimize", 0.25) == (True, 0.25)
    assert gate.decide(1.5, 2.0, "minimize", 0.375) == (False, 0.25)


def test_gain_is_relative_to_the_size_of_a_negative_champion_score():
    # R² may be negative: -0.5 -> 0.5 is better by 1.0, i.e. twice the champion's magnitude
    assert gate.improvement(0.5, -0.5, "maximize") == 2.0
    assert gate.decide(0.5, -0.5, "maximize", 1.0) == (True, 2.0)
    assert gate.improvement(-1.0, -0.5, "maximize") == -1.0


def test_a_perfect_champion_can_only_be_tied_or_beaten_infinitely():
    assert gate.improvement(0.25, 0.0, "minimize") == -math.inf
    assert gate.improvement(-0.25, 0.0, "minimize") == math.inf   # e.g. a signed metric below 0
    assert gate.improvement(0.25, 0.0, "maximize") == math.inf
    assert gate.improvement(0.0, 0.0, "maximize") == 0.0
    assert gate.decide(0.25, 0.0, "minimize", 0.0) == (False, -math.inf)


# -- the data the gate scores on --------------------------------------------------------------
def test_validation_rows_come_from_the_hand_over_description(tmp_path):
    (tmp_path / "rows.csv").write_text("x,fare\n1,2.5\n2,3.5\n")
    # the description names the file as the trainer saw it; only its name counts in the artifact folder
    (tmp_path / "mlops-model.json").write_text(json.dumps({"validation": "/elsewhere/data/rows.csv",
                                                           "target": "fare"}))
    rows, target = gate.load_validation(tmp_path)
    assert target == "fare"
    assert list(rows.columns) == ["x", "fare"] and rows["fare"].tolist() == [2.5, 3.5]


class _Doubler:
    """A pyfunc model: predicts 2 * x, and fails if it is handed the target column."""

    def predict(self, context, model_input, params=None):
        assert list(model_input.columns) == ["x"], model_input.columns
        return model_input["x"] * 2.0


@pytest.fixture(scope="module")
def doubler_uri(tmp_path_factory):
    import mlflow

    class Doubler(mlflow.pyfunc.PythonModel):
        predict = _Doubler.predict

    path = tmp_path_factory.mktemp("gate-model") / "doubler"
    mlflow.pyfunc.save_model(str(path), python_model=Doubler())
    return str(path)


def test_evaluate_scores_the_loaded_model_on_rows_without_the_target(doubler_uri):
    import pandas as pd

    rows = pd.DataFrame({"x": [1.0, 2.0, 3.0], "fare": [2.0, 5.0, 6.0]})  # predictions 2, 4, 6
    assert gate.evaluate(doubler_uri, rows, "fare", "mae") == pytest.approx(1 / 3)
    assert gate.evaluate(doubler_uri, rows, "fare", "rmse") == pytest.approx(math.sqrt(1 / 3))
