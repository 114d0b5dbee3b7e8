"""``mlops model train``: retrain the best trial of a finished Experiment inside an MLflow run.

The trainer stays a plain script (docs/CONTRACTS.md, "Model hand-over"): it prints metrics in
Katib's format and, when ``MLOPS_MODEL_DIR`` is set, leaves the fitted model there. This module
supplies the MLflow context around it: one run per (data version, parameters, trainer code,
requirements) - not per commit, so an unrelated commit trains nothing -
with the parameters, metrics, model (flavor, signature, input example), the trainer's log and
the lineage tags. ``MLFLOW_TRACKING_URI``/``MLFLOW_RUN_ID``/``MLFLOW_EXPERIMENT_NAME`` are set
for the trainer, so one that does use mlflow logs into the same run.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from pyhelpers import scm
from pyhelpers.errors import BadInput, OperationFailed
from pyhelpers.fsutil import dns1123_name, scratch_dir
from pyhelpers.model import tracking as t
from pyhelpers.yamlsrc import load_yaml_file

HANDOVER_FILE = "mlops-model.json"
SUPPORTED_FLAVORS = ("sklearn",)
VALIDATION_ARTIFACTS = "validation"  # run artifact folder: validation rows + hand-over description
MODEL_NAME = "model"  # name of the logged model inside the run
RUN_PID = "mlops.pid"  # the `mlops model train` process that owns a RUNNING run
RUN_HOST = "mlops.host"


# -- the Experiment ---------------------------------------------------------------------------
def experiment_name(cfg, ref: str | None) -> str:
    """NAME, a Katib Experiment FILE (its metadata.name) or an experiment.json; without one, the
    Experiment run last here, else the one of ``experiment.file``. Names become paths under the
    state folder, so they are checked as DNS-1123 names (Katib's rule too)."""
    if ref and ref.endswith(".json") and Path(ref).exists():
        return ref  # a status document given by path: load_status reads and checks it
    if ref and not ref.endswith((".yaml", ".yml")):
        return dns1123_name(ref, "--experiment")
    if not ref:
        from pyhelpers.experiment.runner import latest_experiment

        try:
            latest = latest_experiment(cfg)
        except BadInput:
            pass
        else:
            return dns1123_name(latest, "experiment name", source=str(cfg.state_path("experiments", "latest")))
    path = Path(ref) if ref else cfg.experiment_file
    if path.is_dir():
        raise BadInput("is a directory, expected an Experiment file", source=str(path))
    if not path.is_file():
        raise BadInput("Experiment file not found", source=str(path))
    doc = load_yaml_file(path).data
    meta = doc.get("metadata") if isinstance(doc, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    if not name:
        raise BadInput("metadata.name: missing", source=str(path))
    return dns1123_name(name, "metadata.name", source=str(path))


def finished_best_trial(cfg, ref: str | None) -> tuple[dict, dict]:
    """(status document, best trial) of a Succeeded Experiment; bad input otherwise."""
    from pyhelpers.experiment.status import best_trial, load_status, phase
    from pyhelpers.experiment.trial_wiring import agent_status

    name = experiment_name(cfg, ref)
    agent_status(cfg, name)  # cluster: the deploy job reads the Experiment from Katib
    doc = load_status(cfg, name)
    state = phase(doc)
    if state != "Succeeded":
        raise BadInput(f"experiment {name!r} is {state}, not Succeeded: there is no final best trial to train")
    best = best_trial(doc)
    if best is None:
        raise BadInput(f"experiment {name!r}: status.currentOptimalTrial has no bestTrialName")
    return doc, best


def objective(spec: dict) -> dict:
    """Objective metric, direction, the metric names to collect and their formats."""
    obj = spec.get("objective") or {}
    kind = obj.get("type") or "minimize"
    name = obj.get("objectiveMetricName") or ""
    strategies = {s.get("name"): s.get("value") for s in obj.get("metricStrategies") or []}
    source = (spec.get("metricsCollectorSpec") or {}).get("source") or {}
    return {
        "metric": name,
        "type": kind,
        "strategy": strategies.get(name) or ("min" if kind == "minimize" else "max"),
        "names": [n for n in [name, *(obj.get("additionalMetricNames") or [])] if n],
        "formats": ((source.get("filter") or {}).get("metricsFormat")) or None,
    }


def training_command(cfg, doc: dict, trial_name: str, params: dict[str, str]) -> tuple[list[str], Path, dict]:
    """``training.command`` + ``--<param>=<value>``, else the Experiment's trial template."""
    if cfg.training.command:
        argv = [*cfg.training.command, *(f"--{k}={v}" for k, v in params.items())]
        if argv[0] in ("python", "python3"):
            argv[0] = sys.executable  # the interpreter mlops runs in, as the local trials do
        return argv, cfg.root, {}
    from pyhelpers.experiment.template import trial_command

    spec_file = ((doc.get("metadata") or {}).get("annotations") or {}).get("mlops.io/spec-file")
    spec_dir = Path(spec_file).parent if spec_file else cfg.experiment_file.parent
    if not spec_dir.is_absolute():
        spec_dir = cfg.root / spec_dir
    try:
        return trial_command(doc["spec"], params, trial_name, cfg.image_path_map(), spec_dir)
    except (KeyError, TypeError, AttributeError) as exc:
        raise BadInput(f"experiment {doc['metadata'].get('name')!r}: cannot build the trial command "
                       f"from spec.trialTemplate ({type(exc).__name__}: {exc})") from None


def checked_data_version(cfg, doc: dict) -> str | None:
    """The data version the model is trained on: the Experiment's, which must be the work tree's.

    Training the best parameters of one data version on other data would make the lineage lie.
    """
    from pyhelpers.data import data_version

    tuned_on = ((doc.get("metadata") or {}).get("annotations") or {}).get("mlops.io/data-version")
    try:
        here = data_version(cfg, None)  # from the .dvc files in the work tree
    except BadInput:
        here = None  # data not tracked by DVC: the Experiment's annotation is all we know
    if tuned_on and here and tuned_on != here:
        raise BadInput(f"experiment {doc['metadata'].get('name')!r} was tuned on data {tuned_on} but the work tree "
                       f"has data {here}; run the Experiment on this data first (`mlops line data`)")
    return tuned_on or here


DIRTY = "mlops.dirty"  # the model was trained from files that differ from the commit
TRAINER_HASH = "mlops.trainer_hash"
REQUIREMENTS_HASH = "mlops.requirements_hash"
REQUIREMENT_FILES = ("requirements.txt",)


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def trainer_files(cfg, doc: dict, argv: list[str], cwd: Path) -> list[Path]:
    """What determines the trainer: the project files its command names (the script) and the
    Experiment spec it was tuned with. Files outside the project (the interpreter) do not count."""
    root = cfg.root.resolve()
    found = []
    for arg in argv:
        value = arg.split("=", 1)[1] if arg.startswith("--") and "=" in arg else arg
        if not value or len(value) > 4096:
            continue
        path = Path(value) if Path(value).is_absolute() else cwd / value
        try:
            path = path.resolve()
            if path.is_file() and path.is_relative_to(root):
                found.append(path)
        except (OSError, ValueError):
            continue
    spec_file = ((doc.get("metadata") or {}).get("annotations") or {}).get("mlops.io/spec-file")
    spec = Path(spec_file) if spec_file else cfg.experiment_file
    spec = spec if spec.is_absolute() else cfg.root / spec
    if spec.is_file():
        found.append(spec.resolve())
    return sorted(set(found))


def fingerprint(cfg, doc: dict, argv: list[str], cwd: Path) -> dict:
    """Hashes of what determines the model besides data and parameters, and whether any of those
    files differs from git's HEAD (a dirty tree)."""
    root = cfg.root.resolve()
    files = trainer_files(cfg, doc, argv, cwd)
    trainer = {p.relative_to(root).as_posix(): _file_hash(p) for p in files}
    requirements = {name: _file_hash(cfg.root / name) for name in REQUIREMENT_FILES if (cfg.root / name).is_file()}
    watched = [*trainer, *requirements]
    dirty = False
    if watched and scm.is_repo(cfg.root):
        changed = scm.git(cfg.root, "status", "--porcelain", "--", *watched, check=False).stdout
        dirty = bool(changed.strip())
    return {"trainer": _digest(trainer), "requirements": _digest(requirements), "files": sorted(watched),
            "dirty": dirty}


def _digest(doc: dict) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def train_key(data_version: str | None, params: dict[str, str], code: dict) -> str:
    """Same data, parameters, trainer code and dependencies: same model. Not HEAD: a README edit
    or a port change is a new commit, not a new model."""
    doc = {"data_version": data_version, "parameters": params, "trainer": code["trainer"],
           "requirements": code["requirements"]}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]


# -- the trainer ------------------------------------------------------------------------------
def _die_with_parent() -> None:
    """In the trainer, before exec: its own process group (so it and its children can be stopped
    together), and SIGKILL from the kernel when mlops dies, even by SIGKILL (Linux prctl)."""
    os.setpgid(0, 0)
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


def stop_group(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM the process group, SIGKILL what is left after ``grace`` seconds, reap the leader."""
    import signal

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        try:
            proc.wait(timeout=grace)
            if sig == signal.SIGTERM:
                os.killpg(proc.pid, signal.SIGKILL)  # the leader is gone: its children go too
            break
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            break
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass


def run_trainer(argv: list[str], cwd: Path, env: dict[str, str], log_path: Path) -> tuple[int, str]:
    """Run the trainer, copy its output to stderr and ``log_path``; (exit code, output).

    The trainer never outlives this process: on any exception (SIGTERM/SIGINT arrive as one, see
    pyhelpers.commands._common) its process group is stopped, and a SIGKILL of mlops reaches it
    through PR_SET_PDEATHSIG."""
    lines: list[str] = []
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1, preexec_fn=_die_with_parent)
    except FileNotFoundError:
        raise BadInput(f"training command not found: {argv[0]!r} (cwd {cwd})") from None
    try:
        with open(log_path, "w", encoding="utf-8") as log:
            for line in proc.stdout:
                lines.append(line)
                log.write(line)
                sys.stderr.write(line)
        proc.wait()
    except BaseException:
        stop_group(proc)
        raise
    finally:
        proc.stdout.close()
    return proc.returncode, "".join(lines)


def read_handover(model_dir: Path) -> dict:
    path = model_dir / HANDOVER_FILE
    if not path.is_file():
        raise BadInput(f"the trainer wrote no {HANDOVER_FILE} to $MLOPS_MODEL_DIR "
                       "(see docs/CONTRACTS.md, 'Model hand-over')")
    try:
        desc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BadInput(f"invalid JSON: {exc.msg}", source=HANDOVER_FILE, line=exc.lineno) from None
    if not isinstance(desc, dict):
        raise BadInput("must be a JSON object", source=HANDOVER_FILE)
    if desc.get("flavor") not in SUPPORTED_FLAVORS:
        raise BadInput(f"flavor: {desc.get('flavor')!r} is not supported; supported: {', '.join(SUPPORTED_FLAVORS)}",
                       source=HANDOVER_FILE)
    for key in ("model", "target", "validation", "input_example"):
        if not isinstance(desc.get(key), str) or not desc[key]:
            raise BadInput(f"{key}: missing", source=HANDOVER_FILE)
        if key != "target" and not (model_dir / desc[key]).is_file():
            raise BadInput(f"{key}: file {desc[key]!r} was not written by the trainer", source=HANDOVER_FILE)
    return desc


def log_sklearn_model(model_dir: Path, desc: dict):
    """Log the hand-over model with the sklearn flavor, a signature and the input example."""
    from io import StringIO

    import joblib
    import mlflow
    import pandas as pd
    import skops.io
    from mlflow.models import infer_signature

    model = joblib.load(model_dir / desc["model"])  # written by the project's own trainer just now
    # dtype=False keeps 1.0 a float: a guessed int column would make the signature refuse 1.5 later.
    text = (model_dir / desc["input_example"]).read_text(encoding="utf-8")
    example = pd.read_json(StringIO(text), orient="split", dtype=False)
    signature = infer_signature(example, model.predict(example))
    return mlflow.sklearn.log_model(
        sk_model=model,
        name=MODEL_NAME,
        signature=signature,
        input_example=example,
        # Skops (MLflow's safe default format) refuses types it does not know, e.g. tree nodes;
        # the model comes from the project's own trainer, so its types are trusted explicitly.
        skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(model)) or None,
        # Explicit requirements: inferring them starts a subprocess that costs ~5 s per model.
        pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_skops=True),
    )


# -- the command ------------------------------------------------------------------------------
def train(cfg, experiment: str | None = None) -> dict:
    doc, best = finished_best_trial(cfg, experiment)
    name = doc["metadata"]["name"]
    params = best["parameters"]
    obj = objective(doc.get("spec") or {})
    data_version = checked_data_version(cfg, doc)
    if cfg.experiment.engine == "katib" and data_version:
        from pyhelpers.experiment.trial_wiring import ensure_agent_data

        ensure_agent_data(cfg, data_version)  # trained on the Experiment's data, pulled when missing
    git_commit = scm.head(cfg.root)
    argv, cwd, extra_env = training_command(cfg, doc, best["name"], params)
    code = fingerprint(cfg, doc, argv, cwd)
    key = train_key(data_version, params, code)

    client = t.connect(cfg)
    exp_id = t.ensure_experiment(client, cfg)
    summary = {
        "experiment": name, "best_trial": best["name"], "parameters": params,
        "data_version": data_version, "git_commit": git_commit, "train_key": key, "dirty": code["dirty"],
        "mlflow_experiment": cfg.mlflow_experiment, "mlflow_experiment_id": exp_id,
    }

    fail_abandoned_runs(client, exp_id)
    done = previous_run(client, exp_id, key)
    if done is not None:
        return {**summary, "unchanged": True, **run_summary(done)}

    tags = {
        t.DATA_VERSION: data_version,
        t.GIT_COMMIT: git_commit,
        t.EXPERIMENT: name,
        t.BEST_TRIAL: best["name"],
        t.OBJECTIVE_METRIC: obj["metric"],
        t.OBJECTIVE_TYPE: obj["type"],
        t.TRAIN_KEY: key,
        TRAINER_HASH: code["trainer"],
        REQUIREMENTS_HASH: code["requirements"],
        DIRTY: "true" if code["dirty"] else None,
    }
    tags["mlflow.source.git.commit"] = git_commit
    tags[RUN_PID], tags[RUN_HOST] = str(os.getpid()), _host()  # lets the next run spot an abandoned one
    tags[t.BUILD_URL] = os.environ.get("BUILD_URL")
    tags[t.JOB_NAME] = os.environ.get("JOB_NAME")
    tags = {k: v for k, v in tags.items() if v}  # unknown stays absent (null in JSON), never "None"

    import mlflow

    with scratch_dir(cfg.state, "train") as tmp, \
            mlflow.start_run(experiment_id=exp_id, run_name=f"{name}-best", tags=tags) as run:
        # Leaving this block by an exception ends the run as FAILED: never reused, never registered.
        run_id = run.info.run_id
        model_dir, log_path = Path(tmp, "model"), Path(tmp, "trainer.log")
        model_dir.mkdir()
        env = {**os.environ, **extra_env, "MLOPS_MODEL_DIR": str(model_dir),
               "MLFLOW_TRACKING_URI": cfg.tracking_uri, "MLFLOW_RUN_ID": run_id,
               "MLFLOW_EXPERIMENT_NAME": cfg.mlflow_experiment, "MLFLOW_EXPERIMENT_ID": exp_id}
        mlflow.log_params(params)
        print(f"mlops: training {name} best trial {best['name']} (run {run_id}): {' '.join(argv)}",
              file=sys.stderr, flush=True)
        try:
            code, output = run_trainer(argv, cwd, env, log_path)
        finally:
            if log_path.exists():
                mlflow.log_artifact(str(log_path))
        if code != 0:
            raise OperationFailed(f"training command failed with exit code {code} "
                                  f"(run {run_id}, log artifact trainer.log)")

        metrics = log_metrics(output, obj)
        if obj["metric"] in metrics:
            tags[t.OBJECTIVE_VALUE] = repr(metrics[obj["metric"]])
            mlflow.set_tag(t.OBJECTIVE_VALUE, tags[t.OBJECTIVE_VALUE])
        desc = read_handover(model_dir)
        info = log_sklearn_model(model_dir, desc)
        for file_name in (desc["validation"], HANDOVER_FILE):
            mlflow.log_artifact(str(model_dir / file_name), VALIDATION_ARTIFACTS)
        mlflow.set_logged_model_tags(info.model_id, {k: v for k, v in tags.items() if k in t.LINEAGE_TAGS})
        mlflow.set_tag(t.MODEL_ID, info.model_id)  # last: marks the run as complete for `register`
    return {**summary, "unchanged": False, **run_summary(client.get_run(run_id))}


def log_metrics(output: str, obj: dict) -> dict[str, float]:
    """Metrics from the trainer's output, Katib's way; every reported value is a step."""
    import mlflow

    from pyhelpers.experiment.metrics import compile_formats, parse_text

    found = parse_text(output, obj["names"], compile_formats(obj["formats"]))
    final: dict[str, float] = {}
    for name, logged in found.items():
        for step, value in enumerate(logged.values):
            mlflow.log_metric(name, value, step=step)
        final[name] = logged.value(obj["strategy"] if name == obj["metric"] else "latest")
    return final


def _host() -> str:
    import socket

    return socket.gethostname()


def fail_abandoned_runs(client, exp_id: str) -> list[str]:
    """Mark FAILED the runs left RUNNING by a `model train` of this host that no longer exists
    (killed by SIGKILL or a power cut: MLflow never learnt the run ended)."""
    from pyhelpers.fsutil import pid_alive

    runs = client.search_runs([exp_id], filter_string="attributes.status = 'RUNNING'", max_results=100)
    failed = []
    for run in runs:
        pid, host = run.data.tags.get(RUN_PID, ""), run.data.tags.get(RUN_HOST)
        if host == _host() and pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            client.set_terminated(run.info.run_id, status="FAILED")
            print(f"mlops: run {run.info.run_id} was left RUNNING by process {pid}, which is gone: marked FAILED",
                  file=sys.stderr, flush=True)
            failed.append(run.info.run_id)
    return failed


def previous_run(client, exp_id: str, key: str):
    """A finished run with the same training key (data, parameters, trainer code, requirements), if any."""
    runs = client.search_runs(
        [exp_id],
        filter_string=f"tags.`{t.TRAIN_KEY}` = '{key}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=5,
    )
    return next((r for r in runs if r.data.tags.get(t.MODEL_ID)), None)


def run_summary(run) -> dict:
    tags = run.data.tags
    return {
        "run_id": run.info.run_id,
        "model_id": tags.get(t.MODEL_ID),
        "model_uri": f"models:/{tags[t.MODEL_ID]}" if tags.get(t.MODEL_ID) else None,
        "metrics": dict(run.data.metrics),
        "objective_metric": tags.get(t.OBJECTIVE_METRIC),
        "objective_value": float(tags[t.OBJECTIVE_VALUE]) if tags.get(t.OBJECTIVE_VALUE) else None,
        "tags": {k: v for k, v in tags.items() if k in t.LINEAGE_TAGS},
    }
