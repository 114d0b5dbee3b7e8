"""Katib on Kubernetes: submit, wait, best, delete and logs of an Experiment.

The same Experiment YAML the local engine runs (validated by ``spec.load_spec`` first) is created
as a ``kubeflow.org/v1beta1`` Experiment in ``experiment.namespace``, named after the data version
(``experiment.naming.experiment_name``), so a second submit for the same data finds the Experiment
already there instead of creating a duplicate. ``status_document`` turns the Experiment and its
Trials into the status document of the local engine (docs/CONTRACTS.md), written to
``<state>/experiments/<name>/experiment.json`` so ``mlops model train`` and ``notify`` work unchanged.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pyhelpers import k8s
from pyhelpers.errors import BadInput, OperationFailed
from pyhelpers.experiment import status as st
from pyhelpers.fsutil import atomic_write_json, atomic_write_text

GROUP, VERSION = "kubeflow.org", "v1beta1"
EXPERIMENTS, TRIALS = "experiments", "trials"
EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"  # Katib labels Trials with their Experiment
TRIAL_LABEL = "katib.kubeflow.org/trial"  # ... and the trial's pods with the Trial
STDOUT_SIDECAR = "metrics-logger-and-collector"  # with the StdOut collector the sidecar prints the log
COUNT_KEYS = ("trials", "trialsSucceeded", "trialsFailed", "trialsKilled", "trialMetricsUnavailable",
              "trialsRunning", "trialsPending", "trialsEarlyStopped")
LIST_KEYS = ("succeededTrialList", "failedTrialList", "killedTrialList", "metricsUnavailableTrialList",
             "runningTrialList", "pendingTrialList", "earlyStoppedTrialList")
FINAL = ("Succeeded", "Failed")
TRIAL_FINAL = ("Succeeded", "Failed", "MetricsUnavailable", "Killed", "EarlyStopped")


def _log(message: str) -> None:
    k8s.log(f"[katib] {message}")


def spec_hash(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def resolve_name(cfg, spec_file: Path | None, name: str | None, data_version: str | None,
                 spec=None) -> tuple[str, str, str | None]:
    """(experiment name, data version, git commit): ``--name`` or metadata.name + the data version of HEAD."""
    from pyhelpers import data, scm
    from pyhelpers.experiment import katib_config
    from pyhelpers.experiment.naming import experiment_name
    from pyhelpers.experiment.spec import load_spec

    commit = scm.head(cfg.root)
    if data_version is None:
        if commit is None:
            raise BadInput(f"{cfg.root} has no git commit: commit the .dvc files or give --data-version")
        data_version = data.data_version(cfg, "HEAD")
    if name:
        return name, data_version, commit
    if spec is None:  # the caller's spec was validated against the cluster's katib-config already
        spec = load_spec(spec_file or cfg.experiment_file, engine="katib", katib_config=katib_config.for_project(cfg))
    return experiment_name(spec.name, data_version), data_version, commit


def build_object(cfg, spec, name: str, data_version: str, commit: str | None, image: str | None = None) -> dict:
    """The Experiment to create: the validated YAML with our name, namespace and lineage annotations,
    its trials wired to the training image of this data version and commit and to exactly this
    data (``trial_wiring``; ``image`` None: the image ``mlopsImage`` builds for them)."""
    from pyhelpers.experiment import trial_wiring as tw

    if not commit:
        raise BadInput(f"{cfg.root} has no git commit: trials run the image built for a commit")
    image = tw.check_image(image) if image else tw.default_image(cfg, data_version, commit)
    wired = tw.wire(spec.spec, image, tw.data_wiring(cfg, commit, data_version), source=str(spec.source))
    meta = dict(spec.doc.get("metadata") or {})
    source = Path(spec.source).resolve()
    try:
        source_rel = str(source.relative_to(cfg.root.resolve()))
    except ValueError:
        source_rel = str(source)
    annotations = {**(meta.get("annotations") or {}), "mlops.io/data-version": data_version,
                   "mlops.io/spec-file": source_rel, "mlops.io/spec-hash": spec_hash(spec.spec),
                   "mlops.io/image": image, "mlops.io/git-commit": commit}
    labels = {**(meta.get("labels") or {}), "app.kubernetes.io/managed-by": "mlops",
              "mlops.io/project": cfg.project, "mlops.io/data-version": data_version}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Experiment",
            "metadata": {"name": name, "namespace": cfg.experiment.namespace, "labels": labels,
                         "annotations": annotations},
            "spec": wired}


def dry_run(cfg, spec, name: str, data_version: str, commit: str | None, image: str | None = None) -> dict[str, Any]:
    """The Experiment as it would be created and the first Trial's run spec as Katib would render
    it, checked against the Kubernetes schema of its kind; nothing is sent to the cluster."""
    from pyhelpers.experiment import trial_wiring as tw

    obj = build_object(cfg, spec, name, data_version, commit, image)
    assignments = tw.example_assignments(obj["spec"])
    trial = tw.trial_name(name)
    run_spec = tw.run_spec(obj, assignments, trial)
    return {"name": name, "namespace": obj["metadata"]["namespace"], "data_version": data_version,
            "git_commit": commit, "image": obj["metadata"]["annotations"]["mlops.io/image"], "dry_run": True,
            "status": "dry-run", "experiment": obj,
            "trial": {"name": trial, "parameterAssignments": [{"name": k, "value": v} for k, v in assignments.items()],
                      "runSpec": run_spec},
            "schema": tw.validate_run_spec(run_spec)}


def submit(cfg, spec, name: str, data_version: str, commit: str | None, image: str | None = None) -> dict[str, Any]:
    """Create the Experiment unless it exists (409 AlreadyExists: report the existing one)."""
    from kubernetes.client.rest import ApiException

    body = build_object(cfg, spec, name, data_version, commit, image)  # bad input before any API call
    image = body["metadata"]["annotations"]["mlops.io/image"]
    custom, _ = k8s.clients()
    ns = cfg.experiment.namespace
    what = f"submit experiment {name}"
    try:
        obj = k8s.call(custom.create_namespaced_custom_object, GROUP, VERSION, ns, EXPERIMENTS, body, what=what)
        created = True
        _log(f"created Experiment {ns}/{name} for data {data_version}")
    except ApiException as exc:
        if exc.status != 409:
            raise k8s.api_error(exc, what) from None
        obj = get_experiment(custom, ns, name)
        created = False
    ann = obj["metadata"].get("annotations") or {}
    if not created and ann.get("mlops.io/data-version") not in (None, data_version):
        raise BadInput(f"an Experiment {ns}/{name} already exists for data {ann['mlops.io/data-version']}, "
                       f"not {data_version}; choose another --name or `mlops experiment delete` it")
    spec_changed = not created and ann.get("mlops.io/spec-hash") not in (None, spec_hash(spec.spec))
    image_changed = not created and ann.get("mlops.io/image") != image
    phase = st.phase(obj)
    if not created:
        _log(f"Experiment {ns}/{name} already exists for data {data_version} ({phase}): not creating another")
        if spec_changed:
            _log("the Experiment file changed since it was submitted; `mlops experiment delete` it to rerun")
        if image_changed:
            _log(f"its trials run image {ann.get('mlops.io/image')}, not {image}; `mlops experiment delete` it "
                 "to rerun with this code")
    atomic_write_text(cfg.state_path("experiments", "latest"), name + "\n")
    return {"name": name, "namespace": ns, "data_version": data_version, "git_commit": commit,
            "created": created, "status": "created" if created else "unchanged", "phase": phase,
            "spec_changed": spec_changed, "image": ann.get("mlops.io/image") or image,
            "image_changed": image_changed, "uid": obj["metadata"].get("uid")}


def get_experiment(custom, ns: str, name: str) -> dict:
    from kubernetes.client.rest import ApiException

    what = f"get experiment {name}"
    try:
        return k8s.call(custom.get_namespaced_custom_object, GROUP, VERSION, ns, EXPERIMENTS, name, what=what)
    except ApiException as exc:
        if exc.status == 404:
            raise BadInput(f"no Experiment {name!r} in namespace {ns!r} (submit it with `mlops experiment submit`)") from None
        raise k8s.api_error(exc, what) from None


def list_trials(custom, ns: str, name: str) -> list[dict]:
    from kubernetes.client.rest import ApiException

    what = f"list trials of {name}"
    try:
        listed = k8s.call(custom.list_namespaced_custom_object, GROUP, VERSION, ns, TRIALS,
                          label_selector=f"{EXPERIMENT_LABEL}={name}", what=what)
    except ApiException as exc:
        raise k8s.api_error(exc, what) from None
    items = listed.get("items") or []
    return sorted(items, key=lambda t: ((t.get("metadata") or {}).get("creationTimestamp") or "", t["metadata"]["name"]))


def trial_condition(trial: dict) -> tuple[str, dict]:
    """The trial's latest true condition, in the local engine's words (Created counts as Running)."""
    for cond in reversed((trial.get("status") or {}).get("conditions") or []):
        if cond.get("status") == "True":
            return ("Running" if cond["type"] == "Created" else cond["type"]), cond
    return "Running", {}


def trial_document(trial: dict) -> dict:
    status = trial.get("status") or {}
    condition, cond = trial_condition(trial)
    return {
        "name": trial["metadata"]["name"],
        "parameterAssignments": (trial.get("spec") or {}).get("parameterAssignments") or [],
        "condition": condition,
        "message": cond.get("message", ""),
        "observation": {"metrics": (status.get("observation") or {}).get("metrics") or []},
        "exitCode": None,  # Katib does not report it; `mlops experiment logs TRIAL` shows the output
        "startTime": status.get("startTime"),
        "completionTime": status.get("completionTime"),
        "log": None,
    }


def status_document(exp: dict, trials: list[dict]) -> dict:
    """The Experiment in the local engine's shape: zero counts and empty lists filled in, plus ``trials``."""
    meta = {k: v for k, v in (exp.get("metadata") or {}).items() if k != "managedFields"}
    status = dict(exp.get("status") or {})
    status.setdefault("conditions", [])
    for key in COUNT_KEYS:
        status[key] = status.get(key) or 0
    for key in LIST_KEYS:
        status[key] = status.get(key) or []
    return {"apiVersion": exp.get("apiVersion", f"{GROUP}/{VERSION}"), "kind": "Experiment", "metadata": meta,
            "spec": exp.get("spec") or {}, "status": status, "trials": [trial_document(t) for t in trials]}


