"""What `deploy render`, `deploy push` and the deploy line share: render, check, then write or push.

Order matters: the manifests are rendered first (a value that cannot be rendered is bad input,
exit 2), then the champion's artifacts are checked (missing: exit 1 naming the URI), and only
then is anything written or pushed.

Switching ``deploy.target`` (seldon <-> kserve) is one GitOps commit: the new target's manifest is
added and the other target's manifest in the same folder (the folder the Argo CD Application
syncs, with prune) is removed, when mlops rendered it. A file there that mlops did not render is
left alone and reported, because Argo CD would keep serving it beside the new one.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def checked_manifests(cfg, champion: dict) -> tuple[dict[str, str], dict[str, Any]]:
    """(GitOps path -> YAML text, where the champion's MLmodel was found)."""
    from pyhelpers.deploy.artifacts import verify_model_artifacts
    from pyhelpers.deploy.render import render_manifests

    files = render_manifests(cfg, champion)
    return files, verify_model_artifacts(cfg, champion)


def _rendered_by_mlops(text: str) -> bool:
    from pyhelpers.deploy.render import rendered_serving_kind

    return rendered_serving_kind(text) is not None


def _report_kept(kept: list[str], where: str) -> None:
    for rel in kept:
        _log(f"warning: {rel} in {where} was not rendered by mlops and is kept: the Argo CD application "
             "syncs its folder, so it is served beside the new manifest; remove it if it serves the same model")


def write(cfg, files: dict[str, str], out_dir: Path) -> dict[str, Any]:
    """Write the files under ``out_dir``; remove the other target's mlops-rendered manifest there."""
    from pyhelpers.deploy.render import other_target_paths, write_manifests

    written = write_manifests(files, out_dir)
    removed, kept = [], []
    for rel in other_target_paths(cfg):
        path = out_dir / rel
        if not path.is_file():
            continue
        if _rendered_by_mlops(path.read_text(encoding="utf-8", errors="replace")):
            path.unlink()
            removed.append(str(path))
        else:
            kept.append(rel)
    _report_kept(kept, str(out_dir))
    return {"files": written, "removed": removed}


def push(cfg, files: dict[str, str], message: str) -> dict[str, Any]:
    """Push the files; the other target's mlops-rendered manifest goes in the same commit."""
    from pyhelpers.deploy.gitops import push_manifests
    from pyhelpers.deploy.render import other_target_paths

    result = push_manifests(cfg, files, message, remove=other_target_paths(cfg), removable=_rendered_by_mlops)
    if result.get("removed"):
        _log(f"deploy.target is {cfg.deploy.target}: removed {', '.join(result['removed'])} in the same commit "
             "(Argo CD prunes the previous target's resources)")
    _report_kept(result.get("kept") or [], f"the GitOps repository ({result['branch']})")
    return result
