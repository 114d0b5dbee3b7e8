"""Line 2: finished Experiment -> trained, registered, gated model -> manifest -> GitOps -> served.

train the best trial (MLflow run with lineage) -> register a version and gate it against the
``champion`` alias -> render the champion's SeldonDeployment -> serve it locally with MLServer and
smoke-test it -> push the manifest to the GitOps repository. Every step is idempotent, so a rerun
with the same data and model changes nothing (no new version, no new commit).

The local smoke test runs before the push: a model that fails it never reaches the GitOps
repository, and a champion promoted by this run is moved back.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from pyhelpers import notify
from pyhelpers.errors import MlopsError


def _log(message: str) -> None:
    print(f"[line deploy] {message}", file=sys.stderr, flush=True)


def run_deploy_line(cfg, experiment: str | None = None, serve: bool = True, port: int | None = None,
                    metrics_port: int | None = None) -> tuple[dict[str, Any], int]:
    from pyhelpers.line import deploy_record

    unchanged = deploy_record.unchanged_result(cfg, experiment, serve, port)  # the common no-op, without MLflow
    if unchanged is not None:
        _log(f"unchanged: {unchanged['shortcut']}")
        return unchanged, 0
    deploy_record.forget(cfg)
    result, code = _run_deploy_line(cfg, experiment, serve, port, metrics_port)
    deploy_record.remember(cfg, result, experiment, serve, port)
    return result, code


def _run_deploy_line(cfg, experiment: str | None, serve: bool, port: int | None,
                     metrics_port: int | None) -> tuple[dict[str, Any], int]:
    from pyhelpers.deploy import gitops, publish
    from pyhelpers.model import registry, train

    steps: dict[str, Any] = {}
    result: dict[str, Any] = {"line": "deploy", "steps": steps}

    trained = train.train(cfg, experiment)
    steps["train"] = trained
    _log(f"train: {'unchanged, ' if trained['unchanged'] else ''}run {trained['run_id']} "
         f"({trained['experiment']} / {trained['best_trial']})")

    gate = registry.register(cfg, trained["run_id"])
    steps["register"] = gate
    promoted_now = gate["promoted"] and not gate.get("unchanged")
    _log(f"register: {gate['name']} version {gate['candidate']['version']} "
         f"{'promoted' if gate['promoted'] else 'not promoted'}: {gate['reason']}")

    champion = registry.get_champion(cfg)
    if champion is None:
        result.update(status="not-deployed", reason="no champion version to deploy")
        return result, 0

    files, _ = publish.checked_manifests(cfg, champion)  # rendered, and the champion's MLmodel exists
    steps["render"] = {"paths": sorted(files), "model": champion["name"], "version": champion["version"]}

    if serve:
        try:
            steps["serve"], steps["smoke"] = _serve_and_smoke(cfg, champion, port, metrics_port)
        except MlopsError as exc:
            if promoted_now:
                back = registry.withdraw(cfg, champion["version"], f"local serve/smoke failed: {exc}")
                _log(f"champion withdrawn: now {back['champion'] or 'none'}")
            note = f" (manifest not pushed; version {champion['version']} " \
                   f"{'withdrawn' if promoted_now else 'stays champion'})"
            raise type(exc)(f"{exc}{note}") from None

    pushed = publish.push(cfg, files, gitops.commit_message(champion))  # removes a switched-from target's manifest
    steps["push"] = pushed
    _log(f"push: {'commit ' + pushed['commit'][:12] if pushed['changed'] else 'unchanged'} "
         f"({', '.join(pushed['paths'])})")

    changed = not trained["unchanged"] or promoted_now or pushed["changed"]
    if changed:  # a rerun that changed nothing tells nobody
        message = notify.deployment_message(champion, gate, cfg.notify.link or os.environ.get("BUILD_URL"), pushed)
        try:
            steps["notify"] = notify.send(cfg, message, "deployment")
        except MlopsError as exc:
            # the deployment already happened: a notice that cannot be delivered is a warning, not a failure
            steps["notify"] = result["notification"] = {"error": str(exc)}
            _log(f"warning: deployment notice not delivered: {exc}")
    result.update(status="completed" if changed else "unchanged", champion=champion,
                  promoted=gate["promoted"], reason=gate["reason"], candidate_version=gate["candidate"]["version"],
                  manifest=cfg.gitops_path, gitops_commit=pushed["commit"])
    return result, 0


def _serve_and_smoke(cfg, champion: dict, port: int | None = None,
                     metrics_port: int | None = None) -> tuple[dict, dict]:
    from pyhelpers.deploy.serve import serve_local
    from pyhelpers.deploy.smoke import load_input_example, smoke_test

    served = serve_local(cfg, champion, port=port, metrics_port=metrics_port)
    _log(f"serve: {champion['name']} version {champion['version']} at {served['url']}")
    example = load_input_example(served["model_dir"])
    smoke = smoke_test(served["url"], served["model_name"], example, metrics_url=served["metrics_url"],
                       model_version=str(champion["version"]))
    _log(f"smoke: p50 {smoke['latency_ms']['p50']} ms, p99 {smoke['latency_ms']['p99']} ms")
    return served, smoke


def mlflow_ui_command(cfg) -> str:
    """The command that opens the MLflow UI on this project's store (local profile)."""
    return "mlops ui" if cfg.tracking_uri.startswith("sqlite:") else f"open {cfg.tracking_uri}"


def human_summary(cfg, result: dict) -> str:
    from pyhelpers.experiment.status import human_value

    if result.get("status") == "not-deployed":
        return f"nothing deployed: {result['reason']}"
    s = result["steps"]
    t, champion = s["train"], result["champion"]
    lines = [
        f"Deploy line: {result['status']}",
        f"  best parameters ({t['experiment']} / {t['best_trial']}): "
        + ", ".join(f"{k}={human_value(v)}" for k, v in t["parameters"].items()),
        f"  MLflow run {t['run_id']} -> {s['register']['name']} version {result['candidate_version']}",
        f"  {'promoted' if result['promoted'] else 'not promoted'}: {result['reason']}",
        f"  champion: version {champion['version']} (data {champion.get('data_version')})",
        f"  manifest: {result['manifest']} @ {result['gitops_commit'][:12]} in {s['push']['repo']}",
    ]
    if "serve" in s:
        lines.append(f"  serving: {s['serve']['infer_url']} (metrics {s['serve']['metrics_url']})")
        lines.append(f"  prediction for the first input example row: {s['smoke']['prediction']}")
    lines.append(f"  MLflow UI: {mlflow_ui_command(cfg)}")
    if (result.get("notification") or {}).get("error"):
        lines.append(f"  warning: the deployment notice was not delivered: {result['notification']['error']}")
    return "\n".join(lines)
