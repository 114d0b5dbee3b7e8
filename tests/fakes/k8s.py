"""A local HTTP server speaking the subset of the Kubernetes API our clients use.

Generic over group/version/plural: any ``/apis/<group>/<version>/namespaces/<ns>/<plural>[/<name>]``
(Katib Experiments and Trials, Argo CD Applications, ...) and ``/api/v1/namespaces/<ns>/<plural>``
(pods, with ``/log``) work the same way:

- create (POST; 409 AlreadyExists), get (404 NotFound), list (labelSelector, fieldSelector
  ``metadata.name=``; the list carries the collection resourceVersion), replace (PUT), merge
  patch (PATCH), delete (DELETE; emits a DELETED event);
- watch (``?watch=true``): chunked JSON lines ``{"type": ..., "object": ...}`` after the given
  ``resourceVersion`` (no resourceVersion: ADDED for what exists now), ended by
  ``timeoutSeconds``; a resourceVersion older than the compaction point gets an ERROR event
  with a 410 ``Expired`` Status, as a real API server answers an expired watch;
- scripted failures (``fail(...)``) answer the next matching requests with a Status of any code;
- bearer-token authentication (401 otherwise).

Tests change the world through the Python methods (``put``, ``patch``, ``remove``), which bump
the resourceVersion and wake open watches, exactly like a controller writing status would.
Requests are recorded for assertions; ``wait_for_request`` blocks until one matches.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import yaml

PATH = re.compile(
    r"^/(?P<prefix>apis/[^/]+/[^/]+|api/v1)/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)"
    r"(?:/(?P<name>[^/]+)(?:/(?P<sub>status|log))?)?$"
)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _prefix(api_version: str) -> str:
    return "api/v1" if api_version == "v1" else f"apis/{api_version}"


def _resource(prefix: str, plural: str) -> str:
    group = prefix.split("/")[1] if prefix.startswith("apis/") else ""
    return f"{plural}.{group}" if group else plural


def status_doc(code: int, reason: str, message: str, **details) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "details": details, "code": code}


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _label_match(labels: dict, selector: str | None) -> bool:
    for term in filter(None, (selector or "").split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.strip() not in labels:
            return False
    return True


def _field_match(obj: dict, selector: str | None) -> bool:
    meta = obj.get("metadata") or {}
    for term in filter(None, (selector or "").split(",")):
        key, _, value = term.replace("==", "=").partition("=")
        if key == "metadata.name" and meta.get("name") != value:
            return False
        if key == "metadata.namespace" and meta.get("namespace") != value:
            return False
    return True


class KubeServer:
    def __init__(self, token: str = "k8s-test-token", watch_wait: float = 0.05):
        self.token = token
        self.lock = threading.Condition()
        self.rv = 1000
        self.compacted = 0  # watches from an older resourceVersion get 410 Expired
        self.store: dict[tuple[str, str, str], dict[str, dict]] = {}  # (prefix, ns, plural) -> name -> object
        self.events: list[tuple[int, tuple[str, str, str], str, dict]] = []
        self.failures: list[dict] = []
        self.requests: list[dict] = []
        self.pod_logs: dict[tuple[str, str, str | None], str] = {}  # (ns, pod, container) -> text
        self.watch_generation = 0
        self.closing = False
        self.watch_wait = watch_wait
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # chunked watch streams need HTTP/1.1

            def log_message(self, *args):
                pass

            def do_GET(self):
                server._handle(self, "GET")

            def do_POST(self):
                server._handle(self, "POST")

            def do_PUT(self):
                server._handle(self, "PUT")

            def do_PATCH(self):
                server._handle(self, "PATCH")

            def do_DELETE(self):
                server._handle(self, "DELETE")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    # -- lifecycle ----------------------------------------------------------------------------
    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        with self.lock:
            self.closing = True
            self.lock.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()

    def kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        doc = {
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "ci", "user": {"token": self.token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "ci", "namespace": namespace}}],
        }
        path.write_text(yaml.safe_dump(doc))
        return path

    # -- test-side API (what a controller would do) --------------------------------------------
    def _emit(self, key, type_, obj) -> None:
        self.events.append((int(obj["metadata"]["resourceVersion"]), key, type_, copy.deepcopy(obj)))
        self.lock.notify_all()

    def _stamp(self, obj: dict) -> dict:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        return obj

    def put(self, obj: dict, plural: str) -> dict:
        """Create or replace ``obj`` (its apiVersion and metadata.namespace say where)."""
        obj = copy.deepcopy(obj)
        meta = obj["metadata"]
        key = (_prefix(obj["apiVersion"]), meta.get("namespace", "default"), plural)
        with self.lock:
            bucket = self.store.setdefault(key, {})
            old = bucket.get(meta["name"])
            if old is None:
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("creationTimestamp", _now())
                meta.setdefault("generation", 1)
            else:
                for k in ("uid", "creationTimestamp", "generation"):
                    meta.setdefault(k, old["metadata"].get(k))
            meta["namespace"] = key[1]
            bucket[meta["name"]] = self._stamp(obj)
            self._emit(key, "ADDED" if old is None else "MODIFIED", obj)
            return copy.deepcopy(obj)

    def patch(self, api_version: str, plural: str, namespace: str, name: str, patch: dict) -> dict:
        with self.lock:
            key = (_prefix(api_version), namespace, plural)
            obj = merge_patch(self.store[key][name], patch)
            self.store[key][name] = self._stamp(obj)
            self._emit(key, "MODIFIED", obj)
            return copy.deepcopy(obj)

    def get(self, api_version: str, plural: str, namespace: str, name: str) -> dict | None:
        with self.lock:
            obj = self.store.get((_prefix(api_version), namespace, plural), {}).get(name)
            return copy.deepcopy(obj) if obj else None

    def items(self, api_version: str, plural: str, namespace: str) -> list[dict]:
        with self.lock:
            return [copy.deepcopy(o) for o in self.store.get((_prefix(api_version), namespace, plural), {}).values()]

    def remove(self, api_version: str, plural: str, namespace: str, name: str) -> None:
        with self.lock:
            key = (_prefix(api_version), namespace, plural)
            obj = self.store[key].pop(name)
            self._emit(key, "DELETED", self._stamp(obj))

    def expire_watches(self) -> None:
        """Compact history and drop open watches: a client resuming from its last resourceVersion gets 410."""
        with self.lock:
            self.rv += 1  # other objects changed meanwhile; the client's resourceVersion is now too old
            self.compacted = self.rv
            self.watch_generation += 1
            self.lock.notify_all()

    def drop_watches(self) -> None:
        """End open watch streams (as an API server restart or a load balancer timeout does)."""
        with self.lock:
            self.watch_generation += 1
            self.lock.notify_all()

    def fail(self, method: str, path_pattern: str, code: int = 500, times: int = 1, watch: bool | None = None) -> None:
        """Answer the next ``times`` matching requests with a Status of ``code``."""
        self.failures.append({"method": method, "pattern": re.compile(path_pattern), "code": code,
                              "times": times, "watch": watch})

    def wait_for_request(self, predicate, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                for req in self.requests:
                    if predicate(req):
                        return req
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no matching request reached the fake API server")
                self.lock.wait(left)

    # -- HTTP side --------------------------------------------------------------------------------
    def _send(self, h, code: int, doc, content_type: str = "application/json") -> None:
        data = doc.encode() if isinstance(doc, str) else json.dumps(doc).encode()
        h.send_response(code)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _handle(self, h, method: str) -> None:
        parts = urlsplit(h.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        is_watch = query.get("watch") in ("true", "1")
        with self.lock:
            # the watch generation is taken when the request is recorded, so a test that saw the
            # request and then drops watches always ends this one
            record = {"method": method, "path": parts.path, "query": query, "watch": is_watch,
                      "generation": self.watch_generation, "n": len(self.requests)}
            self.requests.append(record)
            self.lock.notify_all()
            failure = next((f for f in self.failures if f["times"] > 0 and f["method"] == method
                            and f["pattern"].search(parts.path) and f["watch"] in (None, is_watch)), None)
            if failure:
                failure["times"] -= 1
        if h.headers.get("Authorization") != f"Bearer {self.token}":
            return self._send(h, 401, status_doc(401, "Unauthorized", "Unauthorized"))
        if failure:
            return self._send(h, failure["code"], status_doc(failure["code"], "InternalError",
                                                             "Internal error occurred: scripted failure"))
        m = PATH.match(parts.path)
        if not m:
            return self._send(h, 404, status_doc(404, "NotFound", "the server could not find the requested resource"))
        key = (m["prefix"], m["ns"], m["plural"])
        name, sub = m["name"], m["sub"]
        resource = _resource(m["prefix"], m["plural"])
        if name is None and method == "GET":
            return self._watch(h, key, query, record) if is_watch else self._list(h, key, query)
        if name is None and method == "POST":
            obj = json.loads(body)
            obj.setdefault("metadata", {})["namespace"] = key[1]
            with self.lock:
                if obj["metadata"].get("name") in self.store.get(key, {}):
                    n = obj["metadata"]["name"]
                    return self._send(h, 409, status_doc(409, "AlreadyExists", f'{resource} "{n}" already exists',
                                                         name=n, kind=m["plural"]))
                created = self.put(obj, m["plural"])
            return self._send(h, 201, created)
        with self.lock:
            current = self.store.get(key, {}).get(name)
        if current is None:
            return self._send(h, 404, status_doc(404, "NotFound", f'{resource} "{name}" not found',
                                                 name=name, kind=m["plural"]))
        if sub == "log" and method == "GET":
            text = self.pod_logs.get((key[1], name, query.get("container")))
            if text is None:
                return self._send(h, 400, status_doc(400, "BadRequest", f"container {query.get('container')} is not valid for pod {name}"))
            return self._send(h, 200, text, "text/plain")
        if method == "GET":
            return self._send(h, 200, current)
        if method == "DELETE":
            self.remove(current["apiVersion"], m["plural"], key[1], name)
            return self._send(h, 200, status_doc(200, "", "") | {"status": "Success"})
        if method == "PUT":
            return self._send(h, 200, self.put(json.loads(body), m["plural"]))
        if method == "PATCH":
            return self._send(h, 200, self.patch(current["apiVersion"], m["plural"], key[1], name, json.loads(body)))
        return self._send(h, 405, status_doc(405, "MethodNotAllowed", f"{method} is not supported"))

    def _matching(self, key, query) -> list[dict]:
        return [copy.deepcopy(o) for o in self.store.get(key, {}).values()
                if _label_match(o["metadata"].get("labels") or {}, query.get("labelSelector"))
                and _field_match(o, query.get("fieldSelector"))]

    def _list(self, h, key, query) -> None:
        with self.lock:
            items = self._matching(key, query)
            rv = str(self.rv)
        kind = (items[0]["kind"] + "List") if items else "List"
        api_version = key[0].split("/", 1)[1] if key[0].startswith("apis/") else "v1"
        self._send(h, 200, {"apiVersion": api_version, "kind": kind, "metadata": {"resourceVersion": rv}, "items": items})

    def _chunk(self, h, doc) -> None:
        line = (json.dumps(doc) + "\n").encode()
        h.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
        h.wfile.flush()

    def _watch(self, h, key, query, record) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        deadline = time.monotonic() + float(query.get("timeoutSeconds") or 1800)
        since_raw = query.get("resourceVersion")
        try:
            with self.lock:
                generation = record["generation"]
                if since_raw not in (None, "", "0") and int(since_raw) < self.compacted:
                    record["expired"] = True
                    return self._chunk(h, {"type": "ERROR", "object": status_doc(
                        410, "Expired", f"too old resource version: {since_raw} ({self.compacted})")})
                if since_raw in (None, "", "0"):
                    pending = [{"type": "ADDED", "object": o} for o in self._matching(key, query)]
                    since = self.rv
                else:
                    pending, since = [], int(since_raw)
            while True:
                for event in pending:
                    self._chunk(h, event)
                with self.lock:
                    while True:
                        if self.closing or generation != self.watch_generation or time.monotonic() >= deadline:
                            return
                        fresh = [(rv, t, o) for rv, k, t, o in self.events if rv > since and k == key
                                 and _label_match(o["metadata"].get("labels") or {}, query.get("labelSelector"))
                                 and _field_match(o, query.get("fieldSelector"))]
                        if fresh:
                            since = fresh[-1][0]
                            pending = [{"type": t, "object": o} for _, t, o in fresh]
                            break
                        self.lock.wait(min(self.watch_wait * 20, max(0.01, deadline - time.monotonic())))
        except (BrokenPipeError, ConnectionResetError):
            return
        finally:
            try:
                h.wfile.write(b"0\r\n\r\n")
                h.wfile.flush()
            except OSError:
                pass
            h.close_connection = True


# -- Katib-shaped documents (as Katib v1beta1's controllers write them) ---------------------------
def katib_condition(type_: str, reason: str, message: str, status: str = "True") -> dict:
    stamp = _now()
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "lastUpdateTime": stamp, "lastTransitionTime": stamp}


def katib_trial(experiment: dict, index: int, params: dict[str, str], condition: str = "Succeeded",
                metrics: dict[str, float] | None = None, message: str | None = None) -> dict:
    """A Trial object owned by ``experiment`` (labels, ownerReference, observation, conditions)."""
    exp_name = experiment["metadata"]["name"]
    name = f"{exp_name}-{index:08x}"  # Katib: <experiment>-<8 random characters>
    spec = experiment["spec"]
    conditions = [katib_condition("Created", "TrialCreated", "Trial is created"),
                  katib_condition("Running", "TrialRunning", "Trial is running",
                                  "True" if condition == "Running" else "False")]
    reasons = {"Succeeded": ("TrialSucceeded", "Trial has succeeded"),
               "Failed": ("TrialFailed", message or "Trial has failed. Job message: Job has reached the specified backoff limit"),
               "MetricsUnavailable": ("MetricsUnavailable", message or "Metrics are not available"),
               "Killed": ("TrialKilled", "Trial has been killed")}
    if condition in reasons:
        conditions.append(katib_condition(condition, *reasons[condition]))
    observation = None
    if metrics:
        observation = {"metrics": [{"name": k, "min": str(v), "max": str(v), "latest": str(v)} for k, v in metrics.items()]}
    collector = (spec.get("metricsCollectorSpec") or {}).get("collector") or {"kind": "StdOut"}
    return {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Trial",
        "metadata": {"name": name, "namespace": experiment["metadata"]["namespace"],
                     "labels": {"katib.kubeflow.org/experiment": exp_name},
                     "ownerReferences": [{"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "name": exp_name,
                                          "uid": experiment["metadata"].get("uid", ""), "controller": True,
                                          "blockOwnerDeletion": True}]},
        "spec": {"objective": spec["objective"],
                 "parameterAssignments": [{"name": k, "value": v} for k, v in params.items()],
                 "primaryContainerName": spec["trialTemplate"].get("primaryContainerName", "training-container"),
                 "metricsCollector": {"collector": collector},
                 "runSpec": {"apiVersion": "batch/v1", "kind": "Job"}},
        "status": {"startTime": _now(), "completionTime": None if condition == "Running" else _now(),
                   "conditions": conditions, **({"observation": observation} if observation else {})},
    }


def katib_experiment_status(experiment: dict, trials: list[dict], outcome: str | None,
                            reason: str = "", message: str = "", best: dict | None = None) -> dict:
    """``status`` of an Experiment over ``trials``: conditions, counts, lists, currentOptimalTrial.

    Katib omits zero counts and empty lists (``omitempty``), so this does too.
    """
    by: dict[str, list[str]] = {}
    for t in trials:
        cond = next(c["type"] for c in reversed(t["status"]["conditions"]) if c["status"] == "True")
        by.setdefault(cond, []).append(t["metadata"]["name"])
    conditions = [katib_condition("Created", "ExperimentCreated", "Experiment is created"),
                  katib_condition("Running", "ExperimentRunning", "Experiment is running",
                                  "False" if outcome else "True")]
    if outcome:
        conditions.append(katib_condition(outcome, reason, message))
    status = {"startTime": experiment["metadata"].get("creationTimestamp"), "conditions": conditions,
              "trials": len(trials)}
    if outcome:
        status["completionTime"] = _now()
    for cond, count_key, list_key in (("Succeeded", "trialsSucceeded", "succeededTrialList"),
                                      ("Failed", "trialsFailed", "failedTrialList"),
                                      ("Running", "trialsRunning", "runningTrialList"),
                                      ("Killed", "trialsKilled", "killedTrialList"),
                                      ("MetricsUnavailable", "trialMetricsUnavailable", "metricsUnavailableTrialList")):
        if by.get(cond):
            status[count_key] = len(by[cond])
            status[list_key] = by[cond]
    if best is not None:
        status["currentOptimalTrial"] = {
            "bestTrialName": best["metadata"]["name"],
            "parameterAssignments": best["spec"]["parameterAssignments"],
            "observation": best["status"]["observation"]}
    else:
        status["currentOptimalTrial"] = {"bestTrialName": "", "observation": {"metrics": None}}
    return status
