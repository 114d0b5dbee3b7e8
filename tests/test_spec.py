"""Experiment spec validation: every rejection names file, line and field, exit 2."""

import re
import shutil

import pytest

from pyhelpers.errors import BadInput
from pyhelpers.experiment import katib_fields
from pyhelpers.experiment.spec import load_spec
from tests.conftest import EXAMPLE, run_mlops, write_experiment


@pytest.fixture
def spec_file(tmp_path):
    return write_experiment(tmp_path)


def edit(path, old, new, count=1):
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, count))
    return path


def rejected(path):
    with pytest.raises(BadInput) as err:
        load_spec(path)
    return str(err.value)


def line_of(path, needle):
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(needle)


def test_sample_and_generated_specs_are_valid(spec_file):
    spec = load_spec(EXAMPLE / "katib" / "experiment.yaml")
    assert spec.algorithm == "tpe" and spec.parallel == 2 and len(spec.parameters) == 5
    assert {p.type for p in spec.parameters} == {"double", "int", "categorical"}
    assert load_spec(spec_file).metric_names == ["loss"]


def test_misspelled_field_names_line_and_suggestion(spec_file):
    edit(spec_file, "parallelTrialCount", "parallelTrialCont")
    msg = rejected(spec_file)
    assert f":{line_of(spec_file, 'parallelTrialCont')}: spec.parallelTrialCont: unknown field" in msg
    assert "did you mean 'parallelTrialCount'" in msg


def test_misspelled_field_inside_the_trial_job(spec_file):
    edit(spec_file, "command:", "comand:")
    msg = rejected(spec_file)
    assert "spec.trialTemplate.trialSpec.spec.template.spec.containers[0].comand" in msg
    assert "did you mean 'command'" in msg


@pytest.mark.parametrize("old, new, expected", [
    ('min: "-2", max: "2"', 'min: "3", max: "2"', r"feasibleSpace.min: min 3 is greater than max 2"),
    ("reference: kind}", "reference: knd}", r"parameter reference knd does not exist in spec.parameters"),
    ("parallelTrialCount: 1", "parallelTrialCount: 9", r"parallelTrialCount: 9: Katib refuses it: should be less than or equal to spec.maxTrialCount \(4\)"),
    ("algorithmName: random", "algorithmName: hyperband", r"'hyperband' is not supported by the local engine"),
    ("algorithmName: random", "algorithmName: pbt", r"'pbt' is not supported by the local engine"),
    ("algorithmName: random", "algorithmName: darts", r"'darts' is not supported"),
    ("algorithmName: random", "algorithmName: anneal", r"'anneal': Katib refuses it: no suggestion for algorithm 'anneal'"),
    ("name: random_state", "name: seed", r"random runs on Katib's hyperopt service, which accepts random_state; got seed"),
    ('value: "1"', 'value: "one"', r"random runs on Katib's hyperopt service, which refuses it: failed to validate random_state\(one\)"),
    ("type: minimize", "type: minimise", r"objective.type: 'minimise': Katib refuses it: must be minimize or maximize"),
    ("parameterType: int", "parameterType: integer", r"parameterType: 'integer': Katib refuses it: parameterType is not supported"),
    ('min: "1", max: "3"', 'min: "1.5", max: "3"', r"feasibleSpace.min: must be an integer"),
    ('min: "-2", max: "2"', 'min: -2, max: "2"', r'must be a string \(quote it: "-2"\)'),
    ('min: "-2", max: "2"', 'min: "-2", max: "2", distribution: normal', r"distribution 'normal' is not supported"),
    ('min: "-2", max: "2"', 'min: "-2", max: "2", distribution: logUniform', r"logUniform needs min > 0"),
    ('min: "-2", max: "2"', 'min: "-2", max: "2", step: "0"', r"step: must be positive"),
    ("maxTrialCount: 4", "maxTrialCount: 0", r"maxTrialCount: 0: Katib refuses it: must be greater than 0"),
    ("  maxTrialCount: 4\n", "", r"spec.maxTrialCount is required by the local engine"),
    ("kind: Experiment", "kind: Trial", r"kind: must be 'Experiment'"),
    ("apiVersion: kubeflow.org/v1beta1", "apiVersion: kubeflow.org/v1alpha3", r"apiVersion: must be 'kubeflow.org/v1beta1'"),
    ("name: exp", "name: Exp_1", r"metadata.name: 'Exp_1': Katib refuses it: a name must start with a lowercase letter"),
    ("--kind=${trialParameters.kind}", "--kind=${trialParameters.knd}", r"\$\{trialParameters.kind\} is not found in the trial template"),
    ("primaryContainerName: main", "primaryContainerName: trainer", r"'trainer': no such container in spec.template.spec.containers: main"),
    ('["a", "b"]', "[]", r"feasibleSpace: Katib refuses it: feasibleSpace must be specified"),
    ('["a", "b"]', '["a", "a"]', r"list: contains a value twice"),
])
def test_rejections(spec_file, old, new, expected):
    edit(spec_file, old, new)
    msg = rejected(spec_file)
    assert re.search(expected, msg), msg
    assert msg.startswith(str(spec_file)), msg


