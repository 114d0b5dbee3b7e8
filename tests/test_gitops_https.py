"""GitOps push over HTTP(S) with GITHUB_TOKEN, against git's own smart-HTTP backend (tests/fakes/git_http.py).

Real git talks to ``git http-backend`` behind a local server that demands the token as Basic
credentials. The token is a canary: it must reach the server and nowhere else — not the clone's
``.git/config``, not arguments, output or files, not a credential helper's store.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pyhelpers.config import load_config
from pyhelpers.deploy import gitops
from pyhelpers.errors import OperationFailed
from tests.fakes.git_http import GitHttpServer
from tests.test_deploy_render import champion

CANARY = "ghp_CANARYgitopsTOKEN0000000000000000"
FILES = {"apps/demo/seldondeployment.yaml": "kind: SeldonDeployment\nv: 1\n", "argocd/demo.yaml": "kind: Application\n"}


def bare_git(bare: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=bare, check=True, capture_output=True, text=True).stdout.strip()


def leaks(folder: Path, secret: str) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


@pytest.fixture(params=["https", "http"])
def server(request, tmp_path):
    with GitHttpServer(tmp_path / "server", CANARY, tls=request.param == "https") as srv:
        srv.bare = srv.create("org/gitops.git")
        yield srv


@pytest.fixture
def https_server(tmp_path):
    with GitHttpServer(tmp_path / "server", CANARY, tls=True) as srv:
        srv.bare = srv.create("org/gitops.git")
        yield srv


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A HOME whose git config would store every credential it sees (as a careless agent's might)."""
    folder = tmp_path / "home"
    folder.mkdir()
    (folder / ".gitconfig").write_text(f"[credential]\n\thelper = store --file {folder / 'stored-credentials'}\n")
    monkeypatch.setenv("HOME", str(folder))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    return folder


def make_cfg(folder: Path, url: str):
    folder.mkdir(exist_ok=True)
    (folder / "mlops.yaml").write_text(f"project: demo\ngitops:\n  repo: {url}\n")
    return load_config(folder / "mlops.yaml", environ={})


