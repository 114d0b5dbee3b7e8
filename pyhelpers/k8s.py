"""Kubernetes API access shared by the cluster backends (Katib Experiments, Argo CD Applications).

The official ``kubernetes`` client (imported only inside functions: it is slow to import),
configured from the current kubeconfig (``KUBECONFIG`` or ``~/.kube/config``) or, inside a pod,
the service account. ``call`` retries 5xx/429 and connection errors a bounded number of times;
``wait_for`` follows one object with a watch (resourceVersion, re-list on 410 Gone, reconnect
when the stream ends) until a predicate holds or the timeout passes — no sleep-polling.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pyhelpers.errors import BadInput, OperationFailed

RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0)  # seconds between attempts on 5xx/429/connection errors
RETRYABLE = {429, 500, 502, 503, 504}
WATCH_SECONDS = 300  # one watch request at most this long; the wait reconnects from its resourceVersion
CONNECT_TIMEOUT = 10


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def clients():
    """(CustomObjectsApi, CoreV1Api) for the current kubeconfig or the in-cluster service account."""
    from kubernetes import client, config

    try:
        if os.environ.get("KUBECONFIG") or Path("~/.kube/config").expanduser().is_file():
            config.load_kube_config()
        else:
            config.load_incluster_config()
    except (config.ConfigException, OSError) as exc:
        raise BadInput(f"no usable Kubernetes configuration: {' '.join(str(exc).split())} "
                       "(set KUBECONFIG, or run inside a cluster)") from None
    return client.CustomObjectsApi(), client.CoreV1Api()


def status_message(exc) -> str:
    """The API server's Status message of an ApiException (never request headers)."""
    try:
        body = json.loads(exc.body or "{}")
        return body.get("message") or exc.reason or ""
    except (TypeError, ValueError):
        return str(exc.reason or "")


def api_error(exc, what: str) -> OperationFailed:
    if exc.status == 401:
        return OperationFailed(f"{what}: the Kubernetes API rejected the credentials (401 Unauthorized); "
                               "check the kubeconfig's user or the service account token")
    if exc.status == 403:
        return OperationFailed(f"{what}: forbidden (403): {status_message(exc)}; the service account needs "
                               "the RBAC of k8s/rbac.yaml")
    return OperationFailed(f"{what}: Kubernetes API error {exc.status}: {status_message(exc)}")


def _host() -> str:
    from kubernetes import client

    from pyhelpers.redaction import redact_url

    return redact_url(client.Configuration.get_default_copy().host or "?")


def call(fn: Callable, *args, what: str, **kwargs):
    """``fn(*args, **kwargs)`` with bounded retries on 5xx/429 and connection errors.

    Other API errors (404, 409, ...) are raised as ``ApiException`` for the caller to decide.
    """
    from kubernetes.client.rest import ApiException
    from urllib3.exceptions import HTTPError

    for delay in (*RETRY_DELAYS, None):
        try:
            return fn(*args, **kwargs)
        except ApiException as exc:
            if exc.status not in RETRYABLE:
                raise
            if delay is None:
                raise api_error(exc, what) from None
            log(f"{what}: API server answered {exc.status}; retrying in {delay:g}s")
        except HTTPError as exc:
            if delay is None:
                raise OperationFailed(f"{what}: Kubernetes API at {_host()} unreachable: "
                                      f"{type(exc).__name__}") from None
            log(f"{what}: connection problem ({type(exc).__name__}); retrying in {delay:g}s")
        time.sleep(delay)
    raise AssertionError("unreachable")


class WaitTimeout(OperationFailed):
    def __init__(self, message: str, last: dict):
        super().__init__(message)
        self.last = last


def get_current(custom, group: str, version: str, namespace: str, plural: str, name: str, what: str) -> dict | None:
    """The object and the collection's resourceVersion to watch from (a list, as client-go's informers do).

    An object's own resourceVersion may already be compacted away; the list's never is.
    """
    from kubernetes.client.rest import ApiException

    try:
        listed = call(custom.list_namespaced_custom_object, group, version, namespace, plural,
                      field_selector=f"metadata.name={name}", what=what)
    except ApiException as exc:
        raise api_error(exc, what) from None
    items = listed.get("items") or []
    if not items:
        return None
    obj = items[0]
    obj.setdefault("metadata", {})["resourceVersion"] = (listed.get("metadata") or {}).get(
        "resourceVersion") or obj["metadata"].get("resourceVersion")
    return obj


def wait_for(custom, group: str, version: str, namespace: str, plural: str, name: str,
             done: Callable[[dict], bool], timeout: float, what: str,
             progress: Callable[[dict], None] | None = None) -> dict:
    """Watch one object until ``done(obj)``; raises WaitTimeout (exit 1) after ``timeout`` seconds."""
    from kubernetes import watch
    from kubernetes.client.rest import ApiException
    from urllib3.exceptions import HTTPError

    deadline = time.monotonic() + timeout
    obj = get_current(custom, group, version, namespace, plural, name, what)
    if obj is None:
        raise OperationFailed(f"{what}: {plural}.{group} {name!r} not found in namespace {namespace!r}")
    if progress:
        progress(obj)
    failures = 0
    while not done(obj):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WaitTimeout(f"{what}: timed out after {timeout:g}s", obj)
        window = max(1, int(min(remaining, WATCH_SECONDS)))
        stream = watch.Watch()
        try:
            for event in stream.stream(
                custom.list_namespaced_custom_object, group, version, namespace, plural,
                field_selector=f"metadata.name={name}", resource_version=obj["metadata"]["resourceVersion"],
                allow_watch_bookmarks=True, timeout_seconds=window,
                _request_timeout=(CONNECT_TIMEOUT, window + 30),
            ):
                failures = 0
                kind, raw = event["type"], event["raw_object"]
                if kind == "BOOKMARK":
                    obj["metadata"]["resourceVersion"] = raw["metadata"]["resourceVersion"]
                    continue
                if kind == "DELETED":
                    raise OperationFailed(f"{what}: {name!r} was deleted while waiting")
                obj = raw
                if progress:
                    progress(obj)
                if done(obj) or time.monotonic() >= deadline:
                    stream.stop()
                    break
        except ApiException as exc:
            if exc.status == 410:  # the watch expired: re-list and resume from the fresh resourceVersion
                log(f"{what}: watch expired (410 Gone); re-reading the current state and resuming")
                obj = get_current(custom, group, version, namespace, plural, name, what)
                if obj is None:
                    raise OperationFailed(f"{what}: {name!r} was deleted while waiting") from None
                if progress:
                    progress(obj)
                continue
            if exc.status not in RETRYABLE or failures >= len(RETRY_DELAYS):
                raise api_error(exc, what) from None
            failures += 1
            log(f"{what}: watch answered {exc.status}; reconnecting in {RETRY_DELAYS[failures - 1]:g}s")
            time.sleep(RETRY_DELAYS[failures - 1])
        except HTTPError as exc:
            if failures >= len(RETRY_DELAYS):
                raise OperationFailed(f"{what}: Kubernetes API at {_host()} unreachable: "
                                      f"{type(exc).__name__}") from None
            failures += 1
            log(f"{what}: watch connection lost ({type(exc).__name__}); reconnecting")
            time.sleep(RETRY_DELAYS[failures - 1])
        # the stream ended (server-side timeout, restart): go round and watch again from obj's resourceVersion
    return obj
