""".ci/install-system-deps: the one install step of `make test` and .ci/run."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "install-system-deps"


def test_present_packages_install_nothing_and_give_java_home():
    proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:  # a machine without them: the script's message is the test's reason
        raise AssertionError(proc.stderr)
    assert "all present" in proc.stderr
    java_home = Path(proc.stdout.strip().splitlines()[-1].removeprefix("JAVA_HOME="))
    assert (java_home / "bin" / "java").exists()


def test_without_root_it_stops_at_once_with_the_exact_command(tmp_path):
    """A machine lacking every package, run by a user who is not root: no apt-get call, one command to run."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "readlink", "cat"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    (bin_dir / "id").write_text("#!/bin/sh\necho 1000\n")  # not root
    (bin_dir / "apt-get").write_text(f"#!/bin/sh\ntouch {tmp_path}/apt-get-ran\n")
    for fake in ("id", "apt-get"):
        (bin_dir / fake).chmod(0o755)
    proc = subprocess.run([str(bin_dir / "bash"), str(SCRIPT)], capture_output=True, text=True, timeout=60,
                          env={"PATH": str(bin_dir)})
    assert proc.returncode == 1, proc
    assert "missing system packages: git groovy default-jre-headless npm prometheus openssl python3 python3-venv" in proc.stderr
    assert ("run as root: sudo sh -c 'apt-get update && apt-get install -y --no-install-recommends "
            "git groovy default-jre-headless npm prometheus openssl python3 python3-venv'") in proc.stderr
    assert not (tmp_path / "apt-get-ran").exists() and proc.stdout == ""
