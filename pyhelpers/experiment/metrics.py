"""Metric collection as Katib's StdOut and File collectors do it."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

# Katib's default StdOut/TEXT format: one or more `name=value` pairs per line.
DEFAULT_FORMAT = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"


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
        if strategy == "min":
            return min(self.values)
        if strategy == "max":
            return max(self.values)
        return self.values[-1]


def _fmt(x: float) -> str:
    return repr(float(x))


def compile_formats(formats: list[str] | None) -> list[re.Pattern]:
    return [re.compile(f) for f in (formats or [DEFAULT_FORMAT])]


def parse_text(text: str, names: list[str], formats: list[re.Pattern]) -> dict[str, MetricLog]:
    """Metrics named in ``names`` found in ``text`` (the first two groups are name and value)."""
    wanted = set(names)
    found: dict[str, MetricLog] = {}
    for line in text.splitlines():
        for pattern in formats:
            for match in pattern.finditer(line):
                name, raw = match.group(1), match.group(2)
                if name not in wanted:
                    continue
                value = _number(raw)
                if value is not None:
                    found.setdefault(name, MetricLog(name)).values.append(value)
    return found


def parse_json_lines(text: str, names: list[str]) -> dict[str, MetricLog]:
    """Katib's File collector with format JSON: one JSON object per line."""
    wanted = set(names)
    found: dict[str, MetricLog] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(doc, dict):
            continue
        for name, raw in doc.items():
            if name in wanted:
                value = _number(str(raw))
                if value is not None:
                    found.setdefault(name, MetricLog(name)).values.append(value)
    return found


def _number(raw: str) -> float | None:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
