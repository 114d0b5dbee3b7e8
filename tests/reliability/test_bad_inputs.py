"""The bad-input corpus: every file under bad_inputs/ must be refused as bad input.

The corpus is organised by input boundary: ``cli/`` (argument lists), ``params/`` (MLOPS_PARAMS_FILE),
``config/`` (mlops.yaml), ``dvc/`` (.dvc files), ``state/`` (files under .mlops/ and the status
documents commands read), ``experiment/`` and ``metrics/`` (Katib specs), ``manifests/`` (champion
descriptions), ``jobdsl/`` (Job DSL project maps).

Each ``<boundary>/<name>`` has a sidecar ``<name>.expect`` (JSON): ``args`` (the mlops arguments;
``{file}`` is the corpus file copied into the workspace, ``{spec}`` a valid Experiment there),
optional ``env`` (same placeholders), optional ``place`` (where the file goes instead, relative to
the workspace, e.g. ``.mlops/data/processed.json``), optional ``config`` (the workspace's mlops.yaml,
``{stem}`` is the file's name without its suffix) and ``contains`` (substrings the error must carry:
the file, field or value). For ``cli/*.args`` the file itself is the JSON list of arguments.

What must hold for every input: exit code 2, exactly one line on stderr naming the file/field/value,
no traceback, and no file written or changed in the workspace (``.mlops/`` included).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_mlops, write_experiment
from tests.reliability.conftest import tree_snapshot

CORPUS = Path(__file__).resolve().parent / "bad_inputs"
CASES = sorted(p for p in CORPUS.glob("*/*") if p.suffix != ".expect")


def test_corpus_is_complete():
    """At least 40 inputs, each with its expectation, covering every category the issue lists."""
    assert len(CASES) >= 40
    for case in CASES:
        assert case.with_name(case.name + ".expect").is_file(), f"{case} has no .expect sidecar"
    assert {p.parent.name for p in CASES} >= {"config", "experiment", "metrics", "cli", "manifests", "state",
                                              "params", "dvc", "jobdsl"}


@pytest.fixture(scope="module")
def workspace_template(tmp_path_factory) -> Path:
    """A minimal valid project: mlops.yaml and one valid Experiment (exp/experiment.yaml)."""
    root = tmp_path_factory.mktemp("bad-inputs") / "ws"
    root.mkdir()
    (root / "mlops.yaml").write_text("project: bad-inputs\n")
    write_experiment(root / "exp", name="bad-inputs")
    return root


def _fill(value: str, names: dict[str, str]) -> str:
    for key, real in names.items():
        value = value.replace("{" + key + "}", real)
    return value


@pytest.mark.parametrize("case", CASES, ids=[f"{p.parent.name}/{p.name}" for p in CASES])
def test_bad_input_is_refused(case: Path, workspace_template: Path, tmp_path: Path):
    expect = json.loads(case.with_name(case.name + ".expect").read_text())
    ws = Path(shutil.copytree(workspace_template, tmp_path / "ws"))
    place = ws / expect.get("place", case.name)
    place.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(case, place)
    if "config" in expect:
        (ws / "mlops.yaml").write_text(expect["config"].replace("{stem}", case.name.rsplit(".", 1)[0]))
    names = {"file": expect.get("place", case.name), "spec": "exp/experiment.yaml"}
    args = json.loads(case.read_text()) if case.suffix == ".args" else expect["args"]
    env = {k: _fill(v, names) for k, v in (expect.get("env") or {}).items()}
    before = tree_snapshot(ws)

    r = run_mlops(*(_fill(a, names) for a in args), cwd=ws, env=env, timeout=120)

    assert r.code == 2, r
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{r.err}"
    assert "Traceback" not in r.err + r.out
    for part in expect["contains"]:
        assert part in lines[0], f"{part!r} not named in: {lines[0]}"
    assert tree_snapshot(ws) == before, "a refused input must not write anything"
