"""Serve the champion locally the way the SeldonDeployment serves it in the cluster: MLServer with
the ``mlserver_mlflow`` runtime (V2 inference protocol), bound to 127.0.0.1.

MLServer lives in its own virtualenv (it needs protobuf >= 5.27, which kubeflow-katib's pin
forbids in the mlops environment), built from the model's ``requirements.txt`` plus MLServer and
cached by a hash of both under ``serving_envs_dir(cfg)``.

State of the running server: ``<state>/serving/`` holds ``settings.json``,
``models/<name>/model-settings.json``, ``mlserver.log`` and ``server.json`` (the pid file: pid,
ports, model and version). The server is stopped by that pid, never by name.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from pyhelpers.errors import BadInput, OperationFailed

HOST = "127.0.0.1"
ENVS_DIR_ENV = "MLOPS_SERVING_ENVS_DIR"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def serving_pins(mlserver_version: str) -> list[str]:
    """What the serving env adds to the model's requirements (see GUIDE §6 for each pin)."""
    return [
        f"mlserver=={mlserver_version}",
        f"mlserver-mlflow=={mlserver_version}",
        "protobuf>=5.27.2",  # MLServer imports google.protobuf.runtime_version
        "opentelemetry-sdk>=1.28",
        "opentelemetry-api>=1.28",
        "uvloop<0.22",  # 0.23 crashed MLServer's inference worker; parallel_workers=0 avoids it too
    ]


# -- serving environments -------------------------------------------------------------------------
def serving_envs_dir(cfg) -> Path:
    chosen = os.environ.get(ENVS_DIR_ENV) or cfg.deploy.serving_envs_dir
    return cfg.project_path(chosen).resolve() if chosen else cfg.state_path("serving-envs")


def requirement_lines(text: str) -> list[str]:
    lines = (line.split(" #")[0].strip() for line in text.splitlines())
    return sorted({line for line in lines if line and not line.startswith("#")})


