"""The training key: what determines the model (data, parameters, trainer code, requirements), not HEAD."""

from __future__ import annotations

import sys

from pyhelpers.config import load_config
from pyhelpers.model.train import fingerprint, train_key, trainer_files
from tests.conftest import git


def _project(tmp_path):
    (tmp_path / "katib").mkdir()
    (tmp_path / "mlops.yaml").write_text("project: p\nexperiment:\n  file: katib/experiment.yaml\n")
    (tmp_path / "katib" / "experiment.yaml").write_text("kind: Experiment\n")
    (tmp_path / "train.py").write_text("print('loss=1')\n")
    (tmp_path / "requirements.txt").write_text("scikit-learn==1.9.1\n")
    (tmp_path / "README.md").write_text("hello\n")
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@x", "add", "-A")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "one")
    return load_config(tmp_path / "mlops.yaml", environ={})


def _key(cfg, params=None):
    argv = [sys.executable, str(cfg.root / "train.py"), "--lr=0.1"]
    code = fingerprint(cfg, {"metadata": {}}, argv, cfg.root)
    return train_key("dv-000000000001", params or {"lr": "0.1"}, code), code


def test_trainer_files_are_the_script_and_the_spec_not_the_interpreter(tmp_path):
    cfg = _project(tmp_path)
    argv = [sys.executable, "train.py", "--data-dir=data"]
    assert [p.name for p in trainer_files(cfg, {"metadata": {}}, argv, cfg.root)] == ["experiment.yaml", "train.py"]


def test_unrelated_commit_keeps_the_key_code_and_requirements_change_it(tmp_path):
    cfg = _project(tmp_path)
    first, code = _key(cfg)
    assert code["dirty"] is False and code["files"] == ["katib/experiment.yaml", "requirements.txt", "train.py"]
    (tmp_path / "README.md").write_text("edited\n")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qam", "readme")
    assert _key(cfg)[0] == first                        # a README commit is not a new model
    assert _key(cfg, {"lr": "0.2"})[0] != first         # parameters are
    (tmp_path / "train.py").write_text("print('loss=2')\n")
    changed, code = _key(cfg)
    assert changed != first and code["dirty"] is True   # trainer code is, and it is uncommitted
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qam", "trainer")
    committed, code = _key(cfg)
    assert committed == changed and code["dirty"] is False
    (tmp_path / "requirements.txt").write_text("scikit-learn==1.9.2\n")
    assert _key(cfg)[0] != committed                    # dependencies are
