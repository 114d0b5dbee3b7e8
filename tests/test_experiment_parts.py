"""Parameter substitution, metrics parsing and the algorithm -> Optuna mapping."""

import sys
from pathlib import Path

import pytest

from pyhelpers.errors import BadInput
from pyhelpers.experiment import algorithms, metrics, template
from pyhelpers.experiment.spec import load_spec
from tests.conftest import EXAMPLE


def test_substitution_into_the_primary_container():
    spec = load_spec(EXAMPLE / "katib" / "experiment.yaml")
    values = {"learning-rate": "0.05", "n-estimators": "60", "max-depth": "3", "subsample": "0.8", "loss": "huber"}
    argv, cwd, env = template.trial_command(spec.spec, values, "t-1", {"/app": Path("/work/x")}, spec.spec_dir)
    assert argv == [sys.executable, "/work/x/train.py", "--data-dir=/work/x/data/trips", "--learning-rate=0.05",
                    "--n-estimators=60", "--max-depth=3", "--subsample=0.8", "--loss=huber"]
    assert cwd == spec.spec_dir


def test_trial_spec_metadata_references_and_other_kinds():
    container = {
        "name": "pytorch",
        "command": ["sh", "-c", "run --lr=${trialParameters.lr} --out=/out/${trialParameters.trialName} "
                    "--ns=${trialSpec.Namespace}"],
        "env": [{"name": "A", "value": "1"}],
    }
    job = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
           "spec": {"pytorchReplicaSpecs": {"Master": {"template": {"spec": {"containers": [container]}}}}}}
    spec = {"trialTemplate": {
        "primaryContainerName": "pytorch",
        "trialParameters": [{"name": "lr", "reference": "lr"}, {"name": "trialName", "reference": "${trialSpec.Name}"}],
        "trialSpec": job,
    }}
    argv, _, env = template.trial_command(spec, {"lr": "0.1"}, "exp-0007", {}, Path("."), namespace="team")
    assert argv == ["sh", "-c", "run --lr=0.1 --out=/out/exp-0007 --ns=team"]
    assert env == {"A": "1"}


def test_image_path_mapping_respects_path_boundaries():
    paths = {"/app": Path("/local/app"), "/app/data": Path("/big/data")}
    assert template.map_path("/app/train.py", paths) == "/local/app/train.py"
    assert template.map_path("--data=/app/data/x.csv", paths) == "--data=/big/data/x.csv"
    assert template.map_path("/application/x", paths) == "/application/x"
    assert template.map_path("/app", paths) == "/local/app"


def test_default_metrics_format_keeps_min_max_latest():
    text = "epoch 1: loss=0.9 acc=0.5\nloss = 0.4\nvalidation-rmse=1.5e-1 other=3\nloss=0.7\nnoise loss=abc\n"
    found = metrics.parse_text(text, ["loss", "validation-rmse"], metrics.compile_formats(None))
    assert found["loss"].values == [0.9, 0.4, 0.7]
    assert found["loss"].observation() == {"name": "loss", "min": "0.4", "max": "0.9", "latest": "0.7"}
    assert found["validation-rmse"].value("latest") == 0.15
    assert "other" not in found and "acc" not in found


def test_custom_metrics_format():
    formats = metrics.compile_formats([r"([\w-]+):\s*([+-]?\d+(?:\.\d+)?)"])
    found = metrics.parse_text("accuracy: 0.81\nloss=0.3\naccuracy: 0.85\n", ["accuracy", "loss"], formats)
    assert found["accuracy"].values == [0.81, 0.85] and "loss" not in found


def test_json_lines_metrics():
    found = metrics.parse_json_lines('{"loss": 0.5, "step": 1}\nnot json\n{"loss": "0.25"}\n', ["loss"])
    assert found["loss"].values == [0.5, 0.25]


@pytest.mark.parametrize("name, settings, sampler, attrs", [
    ("random", {"random_state": "3"}, "RandomSampler", {}),
    ("tpe", {"random_state": "3", "n_EI_candidates": "12", "prior_weight": "2"}, "TPESampler",
     {"_n_startup_trials": 2, "_n_ei_candidates": 12}),
    ("multivariate-tpe", {}, "TPESampler", {"_multivariate": True}),
    ("cmaes", {"sigma": "0.5", "random_state": "2"}, "CmaEsSampler", {"_sigma0": 0.5}),
    ("sobol", {}, "QMCSampler", {"_qmc_type": "sobol", "_scramble": False}),
    ("grid", {}, "GridSampler", {}),
])
def test_algorithm_mapping(name, settings, sampler, attrs):
    import optuna

    s = algorithms.make_sampler(name, settings, grid={"x": [1, 2]}, parallel=2)
    assert isinstance(s, getattr(optuna.samplers, sampler))
    for attr, value in attrs.items():
        assert getattr(s, attr) == value


def test_seeded_samplers_are_reproducible():
    import optuna

    def draws():
        study = optuna.create_study(sampler=algorithms.make_sampler("tpe", {"random_state": "11"}))
        dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
        return [study.ask(dist).params["x"] for _ in range(3)]

    assert draws() == draws()


def test_bayesianoptimization_is_the_gp_sampler_or_a_clear_error():
    try:
        import torch  # noqa: F401
    except ImportError:
        with pytest.raises(BadInput, match="needs torch"):
            algorithms.make_sampler("bayesianoptimization", {"n_initial_points": "3"})
    else:
        import optuna

        assert isinstance(algorithms.make_sampler("bayesianoptimization", {}), optuna.samplers.GPSampler)
    assert algorithms.local_problem("bayesianoptimization", {"acq_func": "EI"}) is None
    assert "not supported by the local engine" in algorithms.local_problem("bayesianoptimization", {"acq_func": "LCB"})[1]
