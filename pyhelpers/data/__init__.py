"""DVC-tracked data: data versions, status, diffs, push and pull (DVC does the work)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from pyhelpers import scm
from pyhelpers.errors import BadInput, OperationFailed
from pyhelpers.experiment.status import now
from pyhelpers.fsutil import atomic_write_json, read_state_json, require_field

PROCESSED_FILE = ("data", "processed.json")


# -- data versions (no DVC import: read the .dvc files, at a git revision or in the worktree) --
def dvc_files(cfg) -> list[str]:
    """The .dvc file of every tracked path in ``data.paths``, relative to the project root."""
    out = []
    for path in cfg.data.paths:
        rel = path.rstrip("/")
        out.append(rel if rel.endswith(".dvc") else rel + ".dvc")
    return out


DVC_HASH = re.compile(r"^[0-9a-f]{32}(\.dir)?$")  # DVC's md5 (directories: the .dir manifest's md5)


def read_outs(cfg, rev: str | None = None) -> list[dict[str, Any]]:
    """The DVC outputs (path, md5, size, nfiles) of the tracked data at ``rev`` (None: worktree)."""
    outs = []
    for i, dvc_file in enumerate(dvc_files(cfg)):
        if rev is None:
            path = cfg.root / dvc_file
            if path.is_dir():
                raise BadInput("is a directory, expected a .dvc file", source=dvc_file)
            if not path.is_file():
                raise BadInput(f"data.paths[{i}]: {dvc_file[:-4]} is not tracked by DVC (no {dvc_file}); "
                               f"run `dvc add {dvc_file[:-4]} && git add {dvc_file} && git commit`",
                               source=cfg.source)
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise BadInput("not a UTF-8 text file", source=dvc_file) from None
        else:
            text = scm.show(cfg.root, rev, dvc_file)
            if text is None:
                raise BadInput(f"data.paths[{i}]: {dvc_file} does not exist at git revision {rev!r}",
                               source=cfg.source)
        outs += parse_dvc_file(text, dvc_file)
    return outs


def parse_dvc_file(text: str, dvc_file: str) -> list[dict[str, Any]]:
    """The outputs of one ``.dvc`` file, checked field by field (exit 2 naming file and field)."""
    from pyhelpers.yamlsrc import parse_yaml

    src = parse_yaml(text, dvc_file)
    doc = src.data if src.data is not None else {}
    if not isinstance(doc, dict):
        raise src.error((), "expected a mapping with `outs:` (a .dvc file)")
    raw_outs = doc.get("outs")
    if not isinstance(raw_outs, list) or not raw_outs:
        raise src.error(("outs",), "expected a non-empty list of outputs (was `dvc add` interrupted?)")
    base = Path(dvc_file).parent
    outs = []
    for j, out in enumerate(raw_outs):
        loc = ("outs", j)
        if not isinstance(out, dict):
            raise src.error(loc, "expected a mapping with path and md5")
        rel = out.get("path")
        if not isinstance(rel, str) or not rel or Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise src.error(loc + ("path",), f"expected a relative path inside the project, got {_shown(rel)}")
        key = next((k for k in ("md5", "etag", "checksum") if k in out), "md5")
        md5 = out.get(key)
        if not isinstance(md5, str) or (key == "md5" and not DVC_HASH.match(md5)) or not md5:
            raise src.error(loc + (key,), "expected an md5 hash (32 hex digits, `.dir` for a folder), got "
                            f"{_shown(md5)} (was `dvc add` interrupted?)")
        for number in ("size", "nfiles"):
            value = out.get(number)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise src.error(loc + (number,), f"expected a non-negative integer, got {_shown(value)}")
        outs.append({
            "path": (base / rel).as_posix(),
            "md5": md5,
            "size": out.get("size"),
            "nfiles": out.get("nfiles", 1),
            "dvc_file": dvc_file,
        })
    return outs


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, (str, int, float, bool)) or value is None else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def version_of(outs: list[dict[str, Any]]) -> str:
    """A stable id of a data state: sha256 over the sorted (path, DVC hash) pairs."""
    canon = json.dumps(sorted((o["path"], o["md5"]) for o in outs), separators=(",", ":"))
    return "dv-" + hashlib.sha256(canon.encode()).hexdigest()[:12]


def data_version(cfg, rev: str | None = "HEAD") -> str:
    return version_of(read_outs(cfg, rev))


# -- processed marker: which data version the line last handled ----------------------------
def processed_path(cfg) -> Path:
    """One marker per profile: a local run does not make the cluster line say "nothing to do"."""
    profile = getattr(cfg, "profile", "local") or "local"
    name = PROCESSED_FILE[1] if profile == "local" else f"processed-{profile}.json"
    return cfg.state_path(PROCESSED_FILE[0], name)


def load_processed(cfg) -> dict | None:
    """The processed-data marker, or None before the first run; a damaged one is exit 2 naming the field."""
    path = processed_path(cfg)
    try:
        doc = read_state_json(path, "processed-data marker")
    except FileNotFoundError:
        return None
    what = "processed-data marker (delete it to reprocess)"
    version = require_field(doc, path, "data_version", str, what)
    if not re.match(r"^dv-[0-9a-f]{12}$", version):
        raise BadInput(f"data_version: {version[:40]!r} is not a data version (dv-<12 hex>); {what}",
                       source=str(path))
    commit = require_field(doc, path, "git_commit", str, what, optional=True)
    if commit is not None and not re.match(r"^[0-9a-f]{4,64}$", commit):
        raise BadInput(f"git_commit: {commit[:40]!r} is not a commit id; {what}", source=str(path))
    return doc


def processed_head(cfg) -> dict | None:
    """HEAD's data version when it is the one already processed, read without DVC (the committed
    .dvc files and the marker): the no-op rerun every build makes costs milliseconds, not DVC's import."""
    commit = scm.head(cfg.root)
    processed = load_processed(cfg) if commit else None
    if not processed:
        return None
    try:
        version = data_version(cfg, "HEAD")
    except BadInput:
        return None  # let the full status explain what is wrong
    if version != processed["data_version"]:
        return None
    return {"data_version": version, "git_commit": commit, "processed_version": version}


