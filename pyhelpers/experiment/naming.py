"""Experiment names: Katib's naming rule, names derived from data versions, and folders confined to state.

Katib's admission webhook (pkg/webhook/v1beta1/experiment/validator/validator.go) refuses an
Experiment whose name is longer than 40 characters or does not match ``^[a-z]([-a-z0-9]*[a-z0-9])?``
(Kubernetes then requires the whole name to be a DNS-1123 label). The local engine applies the same
rule, since its names become folders under ``.mlops/experiments/`` and must never climb out of it.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from pyhelpers.errors import BadInput

KATIB_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
KATIB_NAME_MAX = 40
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # what an existing folder may be called
SUFFIX_LENGTH = 8


def katib_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid Katib Experiment name, or None."""
    if not isinstance(name, str) or not name:
        return "an Experiment name is required"
    if len(name) > KATIB_NAME_MAX:
        return f"{name!r} is longer than {KATIB_NAME_MAX} characters (Katib's limit for Experiment names)"
    if not KATIB_NAME.match(name):
        return (f"{name!r} is not a valid Katib Experiment name: lowercase letters, digits and '-', "
                "starting with a letter and ending with a letter or digit")
    return None


def check_name(name: str, field: str = "--name") -> str:
    """``name`` if Katib would accept it; else exit 2 naming the field."""
    problem = katib_name_problem(name)
    if problem:
        raise BadInput(f"{field}: {problem}")
    return name


def experiment_dir(state: Path, name: str) -> Path:
    """``<state>/experiments/<name>``, refused (exit 2) unless ``name`` is a plain DNS-1123 label that
    stays inside the state folder once resolved (``../mlflow`` or a symlink out never reach a delete)."""
    if not isinstance(name, str) or len(name) > 63 or not DNS1123_LABEL.match(name):
        raise BadInput(f"experiment name {name!r} is not a DNS-1123 name (lowercase letters, digits, '-'), "
                       "so it cannot name a folder under the state folder")
    base = (Path(state) / "experiments").resolve()
    path = (base / name).resolve()
    if path.parent != base:
        raise BadInput(f"experiment folder {path} is outside {base} (a symlink?); refusing to use it")
    return Path(state) / "experiments" / name


def _clean(text: str) -> str:
    """Lowercase letters, digits and single '-' only."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", text.lower()))


def experiment_name(base: str, data_version: str) -> str:
    """Name an Experiment after its data: a rerun for the same data finds the same name.

    ``<base>-<8 characters of the data version>``, at most 40 characters, matching Katib's rule for any
    ``base`` (it is cleaned to lowercase letters, digits and '-', and must start with a letter).
    """
    raw_suffix = re.sub(r"[^a-z0-9]", "", str(data_version).lower().removeprefix("dv-"))[:SUFFIX_LENGTH]
    suffix = raw_suffix or hashlib.sha256(str(data_version).encode()).hexdigest()[:SUFFIX_LENGTH]
    head = _clean(str(base)).lstrip("-0123456789") or "experiment"
    head = head[:KATIB_NAME_MAX - len(suffix) - 1].strip("-") or "experiment"
    return f"{head}-{suffix}"