def failures(doc: dict) -> dict[str, Any]:
    """Why an Experiment failed: its condition's reason/message and the failed trials with theirs."""
    cond = next((c for c in reversed(doc["status"].get("conditions") or []) if c.get("status") == "True"), {})
    failed = [{"name": t["name"], "condition": t["condition"], "message": t["message"]}
              for t in doc["trials"] if t["condition"] in ("Failed", "MetricsUnavailable")]
    return {"reason": cond.get("reason"), "message": cond.get("message"), "failed_trials": failed}


def save(cfg, doc: dict) -> Path:
    name = doc["metadata"]["name"]
    path = st.experiment_dir(cfg.state, name) / st.STATUS_FILE
    atomic_write_json(path, doc)
    atomic_write_text(cfg.state_path("experiments", "latest"), name + "\n")
    return path


def result(cfg, doc: dict) -> tuple[dict[str, Any], int]:
    """Write the status document; (result, exit code: 0 when Succeeded with a best trial)."""
    path = save(cfg, doc)
    phase = st.phase(doc)
    best = st.best_trial(doc)
    data = {"name": doc["metadata"]["name"], "namespace": doc["metadata"].get("namespace"), "phase": phase,
            **failures(doc), "best_trial": best, "status_file": str(path),
            "data_version": (doc["metadata"].get("annotations") or {}).get("mlops.io/data-version"),
            "counts": {k: doc["status"][k] for k in COUNT_KEYS}}
    return data, 0 if phase == "Succeeded" and best is not None else 1


