"""When `deploy wait` calls a GitOps commit deployed, failed, or still on its way.

Application statuses are written as Argo CD's controller writes them (Application CRD
``status``: ``sync``, ``health``, ``operationState`` with ``syncResult``, ``reconciledAt``,
``resources``, ``conditions``). The order Argo CD goes through after a push — refresh (revision
moves, OutOfSync, old health), sync operation Running, operation Succeeded, health re-assessed —
is why health alone, or a revision alone, is no proof (GUIDE §6).
"""

from __future__ import annotations

import subprocess

import pytest

from pyhelpers.config import load_config
from pyhelpers.deploy import argocd
from pyhelpers.errors import BadInput

OURS = "3f2a9c1d5e7b8a6f4c2d1e0b9a8c7d6e5f4a3b2c"
OLD = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d"


def app(revision: str = OURS, sync: str = "Synced", phase: str | None = "Succeeded", op_revision: str | None = None,
        health: str = "Healthy", op_message: str = "successfully synced (all tasks run)",
        finished: str = "2024-05-01T10:00:05Z", reconciled: str = "2024-05-01T10:00:06Z",
        health_message: str | None = None, results: list[dict] | None = None, resources: list[dict] | None = None,
        conditions: list[dict] | None = None) -> dict:
    status: dict = {"sync": {"status": sync, "revision": revision}, "health": {"status": health},
                    "reconciledAt": reconciled, "resources": resources or []}
    if health_message:
        status["health"]["message"] = health_message
    if phase is not None:
        status["operationState"] = {
            "operation": {"sync": {"revision": op_revision or revision}},
            "phase": phase, "message": op_message, "startedAt": "2024-05-01T10:00:00Z",
            **({"finishedAt": finished} if phase not in ("Running", "Terminating") else {}),
            "syncResult": {"revision": op_revision or revision, "resources": results or []},
        }
    if conditions:
        status["conditions"] = conditions
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "status": status}


def outcome(application: dict, target: str = OURS, contains=None) -> str:
    return argocd.verdict(application, target, contains)[0]


# -- the sequence Argo CD goes through after our push ---------------------------------------------
def test_the_old_revision_synced_and_healthy_is_not_our_deployment():
    assert outcome(app(revision=OLD)) == "waiting"


def test_after_a_refresh_the_new_revision_is_out_of_sync_with_old_health():
    assert outcome(app(sync="OutOfSync", op_revision=OLD)) == "waiting"


@pytest.mark.parametrize("phase", ["Running", "Terminating"])
def test_a_sync_of_our_commit_still_in_progress_is_waiting(phase):
    assert outcome(app(phase=phase)) == "waiting"


def test_degraded_health_while_our_sync_still_runs_is_not_yet_a_failure():
    # during a rollout the old pods may look Degraded; only health after the sync decides
    for phase in ("Running", "Terminating"):
        assert outcome(app(phase=phase, health="Degraded", health_message="rolling out")) == "waiting"


def test_health_from_before_the_sync_finished_does_not_count():
    early = app(finished="2024-05-01T10:00:05Z", reconciled="2024-05-01T10:00:04Z")
    assert argocd.verdict(early, OURS) == (
        "waiting", "sync Synced at 3f2a9c1d5e7b (waiting for 3f2a9c1d5e7b), operation Succeeded at 3f2a9c1d5e7b, "
                   "health Healthy (health not yet assessed after the sync)")
    same_second = app(finished="2024-05-01T10:00:05Z", reconciled="2024-05-01T10:00:05Z")
    assert outcome(same_second) == "deployed"


def test_synced_succeeded_and_healthy_at_our_commit_is_deployed():
    assert argocd.verdict(app(), OURS) == ("deployed", "Synced and Healthy at 3f2a9c1d5e7b")


def test_without_timestamps_health_at_our_synced_commit_counts():
    assert outcome(app(reconciled=None)) == "deployed"  # type: ignore[arg-type]
    assert outcome(app(finished=None)) == "deployed"  # type: ignore[arg-type]


@pytest.mark.parametrize("health", ["Progressing", "Missing", "Unknown", "Suspended"])
def test_synced_but_not_yet_healthy_is_waiting(health):
    assert outcome(app(health=health)) == "waiting"


def test_a_commit_that_needed_no_sync_is_deployed_on_the_last_successful_operation():
    # Argo CD found the cluster already matching our commit: the last operation is an older one
    assert outcome(app(op_revision=OLD)) == "deployed"
    assert outcome(app(phase=None)) == "waiting"  # no operation ever ran: not yet synced by Argo CD


def test_an_older_operations_failure_is_not_ours():
    assert outcome(app(op_revision=OLD, phase="Failed", op_message="old failure")) == "waiting"