def mark_processed(cfg, version: str, commit: str | None, **extra: Any) -> dict:
    doc = {"data_version": version, "git_commit": commit, "time": now(), **extra}
    atomic_write_json(processed_path(cfg), doc)
    return doc


# -- DVC-backed operations ------------------------------------------------------------------
@contextlib.contextmanager
def at_root(cfg):
    """DVC resolves targets against the working folder: run it from the project root, so every
    command works from any folder inside the project."""
    before = os.getcwd()
    os.chdir(cfg.root)
    try:
        yield
    finally:
        os.chdir(before)


def open_repo(cfg):
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        return Repo(str(cfg.root))
    except NotDvcRepoError:
        raise _not_dvc_repo(cfg) from None


def _not_dvc_repo(cfg) -> BadInput:
    # DVC needs git underneath: name both steps when both are missing
    first = "git init && dvc init" if not scm.is_repo(cfg.root) else "dvc init"
    return BadInput(f"{cfg.root} is not a DVC repository: run `{first}` there, then track the data "
                    f"with `dvc add {' '.join(p.rstrip('/') for p in cfg.data.paths)}`")


# Remote options that hold secrets: DVC would accept them in its config, mlops never writes them
# and refuses a git-tracked .dvc/config that has them (credentials come from the environment).
SECRET_REMOTE_OPTIONS = ("access_key_id", "secret_access_key", "session_token", "password", "sas_token",
                         "account_key", "connection_string", "client_secret")


def ensure_remote(cfg, repo) -> str:
    """Point the configured DVC remote at ``data.remote_url`` (local profile: .mlops/dvc-remote).

    Written to ``.dvc/config.local`` (git-ignored), so a machine-specific path or endpoint never
    lands in git. For S3 only the URL and ``data.endpoint_url`` are written: credentials are left
    to the environment / AWS credential files, where DVC's S3 client (botocore) finds them.
    """
    name, url = cfg.data.remote, cfg.dvc_remote_url
    tracked = (repo.config.read("repo").get("remote") or {}).get(name) or {}
    leaked = [k for k in SECRET_REMOTE_OPTIONS if tracked.get(k)]
    if leaked:
        raise BadInput(f"remote {name!r} has {', '.join(leaked)} in the git-tracked .dvc/config; remove it "
                       f"(`dvc remote modify --unset {name} {leaked[0]}`) and rotate it: credentials come from "
                       "the environment or the AWS credential files", source=".dvc/config")
    is_s3 = url.startswith("s3://")
    if is_s3 and not re.match(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/|$)", url):
        raise BadInput(f"data.remote_url: {url!r} is not s3://<bucket>[/<prefix>] (bucket: 3-63 lowercase "
                       "letters, digits, '.', '-')", source=cfg.source)
    if "://" not in url:
        Path(url).mkdir(parents=True, exist_ok=True)
    wanted = {"url": url}
    if cfg.data.endpoint_url and is_s3:
        wanted["endpointurl"] = cfg.data.endpoint_url
    current = repo.config.get("remote", {}).get(name, {})
    # An endpoint we wrote for an earlier configuration would send the data elsewhere: drop it.
    stale = "endpointurl" not in wanted and "endpointurl" in ((repo.config.read("local").get("remote") or {})
                                                            .get(name) or {})
    if stale or any(current.get(k) != v for k, v in wanted.items()) or repo.config.get("core", {}).get("remote") != name:
        with repo.config.edit("local") as conf:
            entry = {**conf["remote"].get(name, {}), **wanted}
            if "endpointurl" not in wanted:
                entry.pop("endpointurl", None)
            conf["remote"][name] = entry
            conf["core"]["remote"] = name
    return name


