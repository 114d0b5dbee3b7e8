"""Validate manifests against the upstream CRD schemas in ../shared/crds (recipe: its README.md).

``validate(doc)`` picks the CRD by apiVersion/kind, converts its OpenAPI v3 schema to JSON Schema,
closes every object that lists ``properties`` (like ``kubectl --validate=strict``) and returns
the list of error messages. ``require_crds()`` skips the calling test when the folder is absent.
"""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path

import pytest

CRDS_DIR = Path(os.environ.get("MLOPS_SHARED_CRDS", Path(__file__).resolve().parents[1].parent / "shared" / "crds"))

FILES = {
    ("machinelearning.seldon.io", "SeldonDeployment"): "machinelearning.seldon.io_seldondeployments.yaml",
    ("serving.kserve.io", "InferenceService"): "serving.kserve.io_inferenceservices.yaml",
    ("argoproj.io", "Application"): "argoproj.io_applications.yaml",
    ("monitoring.coreos.com", "ServiceMonitor"): "monitoring.coreos.com_servicemonitors.yaml",
    ("monitoring.coreos.com", "PodMonitor"): "monitoring.coreos.com_podmonitors.yaml",
    ("monitoring.coreos.com", "PrometheusRule"): "monitoring.coreos.com_prometheusrules.yaml",
    ("kubeflow.org", "Experiment"): "kubeflow.org_experiments.yaml",
    ("kubeflow.org", "Trial"): "kubeflow.org_trials.yaml",
    ("kubeflow.org", "Suggestion"): "kubeflow.org_suggestions.yaml",
}


def require_crds() -> Path:
    if not CRDS_DIR.is_dir():
        pytest.skip(f"upstream CRD schemas not found at {CRDS_DIR} (the shared/ folder beside the repo)")
    return CRDS_DIR


def _to_json_schema(node, strict: bool):
    """OpenAPI v3 (Kubernetes flavour) -> JSON Schema draft 4, in place."""
    if isinstance(node, list):
        for item in node:
            _to_json_schema(item, strict)
        return node
    if not isinstance(node, dict):
        return node
    if node.get("x-kubernetes-int-or-string") and "anyOf" not in node:
        node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and isinstance(node.get("type"), str):
        node["type"] = [node["type"], "null"]
    if isinstance(node.get("pattern"), str):
        # Go RE2 inline flags at the start of a group are not valid in Python's re.
        node["pattern"] = node["pattern"].replace("^(?i)", "(?i)^")
    if (
        strict
        and "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        node["additionalProperties"] = False
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            for sub in value.values():
                _to_json_schema(sub, strict)
        elif isinstance(value, (dict, list)):
            _to_json_schema(value, strict)
    return node


@functools.cache
def schema_for(api_version: str, kind: str, strict: bool = True) -> dict:
    import yaml

    group, _, version = api_version.rpartition("/")
    name = FILES.get((group, kind))
    if name is None:
        raise KeyError(f"no upstream CRD for {api_version} {kind}")
    with open(require_crds() / name, encoding="utf-8") as fh:
        crd = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    versions = {v["name"]: v for v in crd["spec"]["versions"]}
    if version not in versions or not versions[version].get("served", True):
        raise KeyError(f"{kind} version {version} is not served by the CRD {name}")
    schema = copy.deepcopy(versions[version]["schema"]["openAPIV3Schema"])
    return _to_json_schema(schema, strict)


def validate(doc: dict, strict: bool = True) -> list[str]:
    """Error messages (path: message) of ``doc`` against its upstream CRD; empty when valid."""
    import jsonschema

    schema = schema_for(doc["apiVersion"], doc["kind"], strict)
    validator = jsonschema.Draft4Validator(schema)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]