def test_push_repush_and_revert_with_the_token_only_in_the_environment(server, home, tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", CANARY)
    if server.ca_file:
        monkeypatch.setenv("GIT_SSL_CAINFO", str(server.ca_file))
    cfg = make_cfg(tmp_path / "proj", server.repo_url("org/gitops.git"))
    real_git = gitops._git
    configs = []

    def spying_git(args, cwd, env, check, secrets):
        assert CANARY not in " ".join(args)
        config = Path(cwd) / ".git" / "config"
        if config.is_file():
            configs.append(config.read_text())
        proc = real_git(args, cwd, env, check, secrets)
        configs.append((Path(cwd) / ".git" / "config").read_text() if (Path(cwd) / ".git" / "config").is_file() else "")
        assert CANARY not in proc.stdout + proc.stderr
        return proc

    monkeypatch.setattr(gitops, "_git", spying_git)
    first = gitops.push_manifests(cfg, FILES, "Deploy demo version 1")
    assert first["changed"] and bare_git(server.bare, "rev-parse", "main") == first["commit"]
    assert first["repo"] == server.repo_url("org/gitops.git")
    again = gitops.push_manifests(cfg, FILES, "Deploy demo version 1")
    assert again["changed"] is False and again["commit"] == first["commit"]
    second = gitops.push_manifests(cfg, {**FILES, "apps/demo/seldondeployment.yaml": "v: 2\n"}, "Deploy demo version 2")
    assert gitops.branch_head(cfg) == second["commit"]

    reverted = gitops.revert_commit(cfg, second["commit"], "Revert version 2")
    assert reverted["changed"] and reverted["reverted"] == second["commit"]
    assert bare_git(server.bare, "log", "--format=%H", "main").split() == [reverted["commit"], second["commit"], first["commit"]]
    assert bare_git(server.bare, "show", "main:apps/demo/seldondeployment.yaml") + "\n" == FILES["apps/demo/seldondeployment.yaml"]
    assert gitops.revert_commit(cfg, second["commit"], "Revert version 2")["changed"] is False  # idempotent

    # the server really demanded and got the token: a challenge, then authenticated requests
    assert {r["auth"] for r in server.requests} == {"missing", "ok"}
    assert any(r["path"].endswith("git-receive-pack") and r["code"] == 200 for r in server.requests)
    assert configs and not any(CANARY in text for text in configs)
    assert server.url in "".join(configs)  # the clone's remote is the plain URL
    assert not (home / "stored-credentials").exists(), "a credential helper stored the token"
    assert not leaks(tmp_path, CANARY)


def test_cli_push_wrong_and_missing_token(https_server, home, tmp_path, mlops):
    server = https_server
    project = tmp_path / "proj"
    make_cfg(project, server.repo_url("org/gitops.git"))
    (project / "champion.json").write_text(json.dumps(champion(project, name="demo")))
    env = {"GITHUB_TOKEN": CANARY, "HOME": str(home), "GIT_SSL_CAINFO": str(server.ca_file)}
    ok = mlops("deploy", "push", "--champion", "champion.json", "--json", cwd=project, env=env)
    assert ok.code == 0, ok
    assert ok.json()["changed"] and bare_git(server.bare, "rev-parse", "main") == ok.json()["commit"]
    again = mlops("deploy", "push", "--champion", "champion.json", "--json", cwd=project, env=env)
    assert again.code == 0 and again.json()["changed"] is False, again

    wrong = mlops("deploy", "push", "--champion", "champion.json", cwd=project, env={**env, "GITHUB_TOKEN": "x" + CANARY})
    assert wrong.code == 1, wrong
    assert "Authentication failed" in wrong.err and "the remote refused GITHUB_TOKEN" in wrong.err, wrong
    assert any(r["auth"] == "wrong" for r in server.requests)

    missing = mlops("deploy", "push", "--champion", "champion.json", cwd=project, env={**env, "GITHUB_TOKEN": ""})
    assert missing.code == 1 and "GITHUB_TOKEN is not set" in missing.err, missing

    for r in (ok, again, wrong, missing):
        assert CANARY not in r.out + r.err
    assert not leaks(tmp_path, CANARY) and not (home / "stored-credentials").exists()


def test_token_goes_only_to_https_or_this_machine(monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", CANARY)
    assert gitops.token_for("https://github.com/org/gitops.git") == CANARY
    assert gitops.token_for("http://127.0.0.1:8080/gitops.git") == CANARY
    assert gitops.token_for("http://git.example.com/gitops.git") is None  # plain HTTP over a network: never
    assert gitops.token_for("/srv/gitops.git") is None and gitops.token_for("git@github.com:org/gitops.git") is None


def test_lineage_reads_the_deployed_manifest_from_the_token_protected_remote(https_server, home, tmp_path, monkeypatch):
    """`mlops lineage` fetches the GitOps branch the way a push reaches it: the token from the
    environment, nowhere else, and the fetch's folder under .mlops/tmp/ is gone afterwards."""
    from pyhelpers.lineage import read_deployed

    server = https_server
    monkeypatch.setenv("GITHUB_TOKEN", CANARY)
    monkeypatch.setenv("GIT_SSL_CAINFO", str(server.ca_file))
    cfg = make_cfg(tmp_path / "proj", server.repo_url("org/gitops.git"))
    pushed = gitops.push_manifests(cfg, FILES, "Deploy demo version 1")
    found = read_deployed(cfg)
    assert (found["path"], found["commit"]) == ("apps/demo/seldondeployment.yaml", pushed["commit"])
    assert found["text"] == FILES["apps/demo/seldondeployment.yaml"]
    assert not list((tmp_path / "proj" / ".mlops" / "tmp").iterdir())

    monkeypatch.setenv("GITHUB_TOKEN", "x" + CANARY)
    with pytest.raises(OperationFailed) as refused:
        read_deployed(cfg)
    assert str(refused.value).startswith(f"cannot fetch {server.repo_url('org/gitops.git')} (main): git fetch failed")
    assert "the remote refused GITHUB_TOKEN" in str(refused.value) and CANARY not in str(refused.value)
    assert not leaks(tmp_path, CANARY) and not (home / "stored-credentials").exists()
