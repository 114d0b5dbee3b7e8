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


# -- a newcomer's first hour: each mistake gets a message that names the next step ------------------
def test_bare_command_and_bare_group_print_help_with_exit_0(mlops, tmp_path):
    r = mlops(cwd=tmp_path)
    assert r.code == 0 and r.out.startswith("Usage: mlops") and "line" in r.out and not r.err, r
    r = mlops("data", cwd=tmp_path)
    assert r.code == 0 and r.out.startswith("Usage: mlops data") and "status" in r.out, r


def test_mistyped_commands_get_a_did_you_mean_at_every_level(mlops, tmp_path):
    for args, suggestion in ((["experiments"], "'experiment'"), (["data", "stats"], "'status'"),
                             (["experiment", "rn"], "'run'"), (["deploy", "serv"], "'serve'")):
        r = mlops(*args, cwd=tmp_path)
        assert r.code == 2 and f"did you mean {suggestion}" in r.err and r.err.count("\n") == 1, (args, r)


def test_commands_work_from_a_subfolder_of_the_project(mlops, project):
    deeper = project / "katib" / "sub"
    deeper.mkdir()
    r = mlops("data", "status", "--json", cwd=deeper)
    assert r.code == 0, r
    assert r.json()["changed"] is True
    r = mlops("data", "push", "--json", cwd=deeper)
    assert r.code == 0 and r.json()["changed"] is True, r


def test_missing_git_and_dvc_name_both_init_commands(mlops, tmp_path):
    (tmp_path / "mlops.yaml").write_text("project: p\ndata:\n  paths: [data/trips]\n")
    r = mlops("data", "status", cwd=tmp_path)
    assert r.code == 2 and "run `git init && dvc init`" in r.err and "dvc add data/trips" in r.err, r
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    r = mlops("data", "status", cwd=tmp_path)
    assert r.code == 2 and "run `dvc init`" in r.err and "git init" not in r.err, r
    subprocess.run([str(Path(sys.executable).parent / "dvc"), "init", "-q"], cwd=tmp_path, check=True)
    r = mlops("data", "status", cwd=tmp_path)
    assert r.code == 2 and "run `dvc add data/trips && git add data/trips.dvc && git commit`" in r.err, r


def test_deploy_before_any_experiment_and_lineage_before_any_deploy_name_the_line(mlops, project):
    r = mlops("line", "deploy", cwd=project)
    assert r.code == 2 and "run `mlops line data` first" in r.err, r
    r = mlops("lineage", cwd=project)
    assert r.code == 1 and "run `mlops line deploy`" in r.err, r


def test_init_writes_config_and_an_experiment_both_engines_accept(mlops, tmp_path):
    example = Path(__file__).resolve().parents[1] / "examples" / "taxi-fare" / "train.py"
    (tmp_path / "My Project").mkdir()
    root = tmp_path / "My Project"
    r = mlops("init", cwd=root)
    assert r.code == 2 and "mlops init path/to/train.py" in r.err, r
    (root / "src").mkdir()
    (root / "src" / "fit.py").write_text(example.read_text())
    r = mlops("init", "src/fit.py", "--json", cwd=root)
    assert r.code == 0, r
    doc = r.json()
    assert doc["project"] == "my-project" and doc["objective"] == {"metric": "validation-rmse", "type": "minimize"}
    assert doc["parameters"] == ["learning-rate", "n-estimators", "max-depth", "subsample", "loss"]
    assert doc["next"][0] == "git init && dvc init"
    for engine in ("local", "katib"):
        v = mlops("experiment", "validate", "--engine", engine, "katib/experiment.yaml", cwd=root)
        assert v.code == 0, (engine, v)
    assert mlops("config", "validate", cwd=root).code == 0
    dry = mlops("experiment", "run", "--local", "--dry-run", "--json", "katib/experiment.yaml", cwd=root)
    assert dry.code == 0 and dry.json()["firstTrialCommand"][1] == str(root / "src" / "fit.py"), dry
    r = mlops("init", "src/fit.py", cwd=root)
    assert r.code == 2 and "already exists" in r.err and "--force" in r.err, r
    (root / "src" / "bare.py").write_text("print('hello')\n")
    r = mlops("init", "src/bare.py", "--force", cwd=root)
    assert r.code == 2 and "src/bare.py" in r.err and "add_argument" in r.err, r


def test_processed_marker_is_per_profile(project):
    """A local run must not make `--profile cluster line data` say "nothing to do"."""
    from pyhelpers import data
    from pyhelpers.config import load_config

    local = load_config(project / "mlops.yaml", environ={})
    version, commit = data.data_version(local, "HEAD"), data.scm.head(project)
    assert data.processed_head(local) is None
    data.mark_processed(local, version, commit)
    assert data.processed_head(local) == {"data_version": version, "git_commit": commit, "processed_version": version}
    cluster = load_config(project / "mlops.yaml", profile="cluster", environ={})
    assert data.processed_head(cluster) is None and data.load_processed(cluster) is None


def test_progress_off_a_terminal_is_one_plain_line(capsys):
    """Jenkins logs get one line per long step (no spinner frames); stdout stays for --json."""
    from pyhelpers.progress import activity

    with activity("dvc push to remote 'storage'"):
        pass
    out, err = capsys.readouterr()
    assert out == "" and err == "dvc push to remote 'storage'\n"
