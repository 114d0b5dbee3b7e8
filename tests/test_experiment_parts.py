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


# -- Experiment names (Katib's webhook: at most 40 characters, ^[a-z]([-a-z0-9]*[a-z0-9])?$) -------------
@pytest.mark.parametrize("base, version, expected", [
    ("taxi-fare-tuning", "dv-0123456789ab", "taxi-fare-tuning-01234567"),
    ("a" * 60, "dv-0123456789ab", "a" * 31 + "-01234567"),
    ("x" * 30 + "-" + "y" * 10, "dv-89abcdef0123", "x" * 30 + "-89abcdef"),  # no "--": the cut '-' goes
    ("9-Taxi_Fare!!", "dv-ffffffffffff", "taxi-fare-ffffffff"),  # lowercased, starts with a letter
    ("---", "dv-0123456789ab", "experiment-01234567"),
    ("model", "DV-ABCDEF123456", "model-abcdef12"),
])
def test_experiment_name_is_a_katib_name(base, version, expected):
    from pyhelpers.experiment.naming import experiment_name

    assert experiment_name(base, version) == expected


@pytest.mark.parametrize("base", ["taxi-fare-tuning", "t" * 200, "Ünïcode name", "-lead", "trail-", "x", "a--b", "0"])
@pytest.mark.parametrize("version", ["dv-0123456789ab", "dv-", "weird/version name"])
def test_experiment_name_properties(base, version):
    import re

    from pyhelpers.experiment.naming import experiment_name

    name = experiment_name(base, version)
    assert len(name) <= 40 and re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name), name
    assert experiment_name(base, version) == name  # a rerun for the same data finds the same name
    assert experiment_name(base, "dv-ffffffff0000") != experiment_name(base, "dv-0000000000ff")  # data decides


@pytest.mark.parametrize("name, ok", [("exp", True), ("a" * 40, True), ("a" * 41, False), ("1exp", False),
                                      ("exp-", False), ("Exp", False), ("../mlflow", False), ("a/b", False)])
def test_katib_name_rule(name, ok):
    from pyhelpers.experiment.naming import katib_name_problem

    assert (katib_name_problem(name) is None) == ok


def test_experiment_dir_stays_in_the_state_folder(tmp_path):
    from pyhelpers.experiment.naming import experiment_dir

    assert experiment_dir(tmp_path, "exp") == tmp_path / "experiments" / "exp"
    for bad in ("..", "../mlflow", "a/../../b", "", "UPPER"):
        with pytest.raises(BadInput):
            experiment_dir(tmp_path, bad)
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "link").symlink_to(tmp_path.parent)  # a symlink out of the state folder
    with pytest.raises(BadInput, match="outside"):
        experiment_dir(tmp_path, "link")


# -- RE2 metrics ---------------------------------------------------------------------------------------------
def test_metrics_formats_run_on_re2_and_refuse_what_re2_refuses():
    import re2

    (pattern,) = metrics.compile_formats(None)
    assert isinstance(pattern, re2._Regexp)
    with pytest.raises(BadInput, match=r"metricsFormat\[0\].*RE2"):
        metrics.compile_formats([r"(?=x)(\w+)=(\d+)"])  # lookahead: Python's re accepts it, Go's RE2 does not
    with pytest.raises(BadInput, match="two capture groups"):
        metrics.compile_formats([r"(\w+)=\d+"])


def test_metric_lines_as_katib_reads_them():
    formats = metrics.compile_formats(None)
    # only lines naming a metric are matched; names are trimmed and compared whole
    found = metrics.parse_text("loss=1\nlosses=2\nval-loss = 3\nloss=nan\nloss=4e-1\n", ["loss", "val-loss"], formats)
    assert found["loss"].values == [1.0, 0.4] and found["val-loss"].values == [3.0]
    long_line = "loss" + "A" * 400_000 + " loss=0.5"
    assert metrics.parse_text(long_line, ["loss"], formats)["loss"].values == [0.5]


def test_metric_strategies():
    log = metrics.MetricLog("loss", [3.0, 1.0, 2.0])
    assert (log.value("min"), log.value("max"), log.value("latest")) == (1.0, 3.0, 2.0)
    with pytest.raises(ValueError):
        log.value("median")


def test_nearest_line_names_what_almost_matched():
    lines = ["epoch 1", "validation rmse: 1.5", "done"]
    assert metrics.nearest_line(lines, "validation-rmse") == "validation rmse: 1.5"
    assert metrics.nearest_line(["val-loss 2"], "val-loss") == "val-loss 2"
    assert metrics.nearest_line(["nothing here", "at all"], "loss") is None


# -- paths a trial command names that will not exist here ---------------------------------------------------
def test_missing_paths(tmp_path):
    app = tmp_path / "app"
    (app / "data").mkdir(parents=True)
    (app / "train.py").write_text("")
    container = {"name": "main", "command": ["python", "/app/train.py", "--data=/app/data", "--out=/tmp/model.json",
                                             "--cfg=/etc/nonexistent-dir/x.yaml"],
                 "args": ["sh -c 'cat /app/data/x.csv'"]}
    spec = {"trialTemplate": {"primaryContainerName": "main", "trialSpec": {
        "apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {"containers": [container]}}}}}}
    assert template.missing_paths(spec, {}) == ["/app/train.py", "/app/data", "/etc/nonexistent-dir/x.yaml",
                                                 "/app/data/x.csv"]
    assert template.missing_paths(spec, {"/app": app}) == ["/etc/nonexistent-dir/x.yaml"]


def test_collector_path_is_mapped_into_the_trial_folder(tmp_path):
    paths = template.trial_path_map({"/app": Path("/local/app")}, "/app/metrics.log", tmp_path / "pod")
    assert template.map_path("--metrics=/app/metrics.log", paths) == f"--metrics={tmp_path}/pod/app/metrics.log"
    assert template.map_path("/app/train.py", paths) == "/local/app/train.py"  # the code still comes from /app
    assert template.map_path("sh -c 'python /app/train.py > /app/metrics.log'", paths) == \
        f"sh -c 'python /local/app/train.py > {tmp_path}/pod/app/metrics.log'"
