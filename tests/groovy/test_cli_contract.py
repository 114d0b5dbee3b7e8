"""The parameter contract generator (pyhelpers/contract.py) reads the click commands, not a copy of them."""

from __future__ import annotations

import json
import subprocess
import sys

import click

from pyhelpers import contract


def test_contract_follows_the_click_definitions() -> None:
    doc = contract.cli_contract()
    pr_open = doc["commands"]["pr open"]
    assert set(pr_open["params"]) == {"branch", "base", "since", "experiment", "title"}
    assert "--branch" in pr_open["flags"] and "--json" in pr_open["flags"]
    assert doc["commands"]["notify failure"]["params"]["message"]["required"] is True
    assert doc["commands"]["model promote"]["params"]["version"] == {"kind": "argument", "required": True, "type": "string"}
    assert doc["commands"]["deploy wait"]["params"]["timeout_minutes"] == {
        "kind": "option", "required": False, "type": "number", "min": 0, "min_open": True}
    assert doc["root"]["env"]["MLOPS_PARAMS_FILE"] == "params_file"


def test_a_renamed_option_changes_the_contract() -> None:
    @click.command()
    @click.option("--head")
    @click.option("--count", type=click.IntRange(1, 5), multiple=True)
    @click.option("--mode", type=click.Choice(["a", "b"]))
    @click.option("--json", "as_json", is_flag=True)
    def cmd(head, count, mode, as_json):  # pragma: no cover - never invoked
        pass

    params = contract.command_contract(cmd)["params"]
    assert set(params) == {"head", "count", "mode"}          # --json is the runner's flag, not a file key
    assert params["count"] == {"kind": "option", "required": False, "type": "list",
                               "items": {"type": "integer", "min": 1, "max": 5}}
    assert params["mode"]["choices"] == ["a", "b"]


def test_module_prints_the_contract_as_json(tmp_path) -> None:
    out = tmp_path / "contract.json"
    subprocess.run([sys.executable, "-m", "pyhelpers.contract", "--out", str(out)], check=True, timeout=60)
    assert json.loads(out.read_text())["commands"]["data status"]["params"]["base"]["type"] == "string"