def test_unsupported_features_are_rejected_not_ignored(spec_file):
    text = spec_file.read_text()
    cases = {
        "earlyStopping": text.replace("  parameters:", "  earlyStopping:\n    algorithmName: medianstop\n  parameters:"),
        "configMap": text.replace("    primaryContainerName: main", "    primaryContainerName: main\n    configMap:\n      configMapName: x\n      templatePath: y"),
        "collector": text.replace("  parameters:", "  metricsCollectorSpec:\n    collector:\n      kind: TensorFlowEvent\n  parameters:"),
    }
    for what, variant in cases.items():
        spec_file.write_text(variant)
        msg = rejected(spec_file)
        assert "not supported by the local engine" in msg, (what, msg)


def test_grid_needs_steps_and_cmaes_two_numeric_parameters(tmp_path):
    path = write_experiment(tmp_path / "g", algorithm="grid", settings={})
    assert "Param x step is nil; For discrete search space, all parameters must include step" in rejected(path)
    path = write_experiment(tmp_path / "g2", algorithm="grid", settings={}, step="1")
    assert load_spec(path).grid_size() == 5 * 3 * 2


def test_metrics_format_must_compile_with_two_groups(spec_file):
    collector = ("  metricsCollectorSpec:\n    source:\n      filter:\n        metricsFormat:\n"
                 "          - \"([a-z]+): (\"\n  parameters:")
    edit(spec_file, "  parameters:", collector)
    assert "Katib refuses it: invalid filter (Go regexp, RE2 syntax)" in rejected(spec_file)
    edit(spec_file, '"([a-z]+): ("', '"([a-z]+)"')
    assert "two top subexpressions are required" in rejected(spec_file)


def test_cli_validate_exit_codes(mlops, spec_file):
    r = mlops("experiment", "validate", str(spec_file), "--json")
    assert r.code == 0 and r.json()["valid"] is True, r
    edit(spec_file, "maxTrialCount: 4", "maxTrialCount: four")
    r = mlops("experiment", "run", "--local", str(spec_file))
    assert r.code == 2 and "maxTrialCount: must be an integer" in r.err, r
    assert "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1


def test_field_table_matches_the_installed_katib_sdk():
    pytest.importorskip("kubeflow.katib", reason="kubeflow-katib not installed (extra 'katib')")
    assert katib_fields.generate() == katib_fields.table()


def test_katib_engine_accepts_katib_features_but_not_typos(spec_file):
    text = spec_file.read_text().replace("algorithmName: random", "algorithmName: hyperband").replace(
        "      - name: random_state\n        value: \"1\"\n",
        "      - {name: r_l, value: \"1\"}\n      - {name: resource_name, value: n}\n")
    text = text.replace("  parameters:", "  earlyStopping:\n    algorithmName: medianstop\n  parameters:", 1)
    text = text.replace("  maxTrialCount: 4\n", "")
    spec_file.write_text(text)
    assert "not supported by the local engine" in rejected(spec_file)
    spec = load_spec(spec_file, engine="katib")
    assert spec.algorithm == "hyperband" and spec.max_trials is None
    spec_file.write_text(text.replace("parallelTrialCount", "parallelTrialCont"))
    with pytest.raises(BadInput, match="did you mean 'parallelTrialCount'"):
        load_spec(spec_file, engine="katib")


def test_validate_warns_about_image_paths_this_machine_lacks(tmp_path):
    """Local validate names a trial-command path that will not exist here (issue 9 item 4)."""
    spec = tmp_path / "exp.yaml"
    shutil.copy(EXAMPLE / "katib" / "experiment.yaml", spec)
    unmapped = run_mlops("experiment", "validate", str(spec), cwd=tmp_path)
    assert unmapped.code == 0, unmapped
    assert "/app/train.py, which will not exist on this machine" in unmapped.err
    # mapped to a folder that holds the trainer and the data: nothing to warn about
    (tmp_path / "mlops.yaml").write_text("project: p\nexperiment:\n  image_paths:\n    /app: .\n")
    (tmp_path / "train.py").write_text("")
    (tmp_path / "data" / "trips").mkdir(parents=True)
    mapped = run_mlops("experiment", "validate", str(spec), cwd=tmp_path)
    assert mapped.code == 0, mapped
    assert "will not exist" not in mapped.err
