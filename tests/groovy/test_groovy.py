"""Runs every tests/groovy/*Test.groovy in one JVM (Debian's groovy 2.4, the Groovy Jenkins runs
pipelines with) and reports each Groovy test as its own pytest test.

The JVM starts once per session (about 0.5 s, plus compiling); the runner writes a JSON result
list that the tests below look up. Needs `groovy` (apt-get install groovy) and a JDK.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def groovy_test_ids() -> list[str]:
    ids = []
    for f in sorted(HERE.glob("*Test.groovy")):
        ids += [f"{f.stem}::{m}" for m in re.findall(r"^\s+void (test\w+)\(\)", f.read_text(), re.M)]
    return sorted(ids)


def java_home() -> str:
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    java = shutil.which("java")
    if not java:
        pytest.fail("no java on PATH: install a JDK (apt-get install default-jdk-headless groovy)")
    return str(Path(os.path.realpath(java)).parents[1])


@pytest.fixture(scope="session")
def groovy_results(tmp_path_factory) -> dict:
    groovy = shutil.which("groovy")
    if not groovy:
        pytest.fail("no groovy on PATH: install Debian's groovy (apt-get install groovy)")
    results = tmp_path_factory.mktemp("groovy") / "results.json"
    env = dict(os.environ, JAVA_HOME=java_home())
    # the contract test runs the `mlops` of this interpreter's environment
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # the CLI contract test generates the contract with this interpreter (python -m pyhelpers.contract)
    env["MLOPS_PYTHON"] = sys.executable
    proc = subprocess.run([groovy, "-cp", str(HERE), str(HERE / "run.groovy"), "--results", str(results)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    if not results.exists():
        pytest.fail(f"the Groovy runner wrote no results (exit {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return {r["id"]: r for r in json.loads(results.read_text())}


@pytest.mark.parametrize("test_id", groovy_test_ids())
def test_groovy(test_id: str, groovy_results: dict) -> None:
    result = groovy_results.get(test_id)
    assert result is not None, f"{test_id} did not run (see the runner output)"
    if result["status"] == "skipped":
        pytest.skip(result["message"])
    if result["status"] != "passed":
        pytest.fail(result["message"], pytrace=False)
