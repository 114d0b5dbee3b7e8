"""Lineage: from what is deployed back to the data it was trained on.

deployed manifest (GitOps repo, branch, path, commit)
  -> SeldonDeployment or InferenceService annotations ``mlops.io/model-name``/``model-version``/``run-id``/``data-version``
  -> registered model version (MLflow registry) -> training run (params, metrics, lineage tags)
  -> Experiment and its best trial (status document) -> data version and git commit.

Each hop is cross-checked against the previous one; disagreements are reported, not hidden.
"""

from __future__ import annotations

from pathlib import Path

from pyhelpers.errors import BadInput, OperationFailed
from pyhelpers.model import tracking as t

PREFIX = "mlops.io/"


# -- the deployed manifest --------------------------------------------------------------------
def read_deployed(cfg) -> dict:
    """The serving manifest at ``gitops.branch:gitops.path`` of the GitOps repository.

    When deploy.target was switched but not pushed yet, the other target's manifest in the same
    folder is what is deployed, and is read instead.
    """
    from pyhelpers.deploy.gitops import fetched_branch, is_local_repo
    from pyhelpers.deploy.render import other_target_paths
    from pyhelpers.redaction import redact_url

    repo, branch, path = cfg.gitops_repo, cfg.gitops.branch, cfg.gitops_path
    where = {"repo": redact_url(repo), "branch": branch, "path": path, "fallbacks": other_target_paths(cfg)}
    if is_local_repo(repo):
        folder = Path(repo[len("file://"):] if repo.startswith("file://") else repo)
        folder = folder if folder.is_absolute() else cfg.root / folder
        if not folder.exists():
            raise OperationFailed(f"nothing deployed yet: GitOps repository {folder} does not exist; "
                                  "run `mlops line deploy` (train, register, push)")
        return _read_at(folder, f"refs/heads/{branch}", where)
    with fetched_branch(cfg) as folder:
        return _read_at(folder, "FETCH_HEAD", where)


def _read_at(folder: Path, rev: str, where: dict) -> dict:
    from pyhelpers import scm

    commit = scm.git(folder, "rev-parse", "--verify", "-q", f"{rev}^{{commit}}", check=False).stdout.strip()
    if not commit:
        raise OperationFailed(f"nothing deployed: branch {where['branch']!r} does not exist in {where['repo']}")
    fallbacks = where.pop("fallbacks")
    for path in (where["path"], *fallbacks):
        text = scm.show(folder, commit, path)
        if text is not None:
            return {**where, "path": path, "commit": commit, "text": text}
    raise OperationFailed(f"nothing deployed: {where['path']} is not on {where['branch']} of {where['repo']}")


SERVING_KINDS = ("SeldonDeployment", "InferenceService")


def serving_manifest(text: str, source: str) -> dict:
    """The SeldonDeployment or InferenceService document of a manifest file."""
    import yaml

    try:
        docs = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    except yaml.YAMLError as exc:
        raise BadInput(f"invalid YAML: {' '.join(str(exc).split())}", source=source) from None
    doc = next((d for d in docs if d.get("kind") in SERVING_KINDS), None)
    if doc is None:
        raise BadInput("no SeldonDeployment or InferenceService in the manifest", source=source)
    return doc


def storage_field(doc: dict) -> tuple[str, str | None]:
    """(field name, value) of where the manifest tells the model server to fetch the model from."""
    spec = doc.get("spec") or {}
    if doc.get("kind") == "InferenceService":
        model = ((spec.get("predictor") or {}).get("model")) or {}
        return "storageUri", model.get("storageUri")
    predictors = spec.get("predictors") or [{}]
    return "modelUri", ((predictors[0] or {}).get("graph") or {}).get("modelUri")


def deployed_model(doc: dict, source: str) -> dict:
    """Model name, version, run id, data version and model URI the manifest says it serves."""
    meta = doc.get("metadata") or {}
    ann, labels = meta.get("annotations") or {}, meta.get("labels") or {}

    def value(key: str, required: bool = False) -> str | None:
        found = ann.get(PREFIX + key) or labels.get(PREFIX + key)
        if required and not found:
            raise BadInput(f"metadata.annotations.{PREFIX}{key}: missing (was the manifest rendered by "
                           "`mlops deploy render`?)", source=source)
        return str(found) if found else None

    field, uri = storage_field(doc)
    named = "inference_service" if doc.get("kind") == "InferenceService" else "seldon_deployment"
    return {
        named: meta.get("name"),
        "kind": doc.get("kind"),
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "model_name": value("model-name", required=True),
        "model_version": value("model-version", required=True),
        "run_id": value("run-id"),
        "data_version": value("data-version"),
        "model_uri": uri,
        "model_uri_field": field,
    }


