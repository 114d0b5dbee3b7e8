"""The project configuration ``mlops.yaml``: schema, profiles, environment overrides, resolved paths.

The ``local`` profile is the default: every piece of state lives under ``<project>/.mlops/``
(DVC remote folder, MLflow SQLite store and artifacts, GitOps bare repository, notification
log, experiment results). Other profiles are overlays declared under ``profiles:`` and
selected with ``--profile`` or ``MLOPS_PROFILE``.

Secrets are never part of this file: they come from the environment (see ``CREDENTIALS``).
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pyhelpers.errors import BadInput
from pyhelpers.redaction import (  # noqa: F401 (re-exported: the names callers know)
    AWS_CREDENTIAL_VARS,
    CREDENTIALS,
    redact_secrets,
    redact_url,
    secret_values,
)
from pyhelpers.yamlsrc import SourcedYaml, load_yaml_file

CONFIG_FILE = "mlops.yaml"
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

# Environment variables that override config keys (documented in README "Configuration").
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "MLFLOW_TRACKING_URI": ("mlflow", "tracking_uri"),
    "MLFLOW_S3_ENDPOINT_URL": ("mlflow", "s3_endpoint_url"),
    "MLOPS_DVC_REMOTE_URL": ("data", "remote_url"),
    "AWS_ENDPOINT_URL": ("data", "endpoint_url"),
    "MLOPS_GITOPS_REPO": ("gitops", "repo"),
    "MLOPS_SLACK_CHANNEL": ("notify", "slack_channel"),
    "MLOPS_GITHUB_REPO": ("github", "repo"),
    "MLOPS_K8S_NAMESPACE": ("experiment", "namespace"),
}

SECRET_LIKE = re.compile(r"(token|password|passwd|secret|access_key|api_key|webhook)", re.I)


def _no_userinfo(value: str | None) -> str | None:
    """URLs in mlops.yaml are shown in logs and written to .dvc/config.local: no user:secret@ in them."""
    if value and re.search(r"://[^/@\s]+@", value):
        raise ValueError("must not carry credentials (user:secret@); they come from the environment "
                         "or the AWS credential files")
    return value


def _http_endpoint(value: str | None) -> str | None:
    _no_userinfo(value)
    if value and not re.match(r"^https?://[^/\s]+", value):
        raise ValueError("must be an http(s):// URL of an S3-compatible endpoint, e.g. http://minio.example:9000")
    return value


class _Section(BaseModel):
    # allow_inf_nan=False: YAML's .inf/.nan are numbers to PyYAML, never a sensible setting here
    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)


class DataConfig(_Section):
    paths: list[str] = Field(default_factory=lambda: ["data"])  # DVC-tracked outputs
    remote: str = "storage"  # DVC remote name
    remote_url: str | None = None  # None: <state>/dvc-remote (local profile)
    endpoint_url: str | None = None  # S3-compatible endpoint (MinIO, Ceph, moto)

    @field_validator("remote_url")
    @classmethod
    def _remote_without_secrets(cls, v: str | None) -> str | None:
        return _no_userinfo(v)

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        return _http_endpoint(v)


class ImageConfig(_Section):
    name: str = ""  # e.g. registry.example.com/team/taxi-fare-train
    dockerfile: str = "Dockerfile"
    context: str = "."


class ExperimentConfig(_Section):
    file: str = "katib/experiment.yaml"
    engine: Literal["local", "katib"] = "local"
    namespace: str = "kubeflow"
    # Namespace of Katib's control plane: its katib-config ConfigMap (algorithm -> suggestion service)
    # is read from there when a spec is validated for the cluster (docs/katib.md).
    katib_namespace: str = "kubeflow"
    image_paths: dict[str, str] = Field(default_factory=dict)  # image path -> local folder
    timeout_minutes: int = Field(default=240, gt=0)
    # Katib trials (docs/cluster.md): a Secret in `namespace` with the DVC remote's storage
    # credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), given only to the data init
    # container; "" = none (pod identity such as IRSA).
    data_secret: str = "mlops-data"

    @field_validator("data_secret")
    @classmethod
    def _secret_name(cls, v: str) -> str:
        if v and (not DNS1123.match(v) or len(v) > 253):
            raise ValueError("must be the name of a Kubernetes Secret (lowercase letters, digits, '-'), or ''")
        return v


class TrainingConfig(_Section):
    # Command run with the best parameters; None: the Experiment's trial command.
    command: list[str] | None = None


class MlflowConfig(_Section):
    tracking_uri: str | None = None  # None: sqlite:///<state>/mlflow/mlflow.db
    s3_endpoint_url: str | None = None
    experiment: str | None = None  # None: project name
    registered_model: str | None = None  # None: project name
    min_improvement: float = Field(default=0.0, ge=0)  # relative gain needed to promote
    # The tracking server's --artifacts-destination (e.g. s3://bucket/mlflow): a proxied model URI
    # mlflow-artifacts:/X is stored at <artifacts_destination>/X, which is what Seldon reads.
    artifacts_destination: str | None = None

    @field_validator("s3_endpoint_url")
    @classmethod
    def _s3_endpoint(cls, v: str | None) -> str | None:
        return _http_endpoint(v)

    @field_validator("artifacts_destination")
    @classmethod
    def _storage_root(cls, v: str | None) -> str | None:
        _no_userinfo(v)
        if v is not None and not re.match(r"^(s3|gs|wasbs|abfss|hdfs)://[^/\s]+", v):
            raise ValueError("must be the tracking server's --artifacts-destination, e.g. s3://bucket/mlflow")
        return v


class GitOpsConfig(_Section):
    repo: str | None = None  # None: bare repository <state>/gitops.git
    branch: str = "main"
    path: str | None = None  # None: apps/<project>/seldondeployment.yaml (inferenceservice.yaml for kserve)
    author_name: str = "mlops-bot"
    author_email: str = "mlops-bot@localhost"
    push_retries: int = Field(default=3, ge=0)
    # Where the Argo CD Application goes; outside the app's folder so the app does not sync itself.
    application_path: str | None = None  # None: argocd/<application>.yaml


class DeployConfig(_Section):
    # seldon: a SeldonDeployment (Seldon Core v1); kserve: a KServe InferenceService (docs/deploy.md)
    target: Literal["seldon", "kserve"] = "seldon"
    namespace: str = "models"
    replicas: int = Field(default=1, ge=1)  # kserve: predictor.minReplicas
    max_replicas: int | None = Field(default=None, ge=1)  # kserve: predictor.maxReplicas (None: = replicas)
    resources: dict[str, dict[str, str]] = Field(default_factory=dict)
    storage_secret: str = "mlops-storage"  # envSecretRefName: a Secret the cluster admin creates
    # kserve: the predictor's serviceAccountName; its Secret carries the S3 keys and endpoint annotations
    service_account: str = "mlops-kserve"
    # kserve: annotation serving.kserve.io/deploymentMode (None: the cluster's default). KServe v0.20
    # calls the modes Knative and Standard and still accepts their older names Serverless and RawDeployment.
    deployment_mode: Literal["Knative", "Standard", "Serverless", "RawDeployment"] | None = None
    # Not 8080/8082: Jenkins and other servers' defaults; a taken port is reported with its holder.
    serve_port: int = Field(default=8765, gt=0, lt=65536)
    metrics_port: int = Field(default=8766, gt=0, lt=65536)
    # Artifact URI prefix -> storage URI Seldon can read, e.g. {"mlflow-artifacts:/": "s3://mlflow/artifacts/"}
    model_uri_map: dict[str, str] = Field(default_factory=dict)
    mlserver_version: str = "1.7.1"  # MLServer and mlserver-mlflow of the local serving env
    serving_envs_dir: str | None = None  # None: <state>/serving-envs ($MLOPS_SERVING_ENVS_DIR wins)
    ready_timeout_seconds: int = Field(default=120, gt=0)  # local MLServer readiness wait

    @field_validator("service_account")
    @classmethod
    def _service_account_name(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", v) or len(v) > 253:
            raise ValueError("must be the name of a Kubernetes ServiceAccount (lowercase letters, digits, '-', '.')")
        return v

    @field_validator("max_replicas")
    @classmethod
    def _max_not_below_min(cls, v: int | None, info) -> int | None:
        low = info.data.get("replicas")
        if v is not None and low is not None and v < low:
            raise ValueError(f"must not be below deploy.replicas ({low})")
        return v


class ArgoCDConfig(_Section):
    application: str | None = None  # None: project name
    namespace: str = "argocd"
    project: str = "default"
    server: str = "https://kubernetes.default.svc"
    timeout_minutes: int = Field(default=10, gt=0)


class NotifyConfig(_Section):
    slack_channel: str | None = None
    link: str | None = None  # e.g. a Jenkins or dashboard URL shown in messages


class GitHubConfig(_Section):
    repo: str | None = None  # owner/name
    base: str = "main"
    api_url: str = "https://api.github.com"


class ProjectConfig(_Section):
    project: str
    description: str = ""
    profile: str = "local"
    state_dir: str = ".mlops"  # every file mlops writes or deletes lives under it

    @field_validator("state_dir")
    @classmethod
    def _own_folder(cls, v: str) -> str:
        # The state folder is removed from and written to freely: never the project itself or above it.
        parts = Path(v).parts
        if not v.strip() or "\x00" in v or (not Path(v).is_absolute() and (not parts or ".." in parts
                                                                          or set(parts) <= {"."})) \
                or (Path(v).is_absolute() and Path(v) == Path(Path(v).anchor)):
            raise ValueError("must be a folder of its own inside the project (default .mlops), "
                             "or an absolute path")
        return v
    data: DataConfig = Field(default_factory=DataConfig)
    image: ImageConfig = Field(default_factory=ImageConfig)
    experiment: ExperimentConfig = Field(default_factory=ExperimentConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    gitops: GitOpsConfig = Field(default_factory=GitOpsConfig)
    deploy: DeployConfig = Field(default_factory=DeployConfig)
    argocd: ArgoCDConfig = Field(default_factory=ArgoCDConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    github: GitHubConfig = Field(default_factory=GitHubConfig)
    profiles: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("project")
    @classmethod
    def _dns_name(cls, v: str) -> str:
        if not DNS1123.match(v) or len(v) > 50:
            raise ValueError(
                "must be a lowercase DNS-1123 name of at most 50 characters "
                "(letters, digits, '-'), because it names Kubernetes objects"
            )
        return v


class Config:
    """A validated configuration plus where it lives; all paths resolved against the project root."""

    def __init__(self, model: ProjectConfig, root: Path, source: str | None, overrides: dict[str, str]):
        self.model = model
        self.root = root
        self.source = source
        self.overrides = overrides  # dotted key -> environment variable it came from

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    # -- resolved locations -------------------------------------------------
    @property
    def state(self) -> Path:
        return (self.root / self.model.state_dir).resolve()

    def state_path(self, *parts: str) -> Path:
        """A path inside the state folder; a part that is absolute or climbs out (``..``) is exit 2."""
        from pyhelpers.fsutil import confined

        return confined(self.state, *parts, resolve=False)

    def project_path(self, rel: str) -> Path:
        p = Path(rel)
        return p if p.is_absolute() else (self.root / p)

    @property
    def dvc_remote_url(self) -> str:
        return self.model.data.remote_url or str(self.state_path("dvc-remote"))

    @property
    def tracking_uri(self) -> str:
        return self.model.mlflow.tracking_uri or f"sqlite:///{self.state_path('mlflow', 'mlflow.db')}"

    @property
    def mlflow_artifact_root(self) -> str:
        return str(self.state_path("mlflow", "artifacts"))

    @property
    def mlflow_experiment(self) -> str:
        return self.model.mlflow.experiment or self.model.project

    @property
    def registered_model(self) -> str:
        return self.model.mlflow.registered_model or self.model.project

    @property
    def gitops_repo(self) -> str:
        return self.model.gitops.repo or str(self.state_path("gitops.git"))

    @property
    def gitops_path(self) -> str:
        return self.model.gitops.path or self.default_gitops_path(self.model.deploy.target)

    def default_gitops_path(self, target: str) -> str:
        """Where ``deploy.target``'s manifest goes when gitops.path is not set."""
        kind = "inferenceservice" if target == "kserve" else "seldondeployment"
        return f"apps/{self.model.project}/{kind}.yaml"

    @property
    def argocd_application(self) -> str:
        return self.model.argocd.application or self.model.project

    @property
    def experiment_file(self) -> Path:
        return self.project_path(self.model.experiment.file)

    @property
    def notifications_log(self) -> Path:
        return self.state_path("notifications.jsonl")

    def image_path_map(self) -> dict[str, Path]:
        return {k: self.project_path(v).resolve() for k, v in self.model.experiment.image_paths.items()}

    def to_public_dict(self) -> dict[str, Any]:
        """Effective configuration with resolved defaults; never contains credentials."""
        doc = self.model.model_dump(mode="json", exclude={"profiles"})
        doc["data"]["remote_url"] = self.dvc_remote_url
        doc["mlflow"]["tracking_uri"] = redact_url(self.tracking_uri)
        doc["mlflow"]["experiment"] = self.mlflow_experiment
        doc["mlflow"]["registered_model"] = self.registered_model
        doc["gitops"]["repo"] = redact_url(self.gitops_repo)
        doc["gitops"]["path"] = self.gitops_path
        doc["argocd"]["application"] = self.argocd_application
        doc["state_dir"] = str(self.state)
        return doc


