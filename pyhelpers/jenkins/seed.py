"""`mlops jenkins seed`: create or update the seed job from resources/, run it, wait, report.

The seed job (resources/mlops/seed-job.xml) carries jobs/mlopsJobs.groovy inline and the project
list as its PROJECTS parameter, so Jenkins needs no checkout of this repository. Idempotent: a
digest of script + projects in the job description tells whether the job must be updated.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from pyhelpers.errors import BadInput, OperationFailed

SEED_TEMPLATE = Path("resources/mlops/seed-job.xml")
DSL_SCRIPT = Path("jobs/mlopsJobs.groovy")
DEFAULT_PROJECTS = Path("jobs/projects.yaml")
DIGEST_RE = re.compile(r"\[mlops-seed-digest: ([0-9a-f]+)\]")
GENERATED_RE = re.compile(r"Generated(Job|View)\{name='([^']+)'\}")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
REPO_RE = re.compile(r"^[\w.-]+/[\w.-]+$")
# The project keys jobs/mlopsJobs.groovy knows (it refuses others, but only inside Jenkins).
PROJECT_KEYS = ("name", "repo", "displayName", "credentialsId", "mainBranch", "scriptPath", "scanInterval",
                "webhookToken", "keepDays", "keepBuilds")


def library_root(path: str | None = None) -> Path:
    """The checkout of this library (it holds resources/ and jobs/)."""
    root = Path(path) if path else Path(__file__).resolve().parents[2]
    if not (root / SEED_TEMPLATE).is_file() or not (root / DSL_SCRIPT).is_file():
        raise BadInput(f"--library: {root} lacks {SEED_TEMPLATE} and {DSL_SCRIPT}; pass the library checkout")
    return root


def load_projects(path: Path) -> list[dict[str, Any]]:
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput("projects file not found", source=str(path)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise BadInput(f"invalid YAML: {getattr(exc, 'problem', exc)}", source=str(path),
                       line=mark.line + 1 if mark else None) from None
    if not isinstance(doc, list) or not doc:
        raise BadInput("expected a non-empty list of projects (- name: ..., repo: OWNER/NAME)", source=str(path))
    for i, project in enumerate(doc, 1):
        if not isinstance(project, dict):
            raise BadInput(f"project #{i}: expected a mapping with name and repo", source=str(path))
        if not NAME_RE.match(str(project.get("name", ""))):
            raise BadInput(f"project #{i}: name must be lowercase letters, digits and '-' (got {project.get('name')!r})",
                           source=str(path))
        if not REPO_RE.match(str(project.get("repo", ""))):
            raise BadInput(f"project #{i} ({project['name']}): repo must be OWNER/NAME (got {project.get('repo')!r})",
                           source=str(path))
        unknown = sorted(set(map(str, project)) - set(PROJECT_KEYS))
        if unknown:
            raise BadInput(f"project #{i} ({project['name']}): unknown key {unknown[0]!r}; known keys: "
                           f"{', '.join(PROJECT_KEYS)}", source=str(path))
        for key in ("keepDays", "keepBuilds"):
            value = project.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise BadInput(f"project #{i} ({project['name']}): {key} must be a positive whole number "
                               f"(got {value!r})", source=str(path))
    return doc


def render_seed_job(root: Path, projects: list[dict[str, Any]]) -> tuple[str, str, str]:
    """(config.xml, digest, projects JSON) of the seed job."""
    script = (root / DSL_SCRIPT).read_text(encoding="utf-8")
    projects_json = json.dumps(projects, sort_keys=True)
    digest = hashlib.sha256((script + "\0" + projects_json).encode()).hexdigest()[:16]
    xml = (root / SEED_TEMPLATE).read_text(encoding="utf-8")
    xml = xml.replace("@@SCRIPT@@", escape(script)).replace("@@PROJECTS@@", escape(projects_json))
    return xml.replace("@@DIGEST@@", digest), digest, projects_json


def expected_items(projects: list[dict[str, Any]]) -> list[str]:
    return [f"{p['name']}{suffix}" for p in projects for suffix in ("", "/pipeline", "/deploy", "/MLOps")]


def parse_generated(console: str) -> dict[str, list[str]]:
    """Job DSL's console summary as lists of names: "Added items:" -> added, "Added views:" -> added_views."""
    out: dict[str, list[str]] = {}
    section = None
    for line in console.splitlines():
        header = re.match(r"^(Added|Existing|Unreferenced|Removed|Disabled) (items|views):\s*$", line.strip())
        if header:
            section = header.group(1).lower() + ("" if header.group(2) == "items" else "_views")
            continue
        match = GENERATED_RE.search(line)
        if match and section:
            out.setdefault(section, []).append(match.group(2))
        elif line.strip() and not line.startswith((" ", "\t")):
            section = None
    return out