# -- back through the registry, the run and the Experiment ------------------------------------
def lineage(cfg, manifest: str | None = None) -> dict:
    if manifest:
        path = Path(manifest)
        if not path.is_file():
            raise BadInput("manifest file not found", source=manifest)
        deployed = {"file": str(path), "commit": None}
        text, source = path.read_text(encoding="utf-8"), str(path)
    else:
        deployed = read_deployed(cfg)
        text = deployed.pop("text")
        source = f"{deployed['repo']}@{deployed['branch']}:{deployed['path']}"
    deployed.update(deployed_model(serving_manifest(text, source), source))

    from mlflow.exceptions import MlflowException

    client = t.connect(cfg)
    name, version = deployed["model_name"], deployed["model_version"]
    try:
        mv = client.get_model_version(name, version)
        run = client.get_run(mv.run_id)
    except MlflowException as exc:
        from pyhelpers.redaction import redact_url

        raise t.mlflow_failure(f"deployed model {name} v{version} not found in the registry "
                               f"{redact_url(cfg.tracking_uri)}", exc) from None
    vtags, rtags = mv.tags or {}, run.data.tags
    model_id = vtags.get(t.MODEL_ID) or (mv.source or "").removeprefix("models:/")
    model = {
        "name": name, "version": str(mv.version), "aliases": list(mv.aliases or []),
        "is_champion": t.CHAMPION in (mv.aliases or []), "model_id": model_id, "source": mv.source,
        "gate": vtags.get("mlops.gate"), "gate_reason": vtags.get("mlops.gate_reason"),
    }
    run_doc = {
        "run_id": run.info.run_id, "status": run.info.status, "mlflow_experiment_id": run.info.experiment_id,
        "params": dict(run.data.params), "metrics": dict(run.data.metrics),
        "tags": {k: v for k, v in rtags.items() if k in t.LINEAGE_TAGS},
    }
    experiment = experiment_summary(cfg, rtags.get(t.EXPERIMENT))
    data_version = rtags.get(t.DATA_VERSION)

    checks = [
        _check("manifest run id is the version's run", deployed["run_id"], run.info.run_id),
        _check("manifest data version is the run's", deployed["data_version"], data_version),
        _check("version's data version is the run's", vtags.get(t.DATA_VERSION), data_version),
    ]
    if model_id and deployed["model_uri"]:
        checks.append({"check": f"{deployed['model_uri_field']} holds the version's model files",
                       "ok": model_id in deployed["model_uri"],
                       "detail": f"{deployed['model_uri']} ~ {model_id}"})
    if experiment.get("found"):
        # The status document holds the latest run of that Experiment name. It describes this
        # model's tuning only when its best trial is the one trained; otherwise the run's tags are
        # the record (e.g. the Experiment ran again on new data and lost the gate).
        experiment["same_run"] = (experiment.get("best_trial") == rtags.get(t.BEST_TRIAL)
                                  and experiment.get("parameters") == run_doc["params"])
        if experiment["same_run"]:
            checks.append(_check("Experiment's data version is the run's", experiment.get("data_version"),
                                 data_version))
        else:
            experiment["note"] = (f"the status document on this machine is from another run of {experiment['name']} "
                                  f"(best trial {experiment.get('best_trial')}, data {experiment.get('data_version')}); "
                                  "the run's tags are the record")
    return {
        "deployed": deployed, "model": model, "run": run_doc, "experiment": experiment,
        "data_version": data_version, "git_commit": rtags.get(t.GIT_COMMIT),
        "build_url": rtags.get(t.BUILD_URL), "job_name": rtags.get(t.JOB_NAME),
        "checks": checks, "consistent": all(c["ok"] for c in checks),
    }


def _check(what: str, claimed: str | None, actual: str | None) -> dict:
    return {"check": what, "ok": claimed is None or claimed == actual, "detail": f"{claimed} vs {actual}"}


def experiment_summary(cfg, name: str | None) -> dict:
    """The Experiment the run came from, from its status document when this machine has it."""
    from pyhelpers.experiment.status import best_trial, load_status, phase

    if not name:
        return {"name": None, "found": False}
    try:
        doc = load_status(cfg, name)
    except BadInput:
        return {"name": name, "found": False, "note": "no status document on this machine"}
    best = best_trial(doc) or {}
    objective = ((doc.get("spec") or {}).get("objective") or {}).get("objectiveMetricName")
    observed = (best.get("metrics") or {}).get(objective) or {}
    ann = (doc.get("metadata") or {}).get("annotations") or {}
    status = doc.get("status") or {}
    return {
        "name": name, "found": True, "phase": phase(doc), "best_trial": best.get("name"),
        "parameters": best.get("parameters"), "objective_metric": objective,
        "objective_value": observed.get("latest"), "data_version": ann.get("mlops.io/data-version"),
        "git_commit": ann.get("mlops.io/git-commit"), "trials": status.get("trials"),
        "started": status.get("startTime"), "completed": status.get("completionTime"),
    }


def human(doc: dict) -> str:
    d, m, r, e = doc["deployed"], doc["model"], doc["run"], doc["experiment"]
    where = d.get("file") or f"{d['repo']} {d['branch']}:{d['path']} @ {(d.get('commit') or '')[:12]}"
    metrics = " ".join(f"{k}={v:.6g}" for k, v in sorted(r["metrics"].items()))
    lines = [
        f"deployed    {d['name']} ({d['kind']}, {where})",
        f"model       {m['name']} v{m['version']}{' (champion)' if m['is_champion'] else ' (not champion now)'}"
        f"  {d.get('model_uri') or ''}",
        f"run         {r['run_id']} {r['status']}  {metrics}",
    ]
    if e.get("found") and e.get("same_run"):
        lines.append(f"experiment  {e['name']} ({e['phase']}), best trial {e['best_trial']} "
                     f"{e['objective_metric']}={e['objective_value']}")
    elif e.get("found"):
        lines.append(f"experiment  {e['name']}, best trial {r['tags'].get(t.BEST_TRIAL)} ({e['note']})")
    else:
        lines.append(f"experiment  {e.get('name')} ({e.get('note', 'unknown')})")
    lines += [f"data        {doc['data_version'] or 'unknown'}", f"code        git {doc['git_commit'] or 'unknown'}"]
    if doc.get("build_url"):
        lines.append(f"build       {doc['build_url']}")
    for c in doc["checks"]:
        if not c["ok"]:
            lines.append(f"WARNING     {c['check']}: {c['detail']}")
    return "\n".join(lines)
