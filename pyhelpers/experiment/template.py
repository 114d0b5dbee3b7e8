"""Katib trial templates: placeholder substitution and the local command of a trial."""

from __future__ import annotations

import copy
import os
import re
import sys
from pathlib import Path
from typing import Any

PLACEHOLDER = re.compile(r"\$\{trialParameters\.([^}]+)\}")
METADATA_REF = re.compile(r"^\$\{trialSpec\.(Name|Namespace|Kind|APIVersion|Labels\[[^\]]+\]|Annotations\[[^\]]+\])\}$")
DIRECT_TRIAL_SPEC = re.compile(r"\$\{trialSpec\.(Name|Namespace|Kind|APIVersion)\}")
PYTHON_NAMES = {"python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"}


def placeholders(obj: Any) -> set[str]:
    """Names used as ``${trialParameters.<name>}`` anywhere in a trial spec."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, str):
            found.update(PLACEHOLDER.findall(node))
        elif isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(obj)
    return found


def find_container(trial_spec: dict, name: str | None) -> dict | None:
    """The primary container: by name anywhere in the object (Job, TFJob, PyTorchJob, …)."""
    matches: list[dict] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            containers = node.get("containers")
            if isinstance(containers, list):
                matches.extend(c for c in containers if isinstance(c, dict))
            for key, value in node.items():
                if key != "containers":
                    walk(value)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(trial_spec)
    if name:
        return next((c for c in matches if c.get("name") == name), None)
    return matches[0] if len(matches) == 1 else None


def metadata_value(ref: str, trial_name: str, namespace: str, trial_spec: dict) -> str:
    key = METADATA_REF.match(ref).group(1)
    meta = trial_spec.get("metadata") or {}
    if key == "Name":
        return trial_name
    if key == "Namespace":
        return namespace
    if key == "Kind":
        return str(trial_spec.get("kind", ""))
    if key == "APIVersion":
        return str(trial_spec.get("apiVersion", ""))
    kind, _, label = key.partition("[")
    return str((meta.get(kind.lower()) or {}).get(label.rstrip("]"), ""))


def substitute(spec: dict, assignments: dict[str, str], trial_name: str, namespace: str = "default") -> dict:
    """The trial spec with every ``${trialParameters.x}`` replaced, as Katib renders a Trial."""
    template = spec["trialTemplate"]
    trial_spec = template["trialSpec"]
    values: dict[str, str] = {}
    for tp in template.get("trialParameters") or []:
        ref = tp["reference"]
        if METADATA_REF.match(ref):
            values[tp["name"]] = metadata_value(ref, trial_name, namespace, trial_spec)
        else:
            values[tp["name"]] = str(assignments[ref])

    def render(node: Any) -> Any:
        if isinstance(node, str):
            node = PLACEHOLDER.sub(lambda m: values[m.group(1)], node)
            return DIRECT_TRIAL_SPEC.sub(
                lambda m: metadata_value(m.group(0), trial_name, namespace, trial_spec), node
            )
        if isinstance(node, dict):
            return {k: render(v) for k, v in node.items()}
        if isinstance(node, list):
            return [render(v) for v in node]
        return node

    return render(copy.deepcopy(trial_spec))


def map_path(arg: str, image_paths: dict[str, Path]) -> str:
    """Rewrite an image path (``/app/train.py``, ``--data=/app/data``) to its local folder."""
    for image_path, local in sorted(image_paths.items(), key=lambda kv: -len(kv[0])):
        prefix = image_path.rstrip("/")
        pattern = re.compile(r"(^|=)" + re.escape(prefix) + r"(?=/|$)")
        if pattern.search(arg):
            return pattern.sub(lambda m, local=local: m.group(1) + str(local), arg)
    return arg


def trial_command(
    spec: dict,
    assignments: dict[str, str],
    trial_name: str,
    image_paths: dict[str, Path],
    spec_dir: Path,
    namespace: str = "default",
) -> tuple[list[str], Path, dict[str, str]]:
    """(argv, cwd, extra environment) that runs one trial of ``spec`` on this machine.

    ``spec`` is the Experiment's ``spec`` mapping (validated). ``python``/``python3`` resolve to
    the running interpreter; the container image is not used.
    """
    rendered = substitute(spec, assignments, trial_name, namespace)
    container = find_container(rendered, spec["trialTemplate"].get("primaryContainerName"))
    argv = [map_path(a, image_paths) for a in [*(container.get("command") or []), *(container.get("args") or [])]]
    if argv and argv[0] in PYTHON_NAMES:
        argv[0] = sys.executable
    cwd = spec_dir
    if container.get("workingDir"):
        mapped = Path(map_path(container["workingDir"], image_paths))
        if mapped.is_dir():
            cwd = mapped
    env: dict[str, str] = {}
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = str(item["value"])
        elif item.get("name") in os.environ:  # valueFrom: the same variable from this machine
            env[item["name"]] = os.environ[item["name"]]
    return argv, cwd, env
