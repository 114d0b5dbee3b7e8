"""Small file helpers: atomic writes so an interrupted command never leaves a half-written file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from pyhelpers.errors import OperationFailed


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
