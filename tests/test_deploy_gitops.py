"""mlops deploy push: GitOps commits to a bare repository — idempotent, retried after a race, never forced."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest

from pyhelpers.config import load_config
from pyhelpers.deploy import gitops
from pyhelpers.deploy.gitops import push_manifests, redact
from pyhelpers.errors import BadInput, OperationFailed
from tests.test_deploy_render import champion

FILES = {"apps/demo/seldondeployment.yaml": "kind: SeldonDeployment\nv: 1\n", "argocd/demo.yaml": "kind: Application\n"}


def make_cfg(tmp_path: Path, extra: str = "", environ: dict | None = None):
    (tmp_path / "mlops.yaml").write_text("project: demo\n" + extra)
    return load_config(tmp_path / "mlops.yaml", environ=environ or {})


def git(cwd: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "other", "GIT_AUTHOR_EMAIL": "o@localhost", "GIT_COMMITTER_NAME": "other",
           "GIT_COMMITTER_EMAIL": "o@localhost", "PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def log(bare: Path, branch: str = "main") -> list[str]:
    return git(bare, "log", "--format=%H %an %s", branch).splitlines()


def competitor_push(bare: Path, workdir: Path, path: str, text: str) -> str:
    """Another pipeline (its own clone) pushes a commit to the bare repository."""
    if not workdir.exists():
        git(bare.parent, "clone", "-q", str(bare), str(workdir))
    git(workdir, "pull", "-q", "--ff-only")
    (workdir / path).parent.mkdir(parents=True, exist_ok=True)
    (workdir / path).write_text(text)
    git(workdir, "add", "-A")
    git(workdir, "commit", "-qm", f"other pipeline: {path}")
    git(workdir, "push", "-q", "origin", "HEAD:main")
    return git(workdir, "rev-parse", "HEAD")


def test_first_push_creates_the_bare_repo_and_reruns_are_noops(tmp_path):
    cfg = make_cfg(tmp_path)
    first = push_manifests(cfg, FILES, "Deploy demo version 1 (data dv-1)")
    bare = tmp_path / ".mlops" / "gitops.git"
    assert first["changed"] and first["created_repo"] and first["previous"] is None
    assert first["repo"] == str(bare) and first["branch"] == "main" and first["paths"] == sorted(FILES)
    assert git(bare, "rev-parse", "main") == first["commit"]
    assert git(bare, "show", "main:apps/demo/seldondeployment.yaml") + "\n" == FILES["apps/demo/seldondeployment.yaml"]
    assert log(bare)[0].split(" ", 1)[1] == "mlops-bot Deploy demo version 1 (data dv-1)"

    again = push_manifests(cfg, FILES, "Deploy demo version 1 (data dv-1)")
    assert again["changed"] is False and again["commit"] == first["commit"] and again["created_repo"] is False
    assert len(log(bare)) == 1

    changed = push_manifests(cfg, {**FILES, "apps/demo/seldondeployment.yaml": "v: 2\n"}, "Deploy demo version 2")
    assert changed["changed"] and changed["previous"] == first["commit"]
    assert git(bare, "rev-parse", f"{changed['commit']}^") == first["commit"]  # a child, not a rewrite
    assert len(log(bare)) == 2


def test_rejected_push_is_fetched_reapplied_and_retried(tmp_path, monkeypatch):
    cfg = make_cfg(tmp_path)
    base = push_manifests(cfg, FILES, "base")
    bare = Path(base["repo"])
    real_git = gitops._git
    raced = {}

    def racing_git(args, cwd, env, check, secrets):
        if args[0] == "push" and not raced:  # another pipeline lands first
            raced["commit"] = competitor_push(bare, tmp_path / "other", "apps/other/x.yaml", "other: 1\n")
        return real_git(args, cwd, env, check, secrets)

    monkeypatch.setattr(gitops, "_git", racing_git)
    ours = push_manifests(cfg, {**FILES, "apps/demo/seldondeployment.yaml": "v: 2\n"}, "ours")
    assert ours["changed"] and ours["attempts"] == 2
    assert ours["previous"] == raced["commit"]
    # linear history: base <- other <- ours, and the other pipeline's file survived (no force-push)
    assert [line.split()[0] for line in log(bare)] == [ours["commit"], raced["commit"], base["commit"]]
    assert git(bare, "show", "main:apps/other/x.yaml") == "other: 1"
    assert git(bare, "show", "main:apps/demo/seldondeployment.yaml") == "v: 2"


def test_race_with_identical_content_ends_unchanged(tmp_path, monkeypatch):
    cfg = make_cfg(tmp_path)
    base = push_manifests(cfg, FILES, "base")
    bare = Path(base["repo"])
    real_git = gitops._git
    raced = {}

    def racing_git(args, cwd, env, check, secrets):
        if args[0] == "push" and not raced:  # the other pipeline pushes the very same manifest
            raced["commit"] = competitor_push(bare, tmp_path / "other", "apps/demo/seldondeployment.yaml", "v: 2\n")
        return real_git(args, cwd, env, check, secrets)

    monkeypatch.setattr(gitops, "_git", racing_git)
    ours = push_manifests(cfg, {**FILES, "apps/demo/seldondeployment.yaml": "v: 2\n"}, "ours")
    assert ours["changed"] is False and ours["commit"] == raced["commit"]
    assert len(log(bare)) == 2


def test_retries_are_bounded_and_never_force(tmp_path, monkeypatch):
    cfg = make_cfg(tmp_path, "gitops:\n  push_retries: 1\n")
    push_manifests(cfg, FILES, "base")
    bare = tmp_path / ".mlops" / "gitops.git"
    real_git = gitops._git
    pushes = []

    def always_racing_git(args, cwd, env, check, secrets):
        if args[0] == "push":
            assert "--force" not in args and "-f" not in args and not any(a.startswith("+") for a in args)
            pushes.append(competitor_push(bare, tmp_path / "other", "apps/other/x.yaml", f"n: {len(pushes)}\n"))
        return real_git(args, cwd, env, check, secrets)

    monkeypatch.setattr(gitops, "_git", always_racing_git)
    with pytest.raises(OperationFailed, match=r"rejected 2 times.*push_retries=1"):
        push_manifests(cfg, {**FILES, "argocd/demo.yaml": "changed\n"}, "ours")
    assert git(bare, "rev-parse", "main") == pushes[-1]  # the other pipeline's work is intact


def test_two_pipelines_pushing_at_once_both_land(tmp_path):
    cfg = make_cfg(tmp_path)
    push_manifests(cfg, FILES, "base")
    barrier = threading.Barrier(2)
    results, errors = {}, []

    def pipeline(name: str):
        try:
            barrier.wait()
            results[name] = push_manifests(cfg, {f"apps/{name}/seldondeployment.yaml": f"{name}\n"}, name)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=pipeline, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    bare = tmp_path / ".mlops" / "gitops.git"
    tree = git(bare, "ls-tree", "-r", "--name-only", "main").splitlines()
    assert {"apps/a/seldondeployment.yaml", "apps/b/seldondeployment.yaml"} <= set(tree)
    assert len(log(bare)) == 3 and all(r["changed"] for r in results.values())


def test_push_refused_by_the_server_is_an_operation_failure(tmp_path):
    cfg = make_cfg(tmp_path)
    push_manifests(cfg, FILES, "base")
    hook = tmp_path / ".mlops" / "gitops.git" / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'branch main is protected' >&2\nexit 1\n")
    hook.chmod(0o755)
    with pytest.raises(OperationFailed, match="git push to .* failed"):
        push_manifests(cfg, {**FILES, "argocd/demo.yaml": "changed\n"}, "ours")


def test_token_reaches_git_only_through_the_environment(tmp_path, monkeypatch):
    """An https remote (rewritten to a local bare repo by git's insteadOf) gets GITHUB_TOKEN via askpass only."""
    token = "ghp_THISISNOTAREALTOKEN123456"
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    url = "https://git.example.invalid/org/gitops.git"
    monkeypatch.setenv("GITHUB_TOKEN", token)
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", f"url.{bare.as_uri()}.insteadOf")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", url)
    cfg = make_cfg(tmp_path, f"gitops:\n  repo: {url}\n")
    real_git = gitops._git
    seen = []

    def spying_git(args, cwd, env, check, secrets):
        assert token not in " ".join(args)
        config = Path(cwd) / ".git" / "config"
        if config.is_file():
            seen.append(config.read_text())
        if args[0] == "push":
            assert env["MLOPS_GIT_TOKEN"] == token and Path(env["GIT_ASKPASS"]).is_file()
        return real_git(args, cwd, env, check, secrets)

    monkeypatch.setattr(gitops, "_git", spying_git)
    result = push_manifests(cfg, FILES, "with token")
    assert result["changed"] and result["repo"] == url
    assert seen and all(token not in text for text in seen)
    assert token not in json.dumps(result)
    assert token not in (bare / "config").read_text()


