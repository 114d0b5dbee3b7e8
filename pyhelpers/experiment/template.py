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


def container_holders(trial_spec: dict) -> list[dict]:
    """Every mapping in the trial spec that holds a ``containers`` list (the pod specs of a Job, of each
    replica of a PyTorchJob, …), at any depth, in document order."""
    found: list[dict] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("containers"), list):
                found.append(node)
            for key, value in node.items():
                if key != "containers":
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(trial_spec)
    return found


def find_container(trial_spec: dict, name: str | None) -> dict | None:
    """The primary container: by name anywhere in the object (Job, TFJob, PyTorchJob, …)."""
    matches = [c for node in container_holders(trial_spec) for c in node["containers"] if isinstance(c, dict)]
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
    """Rewrite image paths (``/app/train.py``, ``--data=/app/data``, ``sh -c "python /app/x.py"``) to their
    local folders, in one pass (the longest image path wins; a mapped path is never mapped again)."""
    if not image_paths:
        return arg
    prefixes = {k.rstrip("/") or "/": v for k, v in image_paths.items()}
    alternatives = "|".join(re.escape(p) for p in sorted(prefixes, key=len, reverse=True))
    # a whole path component: not inside a longer path or name (``/application``, ``./app``)
    pattern = re.compile(r"(?<![\w./-])(" + alternatives + r")(?![\w.-])")
    return pattern.sub(lambda m: str(prefixes[m.group(1)]), arg)


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


def collector_path_map(file_path: str | None, trial_dir: Path) -> dict[str, Path]:
    """Where a trial's File-collector path lands on this machine: inside the trial's own folder.

    On Katib the metrics file lives on a volume of the trial's own pod (mounted at the file's
    directory), so a trial sees only what it wrote. Locally the path is mapped like an image path:
    ``/var/log/katib/metrics.log`` -> ``<trial_dir>/var/log/katib/metrics.log``. Only the file itself
    is mapped (not its directory), so code the image keeps beside it (``/app/train.py`` next to
    ``/app/metrics.log``) still comes from ``image_paths``.
    """
    if not file_path:
        return {}
    return {file_path: trial_dir / file_path.lstrip("/")}


def trial_path_map(image_paths: dict[str, Path], file_path: str | None, trial_dir: Path) -> dict[str, Path]:
    """``image_paths`` plus the trial's own File-collector path (the longer prefix wins in ``map_path``)."""
    return {**image_paths, **collector_path_map(file_path, trial_dir)}


_PATHLIKE = re.compile(r"(?:^|=)(/[^\s=:;,'\"]*)")


def missing_paths(spec: dict, image_paths: dict[str, Path], file_path: str | None = None) -> list[str]:
    """Absolute paths named by the primary container's command, args and workingDir that will not
    exist on this machine once ``image_paths`` are applied (an image path without a mapping, such as
    ``/app/train.py`` when nothing maps ``/app``). A path whose parent folder exists (an output file
    the trial will create) is fine; the File-collector path is mapped per trial by the engine.
    """
    tt = spec.get("trialTemplate") or {}
    trial_spec = tt.get("trialSpec")
    if not isinstance(trial_spec, dict):
        return []
    container = find_container(trial_spec, tt.get("primaryContainerName")) or {}
    words = [*(container.get("command") or []), *(container.get("args") or [])]
    if container.get("workingDir"):
        words.append(container["workingDir"])
    missing: list[str] = []
    for word in words:
        for token in str(word).split():  # `sh -c "python /app/train.py"` names paths inside one argument
            for found in _PATHLIKE.findall(token):
                path = PLACEHOLDER.sub("x", found)
                if len(path) < 2 or path == file_path or path in missing:
                    continue
                local = Path(map_path(path, image_paths))
                if not (local.exists() or local.parent.is_dir() and local.parent != Path("/")):
                    missing.append(path)
    return missing