def status(cfg, base: str | None = None) -> dict[str, Any]:
    """What `dvc status` says of the tracked data, plus its data version and the line's marker.

    With ``base`` (e.g. ``origin/main``), also whether HEAD's data differs from the base branch's:
    what a feature branch's pipeline needs, since its workspace has no processed marker.
    """
    head = scm.head(cfg.root)
    committed = data_version(cfg, "HEAD") if head else None
    if not (cfg.root / ".dvc").is_dir():
        raise _not_dvc_repo(cfg)
    workspace = version_of(read_outs(cfg, None))  # before DVC: an untracked path is named with `dvc add`
    repo = open_repo(cfg)
    try:
        with at_root(cfg):
            raw = repo.status(targets=dvc_files(cfg))
    finally:
        repo.close()
    changes = []
    for dvc_file, entries in raw.items():
        for entry in entries:
            if isinstance(entry, dict):
                for outs in entry.values():
                    if isinstance(outs, dict):
                        changes += [{"path": p, "change": c, "dvc_file": dvc_file} for p, c in outs.items()]
            else:
                changes.append({"path": dvc_file, "change": str(entry), "dvc_file": dvc_file})
    processed = load_processed(cfg)
    processed_version = processed["data_version"] if processed else None
    extra: dict[str, Any] = {}
    if base:
        if not scm.rev_exists(cfg.root, base):
            raise BadInput(f"unknown git revision {base!r} for --base (fetch it first)")
        base_version = data_version(cfg, base) if all(
            scm.show(cfg.root, base, f) is not None for f in dvc_files(cfg)) else None
        extra = {"base": base, "base_version": base_version, "changed_from_base": base_version != committed}
    return {**extra,
        "data_version": committed,
        "workspace_data_version": workspace,
        "workspace_clean": not changes and workspace == committed,
        "uncommitted_changes": changes,
        "processed_version": processed_version,
        "changed": committed != processed_version,
        "git_commit": head,
    }


def _cache_size(repo, md5: str) -> int | None:
    try:
        path = repo.cache.local.oid_to_path(md5)
    except Exception:  # noqa: BLE001 - a hash DVC cannot place is simply "size unknown"
        return None
    return os.path.getsize(path) if os.path.isfile(path) else None


def _dir_entries(repo, md5: str) -> list[dict] | None:
    """The files of a DVC directory object (.dir manifest in the cache), or None if not cached."""
    try:
        path = repo.cache.local.oid_to_path(md5)
    except Exception:  # noqa: BLE001
        return None
    if not os.path.isfile(path):
        return None
    with open(path) as fh:
        return json.load(fh)


