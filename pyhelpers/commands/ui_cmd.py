"""mlops ui: the MLflow UI on this project's store, on a free 127.0.0.1 port.

`mlflow server` with its defaults starts 4 workers, a job runner and huey consumers (about 3.5 GB
RSS and 50 s until it answered here); one worker and job execution off
(``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``, GUIDE §6) answer in seconds with ~0.5 GB.
It runs in the foreground until Ctrl-C (or SIGTERM), and stops its server process group then.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import click

from pyhelpers.commands._common import LeafCommand, load_project_config, log
from pyhelpers.errors import BadInput, OperationFailed

HOST = "127.0.0.1"


def server_command(tracking_uri: str, artifact_root: str, port: int) -> list[str]:
    return [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri,
            "--default-artifact-root", artifact_root, "--host", HOST, "--port", str(port), "--workers", "1"]


def server_env() -> dict[str, str]:
    return {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def wait_until_answering(url: str, proc: subprocess.Popen, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise OperationFailed(f"the MLflow server exited with code {proc.returncode} before it answered on {url}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as resp:
                if resp.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.2)
    raise OperationFailed(f"the MLflow server did not answer on {url} within {timeout:.0f} s")


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the UI as Ctrl-C does


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: uvicorn's worker goes too
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


@click.command("ui", cls=LeafCommand)  # the shared input boundary (parameter file, finite numbers)
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port on 127.0.0.1 (0: a free one).")
@click.option("--ready-timeout", type=click.FloatRange(min=1), default=60.0, show_default=True,
              help="Seconds to wait until the UI answers.")
def cli(port: int, ready_timeout: float):
    """Start the MLflow UI on this project's tracking store (one worker, jobs off) until Ctrl-C."""
    from pyhelpers.deploy.serve import _port_free, free_port, port_holder

    cfg = load_project_config()
    uri = cfg.tracking_uri
    if uri.startswith(("http://", "https://")):
        print(f"this profile's MLflow is a server: open {uri}")
        return
    if not uri.startswith("sqlite:") and "://" in uri:
        raise BadInput(f"mlflow.tracking_uri {uri!r}: `mlops ui` serves a local store (sqlite:/// or a folder)")
    if port and not _port_free(port):
        holder = port_holder(port)
        raise OperationFailed(f"port {port} on {HOST} is {'held by ' + holder if holder else 'in use'}; "
                              "choose another with --port (or leave it out for a free one)")
    port = port or free_port()
    url = f"http://{HOST}:{port}"
    log(f"starting the MLflow UI on {uri} at {url}")
    proc = subprocess.Popen(server_command(uri, cfg.mlflow_artifact_root, port), env=server_env(),
                            stdin=subprocess.DEVNULL, stdout=sys.stderr, start_new_session=True)  # stdout: ours
    try:
        took = wait_until_answering(url, proc, ready_timeout)
        print(f"MLflow UI: {url} (ready in {took:.1f} s; Ctrl-C to stop)", flush=True)
        signal.signal(signal.SIGTERM, _interrupt)
        proc.wait()
        if proc.returncode:
            raise OperationFailed(f"the MLflow server exited with code {proc.returncode}")
    except KeyboardInterrupt:
        log("stopping the MLflow UI")
    finally:
        _stop(proc)
