"""Katib's ``katib-config``: which suggestion service runs each algorithm, which early-stopping
algorithms and metrics collectors exist, which trial kinds the controller watches.

Katib's webhook refuses an algorithm, early-stopping algorithm or (auto-injected) collector kind
that has no entry here (``pkg/util/v1beta1/katibconfig/config.go``), and each algorithm's
``algorithmSettings`` are checked by the service whose image the entry names. Sources, in order:
``--katib-config FILE`` (a KatibConfig document or the ConfigMap holding it), the cluster's
ConfigMap ``katib-config`` (cluster mode; unreadable -> the upstream default, with a note on
stderr), else the upstream default below.

UPSTREAM mirrors ``manifests/v1beta1/installs/katib-standalone/katib-config.yaml`` of
kubeflow/katib (commit 33c8ff4e, after v0.19.0) as data: algorithm -> service, not images.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyhelpers.errors import BadInput

CONFIGMAP_NAME = "katib-config"  # consts.KatibConfigMapName
CONFIGMAP_KEY = "katib-config.yaml"  # consts.LabelKatibConfigTag
KATIB_REF = "kubeflow/katib 33c8ff4e (v0.19.0+)"

# Image name -> suggestion service: ghcr.io/kubeflow/katib/suggestion-<service>:<tag>.
_SERVICE_IMAGE = re.compile(r"(?:^|/)(?:suggestion|earlystopping)-([a-z0-9]+)(?:[:@]|$)")


@dataclass
class KatibConfig:
    suggestions: dict[str, str]  # algorithmName -> service (hyperopt, optuna, goptuna, skopt, ...)
    early_stoppings: dict[str, str]  # algorithmName -> service
    collectors: set[str]  # metrics collector kinds with an image
    trial_resources: list[str] = field(default_factory=list)  # Kind.version.group
    source: str = "upstream default katib-config"

    def service(self, algorithm: str) -> str | None:
        return self.suggestions.get(algorithm)


UPSTREAM = KatibConfig(
    suggestions={
        "random": "hyperopt", "tpe": "hyperopt", "grid": "optuna", "hyperband": "hyperband",
        "bayesianoptimization": "skopt", "cmaes": "goptuna", "sobol": "goptuna",
        "multivariate-tpe": "optuna", "enas": "enas", "darts": "darts", "pbt": "pbt",
    },
    early_stoppings={"medianstop": "medianstop"},
    collectors={"StdOut", "File", "TensorFlowEvent"},
    trial_resources=["TrainJob.v1alpha1.trainer.kubeflow.org", "Job.v1.batch", "TFJob.v1.kubeflow.org",
                     "PyTorchJob.v1.kubeflow.org", "MPIJob.v1.kubeflow.org", "XGBoostJob.v1.kubeflow.org"],
)


def service_of_image(image: str) -> str:
    """The service an image runs: suggestion-hyperopt -> hyperopt; a custom image -> the image."""
    m = _SERVICE_IMAGE.search(image or "")
    return m.group(1) if m else image


def from_document(doc: Any, source: str) -> KatibConfig:
    """A KatibConfig from the parsed katib-config.yaml, or from the ConfigMap that holds it."""
    import yaml

    if isinstance(doc, dict) and doc.get("kind") == "ConfigMap":
        text = (doc.get("data") or {}).get(CONFIGMAP_KEY)
        if not isinstance(text, str):
            raise BadInput(f"{source}: ConfigMap has no data.{CONFIGMAP_KEY} (Katib reads its configuration there)")
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise BadInput(f"{source}: data.{CONFIGMAP_KEY} is not YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(doc, dict) or doc.get("kind") != "KatibConfig":
        raise BadInput(f"{source}: expected a KatibConfig (kind: KatibConfig) or the katib-config ConfigMap")
    runtime = doc.get("runtime") or {}

    def entries(key: str, name_key: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for i, item in enumerate(runtime.get(key) or []):
            if not isinstance(item, dict) or not item.get(name_key):
                raise BadInput(f"{source}: runtime.{key}[{i}] needs {name_key}")
            # Katib refuses an entry without an image ("required value for image configuration").
            if str(item.get("image") or "").strip():
                out[str(item[name_key])] = service_of_image(str(item["image"]))
        return out

    controller = ((doc.get("init") or {}).get("controller") or {})
    return KatibConfig(
        suggestions=entries("suggestions", "algorithmName"),
        early_stoppings=entries("earlyStoppings", "algorithmName"),
        collectors=set(entries("metricsCollectors", "kind")),
        # pkg/apis/config/v1beta1/defaults.go: no trialResources -> only Job.v1.batch
        trial_resources=list(controller.get("trialResources") or ["Job.v1.batch"]),
        source=source,
    )


def load_file(path: Path) -> KatibConfig:
    from pyhelpers.yamlsrc import load_yaml_file

    try:
        doc = load_yaml_file(path).data  # unreadable, not UTF-8, not YAML, alias bombs: one-line BadInput
    except BadInput as exc:
        raise BadInput(f"--katib-config {exc}") from None
    except ValueError:  # a NUL byte in the path (possible through a parameter file)
        raise BadInput(f"--katib-config {str(path)!r}: not a usable file name") from None
    return from_document(doc, str(path))


def from_cluster(namespace: str) -> KatibConfig | None:
    """The cluster's katib-config ConfigMap, or None (with a note on stderr) when it is not readable."""
    try:
        from kubernetes import client, config
        from kubernetes.client.rest import ApiException
        from urllib3.exceptions import HTTPError
    except ImportError:
        return _fallback("the kubernetes client is not installed")
    try:
        try:
            config.load_kube_config()
        except (config.ConfigException, OSError):
            config.load_incluster_config()
        cm = client.CoreV1Api().read_namespaced_config_map(CONFIGMAP_NAME, namespace, _request_timeout=10)
    except ApiException as exc:
        return _fallback(f"reading ConfigMap {namespace}/{CONFIGMAP_NAME} answered {exc.status} {exc.reason}")
    except (config.ConfigException, OSError, HTTPError) as exc:
        return _fallback(f"no cluster to read {namespace}/{CONFIGMAP_NAME} from ({type(exc).__name__})")
    doc = {"kind": "ConfigMap", "data": dict(cm.data or {})}
    try:
        return from_document(doc, f"ConfigMap {namespace}/{CONFIGMAP_NAME}")
    except BadInput as exc:
        return _fallback(str(exc))


def _fallback(why: str) -> None:
    print(f"note: {why}; validating against Katib's upstream default katib-config", file=sys.stderr)
    return None


def resolve(katib_config_file: Path | None = None, cluster_namespace: str | None = None) -> KatibConfig:
    """--katib-config FILE, else the cluster's ConfigMap (when a namespace is given), else upstream."""
    if katib_config_file is not None:
        return load_file(katib_config_file)
    if cluster_namespace:
        return from_cluster(cluster_namespace) or UPSTREAM
    return UPSTREAM


def for_project(cfg, katib_config_file: Path | None = None) -> KatibConfig:
    """The katib-config a spec submitted by this project meets: ``--katib-config FILE``, else the
    cluster's ConfigMap (``experiment.katib_namespace``) when ``experiment.engine`` is katib, else
    upstream's default. ``cfg`` may be None (no mlops.yaml)."""
    on_cluster = cfg is not None and cfg.experiment.engine == "katib"
    return resolve(katib_config_file, cfg.experiment.katib_namespace if on_cluster else None)