def credentials_status(environ: dict[str, str] | None = None) -> dict[str, str]:
    env = os.environ if environ is None else environ
    return {name: ("set" if env.get(name) else "not set") for name in CREDENTIALS}


def find_config(start: Path | None = None) -> Path | None:
    """``mlops.yaml`` in ``start`` or one of its parents (like git finds .git)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_FILE
        if candidate.is_file():
            return candidate
    return None


def _deep_merge(base: dict, overlay: dict) -> dict:
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _set_path(doc: dict, path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        doc = doc.setdefault(key, {})
    doc[path[-1]] = value


def _unknown_key_message(model: type[BaseModel], loc: tuple, key: str) -> str:
    fields = _fields_at(model, loc[:-1])
    if SECRET_LIKE.search(str(key)):
        return (
            "unknown key: secrets are never read from mlops.yaml; set the matching "
            "environment variable instead (`mlops config show` lists them)"
        )
    close = difflib.get_close_matches(str(key), fields, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(fields)}"
    return f"unknown key{hint}"


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel) and part in current.model_fields:
            current = current.model_fields[part].annotation
        else:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _validate(doc: Any, src: SourcedYaml, loc_prefix: tuple = ()) -> ProjectConfig:
    if not isinstance(doc, dict):
        raise src.error(loc_prefix, "expected a mapping of configuration keys")
    try:
        return ProjectConfig.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        if err["type"] == "extra_forbidden":
            raise src.error(loc_prefix + loc, _unknown_key_message(ProjectConfig, loc, loc[-1])) from None
        if err["type"] == "missing":
            raise src.error(loc_prefix + loc, "required key is missing") from None
        msg = err["msg"].removeprefix("Value error, ")
        value = err.get("input")
        if isinstance(value, str):
            value = redact_url(value)  # a URL with user:secret@ is echoed without the secret
        shown = f" (got {value!r})" if isinstance(value, (str, int, float, bool)) else ""
        raise src.error(loc_prefix + loc, f"{msg}{shown}") from None


def load_config(
    path: str | Path | None = None,
    profile: str | None = None,
    environ: dict[str, str] | None = None,
    required: bool = True,
) -> Config | None:
    """Load and validate ``mlops.yaml``; apply the profile overlay and environment overrides."""
    env = os.environ if environ is None else environ
    if path is None:
        path = env.get("MLOPS_CONFIG") or find_config()
        if path is None:
            if required:
                raise BadInput(f"no {CONFIG_FILE} in this folder or its parents (use --config PATH)")
            return None
    path = Path(path)
    src = load_yaml_file(path)
    raw = src.data if src.data is not None else {}
    base = _validate(raw, src)  # the file itself must be valid before overlays apply

    # Every profile is checked, not only the selected one: a broken cluster profile should fail
    # `config validate` on a laptop, not the first cluster build.
    merged = {name: _apply_profile(raw, base, name, src) for name in base.profiles}
    chosen = profile or env.get("MLOPS_PROFILE") or base.profile
    if chosen != "local" and chosen not in merged:
        known = ", ".join(["local", *base.profiles])
        raise BadInput(f"profile {chosen!r} is not defined; known profiles: {known}", source=str(path))
    doc = merged.get(chosen, dict(raw))
    doc["profile"] = chosen

    overrides: dict[str, str] = {}
    for var, key in ENV_OVERRIDES.items():
        value = env.get(var)
        if value:
            _set_path(doc, key, value)
            overrides[".".join(key)] = var
    _blame_environment(doc, overrides)
    model = _validate(doc, src)
    return Config(model, path.resolve().parent, str(path), overrides)


def _apply_profile(raw: dict, base: ProjectConfig, name: str, src: SourcedYaml) -> dict:
    """The configuration with profile ``name`` laid over it, validated; errors point at the profile."""
    overlay = base.profiles[name]
    if not isinstance(overlay, dict):
        raise src.error(("profiles", name), "a profile must be a mapping of overrides")
    for forbidden in ("profiles", "project"):
        if forbidden in overlay:
            raise src.error(("profiles", name, forbidden), "cannot be overridden by a profile")
    doc = _deep_merge(raw, overlay)
    try:
        ProjectConfig.model_validate(doc)
    except ValidationError:
        _validate(overlay_only(overlay), src, ("profiles", name))
        _validate(doc, src)  # only the combination is wrong
    return doc


def _blame_environment(doc: dict, overrides: dict[str, str]) -> None:
    """A bad value from an environment override is reported as the variable's, not the file's."""
    if not overrides:
        return
    try:
        ProjectConfig.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        if key in overrides:
            msg = err["msg"].removeprefix("Value error, ")
            value = err.get("input")
            shown = f" (got {redact_url(value)!r})" if isinstance(value, str) else ""
            raise BadInput(f"${overrides[key]} (overrides {key}): {msg}{shown}") from None


def overlay_only(overlay: dict) -> dict:
    """Validate a profile overlay on its own so its errors point at the profile's lines."""
    return {"project": "overlay-check", **overlay}