def diff(cfg, a_rev: str | None, b_rev: str | None = "HEAD") -> dict[str, Any]:
    """Files added/modified/deleted between two git revisions (``b_rev`` None: the workspace).

    ``a_rev`` None means "nothing processed yet": every tracked file counts as added.
    """
    repo = open_repo(cfg)
    try:
        rows: list[dict[str, Any]] = []
        if a_rev is None:
            for out in read_outs(cfg, b_rev):
                entries = _dir_entries(repo, out["md5"]) if out["md5"].endswith(".dir") else None
                if entries is None:
                    rows.append({"path": out["path"], "change": "added", "md5": out["md5"], "size": out["size"]})
                    continue
                for e in entries:
                    rows.append({"path": f"{out['path']}/{e['relpath']}", "change": "added", "md5": e["md5"],
                                 "size": _cache_size(repo, e["md5"])})
        else:
            try:
                with at_root(cfg):
                    raw = repo.diff(a_rev, b_rev, targets=[p.rstrip("/") for p in cfg.data.paths])
            except Exception as exc:  # DVC raises various SCM errors for unknown revisions
                raise BadInput(f"cannot diff data between {a_rev!r} and {b_rev or 'workspace'!r}: {exc}") from None
            for change in ("added", "deleted", "modified", "renamed"):
                for entry in raw.get(change, []):
                    if entry["path"].endswith("/"):
                        continue  # the directory itself; its files are listed one by one
                    h = entry.get("hash")
                    new, old = (h.get("new"), h.get("old")) if isinstance(h, dict) else (h, None)
                    if change == "deleted":
                        new, old = None, h
                    path = entry["path"] if change != "renamed" else entry["path"].get("new")
                    rows.append({"path": path, "change": change, "md5": new, "old_md5": old,
                                 "size": _cache_size(repo, new) if new else None})
    finally:
        repo.close()
    rows.sort(key=lambda r: r["path"])
    summary = {c: sum(r["change"] == c for r in rows) for c in ("added", "modified", "deleted", "renamed")}
    return {
        "from": a_rev, "to": b_rev or "workspace",
        "from_version": version_of(read_outs(cfg, a_rev)) if a_rev else None,
        "to_version": version_of(read_outs(cfg, b_rev)),
        "files": rows, "summary": summary,
        "bytes_added": sum((r["size"] or 0) for r in rows if r["change"] in ("added", "modified")),
    }


def _transfer(cfg, verb: str) -> tuple[str, Any]:
    """`dvc push` or `dvc pull` of the tracked data with the configured remote: (remote, DVC's result)."""
    from dvc.exceptions import DvcException

    repo = open_repo(cfg)
    try:
        remote = ensure_remote(cfg, repo)
        operation = repo.push if verb == "push" else repo.pull
        try:
            if verb == "pull":
                ensure_available(cfg, repo, remote)
            from pyhelpers.progress import activity

            with at_root(cfg), activity(f"dvc {verb} {'to' if verb == 'push' else 'from'} remote {remote!r}"):
                return remote, operation(targets=dvc_files(cfg), remote=remote)
        except DvcException as exc:
            where = "to" if verb == "push" else "from"
            raise OperationFailed(f"dvc {verb} {where} remote {remote!r} failed: {_one_line(exc)}") from None
        except Exception as exc:  # storage clients raise their own errors past DVC (botocore, s3fs)
            raise _storage_failure(cfg, remote, verb, exc) from None
    finally:
        repo.close()


def ensure_available(cfg, repo, remote: str) -> None:
    """Refuse a pull whose data exists neither in the DVC cache nor on the remote.

    `dvc pull` checks out what it can and removes what the .dvc file does not describe: with a wrong
    hash committed, its checkout deletes the workspace's real data. Checked before DVC touches the
    work tree, per output and (for folders) per file of the .dir manifest.
    """
    local = repo.cache.local
    odb = repo.cloud.get_remote_odb(remote, hash_name="md5")
    for out in read_outs(cfg, None):
        md5 = out["md5"]
        missing = [md5] if not (local.exists(md5) or odb.exists(md5)) else []
        if not missing and md5.endswith(".dir"):
            db = local if local.exists(md5) else odb
            with db.fs.open(db.oid_to_path(md5), "r") as fh:
                try:
                    entries = json.load(fh)
                    wanted = [e["md5"] for e in entries]
                except (ValueError, TypeError, KeyError):
                    raise BadInput(f"the folder manifest {md5} of {out['path']} is damaged",
                                   source=out["dvc_file"]) from None
            not_local = [oid for oid in wanted if not local.exists(oid)]
            on_remote = set(odb.oids_exist(not_local)) if not_local else set()
            missing = [oid for oid in not_local if oid not in on_remote]
        if missing:
            raise BadInput(
                f"{out['path']}: {len(missing)} object(s) (e.g. {missing[0]}) are neither in the DVC cache nor "
                f"on remote {remote!r} ({cfg.dvc_remote_url}); refusing to pull, which would remove "
                f"{out['path']} from the workspace. Fix the hash (`dvc add {out['path']}` and commit) or "
                "`dvc push` from the machine that has the data", source=out["dvc_file"])


