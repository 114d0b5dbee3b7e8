"""Field table of the Katib v1beta1 Experiment, derived from the kubeflow-katib SDK models.

The SDK's deserializer silently drops misspelled fields, and Katib's CRD has no field schema,
so the spec validator walks this table instead. The table is generated once from the SDK
(``python -m pyhelpers.experiment.katib_fields > pyhelpers/experiment/katib_fields.json``) and
shipped as data so validating a spec never imports kubeflow.katib (1.8 s); a test checks it
still matches the installed SDK.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

TABLE_FILE = Path(__file__).with_name("katib_fields.json")
ROOT = "V1beta1Experiment"
JOB_ROOT = "V1Job"  # the usual trialSpec kind; other kinds are checked only down to the container
_LIST = re.compile(r"^list\[(.+)\]$", re.I)
_DICT = re.compile(r"^dict(?:\(str, (.+)\)|\[str, (.+)\])$", re.I)


def generate() -> dict[str, dict[str, str]]:
    """Walk the SDK models from V1beta1Experiment and V1Job (status excluded): JSON name -> type."""
    import kubeflow.katib.models as katib_models
    import kubernetes.client.models as k8s_models

    table: dict[str, dict[str, str]] = {}

    def visit(type_name: str) -> None:
        inner = _LIST.match(type_name) or _DICT.match(type_name)
        if inner:
            visit(next(g for g in inner.groups() if g))
            return
        cls = getattr(katib_models, type_name, None) or getattr(k8s_models, type_name, None)
        if cls is None or type_name in table:
            return
        fields = {}
        for attr, json_name in cls.attribute_map.items():
            if type_name in (ROOT, JOB_ROOT) and attr == "status":
                continue
            fields[json_name] = cls.openapi_types[attr]
        table[type_name] = fields
        for field_type in fields.values():
            visit(field_type)

    visit(ROOT)
    visit(JOB_ROOT)
    return dict(sorted(table.items()))


@lru_cache(maxsize=1)
def table() -> dict[str, dict[str, str]]:
    return json.loads(TABLE_FILE.read_text())


if __name__ == "__main__":
    print(json.dumps(generate(), indent=1, sort_keys=True))