# -- failures Argo CD reports for our commit -------------------------------------------------------
@pytest.mark.parametrize("phase", ["Failed", "Error"])
def test_a_failed_sync_of_our_commit_ends_the_wait_with_argo_cds_reasons(phase):
    results = [
        {"kind": "SeldonDeployment", "namespace": "models", "name": "taxi-fare", "status": "SyncFailed",
         "message": "admission webhook denied the request"},
        {"kind": "Job", "namespace": "models", "name": "presync", "status": "Synced", "hookPhase": phase},
        {"kind": "ClusterRole", "name": "reader", "status": "SyncFailed", "message": "forbidden"},
        {"kind": "Service", "namespace": "models", "name": "fine", "status": "Synced", "hookPhase": "Succeeded"},
    ]
    verdict = argocd.verdict(app(sync="OutOfSync", phase=phase, op_message="one or more objects failed to apply",
                                 results=results), OURS)
    assert verdict == ("failed", f"sync operation {phase}: one or more objects failed to apply; "
                                 "SeldonDeployment models/taxi-fare: admission webhook denied the request; "
                                 "Job models/presync: Synced; ClusterRole reader: forbidden")


def test_a_failed_sync_without_a_message_still_says_so():
    application = app(phase="Failed")
    del application["status"]["operationState"]["message"]
    assert argocd.verdict(application, OURS) == ("failed", "sync operation Failed: no message")


def test_degraded_health_after_our_sync_ends_the_wait_with_the_unhealthy_resources():
    resources = [
        {"kind": "SeldonDeployment", "namespace": "models", "name": "taxi-fare",
         "health": {"status": "Degraded", "message": "0/1 replicas available"}},
        {"kind": "Deployment", "name": "cluster-thing", "health": {"status": "Degraded"}},
        {"kind": "Pod", "namespace": "models", "name": "p", "health": {"status": "Degraded", "message": "OOM in X"}},
        {"kind": "Service", "namespace": "models", "name": "ok", "health": {"status": "Healthy", "message": "fine"}},
    ]
    verdict = argocd.verdict(app(health="Degraded", health_message="not ready", resources=resources), OURS)
    assert verdict == ("failed", "health Degraded: not ready; SeldonDeployment models/taxi-fare: 0/1 replicas "
                                 "available; Deployment cluster-thing; Pod models/p: OOM in X")
    bare = argocd.verdict(app(health="Degraded"), OURS)
    assert bare == ("failed", "health Degraded: no message")


def test_degraded_health_of_another_revision_is_not_our_failure():
    assert outcome(app(revision=OLD, health="Degraded")) == "waiting"
    assert outcome(app(sync="OutOfSync", op_revision=OLD, health="Degraded")) == "waiting"


# -- which revision counts as ours ------------------------------------------------------------------
def test_revisions_compare_case_insensitively_and_by_prefix():
    short = argocd.check_revision(OURS[:7].upper())
    assert short == OURS[:7]
    assert outcome(app(revision=OURS.upper()), short) == "deployed"
    assert outcome(app(revision=OLD), short) == "waiting"


def test_a_later_commit_containing_ours_counts_through_contains():
    later = "0" * 40
    application = app(revision=later)
    assert outcome(application) == "waiting"
    assert outcome(application, contains=lambda revision: revision in (OURS, later)) == "deployed"


@pytest.mark.parametrize("revision", ["3f2a9c1", OURS, "ABCDEF0123"])
def test_commit_shas_are_accepted_and_lower_cased(revision):
    assert argocd.check_revision(revision) == revision.lower()


@pytest.mark.parametrize("revision", ["3f2a9c", OURS + "a", "main", "g3f2a9c1", "3f2a9c1 ", "", None])
def test_anything_but_a_commit_sha_is_bad_input(revision):
    with pytest.raises(BadInput) as caught:
        argocd.check_revision(revision)
    assert str(caught.value) == f"--revision: {revision!r} is not a commit SHA (7 to 40 hex digits)"


# -- what the log and the result say -----------------------------------------------------------------
def test_state_reads_every_field_the_verdict_needs():
    s = argocd.state(app(sync="OutOfSync", phase="Running", op_revision=OLD, health="Progressing",
                         health_message="waiting for rollout", conditions=[{"type": "ComparisonError",
                                                                            "message": "repo unreachable"}]))
    assert s == {
        "sync_status": "OutOfSync", "sync_revision": OURS, "operation_phase": "Running", "operation_revision": OLD,
        "operation_message": "successfully synced (all tasks run)", "operation_finished_at": None,
        "health": "Progressing", "health_message": "waiting for rollout", "reconciled_at": "2024-05-01T10:00:06Z",
        "failed_resources": [], "unhealthy_resources": [], "conditions": ["ComparisonError: repo unreachable"],
    }


