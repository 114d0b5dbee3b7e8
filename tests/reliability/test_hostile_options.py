"""Every option of every command, with hostile values, from the command line and the parameter file.

The commands are enumerated from ``pyhelpers.cli`` (not listed by hand), so a new option is walked
as soon as it exists. Each value goes to one option at a time: ``../x``, '', 10,000 characters on
the command line; a JSON object, a list, NaN/Infinity, a NUL character through ``MLOPS_PARAMS_FILE``
(Jenkins' way in). What must hold for each: exit 0, 1 or 2; never a bare Python exception (the CLI's
last line of defence, "run with --debug for the traceback"); and nothing outside the project touched.

Runs in-process through ``pyhelpers.cli.main`` (a subprocess per case would take minutes); the
environment, working folder and signal handlers are restored after each case.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import signal
from pathlib import Path

import click
import pytest

from pyhelpers.cli import GROUPS, main
from tests.conftest import git, write_experiment
from tests.reliability.conftest import tree_snapshot

CLI_VALUES = {"dotdot": "../x", "empty": "", "long": "x" * 10_000}
PARAM_VALUES = {"object": {"a": 1}, "list": ["a", {"b": 2}], "nan": math.nan, "inf": math.inf, "nul": "a\x00b",
                "dotdot": "../x"}
BARE_EXCEPTION = "run with --debug for the traceback"
CASE_SECONDS = 60  # a case still running by then fails (exit 130) instead of hanging the suite


def _commands() -> list[tuple[str, click.Command]]:
    out = []
    for group, (module, _) in GROUPS.items():
        obj = importlib.import_module(module).cli
        if isinstance(obj, click.Group):
            out += [(f"{group} {name}", cmd) for name, cmd in sorted(obj.commands.items())]
        else:
            out.append((group, obj))
    return out


def _cases() -> list[tuple[str, list[str], object]]:
    """(case id, argv, parameter-file document or None)."""
    cases = []
    for path, cmd in _commands():
        words = path.split()
        for param in cmd.params:
            if param.name in ("as_json", "debug"):
                continue
            flag = isinstance(param, click.Option) and param.is_flag
            if not flag:
                for label, value in CLI_VALUES.items():
                    argv = [*words, value] if isinstance(param, click.Argument) else [*words, param.opts[0], value]
                    cases.append((f"{path}:{param.name}:{label}", argv, None))
            for label, value in PARAM_VALUES.items():
                cases.append((f"{path}:{param.name}:params-{label}", words, {param.name: value}))
    return cases


CASES = _cases()


def test_the_walk_covers_every_command():
    walked = {case_id.split(":")[0] for case_id, _, _ in CASES}
    assert {"line data", "line deploy", "experiment run", "model train", "deploy push", "data diff"} <= walked
    assert len(walked) >= 25 and len(CASES) >= 400


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    """<tmp>/proj (a small git project) next to <tmp>/outside (must stay untouched) and <tmp>/tmpdir."""
    top = tmp_path_factory.mktemp("hostile")
    proj = top / "proj"
    write_experiment(proj / "exp", name="hostile")
    (proj / "mlops.yaml").write_text("project: hostile\nexperiment:\n  file: exp/experiment.yaml\n")
    git(proj, "init", "-q", "-b", "main")
    git(proj, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-q", "--allow-empty", "-m", "init")
    (top / "outside").mkdir()
    (top / "outside" / "keep.txt").write_text("must survive\n")
    (top / "tmpdir").mkdir()
    (top / "home").mkdir()
    return top


@pytest.mark.parametrize("case_id,argv,params", CASES, ids=[c[0] for c in CASES])
def test_hostile_value(case_id, argv, params, sandbox, monkeypatch, capsys):
    proj = sandbox / "proj"
    around = {p.name for p in sandbox.iterdir()}
    outside = tree_snapshot(sandbox / "outside")
    for var in [v for v in list(os.environ) if v.startswith(("MLOPS_", "SLACK_", "GITHUB_", "JENKINS_",
                                                                           "MLFLOW_", "AWS_"))]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("TMPDIR", str(sandbox / "tmpdir"))
    monkeypatch.setenv("HOME", str(sandbox / "home"))
    monkeypatch.setenv("KUBECONFIG", str(sandbox / "home" / "no-kubeconfig"))
    monkeypatch.setenv("JENKINS_URL", "http://127.0.0.1:9/")
    monkeypatch.chdir(proj)
    if params is not None:
        params_file = sandbox / "tmpdir" / "params.json"
        params_file.write_text(json.dumps(params))  # NaN/Infinity as Python writes them, as json.load reads them
        monkeypatch.setenv("MLOPS_PARAMS_FILE", str(params_file))
    old_term = signal.getsignal(signal.SIGTERM)

    def too_long(signum, frame):  # e.g. a foreground server (mlops ui) started with a value it accepted
        raise KeyboardInterrupt(f"{case_id}: still running after {CASE_SECONDS} s")

    old_alarm = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(CASE_SECONDS)
    try:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old_alarm)
        signal.signal(signal.SIGTERM, old_term)
        if params is not None:
            (sandbox / "tmpdir" / "params.json").unlink()
    err = capsys.readouterr().err
    assert exit_info.value.code in (0, 1, 2), err[:500]
    assert "Traceback" not in err and BARE_EXCEPTION not in err, err[:300]
    if params is not None and not case_id.endswith("params-dotdot"):
        assert exit_info.value.code == 2, f"{case_id} must be refused as bad input: {err}"
    assert {p.name for p in sandbox.iterdir()} == around, "something was written next to the project"
    assert tree_snapshot(sandbox / "outside") == outside
    assert not list((sandbox / "tmpdir").iterdir()), "a temporary file was left in $TMPDIR"