def best(cfg, name: str) -> tuple[dict[str, Any], dict]:
    custom, _ = k8s.clients()
    ns = cfg.experiment.namespace
    doc = status_document(get_experiment(custom, ns, name), list_trials(custom, ns, name))
    data, code = result(cfg, doc)
    return {**data, "exit_code": code}, doc


class _Progress:
    """One line per change of phase or trial counts (Jenkins logs)."""

    def __init__(self):
        self.last = None

    def __call__(self, obj: dict) -> None:
        s = obj.get("status") or {}
        line = (f"{obj['metadata']['name']}: {st.phase(obj)}; trials {s.get('trials', 0)} "
                f"({s.get('trialsSucceeded', 0)} succeeded, {s.get('trialsFailed', 0)} failed, "
                f"{s.get('trialsRunning', 0)} running)")
        if line != self.last:
            self.last = line
            _log(line)


def wait(cfg, name: str, timeout_seconds: float) -> tuple[dict[str, Any], dict]:
    """Watch the Experiment until Succeeded or Failed, then write its status document."""
    custom, _ = k8s.clients()
    ns = cfg.experiment.namespace
    get_experiment(custom, ns, name)  # a clear exit 2 when it does not exist
    try:
        k8s.wait_for(custom, GROUP, VERSION, ns, EXPERIMENTS, name, lambda o: st.phase(o) in FINAL,
                     timeout_seconds, f"wait for experiment {name}", _Progress())
    except k8s.WaitTimeout as exc:
        s = exc.last.get("status") or {}
        raise OperationFailed(f"experiment {name} is still {st.phase(exc.last)} after {timeout_seconds:g}s "
                              f"({s.get('trials', 0)} trials, {s.get('trialsSucceeded', 0)} succeeded); "
                              "it keeps running in the cluster") from None
    return best(cfg, name)


