"""The deploy line's no-op, decided without MLflow.

Every multibranch build runs line 2 even when nothing is new; importing MLflow alone costs ~2.5 s.
After a successful run the line records what it did (``<state>/deploy/last-run.json``); the next run
returns that result as "unchanged" when all of these still hold, each checked cheaply:

- the training key (data version, parameters, trainer code, requirements) is the same;
- the MLflow store was not written since (local SQLite file: size and mtime), so no version was
  registered, promoted or rolled back in between;
- mlops.yaml, the profile and the mlops version are the same (they shape the manifest);
- the champion's ``MLmodel`` is still in its local artifact folder (artifacts on S3 or behind a
  tracking server: the full path checks them);
- the GitOps branch still points at the recorded commit (local bare repository);
- with serving: our MLServer (same pid) still serves the same version on the same port and answers
  on its versioned endpoints.

Anything else (a remote store or GitOps repository, a missing record) takes the full path.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

RECORD = ("deploy", "last-run.json")


def _store_stamp(cfg) -> dict | None:
    uri = cfg.tracking_uri
    if not uri.startswith("sqlite:///"):
        return None
    try:
        st = os.stat(uri[len("sqlite:///"):])
    except OSError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _config_stamp(cfg) -> str:
    try:
        text = Path(cfg.source).read_bytes()
    except (OSError, TypeError):
        text = b""
    from pyhelpers import __version__

    stamp = f"\0{cfg.profile}\0{cfg.tracking_uri}\0{__version__}"
    return hashlib.sha256(text + stamp.encode()).hexdigest()[:16]


def _gitops_head(cfg) -> str | None:
    from pyhelpers import scm
    from pyhelpers.deploy.gitops import is_local_repo

    repo = cfg.gitops_repo
    if not is_local_repo(repo):
        return None
    folder = Path(repo[len("file://"):] if repo.startswith("file://") else repo)
    folder = folder if folder.is_absolute() else cfg.root / folder
    if not folder.exists():
        return None
    proc = scm.git(folder, "rev-parse", "--verify", "-q", f"refs/heads/{cfg.gitops.branch}", check=False)
    return proc.stdout.strip() or None


def _train_key(cfg, experiment: str | None) -> str | None:
    from pyhelpers.errors import MlopsError
    from pyhelpers.model import train

    try:
        doc, best = train.finished_best_trial(cfg, experiment)
        data_version = train.checked_data_version(cfg, doc)
        argv, cwd, _ = train.training_command(cfg, doc, best["name"], best["parameters"])
        return train.train_key(data_version, best["parameters"], train.fingerprint(cfg, doc, argv, cwd))
    except MlopsError:
        return None  # the full path explains it


def _stamp(cfg, experiment: str | None, serve: bool, port: int | None) -> dict | None:
    store = _store_stamp(cfg)
    if store is None:
        return None
    gitops = _gitops_head(cfg)
    key = _train_key(cfg, experiment)
    if gitops is None or key is None:
        return None
    return {"train_key": key, "store": store, "config": _config_stamp(cfg), "gitops_commit": gitops,
            "serve": serve, "port": (port or cfg.deploy.serve_port) if serve else None}


def _serving_unchanged(cfg, result: dict) -> bool:
    from pyhelpers.deploy import serve as s

    served = (result.get("steps") or {}).get("serve") or {}
    state = s.read_server_state(cfg)
    if not state or state.get("pid") != served.get("pid") or str(state.get("version")) != str(served.get("version")):
        return False
    return s._is_our_server(state["pid"], s.serving_dir(cfg)) and s._ready(
        state["pid"], state["url"], state["http_port"], state["model_name"], str(state["version"]))


def _champion_files_present(result: dict) -> bool:
    """The recorded champion's MLmodel is still there (a local artifact folder; the store stamp cannot
    see files removed beside it)."""
    from pyhelpers.deploy.artifacts import MLMODEL

    uri = str((result.get("champion") or {}).get("artifact_uri") or "")
    path = uri[len("file://"):] if uri.startswith("file://") else uri
    return bool(path) and "://" not in path and (Path(path) / MLMODEL).is_file()


def unchanged_result(cfg, experiment: str | None, serve: bool, port: int | None) -> dict[str, Any] | None:
    """The last run's result marked unchanged, when nothing it depends on changed; else None."""
    try:
        record = json.loads(cfg.state_path(*RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    now = _stamp(cfg, experiment, serve, port)
    if now is None or record.get("stamp") != now:
        return None
    result = record.get("result") or {}
    if not _champion_files_present(result):
        return None
    if serve and not _serving_unchanged(cfg, result):
        return None
    steps = result.get("steps") or {}
    if "train" in steps:
        steps["train"]["unchanged"] = True
    if "push" in steps:
        steps["push"]["changed"] = False
    steps.pop("notify", None)
    result.pop("notification", None)
    return {**result, "status": "unchanged",
            "shortcut": "nothing changed since the last run (training key, model registry, GitOps head"
                        + (", server)" if serve else ")")}


def forget(cfg) -> None:
    """Before a full run: a run that fails half-way leaves no record a later no-op could trust."""
    cfg.state_path(*RECORD).unlink(missing_ok=True)


def remember(cfg, result: dict[str, Any], experiment: str | None, serve: bool, port: int | None) -> None:
    """Record a successful run for the next one's no-op check (after every write of this run)."""
    from pyhelpers.fsutil import atomic_write_json

    stamp = _stamp(cfg, experiment, serve, port)
    path = cfg.state_path(*RECORD)
    if stamp is None or result.get("status") not in ("completed", "unchanged"):
        path.unlink(missing_ok=True)
        return
    atomic_write_json(path, {"stamp": stamp, "result": json.loads(json.dumps(result, default=str))})
