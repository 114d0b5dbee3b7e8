"""Metric collection as Katib's StdOut and File collectors do it.

Katib's collector (pkg/metricscollector/v1beta1/file-metricscollector/file-metricscollector.go)
skips lines that contain none of the metric names, applies each metricsFormat with Go's RE2
(``FindAllStringSubmatch``), trims group 1 (name) and group 2 (value), and keeps values of the
wanted metrics in order; the trial controller then stores min, max and latest. The patterns run
here on RE2 too (google-re2), so matching is linear in the line length: a 400 kB base64 line costs
milliseconds, not the hours Python's backtracking ``re`` can take on Katib's default format.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyhelpers.errors import BadInput

# Katib's default StdOut/TEXT format: one or more `name=value` pairs per line.
DEFAULT_FORMAT = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
MAX_LINE = 1 << 20  # longer lines are read in pieces of this size: memory stays bounded
FORMAT_FIELD = "spec.metricsCollectorSpec.source.filter.metricsFormat"


@dataclass
class MetricLog:
    """All reported values of one metric, in order."""

    name: str
    values: list[float] = field(default_factory=list)

    def observation(self) -> dict[str, str]:
        """Katib's Metric: min, max and latest as strings."""
        return {
            "name": self.name,
            "min": _fmt(min(self.values)),
            "max": _fmt(max(self.values)),
            "latest": _fmt(self.values[-1]),
        }

    def value(self, strategy: str) -> float:
        """The objective value under Katib's metric strategy (min, max or latest)."""
        if strategy == "min":
            return min(self.values)
        if strategy == "max":
            return max(self.values)
        if strategy == "latest":
            return self.values[-1]
        raise ValueError(f"unknown metric strategy {strategy!r}")


def _fmt(x: float) -> str:
    return repr(float(x))


def compile_formats(formats: list[str] | None) -> list[Any]:
    """RE2 patterns for ``metricsFormat`` (Katib's default when none); exit 2 for one RE2 refuses."""
    import re2

    options = re2.Options()
    options.log_errors = False  # the error becomes our one-line message, not an absl log line
    compiled = []
    for i, fmt in enumerate(formats or [DEFAULT_FORMAT]):
        try:
            pattern = re2.compile(fmt, options)
        except re2.error as exc:
            reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
            raise BadInput(f"{FORMAT_FIELD}[{i}]: {fmt!r} is not a valid RE2 pattern (Katib evaluates it with "
                           f"Go's RE2): {reason}") from None
        if pattern.groups < 2:
            raise BadInput(f"{FORMAT_FIELD}[{i}]: {fmt!r} needs two capture groups: metric name and value")
        compiled.append(pattern)
    return compiled


def format_text(formats: list[str] | None) -> str:
    """The formats tried, for messages."""
    return ", ".join(f"'{f}'" for f in (formats or [DEFAULT_FORMAT]))


def _lines_of(text: str) -> Iterator[str]:
    yield from text.splitlines()


def read_lines(path: Path) -> Iterator[str]:
    """The lines of a log or metrics file, decoded leniently, each at most MAX_LINE characters."""
    with open(path, "rb") as fh:
        while True:
            chunk = fh.readline(MAX_LINE)
            if not chunk:
                return
            yield chunk.decode("utf-8", errors="replace").rstrip("\r\n")


def parse_lines(lines: Iterable[str], names: list[str], formats: list[Any]) -> dict[str, MetricLog]:
    """Metrics named in ``names`` found in ``lines`` (group 1 is the name, group 2 the value)."""
    wanted = set(names)
    found: dict[str, MetricLog] = {}
    for line in lines:
        if not any(n in line for n in names):  # as Katib: only lines naming a metric are matched
            continue
        for pattern in formats:
            for match in pattern.finditer(line):
                name, raw = (match.group(1) or "").strip(), (match.group(2) or "").strip()
                if name not in wanted:
                    continue
                value = _number(raw)
                if value is not None:
                    found.setdefault(name, MetricLog(name)).values.append(value)
    return found


def parse_text(text: str, names: list[str], formats: list[Any]) -> dict[str, MetricLog]:
    return parse_lines(_lines_of(text), names, formats)


def parse_json_lines(text: str | Iterable[str], names: list[str]) -> dict[str, MetricLog]:
    """Katib's File collector with format JSON: one JSON object per line."""
    wanted = set(names)
    found: dict[str, MetricLog] = {}
    for line in _lines_of(text) if isinstance(text, str) else text:
        line = line.strip()
        if not line:
            continue
        try:
            doc = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            continue
        if not isinstance(doc, dict):
            continue
        for name, raw in doc.items():
            if name in wanted:
                value = _number(str(raw))
                if value is not None:
                    found.setdefault(name, MetricLog(name)).values.append(value)
    return found


def nearest_line(lines: Iterable[str], metric: str, keep: int = 2000) -> str | None:
    """The line that came closest to reporting ``metric``: the last one naming it, else the most
    similar of the last ``keep`` lines (for "why were there no metrics" messages)."""
    naming: str | None = None
    tail: list[str] = []
    for line in lines:
        text = line.strip()
        if not text:
            continue
        if metric.lower() in text.lower():
            naming = text
        tail.append(text[:300])
        if len(tail) > keep:
            del tail[: len(tail) - keep]
    if naming is not None:
        return naming[:300]
    close = difflib.get_close_matches(f"{metric}=0.0", tail, n=1, cutoff=0.4)
    return close[0] if close else None


def _number(raw: str) -> float | None:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