def env_hash(requirements: list[str], pins: list[str]) -> str:
    python = f"{platform.python_implementation()}-{platform.python_version()}"
    doc = json.dumps({"python": python, "requirements": requirements, "pins": pins}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


def _uv() -> str | None:
    """The uv binary shipped by the ``uv`` wheel (an install requirement), or None."""
    try:
        from uv import find_uv_bin
    except ImportError:
        return None
    try:
        return find_uv_bin()
    except FileNotFoundError:
        return None


def _run_logged(argv: list[str], build_log: Path, env: dict[str, str], what: str) -> None:
    """Run one build step, its output appended to the build log, with a live elapsed-time line."""
    from pyhelpers.progress import activity

    with open(build_log, "a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        with activity(f"serving environment: {what}"):
            proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    if proc.returncode != 0:
        raise OperationFailed(
            f"building the serving environment failed ({what}: exit {proc.returncode}): "
            f"{_last_line(build_log, 'error')}; full log: {build_log}"
        )


def ensure_serving_env(cfg, requirements_text: str) -> Path:
    """The virtualenv for these requirements, built once (under a file lock) and reused.

    uv creates the venv and installs MLServer + the model's requirements (seconds, where pip takes
    1-2 minutes); pip is the fallback when the uv wheel is missing.
    """
    import fcntl

    requirements = requirement_lines(requirements_text)
    pins = serving_pins(cfg.deploy.mlserver_version)
    root = serving_envs_dir(cfg)
    env_dir = root / env_hash(requirements, pins)
    done = env_dir / ".complete"
    if done.is_file():
        return env_dir
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{env_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second builder waits, then reuses the first one's env
        if done.is_file():
            return env_dir
        shutil.rmtree(env_dir, ignore_errors=True)  # leftovers of an interrupted build
        # the log lives beside the env (the env folder is created by the build itself)
        build_log = root / f"{env_dir.name}.build.log"
        build_log.write_text("", encoding="utf-8")
        uv = _uv()
        _log(f"building the serving environment {env_dir} with {'uv' if uv else 'pip'} "
             f"(once per model requirements); log: {build_log}")
        started = time.monotonic()
        req_file = root / f"{env_dir.name}.requirements.txt"
        req_file.write_text("\n".join(requirements) + "\n", encoding="utf-8")
        python = str(env_dir / "bin" / "python")
        env = _clean_env(env_dir)
        if uv:
            _run_logged([uv, "venv", "--no-config", "--quiet", "--python", sys.executable, str(env_dir)],
                        build_log, env, "creating the virtualenv")
            install = [uv, "pip", "install", "--no-config", "--python", python, "-r", str(req_file), *pins]
        else:
            _run_logged([sys.executable, "-m", "venv", str(env_dir)], build_log, env, "creating the virtualenv")
            install = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                       "-r", str(req_file), *pins]
        _run_logged(install, build_log, env, f"installing MLServer {cfg.deploy.mlserver_version} "
                                             f"and {len(requirements)} model requirements")
        # importing what MLServer loads also writes their bytecode: compiling everything (uv
        # --compile-bytecode) took 4x longer than the install, and without any a first start took 15 s
        check = subprocess.run(
            [python, "-c", "import mlserver, mlserver_mlflow, mlflow.pyfunc, google.protobuf.runtime_version"],
            capture_output=True, text=True, env=env,
        )
        if check.returncode != 0:
            lines = check.stderr.strip().splitlines() or ["unknown error"]
            raise OperationFailed(f"serving environment {env_dir} is unusable: {lines[-1]} (log: {build_log})")
        shutil.copyfile(req_file, env_dir / "model-requirements.txt")
        shutil.copyfile(build_log, env_dir / "build.log")
        done.write_text(json.dumps({"requirements": requirements, "pins": pins}, indent=2) + "\n")
        _log(f"serving environment ready in {time.monotonic() - started:.1f} s")
    return env_dir


def _clean_env(env_dir: Path) -> dict[str, str]:
    """Environment for processes of the serving env: nothing leaks in from the mlops venv."""
    # PYTHONDONTWRITEBYTECODE out too: the env's bytecode is what makes MLServer start in seconds
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE")}
    env["VIRTUAL_ENV"] = str(env_dir)
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def _last_line(path: Path, prefer: str = "") -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    preferred = [ln for ln in lines if prefer and ln.lower().startswith(prefer.lower())]
    return (preferred or lines or ["empty log"])[-1][:300]


# -- the model --------------------------------------------------------------------------------------
def local_model_dir(cfg, champion: dict) -> Path:
    """A local folder holding the champion's MLflow model (downloaded once when it is remote)."""
    from pyhelpers.deploy.render import check_champion

    check_champion(champion)
    uri = str(champion["artifact_uri"])
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    if "://" not in uri and ":/" not in uri:
        path = cfg.project_path(uri).resolve()
        if not (path / "MLmodel").is_file():
            raise OperationFailed(f"champion artifact_uri {path}: no MLflow model there (MLmodel missing)")
        return path
    target = cfg.state_path("serving", "downloads", f"{champion['name']}-{champion['version']}")
    if (target / "MLmodel").is_file():
        return target
    import mlflow

    mlflow.set_tracking_uri(cfg.tracking_uri)
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=str(champion["artifact_uri"]), dst_path=str(tmp)))
    if not (local / "MLmodel").is_file():
        raise OperationFailed(f"downloaded {champion['artifact_uri']}: no MLmodel in it")
    shutil.rmtree(target, ignore_errors=True)
    local.rename(target)  # whole or not at all
    shutil.rmtree(tmp, ignore_errors=True)
    return target


# -- the server process --------------------------------------------------------------------------
def serving_dir(cfg) -> Path:
    return cfg.state_path("serving")


def _state_file(cfg) -> Path:
    return serving_dir(cfg) / "server.json"