def _client(url: str, timeout: float):
    import jenkins

    user, token = os.environ.get("JENKINS_USER"), os.environ.get("JENKINS_TOKEN")
    if bool(user) != bool(token):
        raise BadInput("set both JENKINS_USER and JENKINS_TOKEN (an API token), or neither for anonymous access")
    return jenkins.Jenkins(url, username=user, password=token, timeout=timeout)


def _call(url: str, what: str, fn: Callable, *args):
    """One python-jenkins call with the failure turned into a one-line error."""
    import jenkins
    import requests

    try:
        return fn(*args)
    except jenkins.NotFoundException as exc:
        raise OperationFailed(f"Jenkins at {url}: {what}: not found ({exc})") from None
    except jenkins.JenkinsException as exc:
        text = str(exc)
        if re.search(r"\b(401|403)\b", text):
            raise BadInput(f"Jenkins at {url} refused {what} ({'401' if '401' in text else '403'}): check JENKINS_USER "
                           "and JENKINS_TOKEN and the user's Job/Create, Job/Configure and Job/Build permissions") from None
        if "does not exist" in text:  # python-jenkins' wording for a 404 on builds and queue items
            raise OperationFailed(f"Jenkins at {url}: {what}: not found ({text})") from None
        raise OperationFailed(f"Jenkins at {url}: {what} failed: {' '.join(text.split())}") from None
    except requests.RequestException as exc:
        raise OperationFailed(f"Jenkins at {url} unreachable during {what}: {type(exc).__name__}") from None


def seed(url: str, *, projects_file: Path | None = None, library: str | None = None, job: str = "mlops-seed",
         dry_run: bool = False, timeout: float = 600.0, poll: float = 2.0) -> dict[str, Any]:
    if not re.match(r"^https?://", url or ""):
        raise BadInput(f"--url: expected http(s)://host[:port][/prefix], got {url!r}")
    root = library_root(library)
    path = projects_file or root / DEFAULT_PROJECTS
    projects = load_projects(path)
    xml, digest, projects_json = render_seed_job(root, projects)
    server = _client(url, timeout=30)
    result: dict[str, Any] = {"url": url, "job": job, "projects": [p["name"] for p in projects],
                              "projects_file": str(path), "digest": digest, "dry_run": dry_run,
                              "expected_items": expected_items(projects)}

    exists = _call(url, f"looking up job {job}", server.job_exists, job)
    if not exists:
        action = "create"
    else:
        current = _call(url, f"reading {job}/config.xml", server.get_job_config, job)
        found = DIGEST_RE.search(current or "")
        action = "unchanged" if found and found.group(1) == digest else "update"
    result["action"] = action if not dry_run or action == "unchanged" else f"would {action}"
    if dry_run:
        return result
    if action == "create":
        _call(url, f"creating job {job}", server.create_job, job, xml)
    elif action == "update":
        _call(url, f"updating job {job}", server.reconfig_job, job, xml)

    queue_id = _call(url, f"starting {job}", server.build_job, job, {"PROJECTS": projects_json})
    deadline = time.monotonic() + timeout
    number = None
    while number is None:
        item = _call(url, f"reading queue item {queue_id}", server.get_queue_item, queue_id)
        if item.get("cancelled"):
            raise OperationFailed(f"Jenkins at {url}: the {job} build was cancelled in the queue")
        number = (item.get("executable") or {}).get("number")
        if number is None:
            _wait(deadline, poll, f"{job} to leave the queue ({item.get('why') or 'queued'})", timeout)
    while True:
        info = _call(url, f"reading build {job} #{number}", server.get_build_info, job, number)
        if not info.get("building") and info.get("result"):
            break
        _wait(deadline, poll, f"{job} #{number} to finish", timeout)
    console = _call(url, f"reading the log of {job} #{number}", server.get_build_console_output, job, number)
    generated = parse_generated(console)
    result["build"] = {"number": number, "result": info["result"], "url": info.get("url")}
    result["items"] = generated
    if info["result"] != "SUCCESS":
        last = next((ln for ln in reversed(console.splitlines()) if ln.strip()), "")
        raise OperationFailed(f"seed build {job} #{number} ended {info['result']}: {last.strip()}")
    return result


def _wait(deadline: float, poll: float, what: str, timeout: float) -> None:
    if time.monotonic() + poll > deadline:
        raise OperationFailed(f"timed out after {timeout:g}s waiting for {what}")
    time.sleep(poll)
