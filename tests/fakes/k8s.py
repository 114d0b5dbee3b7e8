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


# -- Katib stand-in: Experiments become Trials, Jobs and pods run as local processes ---------------
class KatibStandIn:
    """Plays Katib v1beta1's controllers (and the kubelet) over a ``KubeServer``.

    For each Experiment it finds, as Katib does:
    - suggestions: random values from each parameter's feasible space (Katib's ``random``
      algorithm; the real suggestion service of the Experiment's algorithm is not modelled);
    - Trials (pkg/controller.v1beta1/experiment/experiment_controller_util.go): named
      ``<experiment>-<8 random lowercase characters>``, labels of the Experiment plus
      ``katib.kubeflow.org/experiment``, owner reference, objective, parameterAssignments,
      primaryContainerName, metricsCollector (defaulted to StdOut by the webhook) and the run spec;
    - run spec (pkg/controller.v1beta1/experiment/manifest/generator.go): the trial template
      serialised, every ``${trialParameters.<name>}`` replaced by string replacement, metadata
      name/namespace set to the Trial's; every trial parameter must find its assignment;
    - the Job and its pod (labelled ``katib.kubeflow.org/trial``): init containers in order, then
      the primary container, as local processes. An image that is not in ``registry`` never
      starts (ErrImagePull: the pod stays Pending and the Trial Running, as on a real cluster); an
      ``envFrom`` Secret that does not exist neither (CreateContainerConfigError). Paths: volume
      mounts (emptyDir per pod, ``subPath`` honoured) first, then the image's file system
      (``registry[image]`` is its root folder); ``python`` is this interpreter and ``sh``/``dvc``
      come from PATH, standing in for what the image installs;
    - metrics (StdOut collector, pkg/metricscollector/v1beta1/file-metricscollector): the primary
      container's output parsed with ``metricsFormat`` (default Katib's regex), min/max/latest per
      metric; exit 0 with the objective metric → Succeeded, without → MetricsUnavailable, else a
      retry up to the Job's ``backoffLimit`` (default 6) → Failed;
    - the Experiment's status: Created/Running, then Succeeded (ExperimentMaxTrialsReached, or
      ExperimentGoalReached) or Failed (maxFailedTrialCount), with currentOptimalTrial by the
      objective (min for minimize, max for maximize), respecting parallelTrialCount.
    ``events`` records what the kubelet would show (image pulls, config errors) for assertions.
    """

    DEFAULT_FORMAT = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
    JOB_SUCCESS = 'status.conditions.#(type=="Complete")#|#(status=="True")#'  # webhook defaults for Job
    JOB_FAILURE = 'status.conditions.#(type=="Failed")#|#(status=="True")#'

    def __init__(self, kube: KubeServer, registry: dict[str, Path], workdir: Path, seed: int = 1,
                 env: dict[str, str] | None = None, poll: float = 0.1):
        import random

        self.kube = kube
        self.registry = registry  # image reference -> folder standing for the image's file system
        self.workdir = Path(workdir)
        self.random = random.Random(seed)
        self.env = dict(env or {})  # the node's environment (PATH, HOME): what a container gets besides its own
        self.poll = poll
        self.events: list[dict] = []
        self.handled: set[tuple[str, str]] = set()
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)
        for t in self.threads:
            t.join(30)

    # -- controller loop ---------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self.stop.is_set():
            with self.kube.lock:
                experiments = [copy.deepcopy(o) for (prefix, _, plural), bucket in self.kube.store.items()
                               if prefix == "apis/kubeflow.org/v1beta1" and plural == "experiments"
                               for o in bucket.values()]
            for exp in experiments:
                key = (exp["metadata"]["namespace"], exp["metadata"]["name"])
                if key not in self.handled:
                    self.handled.add(key)
                    t = threading.Thread(target=self._run_experiment, args=(exp,), daemon=True)
                    self.threads.append(t)
                    t.start()
            self.stop.wait(self.poll)

    def _event(self, obj: str, reason: str, message: str) -> None:
        self.events.append({"object": obj, "reason": reason, "message": message})

    def suggest(self, spec: dict) -> dict[str, str]:
        import math

        out = {}
        for p in spec["parameters"]:
            space, kind = p["feasibleSpace"], p["parameterType"]
            if kind in ("categorical", "discrete"):
                out[p["name"]] = str(self.random.choice(space["list"]))
                continue
            lo, hi = float(space["min"]), float(space["max"])
            if kind == "int":
                step = int(space.get("step") or 1)
                out[p["name"]] = str(int(lo) + step * self.random.randint(0, (int(hi) - int(lo)) // step))
            elif space.get("distribution") == "logUniform":
                out[p["name"]] = repr(round(math.exp(self.random.uniform(math.log(lo), math.log(hi))), 6))
            else:
                out[p["name"]] = repr(round(self.random.uniform(lo, hi), 6))
        return out

    def render(self, exp: dict, trial_name: str, assignments: dict[str, str]) -> dict:
        """The run spec, as Katib's generator makes it: string replacement over the serialised template."""
        template = exp["spec"]["trialTemplate"]
        text = json.dumps(template["trialSpec"])
        values = {}
        for tp in template.get("trialParameters") or []:
            ref = tp["reference"]
            meta = re.match(r"^\$\{trialSpec\.(\w+)\}$", ref)
            if meta:
                values[tp["name"]] = {"Name": trial_name, "Namespace": exp["metadata"]["namespace"],
                                      "Kind": template["trialSpec"].get("kind"),
                                      "APIVersion": template["trialSpec"].get("apiVersion")}[meta[1]]
            elif ref in assignments:
                values[tp["name"]] = assignments[ref]
            else:
                raise ValueError(f"parameter {ref} not found in the parameter assignment {assignments}")
        for name, value in values.items():
            text = text.replace("${trialParameters." + name + "}", value)
        run_spec = json.loads(text)
        run_spec.setdefault("metadata", {}).update(name=trial_name, namespace=exp["metadata"]["namespace"])
        return run_spec

    def _run_experiment(self, exp: dict) -> None:
        meta, spec = exp["metadata"], exp["spec"]
        ns, name = meta["namespace"], meta["name"]
        max_trials, parallel = int(spec.get("maxTrialCount") or 1), int(spec.get("parallelTrialCount") or 1)
        max_failed = spec.get("maxFailedTrialCount")
        self._status(ns, name, katib_experiment_status(exp, [], None))
        trials: list[dict] = []
        running: list[dict] = []
        lock = threading.Lock()

        def run_one(index: int) -> None:
            assignments = self.suggest(spec)
            trial_name = f"{name}-{''.join(self.random.choice('bcdfghjklmnpqrstvwxz') for _ in range(8))}"
            trial = self.create_trial(exp, trial_name, assignments)
            with lock:
                running.append(trial)
                self._status(ns, name, katib_experiment_status(exp, trials + running, None))
            final = self.run_trial(exp, trial)
            if final is None:  # its pod never starts: the Trial stays Running, and so does the Experiment
                return
            with lock:
                running.remove(trial)
                trials.append(final)
                self._status(ns, name, katib_experiment_status(exp, trials + running, None))

        started = 0
        while started < max_trials and not self.stop.is_set():
            batch = [threading.Thread(target=run_one, args=(started + i,), daemon=True)
                     for i in range(min(parallel, max_trials - started))]
            started += len(batch)
            for t in batch:
                t.start()
            for t in batch:
                t.join()
            failed = sum(self._condition(t) in ("Failed", "MetricsUnavailable") for t in trials)
            if max_failed is not None and failed and failed >= int(max_failed):
                break
            if running:  # a trial never finished (stuck pod): Katib keeps waiting
                return
        failed = sum(self._condition(t) in ("Failed", "MetricsUnavailable") for t in trials)
        best = self.best(spec, trials)
        if max_failed is not None and failed and failed >= int(max_failed):
            status = katib_experiment_status(exp, trials, "Failed", "ExperimentFailed",
                                             "Experiment has failed because max failed count has reached", best=best)
        else:
            status = katib_experiment_status(exp, trials, "Succeeded", "ExperimentMaxTrialsReached",
                                             "Experiment has succeeded because max trial count has reached", best=best)
        self._status(ns, name, status)

    def _status(self, ns: str, name: str, status: dict) -> None:
        """Replace the Experiment's status (an update of the status subresource, as Katib's controller
        does: counts that dropped to zero disappear, unlike in a merge patch)."""
        with self.kube.lock:
            exp = self.kube.get("kubeflow.org/v1beta1", "experiments", ns, name)
            if exp is not None:
                self.kube.put({**exp, "status": status}, "experiments")

    @staticmethod
    def _condition(trial: dict) -> str:
        return next(c["type"] for c in reversed(trial["status"]["conditions"]) if c["status"] == "True")

    @staticmethod
    def best(spec: dict, trials: list[dict]) -> dict | None:
        objective = spec["objective"]
        metric, maximize = objective["objectiveMetricName"], objective["type"] == "maximize"
        scored = []
        for t in trials:
            if KatibStandIn._condition(t) != "Succeeded":
                continue
            m = next(x for x in t["status"]["observation"]["metrics"] if x["name"] == metric)
            scored.append((float(m["max" if maximize else "min"]), t))
        if not scored:
            return None
        return (max if maximize else min)(scored, key=lambda s: s[0])[1]

    def create_trial(self, exp: dict, trial_name: str, assignments: dict[str, str]) -> dict:
        meta, spec = exp["metadata"], exp["spec"]
        template = spec["trialTemplate"]
        run_spec = self.render(exp, trial_name, assignments)
        collector = spec.get("metricsCollectorSpec") or {"collector": {"kind": "StdOut"}}
        trial = {
            "apiVersion": "kubeflow.org/v1beta1", "kind": "Trial",
            "metadata": {"name": trial_name, "namespace": meta["namespace"],
                         "labels": {**(meta.get("labels") or {}), "katib.kubeflow.org/experiment": meta["name"]},
                         "ownerReferences": [{"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
                                              "name": meta["name"], "uid": meta.get("uid", ""), "controller": True,
                                              "blockOwnerDeletion": True}]},
            "spec": {"objective": spec["objective"],
                     "parameterAssignments": [{"name": k, "value": v} for k, v in assignments.items()],
                     "runSpec": run_spec, "metricsCollector": collector,
                     "primaryContainerName": template.get("primaryContainerName"),
                     "successCondition": template.get("successCondition", self.JOB_SUCCESS),
                     "failureCondition": template.get("failureCondition", self.JOB_FAILURE)},
            "status": {"startTime": _now(), "conditions": [
                katib_condition("Created", "TrialCreated", "Trial is created"),
                katib_condition("Running", "TrialRunning", "Trial is running")]},
        }
        created = self.kube.put(trial, "trials")
        plural = run_spec["kind"].lower() + "s"
        self.kube.put({**run_spec, "metadata": {**run_spec["metadata"], "labels": {
            **(run_spec["metadata"].get("labels") or {}), "katib.kubeflow.org/trial": trial_name}}}, plural)
        return created

    def run_trial(self, exp: dict, trial: dict) -> dict | None:
        spec = trial["spec"]
        name, ns = trial["metadata"]["name"], trial["metadata"]["namespace"]
        run_spec = spec["runSpec"]
        pod_spec = ((run_spec.get("spec") or {}).get("template") or {}).get("spec")
        if pod_spec is None:
            raise ValueError(f"the stand-in runs Job trials only, not {run_spec.get('kind')}")
        attempts = int((run_spec.get("spec") or {}).get("backoffLimit", 6)) + 1
        for attempt in range(attempts):
            outcome = self.run_pod(f"{name}-{attempt}", ns, pod_spec, spec["primaryContainerName"],
                                   {"katib.kubeflow.org/trial": name})
            if outcome is None:  # never started: the Trial stays Running
                return None
            code, output = outcome
            if code == 0:
                break
        collector = (spec.get("metricsCollector") or {})
        source = collector.get("source") or {}
        formats = (source.get("filter") or {}).get("metricsFormat") or [self.DEFAULT_FORMAT]
        wanted = [exp["spec"]["objective"]["objectiveMetricName"],
                  *(exp["spec"]["objective"].get("additionalMetricNames") or [])]
        values: dict[str, list[float]] = {}
        for line in output.splitlines():
            for fmt in formats:
                for m in re.finditer(fmt, line):
                    if m.group(1) in wanted:
                        try:
                            values.setdefault(m.group(1), []).append(float(m.group(2)))
                        except ValueError:
                            pass
        status = dict(trial["status"])
        status["completionTime"] = _now()
        conditions = [c for c in status["conditions"] if c["type"] == "Created"]
        conditions.append(katib_condition("Running", "TrialRunning", "Trial is running", "False"))
        if code != 0:
            conditions.append(katib_condition("Failed", "TrialFailed",
                                              "Trial has failed. Job message: Job has reached the specified backoff limit"))
        elif wanted[0] not in values:
            conditions.append(katib_condition("MetricsUnavailable", "MetricsUnavailable", "Metrics are not available"))
        else:
            conditions.append(katib_condition("Succeeded", "TrialSucceeded", "Trial has succeeded"))
            status["observation"] = {"metrics": [
                {"name": k, "min": str(min(v)), "max": str(max(v)), "latest": str(v[-1])} for k, v in values.items()]}
        status["conditions"] = conditions
        return self.kube.patch("kubeflow.org/v1beta1", "trials", ns, name, {"status": status})

    # -- the kubelet -------------------------------------------------------------------------------
    def run_pod(self, pod_name: str, ns: str, pod_spec: dict, primary: str, labels: dict) -> tuple[int, str] | None:
        """(exit code of the primary container or the failed init container, its output); None when
        the pod cannot start."""
        import base64
        import subprocess
        import sys

        containers = [*(pod_spec.get("initContainers") or []), *pod_spec["containers"]]
        for c in containers:
            if c.get("image") not in self.registry:
                self._event(pod_name, "ErrImagePull", f"{c.get('image')}: not found in the registry")
                return None
        root = self.workdir / pod_name
        volumes: dict[str, Path] = {}
        for v in pod_spec.get("volumes") or []:
            if "emptyDir" not in v:
                self._event(pod_name, "FailedMount", f"volume {v['name']}: only emptyDir is supported here")
                return None
            volumes[v["name"]] = root / "volumes" / v["name"]
            volumes[v["name"]].mkdir(parents=True, exist_ok=True)
        self.kube.put({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod_name, "namespace": ns,
                                                                         "labels": labels},
                       "spec": pod_spec}, "pods")
        logs: list[str] = []
        for c in containers:
            env = {**self.env}
            for source in c.get("envFrom") or []:
                ref = (source.get("secretRef") or {}).get("name")
                if ref:
                    secret = self.kube.get("v1", "secrets", ns, ref)
                    if secret is None:
                        self._event(pod_name, "CreateContainerConfigError", f'secret "{ref}" not found')
                        return None
                    env.update({k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()})
            mounts: dict[str, Path] = {}
            for m in c.get("volumeMounts") or []:
                if m["name"] not in volumes:
                    self._event(pod_name, "FailedCreatePodContainer", f"volume {m['name']} not found")
                    return None
                host = volumes[m["name"]] / m.get("subPath", "")
                host.mkdir(parents=True, exist_ok=True)
                mounts[m["mountPath"]] = host
            image_root = self.registry[c["image"]]

            def to_host(arg: str, mounts=mounts, image_root=image_root) -> str:
                for prefix, host in sorted(mounts.items(), key=lambda kv: -len(kv[0])):
                    pattern = re.compile(r"(^|=)" + re.escape(prefix.rstrip("/")) + r"(?=/|$)")
                    if pattern.search(arg):
                        return pattern.sub(lambda m, host=host: m.group(1) + str(host), arg)
                m = re.match(r"^(.*?=)?(/[^\s]*)$", arg)
                if m and (image_root / m.group(2).lstrip("/")).exists():
                    return (m.group(1) or "") + str(image_root / m.group(2).lstrip("/"))
                return arg

            env.update({e["name"]: to_host(str(e["value"])) for e in c.get("env") or [] if "value" in e})
            argv = [to_host(a) for a in [*(c.get("command") or []), *(c.get("args") or [])]]
            if argv and argv[0] in ("python", "python3"):
                argv[0] = sys.executable
            cwd = Path(to_host(c["workingDir"])) if c.get("workingDir") else image_root
            proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
            output = proc.stdout + proc.stderr
            self.kube.pod_logs[(ns, pod_name, c["name"])] = output
            logs.append(output)
            if proc.returncode != 0 or c["name"] == primary:
                return proc.returncode, output
        return 1, "".join(logs)