def default_config(root: Path | None = None) -> Config:
    """Embedded defaults for commands run outside a project (e.g. ``experiment run --local FILE``)."""
    root = (root or Path.cwd()).resolve()
    name = re.sub(r"[^a-z0-9-]+", "-", root.name.lower()).strip("-") or "project"
    return Config(ProjectConfig(project=name[:50].strip("-") or "project"), root, None, {})


# -- where each component connects and where its credentials come from (`mlops config show`) --------
def _status(env, *names: str) -> dict[str, str]:
    return {n: ("set" if env.get(n) else "not set") for n in names}


def _file_status(path: Path) -> str:
    return "present" if path.is_file() else "absent"


def _source(cfg: Config, section: str, key: str) -> str:
    dotted_key = f"{section}.{key}"
    if dotted_key in cfg.overrides:
        return f"${cfg.overrides[dotted_key]}"
    if key in getattr(cfg.model, section).model_fields_set:
        return f"mlops.yaml {dotted_key}"
    return "default"


def _aws(env) -> dict[str, Any]:
    shared = Path(env.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials").expanduser()
    keys = env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY")
    # botocore's order: environment, then the shared credentials file (AWS_PROFILE or default), then roles.
    if keys:
        using = "environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
    elif shared.is_file():
        using = f"shared credentials file {shared} (profile {env.get('AWS_PROFILE') or 'default'})"
    else:
        using = "none found here: an instance/pod role (IRSA), else the S3 calls fail"
    return {
        "expected_from": "environment AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN), "
                         "else ~/.aws/credentials (AWS_SHARED_CREDENTIALS_FILE, AWS_PROFILE); never mlops.yaml "
                         "or .dvc/config",
        "variables": _status(env, *AWS_CREDENTIAL_VARS),
        "files": {str(shared): _file_status(shared)},
        "will_use": using,
    }


def _kubernetes(env) -> dict[str, Any]:
    """The API server the kubernetes client will talk to (same order as pyhelpers.k8s.clients)."""
    default = Path("~/.kube/config").expanduser()
    kubeconfig = env.get("KUBECONFIG")
    out: dict[str, Any] = {"variables": _status(env, "KUBECONFIG"), "files": {str(default): _file_status(default)}}
    if kubeconfig or default.is_file():
        path = Path(kubeconfig.split(os.pathsep)[0]).expanduser() if kubeconfig else default
        out["expected_from"] = f"kubeconfig {path} (current context's user)"
        out["endpoint"] = _kubeconfig_server(path)
        out["endpoint_source"] = "$KUBECONFIG" if kubeconfig else str(default)
    else:
        in_cluster = bool(env.get("KUBERNETES_SERVICE_HOST"))
        out["expected_from"] = ("the pod's service account token" if in_cluster
                                else "nothing found: set KUBECONFIG or run inside a cluster")
        out["endpoint"] = (f"https://{env['KUBERNETES_SERVICE_HOST']}:{env.get('KUBERNETES_SERVICE_PORT', '443')}"
                           if in_cluster else None)
        out["endpoint_source"] = "in-cluster" if in_cluster else "none"
    return out


def _kubeconfig_server(path: Path) -> str | None:
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        context = next(c["context"] for c in doc.get("contexts") or [] if c.get("name") == doc.get("current-context"))
        cluster = next(c["cluster"] for c in doc.get("clusters") or [] if c.get("name") == context.get("cluster"))
        return redact_url(str(cluster.get("server")))
    except (OSError, yaml.YAMLError, StopIteration, KeyError, TypeError, AttributeError):
        return None  # unreadable or incomplete: the kubernetes client will say why when it is used


def components(cfg: Config, environ: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Per component: the backend, the endpoint it will use (and why), where credentials come from.

    Credential variables are reported as "set"/"not set" and files as "present"/"absent", never values.
    """
    env = os.environ if environ is None else environ
    none = {"expected_from": "none needed", "variables": {}}
    out: dict[str, dict[str, Any]] = {}

    url = cfg.dvc_remote_url
    scheme = url.split("://", 1)[0] if "://" in url else ""
    data: dict[str, Any] = {"backend": f"dvc-{scheme}" if scheme else "dvc-local", "remote": cfg.data.remote,
                            "url": redact_url(url), "url_source": _source(cfg, "data", "remote_url")}
    if scheme == "s3":
        data["endpoint"] = cfg.data.endpoint_url or "AWS S3 of the region (AWS_DEFAULT_REGION / ~/.aws/config)"
        data["endpoint_source"] = _source(cfg, "data", "endpoint_url")
        data["credentials"] = _aws(env)
    elif scheme:
        data["endpoint"] = redact_url(url)
        data["credentials"] = {"expected_from": f"the environment / standard credential files of DVC's {scheme} "
                                                "remote; never mlops.yaml or .dvc/config", "variables": {}}
    else:
        data["endpoint"] = f"folder {url}"
        data["credentials"] = none
    out["data"] = data

    uri = cfg.tracking_uri
    server = uri.split("://", 1)[0] in ("http", "https")
    mlflow: dict[str, Any] = {"backend": "tracking server" if server else "local store", "endpoint": redact_url(uri),
                              "endpoint_source": _source(cfg, "mlflow", "tracking_uri")}
    if server:
        mlflow["credentials"] = {
            "expected_from": "MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/PASSWORD, when the server needs them",
            "variables": _status(env, "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
        if cfg.mlflow.artifacts_destination:
            mlflow["artifacts"] = {
                "store": cfg.mlflow.artifacts_destination, "via": "proxied by the tracking server (mlflow-artifacts:/)",
                "credentials": {"expected_from": "the tracking server's own environment: none needed here; "
                                                 "Seldon reads the model with deploy.storage_secret",
                                "variables": {}}}
        else:
            mlflow["artifacts"] = {
                "store": "chosen by the tracking server",
                "via": "proxied (mlflow-artifacts:/, set mlflow.artifacts_destination for manifests) or direct",
                "endpoint": cfg.mlflow.s3_endpoint_url or "AWS S3 of the region",
                "endpoint_source": _source(cfg, "mlflow", "s3_endpoint_url"),
                "credentials": {**_aws(env), "expected_from": "only for direct s3:// artifacts: " + _aws(env)["expected_from"]}}
    else:
        mlflow["artifacts"] = {"store": cfg.mlflow_artifact_root, "via": "local folder", "credentials": none}
        mlflow["credentials"] = none
    out["mlflow"] = mlflow

    repo = cfg.gitops_repo
    gscheme = repo.split("://", 1)[0] if "://" in repo else ("ssh" if re.match(r"^[\w.-]+@[\w.-]+:", repo) else "")
    gitops: dict[str, Any] = {"backend": "git " + (gscheme or "local bare repository"), "endpoint": redact_url(repo),
                              "endpoint_source": _source(cfg, "gitops", "repo"), "branch": cfg.gitops.branch}
    if gscheme == "https":
        gitops["credentials"] = {"expected_from": "GITHUB_TOKEN, given to git through GIT_ASKPASS (never in the URL)",
                                 "variables": _status(env, "GITHUB_TOKEN")}
    elif gscheme == "ssh":
        gitops["credentials"] = {"expected_from": "ssh keys or agent of this machine",
                                 "variables": _status(env, "SSH_AUTH_SOCK")}
    else:
        gitops["credentials"] = none
    out["gitops"] = gitops

    experiment: dict[str, Any] = {"backend": cfg.experiment.engine, "namespace": cfg.experiment.namespace}
    if cfg.experiment.engine == "katib":
        k8s = _kubernetes(env)
        experiment.update(endpoint=k8s.pop("endpoint"), endpoint_source=k8s.pop("endpoint_source"), credentials=k8s)
    else:
        experiment.update(endpoint="this machine (Optuna samplers)", credentials=none)
    out["experiment"] = experiment

    k8s = _kubernetes(env)
    out["argocd"] = {"backend": "Argo CD Application via the Kubernetes API (`mlops deploy wait`)",
                     "application": cfg.argocd_application, "namespace": cfg.argocd.namespace,
                     "endpoint": k8s.pop("endpoint"), "endpoint_source": k8s.pop("endpoint_source"), "credentials": k8s}

    token, webhook = env.get("SLACK_BOT_TOKEN"), env.get("SLACK_WEBHOOK_URL")
    channel = cfg.notify.slack_channel
    if token:
        slack_backend, endpoint = f"chat.postMessage to {channel or '(no channel: notify.slack_channel)'}", (
            env.get("SLACK_API_URL") or "https://slack.com/api/")
    elif webhook:
        slack_backend, endpoint = "incoming webhook", "the URL in $SLACK_WEBHOOK_URL (a secret, not shown)"
    else:
        slack_backend, endpoint = "log only", str(cfg.notifications_log)
    out["slack"] = {"backend": slack_backend, "endpoint": endpoint, "channel": channel,
                    "log": str(cfg.notifications_log),
                    "credentials": {"expected_from": "SLACK_BOT_TOKEN (with notify.slack_channel), else SLACK_WEBHOOK_URL",
                                    "variables": _status(env, "SLACK_BOT_TOKEN", "SLACK_WEBHOOK_URL")}}

    gh_ready = bool(env.get("GITHUB_TOKEN") and cfg.github.repo)
    out["github"] = {"backend": "GitHub pull requests" if gh_ready else "pull request body written under .mlops/",
                     "repo": cfg.github.repo, "endpoint": redact_url(cfg.github.api_url) if gh_ready else str(cfg.state_path("pull-requests")),
                     "endpoint_source": _source(cfg, "github", "api_url") if gh_ready else "no GITHUB_TOKEN or github.repo",
                     "credentials": {"expected_from": "GITHUB_TOKEN", "variables": _status(env, "GITHUB_TOKEN")}}
    return out