def delete(cfg, name: str) -> dict[str, Any]:
    from kubernetes.client.rest import ApiException

    custom, _ = k8s.clients()
    ns = cfg.experiment.namespace
    what = f"delete experiment {name}"
    try:
        # Katib's Trials are owned by the Experiment: the garbage collector removes them too.
        k8s.call(custom.delete_namespaced_custom_object, GROUP, VERSION, ns, EXPERIMENTS, name,
                 propagation_policy="Background", what=what)
    except ApiException as exc:
        if exc.status == 404:
            return {"name": name, "namespace": ns, "deleted": False, "status": "unchanged"}
        raise k8s.api_error(exc, what) from None
    _log(f"deleted Experiment {ns}/{name}")
    return {"name": name, "namespace": ns, "deleted": True, "status": "deleted"}


def logs(cfg, trial_name: str, container: str | None = None) -> dict[str, Any]:
    """The output of a trial's pod (pods are labelled ``katib.kubeflow.org/trial=<trial>``)."""
    from kubernetes.client.rest import ApiException

    custom, core = k8s.clients()
    ns = cfg.experiment.namespace
    what = f"logs of trial {trial_name}"
    try:
        trial = k8s.call(custom.get_namespaced_custom_object, GROUP, VERSION, ns, TRIALS, trial_name, what=what)
    except ApiException as exc:
        if exc.status == 404:
            raise BadInput(f"no Trial {trial_name!r} in namespace {ns!r}") from None
        raise k8s.api_error(exc, what) from None
    try:
        pods = k8s.call(core.list_namespaced_pod, ns, label_selector=f"{TRIAL_LABEL}={trial_name}", what=what)
    except ApiException as exc:
        raise k8s.api_error(exc, what) from None
    if not pods.items:
        raise OperationFailed(f"trial {trial_name} has no pods left (Katib deletes them once the trial ends "
                              "unless the trial template keeps them)")
    pod = pods.items[0]
    names = [c.name for c in pod.spec.containers or []]
    spec = trial.get("spec") or {}
    if container is None:
        collector = ((spec.get("metricsCollector") or {}).get("collector") or {}).get("kind")
        container = STDOUT_SIDECAR if collector == "StdOut" and STDOUT_SIDECAR in names else None
        container = container or spec.get("primaryContainerName") or (names[0] if names else None)
    try:
        text = k8s.call(core.read_namespaced_pod_log, pod.metadata.name, ns, container=container, what=what)
    except ApiException as exc:
        raise k8s.api_error(exc, what) from None
    return {"trial": trial_name, "namespace": ns, "pod": pod.metadata.name, "container": container, "log": text}
