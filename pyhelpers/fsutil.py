"""Small file helpers: atomic writes so an interrupted command never leaves a half-written file,
and the confinement check every write or delete of project state goes through."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from pyhelpers.errors import BadInput, OperationFailed

# Kubernetes object names (RFC 1123 label): what Katib, MLflow-derived folders and our state folders accept.
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def dns1123_name(value: object, field: str, max_len: int = 63, source: str | None = None) -> str:
    """A name that becomes a path or an object name: lowercase letters, digits and '-', at most ``max_len``.

    Refuses ``../x``, '', NUL bytes, slashes and over-long values with exit 2 naming ``field``.
    """
    if not isinstance(value, str):
        raise BadInput(f"{field}: expected a name (string), got {type(value).__name__}", source=source)
    shown = value if len(value) <= 60 else value[:57] + "..."
    if len(value) > max_len:
        raise BadInput(f"{field}: {shown!r} is longer than {max_len} characters", source=source)
    if not DNS1123_LABEL.match(value):
        raise BadInput(
            f"{field}: {shown!r} is not a DNS-1123 name (lowercase letters, digits and '-', "
            "starting and ending with a letter or digit)",
            source=source,
        )
    return value


def confined(base: str | os.PathLike, *parts: str | os.PathLike, resolve: bool = True) -> Path:
    """``base/parts...`` resolved; refused (exit 2) unless it stays inside ``base``.

    Every path the project writes or deletes under its state folder goes through this. Parts must be
    relative and free of ``..`` (so ``experiments/../mlflow`` is refused even though it stays inside
    the state folder), and the resolved path must still be inside ``base`` (a symlink planted in the
    state folder cannot redirect a delete). Pass the narrowest base, e.g. ``state/experiments``.
    """
    root = Path(base).resolve() if resolve else Path(base)
    for part in parts:
        text = os.fspath(part)
        shown = text if len(text) <= 60 else text[:57] + "..."
        if "\x00" in text:
            raise BadInput(f"path {shown!r} contains a NUL byte")
        if not text or os.path.isabs(text) or ".." in Path(text).parts:
            raise BadInput(f"path {shown!r} must be a relative path inside {root} without '..'")
    if not resolve:  # the parts alone are checked: a folder the user linked elsewhere on purpose stays usable
        return root.joinpath(*parts)
    target = root.joinpath(*parts).resolve()
    if target != root and root not in target.parents:
        shown = "/".join(os.fspath(p) for p in parts)[:80]
        raise BadInput(f"{shown!r} leads outside {root}")
    return target


def _write_failed(path: Path, exc: OSError) -> OperationFailed:
    """A full disk or a read-only state folder as one clear line naming the file (exit 1)."""
    return OperationFailed(f"cannot write {path}: {exc.strerror or exc}")


def atomic_write_text(path: str | os.PathLike, text: str, durable: bool = True) -> Path:
    """Write via a temporary file and rename; ``durable=False`` skips fsync (progress snapshots)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise _write_failed(path, exc) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _write_failed(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | os.PathLike, doc: Any, durable: bool = True) -> Path:
    return atomic_write_text(path, json.dumps(doc, indent=2) + "\n", durable)


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _no_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name} is not JSON")


def read_state_json(path: str | os.PathLike, what: str = "state file") -> Any:
    """A JSON document the project (or a user) wrote under ``.mlops/`` or passed by name, as a boundary:
    a folder where the file belongs, bad encoding, invalid JSON or NaN/Infinity are exit 2 naming the file.
    A missing file raises FileNotFoundError (callers decide whether that means "none yet")."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except IsADirectoryError:
        raise BadInput(f"is a directory, expected a {what} (JSON)", source=str(path)) from None
    except UnicodeDecodeError:
        raise BadInput(f"not a UTF-8 text file, expected a {what} (JSON)", source=str(path)) from None
    except PermissionError:
        raise BadInput(f"not readable (permission denied), expected a {what}", source=str(path)) from None
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise BadInput(f"invalid JSON in {what}: {exc.msg}", source=str(path), line=exc.lineno) from None
    except (ValueError, RecursionError) as exc:
        raise BadInput(f"invalid {what}: {exc}", source=str(path)) from None


def require_field(doc: Any, path: str | os.PathLike, field: str, kind: type | tuple[type, ...],
                  what: str = "state file", optional: bool = False) -> Any:
    """``doc[field]`` if it has the expected type; else exit 2 naming the file and the field."""
    if not isinstance(doc, dict):
        raise BadInput(f"expected a JSON object ({what}), got {type(doc).__name__}", source=str(path))
    if field not in doc or doc[field] is None:
        if optional:
            return None
        raise BadInput(f"{field}: missing in {what}", source=str(path))
    value = doc[field]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise BadInput(f"{field}: expected {names}, got {type(value).__name__}", source=str(path))
    return value


def append_jsonl(path: str | os.PathLike, doc: Any) -> Path:
    """Append one JSON line; a single write() of a line keeps concurrent appends whole."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(doc, sort_keys=True) + "\n")
    except OSError as exc:
        raise _write_failed(path, exc) from None
    return path


# -- scratch folders: under the state folder, so a killed run's leftovers are found and removed ------
SCRATCH_DIR = "tmp"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def host_name() -> str:
    import socket

    return re.sub(r"-+", "-", socket.gethostname())  # "--" separates the parts of a scratch name


def clean_stale_scratch(state: str | os.PathLike) -> list[Path]:
    """Remove scratch folders left by processes of this host that no longer exist (killed runs)."""
    import shutil

    base = Path(state) / SCRATCH_DIR
    host = host_name()
    removed = []
    for entry in base.glob("*--*--*") if base.is_dir() else []:
        _, owner_host, rest = entry.name.split("--", 2)
        pid = rest.split("-", 1)[0]
        if owner_host == host and pid.isdigit() and not pid_alive(int(pid)) and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def scratch_dir(state: str | os.PathLike, kind: str):
    """A context manager: a fresh folder ``<state>/tmp/<kind>--<host>--<pid>-<random>``, removed on exit.

    A SIGKILL skips the removal; the next run of any kind removes folders whose process is gone.
    """
    base = confined(state, SCRATCH_DIR)
    clean_stale_scratch(state)
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_failed(base, exc) from None
    return tempfile.TemporaryDirectory(prefix=f"{kind}--{host_name()}--{os.getpid()}-", dir=base)
