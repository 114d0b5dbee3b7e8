"""mlops deploy render|push|wait|serve --local|smoke|stop"""

from __future__ import annotations

import json
from pathlib import Path

import click

from pyhelpers.commands._common import Result, leaf, load_project_config, log
from pyhelpers.errors import BadInput, OperationFailed

CHAMPION_HELP = "JSON file with the champion description (default: the registered model's `champion` alias)."


@click.group("deploy")
def cli():
    """Seldon/KServe manifests, GitOps push, local serving and smoke tests."""


def _champion(cfg, champion_file: str | None) -> dict:
    from pyhelpers.deploy.render import check_champion

    if champion_file:
        from pyhelpers.fsutil import read_state_json

        try:  # the shared state-file boundary: a folder, bad encoding, NaN/Infinity are exit 2 naming the file
            doc = read_state_json(champion_file, "champion file")
        except OSError as exc:
            raise BadInput(f"cannot read champion file: {exc.strerror}", source=champion_file) from None
        return check_champion(doc, champion_file)
    from pyhelpers.model.registry import get_champion

    champion = get_champion(cfg)
    if champion is None:
        raise OperationFailed(
            f"no version of registered model {cfg.registered_model!r} holds the alias 'champion'; "
            "run `mlops model register` (or `mlops model promote VERSION`) first"
        )
    return check_champion(champion)


def _rendered(cfg, champion: dict, champion_file: str | None) -> tuple[dict[str, str], dict]:
    """Rendered manifests once the champion's artifacts are known to exist (nothing is written before).

    A value the champion FILE holds that cannot be rendered names that file (exit 2); a champion
    whose MLmodel is missing is exit 1 naming its URI.
    """
    from pyhelpers.deploy.publish import checked_manifests

    try:
        return checked_manifests(cfg, champion)
    except BadInput as exc:
        if champion_file and not str(exc).startswith(champion_file):
            raise BadInput(str(exc), source=champion_file) from None
        raise


@leaf(cli, "render")
@click.option("--champion", metavar="FILE", help=CHAMPION_HELP)
@click.option("--out", metavar="DIR", help="Folder to write into (default: <state>/manifests).")
def render(champion, out) -> Result:
    """Render the champion's SeldonDeployment or InferenceService (deploy.target) and its Argo CD Application.

    Deterministic YAML; the champion's MLmodel must exist at its artifact URI first. When
    deploy.target changed, the other target's manifest rendered earlier into the folder is removed.
    """
    from pyhelpers.deploy.publish import write

    cfg = load_project_config()
    champion_file, champion = champion, _champion(cfg, champion)
    out = Path(out).resolve() if out else cfg.state_path("manifests")
    rendered, artifacts = _rendered(cfg, champion, champion_file)
    done = write(cfg, rendered, out)
    files = done["files"]
    changed = any(f["changed"] for f in files) or bool(done["removed"])
    data = {"changed": changed, "out_dir": str(out), "model": champion["name"], "version": str(champion["version"]),
            "target": cfg.deploy.target, "files": files, "removed": done["removed"], "artifacts": artifacts}
    lines = [f"{f['path']} ({'written' if f['changed'] else 'unchanged'})" for f in files]
    lines += [f"{path} (removed: deploy.target is {cfg.deploy.target})" for path in done["removed"]]
    return Result(data, "\n".join(lines))


@leaf(cli, "push")
@click.option("--champion", metavar="FILE", help=CHAMPION_HELP)
@click.option("--message", help="Commit message (default: names model, version and data version).")
def push(champion, message) -> Result:
    """Commit the rendered manifests to the GitOps repository and push (no commit when unchanged)."""
    from pyhelpers.deploy import publish
    from pyhelpers.deploy.gitops import commit_message

    cfg = load_project_config()
    champion_file, champion = champion, _champion(cfg, champion)
    files, _ = _rendered(cfg, champion, champion_file)
    from pyhelpers.commands._common import project_locked

    with project_locked(cfg):  # one writer per project (pyhelpers/lock.py)
        result = publish.push(cfg, files, message or commit_message(champion))
    data = {**result, "model": champion["name"], "version": str(champion["version"]),
            "data_version": champion.get("data_version"), "target": cfg.deploy.target}
    if result["changed"]:
        human = f"pushed {result['commit'][:12]} to {result['repo']} ({result['branch']}): {', '.join(result['paths'])}"
        if result.get("removed"):
            human += f"; removed {', '.join(result['removed'])}"
    else:
        human = f"unchanged: {result['repo']} ({result['branch']}) already has these manifests at {result['commit']}"
    return Result(data, human)


@leaf(cli, "wait")
@click.option("--revision", metavar="SHA", help="GitOps commit to wait for (default: the head of gitops.branch).")
@click.option("--timeout-minutes", type=click.FloatRange(min=0, min_open=True),
              help="Give up after this long (default: argocd.timeout_minutes).")
@click.option("--rollback-on-failure", is_flag=True,
              help="When it fails: revert the GitOps commit (a new commit) and move the champion alias back.")
