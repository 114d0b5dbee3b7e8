"""Render the champion model as a SeldonDeployment or a KServe InferenceService (``deploy.target``)
and the Argo CD Application that syncs it.

Output is deterministic: documents are built in a fixed key order, dumped without sorting,
and carry no timestamps, so an unchanged champion renders byte-identical YAML (and the
GitOps push sees "unchanged").

``render_manifests(cfg, champion)`` returns both files, keyed by their path in the GitOps repo:
- ``cfg.gitops_path`` (default ``apps/<project>/seldondeployment.yaml``, or
  ``apps/<project>/inferenceservice.yaml`` for kserve): the serving manifest;
- ``application_path(cfg)`` (default ``argocd/<application>.yaml``): the Argo CD Application whose
  source is the serving manifest's folder. It lives outside that folder so the app never syncs itself.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pyhelpers.errors import BadInput
from pyhelpers.redaction import redact_url

SELDON_API = "machinelearning.seldon.io/v1"
KSERVE_API = "serving.kserve.io/v1beta1"
# What each deploy.target renders: apiVersion and kind of the serving manifest.
SERVING_KINDS = {"seldon": (SELDON_API, "SeldonDeployment"), "kserve": (KSERVE_API, "InferenceService")}
# The first line of every manifest mlops renders: a file that starts otherwise is someone else's.
HEADER_PREFIX = "# Rendered by mlops "
ARGOCD_API = "argoproj.io/v1alpha1"
REQUIRED_CHAMPION_KEYS = ("name", "version", "artifact_uri")
# Storage schemes Seldon's storage initializer can fetch a model from.
CLUSTER_SCHEMES = ("s3", "gs", "https", "http", "pvc")
# Champion keys carried as annotations, in this order (lineage reads them back from the manifest).
ANNOTATED_KEYS = (
    ("name", "model-name"),
    ("version", "model-version"),
    ("model_uri", "model-uri"),
    ("run_id", "run-id"),
    ("data_version", "data-version"),
    ("git_commit", "git-commit"),
    ("experiment", "experiment"),
    ("best_trial", "best-trial"),
    ("objective_metric", "objective-metric"),
    ("objective_value", "objective-value"),
    ("artifact_uri", "artifact-uri"),
)
PREFIX = "mlops.io/"


def check_champion(champion: Any, source: str | None = None) -> dict:
    if not isinstance(champion, dict):
        raise BadInput("champion description must be a JSON object", source=source)
    for key in REQUIRED_CHAMPION_KEYS:
        value = champion.get(key)
        if value is None or str(value).strip() == "":
            raise BadInput(f"champion description: missing key {key!r}", source=source)
    return champion


def serving_name(model_name: str) -> str:
    """The model's name in Seldon's graph and in V2 URLs: a DNS-1123 label (it also names a container)."""
    name = re.sub(r"[^a-z0-9-]+", "-", str(model_name).lower()).strip("-")[:63].strip("-")
    return name or "model"


def label_value(value: Any) -> str:
    """A valid Kubernetes label value: [A-Za-z0-9._-], at most 63, alphanumeric at both ends."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", str(value))[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", text)


def application_path(cfg) -> str:
    return cfg.gitops.application_path or f"argocd/{cfg.argocd_application}.yaml"


def _is_local_profile(cfg) -> bool:
    return cfg.profile == "local"


def storage_uri(cfg, artifact_uri: str) -> str:
    """The champion's artifact location as a URI the model server can read.

    ``mlflow-artifacts:/…`` (an MLflow server proxying its store) is no storage a cluster can
    read: ``deploy.model_uri_map`` translates the longest matching prefix to the real one, else
    ``mlflow.artifacts_destination`` (the server's ``--artifacts-destination``) is put in front of
    its path, as the server itself resolves it.
    """
    uri = str(artifact_uri)
    prefixes = sorted(cfg.deploy.model_uri_map, key=len, reverse=True)
    for prefix in prefixes:
        if uri.startswith(prefix):
            uri = cfg.deploy.model_uri_map[prefix] + uri[len(prefix):]
            break
    else:
        uri = proxied_to_storage(cfg, uri)
    scheme = urlsplit(uri).scheme
    if scheme in CLUSTER_SCHEMES:
        parts = urlsplit(uri)
        if "@" in parts.netloc:
            raise BadInput(f"deploy.model_uri_map: model URI must not carry credentials ({redact_url(uri)})")
        return uri
    if scheme in ("", "file") and _is_local_profile(cfg):
        path = Path(uri[len("file://"):] if scheme == "file" else uri)
        return path.resolve().as_uri() if path.is_absolute() else (cfg.root / path).resolve().as_uri()
    raise BadInput(
        f"champion artifact_uri {redact_url(str(artifact_uri))!r} is not a storage URI the cluster can read "
        f"(profile {cfg.profile}); map it with deploy.model_uri_map, "
        "e.g. {'mlflow-artifacts:/': 's3://<bucket>/<artifacts prefix>/'}, or set mlflow.artifacts_destination "
        "to the tracking server's --artifacts-destination"
    )


def proxied_to_storage(cfg, uri: str) -> str:
    """``mlflow-artifacts:/X`` (or ``mlflow-artifacts://host/X``) -> ``<mlflow.artifacts_destination>/X``."""
    dest = cfg.mlflow.artifacts_destination
    parts = urlsplit(uri)
    if not dest or parts.scheme != "mlflow-artifacts":
        return uri
    return posixpath.join(dest.rstrip("/") + "/", parts.path.lstrip("/"))


def _annotations(champion: dict) -> dict[str, str]:
    out = {}
    for key, suffix in ANNOTATED_KEYS:
        value = champion.get(key)
        if value is not None and str(value) != "":
            out[PREFIX + suffix] = str(value)
    return out


def _labels(cfg, champion: dict) -> dict[str, str]:
    labels = {
        "app.kubernetes.io/name": label_value(cfg.project),
        "app.kubernetes.io/managed-by": "mlops",
        PREFIX + "model-name": label_value(champion["name"]),
        PREFIX + "model-version": label_value(champion["version"]),
    }
    if champion.get("run_id"):
        labels[PREFIX + "run-id"] = label_value(champion["run_id"])
    return {k: v for k, v in labels.items() if v}


def _sorted_resources(resources: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    return {kind: {k: str(v) for k, v in sorted(vals.items())} for kind, vals in sorted(resources.items())}


def render_seldon_deployment(cfg, champion: dict) -> dict:
    check_champion(champion)
    model = serving_name(champion["name"])
    graph = {
        "name": model,
        "type": "MODEL",
        "implementation": "MLFLOW_SERVER",
        "modelUri": storage_uri(cfg, champion["artifact_uri"]),
        # Storage credentials come from a Secret the cluster admin creates; never inline.
        "envSecretRefName": cfg.deploy.storage_secret,
        "children": [],
    }
    predictor: dict[str, Any] = {
        "name": "default",
        "replicas": cfg.deploy.replicas,
        "labels": _labels(cfg, champion),  # pod labels: monitors select on them
        "graph": graph,
    }
    if cfg.deploy.resources:
        predictor["componentSpecs"] = [
            {"spec": {"containers": [{"name": model, "resources": _sorted_resources(cfg.deploy.resources)}]}}
        ]
    return {
        "apiVersion": SELDON_API,
        "kind": "SeldonDeployment",
        "metadata": {
            "name": cfg.project,
            "namespace": cfg.deploy.namespace,
            "labels": _labels(cfg, champion),
            "annotations": _annotations(champion),
        },
        "spec": {
            "name": cfg.project,
            "protocol": "v2",
            "predictors": [predictor],
        },
    }


def render_inference_service(cfg, champion: dict) -> dict:
    """A KServe ``InferenceService`` serving the champion with MLServer's MLflow runtime over the V2 protocol.

    KServe picks the runtime by ``modelFormat`` (its ``kserve-mlserver`` ClusterServingRuntime lists
    ``mlflow``); the storage initializer fetches ``storageUri`` with the credentials of the Secret
    listed by ``serviceAccountName`` (``k8s/kserve-storage.yaml``). Pods get the InferenceService's
    labels (KServe's predictor merges them into the pod's) plus ``serving.kserve.io/inferenceservice``
    and ``component: predictor``, which the PodMonitor selects.
    """
    check_champion(champion)
    deploy = cfg.deploy
    model: dict[str, Any] = {
        "modelFormat": {"name": "mlflow"},
        "protocolVersion": "v2",  # Open Inference Protocol, as the local smoke test speaks
        "storageUri": storage_uri(cfg, champion["artifact_uri"]),
    }
    if deploy.resources:
        model["resources"] = _sorted_resources(deploy.resources)
    predictor: dict[str, Any] = {
        "minReplicas": deploy.replicas,
        "maxReplicas": deploy.max_replicas or deploy.replicas,
        # Storage credentials: a ServiceAccount whose Secret the cluster admin creates; never inline.
        "serviceAccountName": deploy.service_account,
        "model": model,
    }
    annotations = _annotations(champion)
    if deploy.deployment_mode:
        annotations["serving.kserve.io/deploymentMode"] = deploy.deployment_mode
    return {
        "apiVersion": KSERVE_API,
        "kind": "InferenceService",
        "metadata": {
            "name": cfg.project,
            "namespace": deploy.namespace,
            "labels": _labels(cfg, champion),
            "annotations": annotations,
        },
        "spec": {"predictor": predictor},
    }


def render_serving(cfg, champion: dict) -> dict:
    """The serving manifest of ``deploy.target``."""
    if cfg.deploy.target == "kserve":
        return render_inference_service(cfg, champion)
    return render_seldon_deployment(cfg, champion)


def other_target_paths(cfg) -> list[str]:
    """Where the other targets' manifests of this project would be (same folder, so the same Argo CD app).

    Switching ``deploy.target`` must remove the previous target's manifest, or both would serve.
    """
    folder = posixpath.dirname(cfg.gitops_path)
    out = []
    for target in SERVING_KINDS:
        if target != cfg.deploy.target:
            path = posixpath.join(folder, posixpath.basename(cfg.default_gitops_path(target)))
            if path != cfg.gitops_path:
                out.append(path)
    return out


def rendered_serving_kind(text: str) -> tuple[str, str] | None:
    """(kind, metadata.name) of a serving manifest mlops rendered; None for any other file."""
    import yaml

    if not text.startswith(HEADER_PREFIX):
        return None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if not isinstance(doc, dict):
        return None
    kinds = {kind for _, kind in SERVING_KINDS.values()}
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    return (doc["kind"], str(meta.get("name"))) if doc.get("kind") in kinds else None


def gitops_repo_url(cfg) -> str:
    """The GitOps repository as Argo CD sees it: no user-info (credentials live in Argo CD's repo secret)."""
    repo = cfg.gitops_repo
    parts = urlsplit(repo)
    if parts.scheme in ("", "file") and not re.match(r"^[\w.-]+@[\w.-]+:", repo):
        path = Path(repo[len("file://"):] if parts.scheme == "file" else repo)
        return (path if path.is_absolute() else cfg.root / path).resolve().as_uri()
    if parts.scheme:
        netloc = parts.netloc.rsplit("@", 1)[-1]
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return repo  # scp-like git@host:org/repo.git


def render_application(cfg) -> dict:
    folder = posixpath.dirname(cfg.gitops_path) or "."
    return {
        "apiVersion": ARGOCD_API,
        "kind": "Application",
        "metadata": {
            "name": cfg.argocd_application,
            "namespace": cfg.argocd.namespace,
            "labels": {"app.kubernetes.io/name": label_value(cfg.project), "app.kubernetes.io/managed-by": "mlops"},
            # Deleting the Application deletes what it deployed.
            "finalizers": ["resources-finalizer.argocd.argoproj.io"],
        },
        "spec": {
            "project": cfg.argocd.project,
            "source": {
                "repoURL": gitops_repo_url(cfg),
                "targetRevision": cfg.gitops.branch,
                "path": folder,
            },
            "destination": {"server": cfg.argocd.server, "namespace": cfg.deploy.namespace},
            "syncPolicy": {
                "automated": {"prune": True, "selfHeal": True},
                "syncOptions": ["CreateNamespace=true"],
            },
        },
    }


def to_yaml(doc: dict, header: str) -> str:
    import yaml

    body = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True, width=4096)
    return f"# {header}\n{body}"


def render_manifests(cfg, champion: dict) -> dict[str, str]:
    """Relative GitOps path -> YAML text (the serving manifest of deploy.target and the Argo CD Application)."""
    check_champion(champion)
    origin = champion.get("model_uri") or f"models:/{champion['name']}/{champion['version']}"
    note = "edits are overwritten by the next `mlops deploy push`"
    serving = to_yaml(render_serving(cfg, champion), f"Rendered by mlops from {origin}; {note}.")
    app = to_yaml(render_application(cfg), f"Rendered by mlops for {cfg.gitops_path}; {note}.")
    return {cfg.gitops_path: serving, application_path(cfg): app}


def write_manifests(files: dict[str, str], out_dir: str | Path) -> list[dict[str, Any]]:
    """Write each file atomically under ``out_dir``; report which changed."""
    import hashlib

    from pyhelpers.fsutil import atomic_write_text

    report = []
    for rel, text in files.items():
        path = Path(out_dir) / rel
        changed = not path.is_file() or path.read_text(encoding="utf-8") != text
        if changed:
            atomic_write_text(path, text)
        report.append({
            "path": str(path),
            "gitops_path": rel,
            "changed": changed,
            "sha256": hashlib.sha256(text.encode()).hexdigest(),
        })
    return report