def read_server_state(cfg) -> dict | None:
    try:
        return json.loads(_state_file(cfg).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own exited child
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
            return True
        except OSError:
            return False


def _is_our_server(pid: int, serve_dir: Path) -> bool:
    """The pid still runs the MLServer we started (guards against a reused pid)."""
    if not _alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: trust the pid file
    return any(b"mlserver" in part for part in cmdline) and str(serve_dir).encode() in cmdline


def _port_free(port: int) -> bool:
    """Can a server bind this port now? SO_REUSEADDR as servers set it (uvicorn does), so sockets of a
    stopped server still in TIME_WAIT do not block a restart; a listening socket does."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
            return True
        except OSError:
            return False


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _listening_inodes(port: int) -> set[str]:
    """Inodes of the sockets listening on ``port`` (any address), from /proc/net/tcp and tcp6."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            # local_address is HEXIP:HEXPORT; state 0A is LISTEN
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def listening_pids(port: int) -> set[int] | None:
    """Processes holding a listening socket on ``port`` (None when /proc cannot tell)."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None if not Path("/proc/net/tcp").exists() else set()
    wanted = {f"socket:[{inode}]" for inode in inodes}
    pids = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in wanted:
                    pids.add(int(proc.name))
                    break
        except OSError:  # gone, or not ours to read
            continue
    return pids


def port_holder(port: int) -> str | None:
    """'pid N (command line)' of the process listening on ``port``, when it can be known."""
    pids = listening_pids(port)
    if not pids:
        return None
    pid = min(pids)
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        cmd = ""
    return f"pid {pid} ({cmd[:120]})" if cmd else f"pid {pid}"


def _check_ports(ports: list[tuple[str, str, str, int]]) -> None:
    """Exit 1 naming the port, who holds it and the setting that chooses it, for each taken port."""
    for what, setting, option, port in ports:
        if not _port_free(port):
            holder = port_holder(port)
            held = f"held by {holder}" if holder else "in use"
            raise OperationFailed(
                f"{what} port {port} on {HOST} is {held}; choose another with {setting} in mlops.yaml or {option}"
            )


def _http_json(url: str, timeout: float = 2.0) -> tuple[int, object]:
    """(status, parsed JSON body or None); status 0 when nothing answered."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except OSError:
        return 0, None
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None


def _http_ok(url: str, timeout: float = 2.0) -> bool:
    return _http_json(url, timeout)[0] == 200


def _serves_our_version(url: str, name: str, version: str) -> bool:
    """Our model version answers on its versioned endpoints: ready, and its metadata names it."""
    base = f"{url}/v2/models/{name}/versions/{version}"
    if _http_json(f"{base}/ready")[0] != 200:
        return False
    status, meta = _http_json(base)
    return status == 200 and isinstance(meta, dict) and meta.get("name") == name and version in (
        meta.get("versions") or [])


def _owns_port(pid: int, port: int) -> bool:
    """The listening socket on ``port`` belongs to our process (or its process group)."""
    pids = listening_pids(port)
    if pids is None:  # no /proc: the versioned endpoint is the only evidence
        return True
    for holder in pids:
        try:
            if holder == pid or os.getpgid(holder) == pid:
                return True
        except ProcessLookupError:
            continue
    return False


def _ready(pid: int, url: str, http_port: int, name: str, version: str) -> bool:
    return _owns_port(pid, http_port) and _serves_our_version(url, name, version)


def _public(state: dict, changed: bool) -> dict:
    keys = ("url", "infer_url", "metrics_url", "pid", "model_name", "version", "registered_model",
            "model_dir", "env", "log")
    return {**{k: state.get(k) for k in keys}, "changed": changed}


def serve_local(cfg, champion: dict, port: int | None = None, metrics_port: int | None = None) -> dict:
    """Start MLServer on 127.0.0.1 with the champion (or report the one already serving it).

    Ports are checked right before MLServer starts (after the environment build, which can take a
    while), and ready means: the process we started is alive, holds the port, and the versioned
    endpoints of our model version answer. Anything else is an OperationFailed naming the port.
    """
    from pyhelpers.deploy.render import check_champion, serving_name
    from pyhelpers.fsutil import atomic_write_json

    check_champion(champion)
    http_port = port or cfg.deploy.serve_port
    metrics_port = metrics_port or cfg.deploy.metrics_port
    if http_port == metrics_port:
        raise BadInput(f"serving port and metrics port are both {http_port} (deploy.serve_port, "
                       "deploy.metrics_port); choose different ports")
    name, version = serving_name(champion["name"]), str(champion["version"])
    serve_dir = serving_dir(cfg)

    running = read_server_state(cfg)
    if running and _is_our_server(running["pid"], serve_dir):
        same = (running["registered_model"], running["version"], running["artifact_uri"]) == (
            champion["name"], version, str(champion["artifact_uri"]))
        if same and running["http_port"] == http_port and _ready(
                running["pid"], running["url"], http_port, running["model_name"], version):
            _log(f"MLServer already serves {name} version {version} at {running['url']} (pid {running['pid']})")
            return _public(running, changed=False)
        stop_local(cfg)

    model_dir = local_model_dir(cfg, champion)
    requirements = model_dir / "requirements.txt"
    if not requirements.is_file():
        raise OperationFailed(f"{model_dir}: no requirements.txt in the MLflow model; cannot build its serving env")
    env_dir = ensure_serving_env(cfg, requirements.read_text(encoding="utf-8"))

    # now, not before the build: a port taken meanwhile is found here, or by the readiness check
    _check_ports([("serving", "deploy.serve_port", "--port", http_port),
                  ("metrics", "deploy.metrics_port", "--metrics-port", metrics_port)])
    models_root = serve_dir / "models"
    shutil.rmtree(models_root, ignore_errors=True)
    settings = {
        "debug": False,
        "host": HOST,
        "http_port": http_port,
        "grpc_port": free_port(),
        "metrics_port": metrics_port,
        "parallel_workers": 0,  # inference in the main process: avoids the uvloop worker crash
        "metrics_dir": str(serve_dir / ".metrics"),
        "environments_dir": str(serve_dir / ".envs"),
        "model_repository_root": str(models_root),
        "load_models_at_startup": True,
    }
    model_settings = {
        "name": name,
        "implementation": "mlserver_mlflow.MLflowRuntime",
        "versions": [version],  # the model metadata names it: readiness checks it is ours
        "parameters": {"uri": str(model_dir), "version": version},
    }
    atomic_write_json(serve_dir / "settings.json", settings)
    atomic_write_json(models_root / name / "model-settings.json", model_settings)

    log_path = serve_dir / "mlserver.log"
    url = f"http://{HOST}:{http_port}"
    _log(f"starting MLServer for {name} version {version} on {url} (log: {log_path})")
    started = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log_file:
        proc = subprocess.Popen(
            [str(env_dir / "bin" / "mlserver"), "start", str(serve_dir)],
            cwd=serve_dir, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=_clean_env(env_dir), start_new_session=True,  # its own process group, stopped by pid
        )
    state = {
        "pid": proc.pid,
        "url": url,
        "infer_url": f"{url}/v2/models/{name}/infer",
        "metrics_url": f"http://{HOST}:{metrics_port}/metrics",
        "http_port": http_port,
        "metrics_port": metrics_port,
        "grpc_port": settings["grpc_port"],
        "model_name": name,
        "registered_model": champion["name"],
        "version": version,
        "artifact_uri": str(champion["artifact_uri"]),
        "model_dir": str(model_dir),
        "env": str(env_dir),
        "log": str(log_path),
    }
    atomic_write_json(_state_file(cfg), state)

    deadline = started + cfg.deploy.ready_timeout_seconds
    while True:
        if proc.poll() is not None:
            _state_file(cfg).unlink(missing_ok=True)
            holder = port_holder(http_port) or port_holder(metrics_port)
            taken = f"; the port is now held by {holder} (deploy.serve_port/--port, " \
                    "deploy.metrics_port/--metrics-port)" if holder else ""
            raise OperationFailed(
                f"MLServer (pid {proc.pid}) for port {http_port} exited with code {proc.returncode} before it was "
                f"ready: {_last_line(log_path)}{taken} (log: {log_path})"
            )
        if _ready(proc.pid, url, http_port, name, version) and _owns_port(proc.pid, metrics_port):
            break
        if time.monotonic() > deadline:
            stop_local(cfg)
            holder = port_holder(http_port)
            who = f"; port {http_port} is held by {holder}" if holder else ""
            raise OperationFailed(
                f"MLServer was not ready on {url} (deploy.serve_port) within {cfg.deploy.ready_timeout_seconds} s "
                f"(deploy.ready_timeout_seconds){who}: {_last_line(log_path)} (log: {log_path})"
            )
        time.sleep(0.25)
    _log(f"MLServer ready in {time.monotonic() - started:.1f} s (pid {proc.pid}); metrics at {state['metrics_url']}")
    return _public(state, changed=True)


def stop_local(cfg, timeout: float = 20.0) -> dict:
    """Stop the MLServer started by ``serve_local`` (by its pid and process group)."""
    serve_dir = serving_dir(cfg)
    state = read_server_state(cfg)
    if not state:
        return {"stopped": False, "pid": None, "reason": "no local server was started"}
    pid = int(state["pid"])
    if not _is_our_server(pid, serve_dir):
        _state_file(cfg).unlink(missing_ok=True)
        return {"stopped": False, "pid": pid, "reason": "not running (stale pid file removed)"}

    def signal_group(sig: int) -> None:
        try:
            if os.getpgid(pid) == pid:  # started with its own session: its workers go too
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            pass

    signal_group(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    forced = _alive(pid)
    if forced:
        signal_group(signal.SIGKILL)
        while _alive(pid) and time.monotonic() < deadline + 5:
            time.sleep(0.1)
    _state_file(cfg).unlink(missing_ok=True)
    return {"stopped": True, "pid": pid, "forced": forced, "model_name": state.get("model_name"),
            "version": state.get("version")}