def wait(revision, timeout_minutes, rollback_on_failure) -> Result:
    """Wait until Argo CD has synced the GitOps commit and the application is Healthy.

    Exit 0 when status.sync.revision is the commit, the sync operation Succeeded and health is
    Healthy; 1 when health is Degraded, the sync operation failed or the timeout passed.
    """
    from pyhelpers.deploy import argocd

    if revision:
        argocd.check_revision(revision)  # bad input before any network call
    cfg = load_project_config()
    minutes = timeout_minutes or cfg.argocd.timeout_minutes
    data = argocd.wait(cfg, revision, minutes * 60)
    if data["deployed"]:
        human = (f"deployed: Argo CD application {data['application']} is Synced and Healthy "
                 f"at {data['revision'][:12]} ({data['waited_seconds']}s)")
        isvc = data.get("inference_service") or {}
        if isvc.get("url"):
            human += f"\nInferenceService {isvc['namespace']}/{isvc['name']}: {isvc['url']}"
        return Result(data, human)
    lines = [f"not deployed: Argo CD application {data['application']} at {data['revision'][:12]}: {data['reason']}"]
    if rollback_on_failure:
        log(f"rolling back GitOps commit {data['revision'][:12]} and the champion alias")
        data["rollback"] = rb = argocd.rollback(cfg, data["revision"], data["reason"])
        g, c = rb["gitops"], rb["champion"]
        if g.get("error"):
            lines.append(f"GitOps revert failed: {g['error']}")
        elif g["changed"]:
            lines.append(f"GitOps: pushed revert commit {g['commit'][:12]} of {g['reverted'][:12]} to {g['repo']} ({g['branch']})")
        else:
            lines.append(f"GitOps: {g['reverted'][:12]} already reverted on {g['branch']} (unchanged)")
        if c.get("moved"):
            lines.append(f"champion: moved back from version {c['previous']} to {c['version']}")
        else:
            lines.append(f"champion: not moved: {c.get('reason') or c.get('error')}")
    log(f"mlops: error: {lines[0]}")  # the line Jenkins' mlopsCli reports as the failure
    return Result(data, "\n".join(lines), 1)


@leaf(cli, "serve")
@click.option("--local", "local", is_flag=True, help="Serve on this machine with MLServer (the only mode).")
@click.option("--champion", metavar="FILE", help=CHAMPION_HELP)
@click.option("--port", type=click.IntRange(1, 65535), help="HTTP port (default: deploy.serve_port).")
@click.option("--metrics-port", type=click.IntRange(1, 65535), help="Metrics port (default: deploy.metrics_port).")
def serve(local, champion, port, metrics_port) -> Result:
    """Run the champion with MLServer (V2 protocol, mlserver_mlflow runtime) on 127.0.0.1."""
    from pyhelpers.deploy.serve import serve_local

    if not local:
        raise BadInput("--local is required: in a cluster Argo CD deploys the pushed manifest")
    cfg = load_project_config()
    champion = _champion(cfg, champion)
    info = serve_local(cfg, champion, port=port, metrics_port=metrics_port)
    state = "already serving" if not info["changed"] else "serving"
    human = (f"{state} {info['model_name']} version {info['version']} at {info['url']} (pid {info['pid']})\n"
             f"inference: {info['infer_url']}\nmetrics:   {info['metrics_url']}\nstop with: mlops deploy stop")
    return Result(info, human)


@leaf(cli, "smoke")
@click.option("--url", help="Server base URL (default: the local server started by `deploy serve --local`).")
@click.option("--model-name", help="V2 model name (default: the local server's).")
@click.option("--input-example", metavar="FILE",
              help="Input example, pandas split orient (default: the served model's input_example.json).")
@click.option("--requests", type=click.IntRange(1, 10000), default=20, show_default=True,
              help="How many inference requests to send.")
@click.option("--max-latency-ms", type=click.FloatRange(min=0, min_open=True), default=1000.0, show_default=True,
              help="Fail when the p99 latency exceeds this.")
def smoke(url, model_name, input_example, requests, max_latency_ms) -> Result:
    """Send V2 inference requests built from the model's input example; exit 1 when they fail."""
    from pyhelpers.deploy.serve import read_server_state
    from pyhelpers.deploy.smoke import check_input_example, load_input_example, smoke_test

    metrics_url = None
    state = None
    if not url:
        cfg = load_project_config()
        state = read_server_state(cfg)
        if not state:
            raise OperationFailed("no local server is running: start one with `mlops deploy serve --local` "
                                  "or pass --url and --model-name")
        url, metrics_url = state["url"], state["metrics_url"]
        model_name = model_name or state["model_name"]
    if not model_name:
        raise BadInput("--model-name is required with --url")
    if input_example:
        try:
            example = json.loads(Path(input_example).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BadInput(f"cannot read input example: {exc}", source=input_example) from None
        example = check_input_example(example, input_example)
    elif state:
        example = load_input_example(state["model_dir"])
    else:
        raise BadInput("--input-example is required with --url")
    log(f"smoke test: {requests} requests to {url} ({model_name})")
    result = smoke_test(url, model_name, example, requests=requests, max_latency_ms=max_latency_ms,
                        metrics_url=metrics_url)
    lat = result["latency_ms"]
    human = (f"smoke OK: {model_name} version {result['model_version']} answered {requests} requests "
             f"({result['rows']} rows each); p50 {lat['p50']} ms, p99 {lat['p99']} ms; "
             f"first prediction {result['prediction']}")
    return Result(result, human)


@leaf(cli, "stop")
def stop() -> Result:
    """Stop the local MLServer started by `mlops deploy serve --local` (by its pid)."""
    from pyhelpers.deploy.serve import stop_local

    cfg = load_project_config()
    info = stop_local(cfg)
    human = f"stopped MLServer (pid {info['pid']})" if info["stopped"] else f"nothing to stop: {info['reason']}"
    return Result(info, human)
