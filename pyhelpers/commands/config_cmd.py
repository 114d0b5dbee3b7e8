"""mlops config validate|show"""

from __future__ import annotations

import click

from pyhelpers.commands._common import Result, leaf, load_project_config


@click.group("config")
def cli():
    """Validate and show the project's mlops.yaml."""


@leaf(cli, "validate")
def validate() -> Result:
    """Check mlops.yaml against the schema (exit 2 with file:line: field: message)."""
    cfg = load_project_config()
    return Result(
        {"valid": True, "file": cfg.source, "project": cfg.project, "profile": cfg.profile},
        f"{cfg.source}: valid (project {cfg.project}, profile {cfg.profile})",
    )


@leaf(cli, "show")
def show() -> Result:
    """Effective configuration: defaults resolved, profile applied, overrides and credentials explained.

    Credentials are reported as 'set' or 'not set', never shown.
    """
    import yaml

    from pyhelpers.config import CREDENTIALS, credentials_status

    cfg = load_project_config()
    doc = cfg.to_public_dict()
    status = credentials_status()
    data = {
        "file": cfg.source,
        "config": doc,
        "overrides": cfg.overrides,
        "credentials": {k: {"status": v, "used_for": CREDENTIALS[k]} for k, v in status.items()},
    }
    lines = [f"# {cfg.source} (profile {cfg.profile})", yaml.safe_dump(doc, sort_keys=False).rstrip()]
    if cfg.overrides:
        lines.append("# overridden from the environment:")
        lines += [f"#   {key} <- ${var}" for key, var in cfg.overrides.items()]
    lines.append("# credentials (from the environment only):")
    lines += [f"#   {k}: {v}" for k, v in status.items()]
    return Result(data, "\n".join(lines))
