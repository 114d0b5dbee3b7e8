"""The parameter contract between the Jenkins steps (vars/*.groovy) and the CLI, derived from the click commands.

    python -m pyhelpers.contract [--out FILE]

prints one JSON document: for every leaf command ("data status", "pr open", "lineage", ...) the keys a
parameter file (MLOPS_PARAMS_FILE) may hold, with their kind, type and whether they are required, plus the
command-line options it accepts and the environment variables of the root command. Nothing here is
written by hand: it is read from the same click objects that parse the parameter file, so the Groovy
contract test (tests/groovy/CliContractTest.groovy) fails as soon as a step and a command disagree.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Iterator
from typing import Any

import click

# Options every leaf gets from pyhelpers.commands._common.leaf: flags of the runner script, never file keys.
RUNNER_ONLY = {"as_json", "debug"}


def param_type(param: click.Parameter) -> dict[str, Any]:
    """The JSON type a parameter-file value must have for click to take it as meant."""
    kind = param.type
    if isinstance(param, click.Option) and param.is_flag and not param.multiple:
        out: dict[str, Any] = {"type": "boolean"}
    elif isinstance(kind, click.Choice):
        out = {"type": "choice", "choices": [str(c) for c in kind.choices]}
    elif isinstance(kind, click.types.BoolParamType):
        out = {"type": "boolean"}
    elif isinstance(kind, click.types.IntParamType):
        out = {"type": "integer"}
    elif isinstance(kind, click.types.FloatParamType):
        out = {"type": "number"}
    else:  # STRING, Path, File and anything else click converts from text
        out = {"type": "string"}
    for bound in ("min", "max", "min_open", "max_open"):
        value = getattr(kind, bound, None)
        if value is not None and value is not False:
            out[bound] = value
    if param.multiple or (param.nargs not in (1, None) and not isinstance(param, click.Option)):
        out = {"type": "list", "items": out}
    return out


def command_contract(cmd: click.Command) -> dict[str, Any]:
    params: dict[str, Any] = {}
    flags: list[str] = []
    for param in cmd.params:
        if isinstance(param, click.Option):
            flags += list(param.opts) + list(param.secondary_opts)
        if not param.name or param.name in RUNNER_ONLY:
            continue
        params[param.name] = {
            "kind": "argument" if isinstance(param, click.Argument) else "option",
            "required": bool(param.required),
            **param_type(param),
        }
    return {"params": params, "flags": sorted(flags)}


def leaves(cmd: click.Command, path: list[str]) -> Iterator[tuple[str, click.Command]]:
    if isinstance(cmd, click.Group):
        for name in sorted(cmd.commands):
            yield from leaves(cmd.commands[name], [*path, name])
    else:
        yield " ".join(path), cmd


def cli_contract() -> dict[str, Any]:
    from pyhelpers.cli import GROUPS, cli

    commands: dict[str, Any] = {}
    for group, (module, _help) in GROUPS.items():
        for name, cmd in leaves(importlib.import_module(module).cli, [group]):
            commands[name] = command_contract(cmd)
    root_env = {}
    for param in cli.params:
        if isinstance(param, click.Option) and param.envvar:
            for var in [param.envvar] if isinstance(param.envvar, str) else param.envvar:
                root_env[var] = param.name
    return {"root": {"env": root_env}, "commands": commands}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pyhelpers.contract", description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the JSON here instead of stdout")
    args = parser.parse_args(argv)
    text = json.dumps(cli_contract(), indent=2, sort_keys=True) + "\n"
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