def push(cfg) -> dict[str, Any]:
    remote, pushed = _transfer(cfg, "push")
    return {"remote": remote, "url": cfg.dvc_remote_url, "pushed_files": pushed, "changed": bool(pushed),
            "data_version": data_version(cfg, "HEAD") if scm.head(cfg.root) else None}


def pull(cfg) -> dict[str, Any]:
    remote, stats = _transfer(cfg, "pull")
    counts = stats.get("stats", {})
    checked_out = counts.get("added", 0) + counts.get("modified", 0)
    return {"remote": remote, "url": cfg.dvc_remote_url, "fetched_files": counts.get("fetched", 0),
            "checked_out_files": checked_out, "changed": bool(counts.get("fetched") or checked_out)}


def _storage_failure(cfg, remote: str, verb: str, exc: Exception) -> Exception:
    """One clear line for the usual storage failures; anything else is re-raised as it is.

    Classified by class name along the exception chain, so botocore/s3fs need not be imported.
    """
    chain, seen = [], exc
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    names = {type(e).__name__ for e in chain}
    where = f"remote {remote!r} ({cfg.dvc_remote_url}" + (f" at {cfg.data.endpoint_url})" if cfg.data.endpoint_url
                                                        else ")")
    if names & {"NoCredentialsError", "PartialCredentialsError"}:
        return BadInput(f"dvc {verb}: no S3 credentials for {where}: set AWS_ACCESS_KEY_ID and "
                        "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with ~/.aws/credentials (`mlops config show` "
                        "says which are set)")
    if names & {"EndpointConnectionError", "ConnectTimeoutError", "ClientConnectorError", "ConnectionError",
                "ConnectionRefusedError", "ReadTimeoutError"}:
        return OperationFailed(f"dvc {verb}: storage endpoint unreachable for {where}: {_one_line(exc)[:200]}")
    if isinstance(exc, FileNotFoundError) and "bucket" in str(exc).lower():
        return OperationFailed(f"dvc {verb}: the bucket of {where} does not exist; create it first")
    if isinstance(exc, PermissionError) or names & {"ClientError"}:
        code = next(filter(None, map(_s3_error_code, chain)), None)
        if code in (None, "403", "Forbidden"):  # a HEAD request's refusal has no body, so no reason: ask once more
            code = _probe_s3_refusal(cfg) or code
        hint = S3_REFUSALS.get(code, "check the credentials' access to the bucket")
        return OperationFailed(f"dvc {verb}: storage refused the request for {where}: {code or _one_line(exc)[:200]} "
                               f"({hint})")
    return exc


# S3's error codes for refused credentials, and what to check for each (never the values themselves)
S3_REFUSALS = {
    "InvalidAccessKeyId": "the storage does not know this access key: check AWS_ACCESS_KEY_ID or the AWS_PROFILE used",
    "SignatureDoesNotMatch": "the secret key does not belong to AWS_ACCESS_KEY_ID: check AWS_SECRET_ACCESS_KEY",
    "AccessDenied": "the credentials are valid but not allowed on this bucket: check the key's policy "
                    "(AWS_ACCESS_KEY_ID / AWS_PROFILE)",
    "ExpiredToken": "the session credentials expired: renew AWS_SESSION_TOKEN with its key pair",
}


def _probe_s3_refusal(cfg) -> str | None:
    """S3's error code for one small listing of the remote (a request whose refusal carries a body),
    with the same credentials and endpoint as DVC; None when it cannot tell."""
    from urllib.parse import urlsplit

    url = urlsplit(cfg.dvc_remote_url or "")
    if url.scheme != "s3":
        return None
    try:
        import boto3
        from botocore.config import Config as BotoConfig

        client = boto3.client("s3", endpoint_url=cfg.data.endpoint_url or None,
                              config=BotoConfig(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=10))
        client.list_objects_v2(Bucket=url.netloc, Prefix=url.path.lstrip("/"), MaxKeys=1)
    except Exception as exc:  # noqa: BLE001 - only the code is wanted, whatever went wrong
        return _s3_error_code(exc)
    return None


def _s3_error_code(exc: BaseException) -> str | None:
    """The S3 error code of a botocore ClientError (``response["Error"]["Code"]``), else None."""
    response = getattr(exc, "response", None)
    return ((response or {}).get("Error") or {}).get("Code") if isinstance(response, dict) else None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