def test_credentials_in_the_repo_url_are_refused(tmp_path):
    cfg = make_cfg(tmp_path, environ={"MLOPS_GITOPS_REPO": "https://bot:ghp_secret@github.com/org/gitops.git"})
    with pytest.raises(BadInput) as err:
        push_manifests(cfg, FILES, "x")
    assert "ghp_secret" not in str(err.value) and "GITHUB_TOKEN" in str(err.value)
    assert redact("https://u:tok@h/x and tok", ("tok",)) == "https://***@h/x and ***"


@pytest.mark.parametrize("path", ["/etc/passwd", "../outside.yaml", ".git/config", "apps/../../x"])
def test_paths_must_stay_inside_the_repo(tmp_path, path):
    with pytest.raises(BadInput, match="must be relative"):
        push_manifests(make_cfg(tmp_path), {path: "x"}, "x")


def test_cli_push_twice_commits_once(tmp_path, mlops):
    (tmp_path / "mlops.yaml").write_text("project: taxi-fare\n")
    (tmp_path / "champion.json").write_text(json.dumps(champion(tmp_path)))
    first = mlops("deploy", "push", "--champion", "champion.json", "--json", cwd=tmp_path)
    assert first.code == 0, first
    doc = first.json()
    assert doc["changed"] and doc["version"] == "3" and doc["data_version"] == "dv-5f1c2a"
    assert doc["paths"] == ["apps/taxi-fare/seldondeployment.yaml", "argocd/taxi-fare.yaml"]
    bare = tmp_path / ".mlops" / "gitops.git"
    subject = git(bare, "log", "-1", "--format=%s", "main")
    assert subject == "Deploy taxi-fare version 3 (data dv-5f1c2a)"
    second = mlops("deploy", "push", "--champion", "champion.json", "--json", cwd=tmp_path)
    assert second.code == 0 and second.json()["changed"] is False and second.json()["commit"] == doc["commit"]
    assert len(log(bare)) == 1