def test_state_of_an_application_without_status_is_all_unknown():
    s = argocd.state({"kind": "Application"})
    assert s == {"sync_status": None, "sync_revision": None, "operation_phase": None, "operation_revision": None,
                 "operation_message": None, "operation_finished_at": None, "health": None, "health_message": None,
                 "reconciled_at": None, "failed_resources": [], "unhealthy_resources": [], "conditions": []}
    assert argocd.verdict({"kind": "Application"}, OURS)[0] == "waiting"


def test_operation_revision_is_the_resolved_commit_not_the_requested_branch():
    application = app(phase="Succeeded")
    application["status"]["operationState"]["operation"]["sync"]["revision"] = "main"  # as requested
    assert argocd.state(application)["operation_revision"] == OURS                     # as synced
    assert outcome(application) == "deployed"


def test_operation_revision_falls_back_to_the_requested_sync_revision():
    application = app(phase="Running", op_revision=OLD)
    del application["status"]["operationState"]["syncResult"]
    assert argocd.state(application)["operation_revision"] == OLD


def test_describe_says_where_each_part_is_and_why():
    s = argocd.state(app(sync="OutOfSync", phase="Failed", op_revision=OLD, op_message="hook failed",
                         health="Healthy", health_message="all good", revision=None,  # type: ignore[arg-type]
                         conditions=[{"type": "SyncError", "message": "x"}]))
    assert argocd.describe(s, OURS) == ("sync OutOfSync at - (waiting for 3f2a9c1d5e7b), operation Failed at "
                                        "9e8d7c6b5a4f, health Healthy: hook failed; all good; SyncError: x")
    quiet = argocd.state(app())
    assert argocd.describe(quiet, OURS) == ("sync Synced at 3f2a9c1d5e7b (waiting for 3f2a9c1d5e7b), operation "
                                            "Succeeded at 3f2a9c1d5e7b, health Healthy")
    empty = argocd.state({})
    assert argocd.describe(empty, OURS) == ("sync - at - (waiting for 3f2a9c1d5e7b), operation - at -, health -")


# -- a later commit of a shared GitOps branch, checked in the real repository ----------------------------
def git(cwd, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def gitops(tmp_path):
    """A bare GitOps repository whose main has commits first -> second, plus an unrelated branch."""
    bare, work = tmp_path / "gitops.git", tmp_path / "work"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(tmp_path, "init", "-q", "-b", "main", str(work))
    git(work, "config", "user.name", "t")
    git(work, "config", "user.email", "t@localhost")
    shas = {}
    for name in ("first", "second"):
        (work / f"{name}.yaml").write_text(name)
        git(work, "add", ".")
        git(work, "commit", "-q", "-m", name)
        shas[name] = git(work, "rev-parse", "HEAD")
    git(work, "checkout", "-q", "--orphan", "other")
    git(work, "commit", "-q", "-m", "unrelated")
    shas["unrelated"] = git(work, "rev-parse", "HEAD")
    git(work, "push", "-q", str(bare), "main", "other")
    (tmp_path / "mlops.yaml").write_text(f"project: shared\ngitops:\n  repo: {bare}\n  branch: main\n")
    return load_config(tmp_path / "mlops.yaml", environ={}), shas


def test_contains_follows_the_branch_history(gitops, monkeypatch, capfd):
    from pyhelpers.deploy import gitops as gitops_mod

    cfg, sha = gitops
    assert argocd.Contains(cfg, sha["first"])(sha["second"]) is True      # a later push contains ours
    assert capfd.readouterr().err == (f"Argo CD is at {sha['second'][:12]}, a later commit of main that contains "
                                      f"{sha['first'][:12]}\n")
    assert argocd.Contains(cfg, sha["second"])(sha["first"]) is False     # an older one does not
    assert argocd.Contains(cfg, sha["first"])(sha["unrelated"]) is False
    ours = argocd.Contains(cfg, sha["first"][:10])
    assert ours(sha["first"].upper()) is True and ours(None) is False and ours("") is False

    calls = []
    real = gitops_mod.is_ancestor
    monkeypatch.setattr(gitops_mod, "is_ancestor", lambda *a: calls.append(a) or real(*a))
    later = argocd.Contains(cfg, sha["first"])
    assert later(sha["second"]) and later(sha["second"]) and calls == [(cfg, sha["first"], sha["second"])]
    assert later("main") is False and len(calls) == 1  # not a SHA: no git call, not ours
    assert later(sha["first"]) is True and len(calls) == 1  # the target itself: no git call
    application = app(revision=sha["second"], op_revision=sha["second"])
    assert argocd.verdict(application, sha["first"], later)[0] == "deployed"
