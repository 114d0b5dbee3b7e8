"""Smoke test of a served model over the V2 inference protocol (MLServer locally, Seldon or KServe in a cluster).

The request is built from the model's input example (pandas "split" orient: columns + data):
one V2 input per column. The test checks the HTTP status, the model name, that every output has
one row per input row, and the latency; with ``metrics_url`` it also checks that MLServer's
Prometheus counters saw the requests.
"""

from __future__ import annotations

import json
import math
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

from pyhelpers.errors import BadInput, OperationFailed


def load_input_example(model_dir: str | Path) -> dict:
    """The MLflow model's saved input example as ``{"columns": [...], "data": [[...], ...]}``."""
    import yaml

    model_dir = Path(model_dir)
    try:
        mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text(encoding="utf-8")) or {}
    except OSError:
        raise BadInput("no MLmodel file: not an MLflow model folder", source=str(model_dir)) from None
    info = mlmodel.get("saved_input_example_info") or {}
    path = model_dir / info.get("artifact_path", "input_example.json")
    if not path.is_file():
        raise BadInput("the model has no input example; log it with input_example=...", source=str(model_dir))
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise BadInput(f"invalid JSON: {exc}", source=str(path)) from None
    return check_input_example(doc, str(path))


def check_input_example(doc, source: str | None = None) -> dict:
    if isinstance(doc, dict) and "dataframe_split" in doc:  # MLflow's serving_input_example.json
        doc = doc["dataframe_split"]
    if not (isinstance(doc, dict) and isinstance(doc.get("columns"), list) and isinstance(doc.get("data"), list)):
        raise BadInput("input example must be pandas split orient: {\"columns\": [...], \"data\": [[...]]}",
                       source=source)
    if not doc["data"]:
        raise BadInput("input example has no rows", source=source)
    for i, row in enumerate(doc["data"]):
        if not isinstance(row, list) or len(row) != len(doc["columns"]):
            raise BadInput(f"input example row {i} has not {len(doc['columns'])} values", source=source)
    return doc


def _datatype(values: list) -> str:
    if all(isinstance(v, bool) for v in values):
        return "BOOL"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "INT64"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "FP64"
    return "BYTES"


def v2_request(example: dict) -> dict:
    """V2 inference request: one input per column, decoded by MLServer's pandas codec."""
    rows = example["data"]
    inputs = []
    for i, column in enumerate(example["columns"]):
        values = [row[i] for row in rows]
        datatype = _datatype(values)
        if datatype == "FP64":
            values = [float(v) for v in values]
        elif datatype == "BYTES":
            values = [v if isinstance(v, str) else json.dumps(v) for v in values]
        inputs.append({"name": str(column), "shape": [len(rows)], "datatype": datatype, "data": values})
    return {"inputs": inputs, "parameters": {"content_type": "pd"}}


def _post(url: str, body: bytes, timeout: float) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError as exc:
        raise OperationFailed(f"cannot reach {url}: {exc}") from None


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 20 samples is the slowest one)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _check_outputs(doc: dict, rows: int, model_name: str, model_version: str | None = None) -> list[dict]:
    if doc.get("model_name") not in (None, model_name):
        raise OperationFailed(f"smoke: answer came from model {doc.get('model_name')!r}, expected {model_name!r}")
    if model_version is not None and str(doc.get("model_version")) != str(model_version):
        raise OperationFailed(f"smoke: answer came from version {doc.get('model_version')!r} of {model_name!r}, "
                              f"expected {model_version!r} (another server on this port?)")
    outputs = doc.get("outputs") or []
    if not outputs:
        raise OperationFailed("smoke: the response has no outputs")
    shapes = []
    for out in outputs:
        shape, data = out.get("shape") or [], out.get("data")
        if not shape or shape[0] != rows:
            raise OperationFailed(f"smoke: output {out.get('name')!r} has shape {shape}, expected {rows} rows")
        if not isinstance(data, list) or len(data) != math.prod(shape):
            raise OperationFailed(f"smoke: output {out.get('name')!r} holds {len(data or [])} values for shape {shape}")
        if out.get("datatype", "").startswith("FP") and not all(
            isinstance(v, (int, float)) and math.isfinite(v) for v in data
        ):
            raise OperationFailed(f"smoke: output {out.get('name')!r} has non-finite values")
        shapes.append({"name": out.get("name"), "datatype": out.get("datatype"), "shape": shape})
    return shapes


def infer_success_count(metrics_url: str, model_name: str) -> float:
    """Sum of MLServer's ``model_infer_request_success_total`` for this model."""
    try:
        with urllib.request.urlopen(metrics_url, timeout=5) as resp:
            text = resp.read().decode()
    except OSError as exc:
        raise OperationFailed(f"cannot read metrics at {metrics_url}: {exc}") from None
    pattern = re.compile(r'^model_infer_request_success_total\{([^}]*)\}\s+([0-9.eE+-]+)$', re.M)
    return sum(float(v) for labels, v in pattern.findall(text) if f'model="{model_name}"' in labels)


def smoke_test(
    url: str,
    model_name: str,
    input_example: dict,
    *,
    requests: int = 20,
    max_latency_ms: float = 1000.0,
    metrics_url: str | None = None,
    timeout: float = 10.0,
    model_version: str | None = None,
) -> dict:
    """Send ``requests`` V2 inference requests; raise OperationFailed unless all pass."""
    example = check_input_example(input_example)
    if requests < 1:
        raise BadInput(f"requests must be at least 1 (got {requests})")
    infer_url = f"{url.rstrip('/')}/v2/models/{model_name}/infer"
    body = json.dumps(v2_request(example)).encode()
    rows = len(example["data"])
    before = infer_success_count(metrics_url, model_name) if metrics_url else None

    latencies, first = [], None
    for _ in range(requests):
        start = time.perf_counter()
        status, payload = _post(infer_url, body, timeout)
        latencies.append((time.perf_counter() - start) * 1000)
        if status != 200:
            detail = " ".join(payload.decode(errors="replace").split())[:300]
            raise OperationFailed(f"smoke: POST {infer_url} returned HTTP {status}: {detail}")
        if first is None:
            try:
                first = json.loads(payload)
            except ValueError:
                raise OperationFailed(f"smoke: POST {infer_url} returned non-JSON") from None
    outputs = _check_outputs(first, rows, model_name, model_version)
    figures = {
        "p50": round(percentile(latencies, 50), 2),
        "p99": round(percentile(latencies, 99), 2),
        "max": round(max(latencies), 2),
    }
    if figures["p99"] > max_latency_ms:
        raise OperationFailed(f"smoke: p99 latency {figures['p99']} ms exceeds {max_latency_ms} ms")
    result = {
        "ok": True,
        "url": url,
        "infer_url": infer_url,
        "model_name": model_name,
        "model_version": first.get("model_version"),
        "requests": requests,
        "rows": rows,
        "outputs": outputs,
        "prediction": first["outputs"][0]["data"][: max(1, math.prod(first["outputs"][0]["shape"][1:]))],
        "latency_ms": figures,
    }
    if metrics_url:
        seen = infer_success_count(metrics_url, model_name) - (before or 0)
        if seen < requests:
            raise OperationFailed(
                f"smoke: {metrics_url} counted {seen:g} successful inferences for {model_name}, sent {requests}"
            )
        result["metrics"] = {"url": metrics_url, "infer_success_delta": seen}
    return result
