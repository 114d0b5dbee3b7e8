"""The CLI contract: lazy imports, --json on stdout, exit codes, one-line errors, parameter files."""

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ["mlflow", "dvc", "kubernetes", "kubeflow", "optuna", "boto3", "sklearn"]


def imported_modules(code: str) -> set[str]:
    probe = f"""
import sys
try:
    {code}
except SystemExit:
    pass
print(",".join(sorted({{m.split('.')[0] for m in sys.modules}})), file=sys.stderr)
"""
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    return set(proc.stderr.strip().splitlines()[-1].split(","))


def test_help_and_validation_import_no_heavy_library(tmp_path, project):
    spec = project / "katib" / "experiment.yaml"
    for code in (
        "from pyhelpers.cli import main; main(['--help'])",
        f"from pyhelpers.cli import main; main(['--config', r'{project / 'mlops.yaml'}', 'config', 'validate'])",
        f"from pyhelpers.cli import main; main(['experiment', 'validate', r'{spec}'])",
        f"from pyhelpers.cli import main; main(['experiment', 'run', '--local', '--dry-run', r'{spec}'])",
    ):
        loaded = imported_modules(code)
        assert not loaded & set(HEAVY), (code, loaded & set(HEAVY))


def test_unknown_command_is_exit_2(mlops):
    r = mlops("nosuch")
    assert r.code == 2, r


def test_bad_input_is_one_line_exit_2_and_debug_shows_traceback(mlops, tmp_path):
    r = mlops("experiment", "validate", str(tmp_path / "missing.yaml"))
    assert r.code == 2, r
    assert r.err.strip().count("\n") == 0 and "missing.yaml" in r.err and "Traceback" not in r.err
    r = mlops("--debug", "experiment", "validate", str(tmp_path / "missing.yaml"))
    assert r.code == 2 and "Traceback" in r.err


def test_json_result_on_stdout_logs_on_stderr(mlops, project):
    r = mlops("experiment", "run", "--local", "--dry-run", "--json", "katib/experiment.yaml", cwd=project)
    assert r.code == 0, r
    doc = r.json()
    assert doc["name"] == "taxi-fare-tuning"
    interpreter = Path(doc["firstTrialCommand"][0])
    assert interpreter.parent == Path(sys.executable).parent and interpreter.name.startswith("python")
    assert doc["firstTrialCommand"][1] == str(project / "train.py")


def test_params_file_supplies_options(mlops, project, tmp_path):
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"file": "katib/experiment.yaml", "local": True, "dry_run": True, "name": "from-params"}))
    r = mlops("experiment", "run", "--json", cwd=project, env={"MLOPS_PARAMS_FILE": str(params)})
    assert r.code == 0, r
    assert r.json()["name"] == "from-params"
    # explicit arguments win over the file
    r = mlops("experiment", "run", "--json", "--name", "explicit", cwd=project, env={"MLOPS_PARAMS_FILE": str(params)})
    assert r.json()["name"] == "explicit"


def test_params_file_rejects_unknown_keys_and_bad_json(mlops, project, tmp_path):
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"fiel": "x.yaml"}))
    r = mlops("experiment", "run", cwd=project, env={"MLOPS_PARAMS_FILE": str(params)})
    assert r.code == 2 and "'fiel'" in r.err and "params.json" in r.err, r
    params.write_text("{not json")
    r = mlops("experiment", "run", cwd=project, env={"MLOPS_PARAMS_FILE": str(params)})
    assert r.code == 2 and "invalid JSON" in r.err, r


def test_shell_metacharacters_in_values_are_data(mlops, project, tmp_path):
    payload = "x$(touch pwned)`touch pwned2`'; rm -rf x; '"
    r = mlops("experiment", "run", "--local", "--dry-run", "--name", payload, "katib/experiment.yaml", cwd=project)
    assert not (project / "pwned").exists() and not (project / "pwned2").exists()
    assert r.code == 0  # a dry run only shows the name; nothing was executed
