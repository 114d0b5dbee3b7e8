"""Load and validate a Katib v1beta1 Experiment for the local engine or for Katib.

Katib's own rules (``katib_rules``: its admission webhook and the suggestion service that runs the
algorithm under a katib-config, docs/katib.md) apply to both engines, so a spec means the same on
both. Every field name is checked against the SDK's field table (Katib's deserializer silently
drops typos). The local engine also refuses, in one line, what it cannot honour (NAS, hyperband,
early stopping, other collectors, ...); nothing is silently ignored. Errors name the file, line
and field (``exp.yaml:31: spec.parameters[2].feasibleSpace.min: ...``) and exit with code 2. No
heavy import happens here.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyhelpers.errors import BadInput
from pyhelpers.experiment import algorithms, katib_fields, katib_rules, template
from pyhelpers.experiment import katib_config as katib_config_mod
from pyhelpers.experiment.katib_config import KatibConfig
from pyhelpers.yamlsrc import Loc, SourcedYaml, load_yaml_file, parse_yaml

API_VERSION = "kubeflow.org/v1beta1"
PARAMETER_TYPES = ("double", "int", "discrete", "categorical")
DISTRIBUTIONS = ("uniform", "logUniform")
KATIB_ONLY_DISTRIBUTIONS = ("normal", "logNormal")
COLLECTORS = ("StdOut", "File")  # what the local engine can collect
RESUME_POLICIES = ("Never", "LongRunning", "FromVolume")
DEFAULT_PARALLEL = 3  # Katib's default parallelTrialCount


@dataclass
class Parameter:
    name: str
    type: str
    min: float | None = None
    max: float | None = None
    step: float | None = None
    values: list[str] = field(default_factory=list)
    log: bool = False


@dataclass
class ExperimentSpec:
    """A validated Experiment, with the pieces the engine needs already typed.

    Attributes the engines rely on:
    - ``max_failed`` (alias ``max_failed_trials``): ``spec.maxFailedTrialCount``; None when absent
      (no limit on Katib), an explicit 0 stays 0 (Katib fails the Experiment at the first failed trial).
    - ``resume_policy``: ``spec.resumePolicy``, one of Never | LongRunning | FromVolume
      (Katib's default when absent: Never).
    - ``collector``: the metrics collector kind (StdOut, File, TensorFlowEvent, PrometheusMetric,
      Custom, Push; the local engine accepts only StdOut and File).
    - ``file_path`` / ``file_format``: the File collector's ``source.fileSystemPath.path`` (absolute,
      as Katib requires) and ``format`` (TEXT | JSON); None / "TEXT" for other collectors.
    - ``metrics_formats``: ``source.filter.metricsFormat`` regexes (None: Katib's default format).
    - ``nas``: ``spec.nasConfig`` when the Experiment is a neural architecture search (katib engine
      only), else None; ``parameters`` is then empty.
    - ``name``: ``metadata.name``, or ``metadata.generateName`` without its trailing '-' when only
      that is given (``generate_name`` then holds it as written).
    - ``warnings``: what Katib accepts but ignores (settings a service does not read, a trial kind
      the controller does not watch); ``experiment validate`` prints them on stderr.
    """

    doc: dict  # the whole Experiment object as loaded
    source: str
    name: str
    namespace: str
    objective_type: str  # minimize | maximize
    objective_metric: str
    goal: float | None
    additional_metrics: list[str]
    strategies: dict[str, str]  # metric -> min | max | latest
    algorithm: str
    settings: dict[str, str]
    parallel: int
    max_trials: int | None
    max_failed: int | None
    parameters: list[Parameter]
    collector: str  # StdOut | File
    metrics_formats: list[str] | None
    file_path: str | None
    file_format: str  # TEXT | JSON
    spec_dir: Path
    resume_policy: str = "Never"
    nas: dict | None = None
    generate_name: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def max_failed_trials(self) -> int | None:
        """``spec.maxFailedTrialCount``: None when absent, 0 kept as 0."""
        return self.max_failed

    @property
    def spec(self) -> dict:
        return self.doc["spec"]

    @property
    def metric_names(self) -> list[str]:
        return [self.objective_metric, *self.additional_metrics]

    def grid(self) -> dict[str, list]:
        """The grid Katib's grid algorithm enumerates (doubles need a step)."""
        out: dict[str, list] = {}
        for p in self.parameters:
            if p.type in ("categorical", "discrete"):
                out[p.name] = list(p.values)
            else:
                step = p.step or 1
                n = int(round((p.max - p.min) / step)) + 1
                values = [p.min + i * step for i in range(n) if p.min + i * step <= p.max + 1e-12]
                out[p.name] = [int(v) for v in values] if p.type == "int" else [round(v, 12) for v in values]
        return out

    def grid_size(self) -> int:
        size = 1
        for values in self.grid().values():
            size *= len(values)
        return size


def load_spec(path: str | Path, text: str | None = None, engine: str = "local",
              katib_config: KatibConfig | None = None) -> ExperimentSpec:
    """Validate an Experiment for ``engine``: "local" (this machine) or "katib" (a cluster).

    Katib's own rules (its webhook and the suggestion services under ``katib_config``, default:
    upstream's katib-config) apply to both engines: a spec means the same on both. The local
    engine also refuses what it cannot honour.
    """
    path = Path(path)
    src = parse_yaml(text, str(path)) if text is not None else load_yaml_file(path)
    return Validator(src, path.resolve().parent, local=engine == "local",
                     katib_config=katib_config or katib_config_mod.UPSTREAM).run()


class Validator:
    def __init__(self, src: SourcedYaml, spec_dir: Path, local: bool = True,
                 katib_config: KatibConfig | None = None):
        self.src = src
        self.spec_dir = spec_dir
        self.local = local
        self.katib_config = katib_config or katib_config_mod.UPSTREAM
        self.fields = katib_fields.table()
        self.warnings: list[str] = []

    def fail(self, loc: Loc, message: str) -> BadInput:
        return self.src.error(loc, message)

    # -- structure: every key must be a real Katib (or Kubernetes) field ----------------
    def check_fields(self, value: Any, type_name: str, loc: Loc) -> None:
        if value is None:
            return
        inner = re.match(r"^list\[(.+)\]$", type_name, re.I)
        if inner:
            if not isinstance(value, list):
                raise self.fail(loc, f"must be a list (got {type(value).__name__})")
            for i, item in enumerate(value):
                self.check_fields(item, inner.group(1), loc + (i,))
            return
        inner = re.match(r"^dict(?:\(str, (.+)\)|\[str, (.+)\])$", type_name, re.I)
        if inner:
            if not isinstance(value, dict):
                raise self.fail(loc, f"must be a mapping (got {type(value).__name__})")
            for k, v in value.items():
                self.check_fields(v, inner.group(1) or inner.group(2), loc + (k,))
            return
        if type_name in ("object", "datetime"):
            return
        if type_name == "str":
            if _is_quantity(loc) and isinstance(value, (int, float)) and not isinstance(value, bool):
                return  # resource.Quantity decodes JSON numbers: `cpu: 1` is what Kubernetes accepts
            if not isinstance(value, str):
                hint = f' (quote it: "{value}")' if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
                raise self.fail(loc, f"must be a string{hint}")
            return
        if type_name == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.fail(loc, f"must be an integer (got {value!r})")
            return
        if type_name == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self.fail(loc, f"must be a number (got {value!r})")
            return
        if type_name == "bool":
            if not isinstance(value, bool):
                raise self.fail(loc, f"must be true or false (got {value!r})")
            return
        fields = self.fields.get(type_name)
        if fields is None:
            return  # a Kubernetes type outside the table: not checked deeper
        if not isinstance(value, dict):
            raise self.fail(loc, f"must be a mapping (got {type(value).__name__})")
        for key, item in value.items():
            if key not in fields:
                close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]!r}?" if close else f"; known fields: {', '.join(fields)}"
                raise self.fail(loc + (key,), f"unknown field{hint}")
            self.check_fields(item, fields[key], loc + (key,))

    # -- the whole document ---------------------------------------------------------------
    def run(self) -> ExperimentSpec:
        doc = self.src.data
        if not isinstance(doc, dict):
            raise self.fail((), "expected a Katib Experiment (a YAML mapping)")
        if doc.get("apiVersion") != API_VERSION:
            raise self.fail(("apiVersion",), f"must be {API_VERSION!r} (got {doc.get('apiVersion')!r})")
        if doc.get("kind") != "Experiment":
            raise self.fail(("kind",), f"must be 'Experiment' (got {doc.get('kind')!r})")
        top = {k: v for k, v in doc.items() if k != "status"}  # a status read back from a cluster is ignored
        self.check_fields(top, katib_fields.ROOT, ())
        spec = doc.get("spec")
        if not isinstance(spec, dict):
            raise self.fail(("spec",), "spec is required")
        tt = spec.get("trialTemplate")
        if isinstance(tt, dict) and isinstance(tt.get("trialSpec"), dict):
            ts = tt["trialSpec"]
            if ts.get("apiVersion") == "batch/v1" and ts.get("kind") == "Job":
                # Katib converts a Job to batch/v1 Job and refuses what does not survive (validator.go)
                self.check_fields(ts, katib_fields.JOB_ROOT, ("spec", "trialTemplate", "trialSpec"))

        if self.local:
            for unsupported, why in (
                ("earlyStopping", "early stopping needs Katib's early-stopping service"),
                ("nasConfig", "neural architecture search is not supported by the local engine"),
            ):
                if spec.get(unsupported) is not None:
                    raise self.fail(("spec", unsupported), f"not supported by the local engine: {why}; "
                                    "remove it or submit the Experiment to Katib")
            if isinstance(tt, dict) and tt.get("configMap") is not None:
                raise self.fail(("spec", "trialTemplate", "configMap"), "trial templates from a ConfigMap are not "
                                "supported by the local engine; inline the template as trialTemplate.trialSpec")
            alg = (spec.get("algorithm") or {}).get("algorithmName")
            if alg in algorithms.UNSUPPORTED:
                raise self.fail(("spec", "algorithm", "algorithmName"), algorithms.check_algorithm(alg))

        # Katib's own rules: the webhook, then the suggestion service that runs the algorithm.
        name, self.warnings = katib_rules.check_all(doc, self.katib_config, self.fail)
        meta = doc.get("metadata") or {}

        objective = self.objective(spec)
        algorithm, settings = self.algorithm(spec)
        parameters = self.parameters(spec)
        parallel, max_trials, max_failed = self.counts(spec, algorithm)
        collector, formats, file_path, file_format = self.collector(spec)
        self.trial_template(spec)
        if algorithm == "grid":
            for i, p in enumerate(parameters):
                if p.type == "double" and not p.step:
                    raise self.fail(("spec", "parameters", i, "feasibleSpace"),
                                    f"grid search needs a step for double parameter {p.name!r}")

        return ExperimentSpec(
            doc=doc, source=self.src.source, name=name, namespace=meta.get("namespace") or "default",
            objective_type=objective[0], objective_metric=objective[1], goal=objective[2],
            additional_metrics=objective[3], strategies=objective[4], algorithm=algorithm,
            settings=settings, parallel=parallel, max_trials=max_trials, max_failed=max_failed,
            parameters=parameters, collector=collector, metrics_formats=formats, file_path=file_path,
            file_format=file_format, spec_dir=self.spec_dir,
            resume_policy=spec.get("resumePolicy") or "Never", nas=spec.get("nasConfig"),
            generate_name=None if meta.get("name") else meta.get("generateName"),
            warnings=self.warnings,
        )

    def objective(self, spec: dict):
        obj = spec["objective"]
        loc = ("spec", "objective")
        kind, metric = obj["type"], obj["objectiveMetricName"]
        additional = list(obj.get("additionalMetricNames") or [])
        if len(set(additional)) != len(additional):
            raise self.fail(loc + ("additionalMetricNames",), "contains a metric twice")
        strategies = {m: ("min" if kind == "minimize" else "max") for m in [metric, *additional]}
        for i, item in enumerate(obj.get("metricStrategies") or []):
            mname, value = item.get("name"), item.get("value")
            if mname not in strategies:
                raise self.fail(loc + ("metricStrategies", i, "name"),
                                f"{mname!r} is neither the objective nor an additional metric")
            if value not in ("min", "max", "latest"):
                raise self.fail(loc + ("metricStrategies", i, "value"), f"must be min, max or latest (got {value!r})")
            strategies[mname] = value
        return kind, metric, obj.get("goal"), additional, strategies

    def algorithm(self, spec: dict) -> tuple[str, dict[str, str]]:
        alg = spec["algorithm"]
        name = alg["algorithmName"]
        settings: dict[str, str] = {}
        for i, item in enumerate(alg.get("algorithmSettings") or []):
            sname = item.get("name")
            if not sname:
                raise self.fail(("spec", "algorithm", "algorithmSettings", i), "setting needs a name")
            if sname in settings:
                raise self.fail(("spec", "algorithm", "algorithmSettings", i, "name"), f"setting {sname!r} given twice")
            settings[sname] = "" if item.get("value") is None else str(item.get("value"))
        if self.local:
            problem = algorithms.local_problem(name, settings)
            if problem:
                key, message = problem
                loc = ("spec", "algorithm") + (("algorithmSettings", list(settings).index(key)) if key else ())
                raise self.fail(loc, message)
        return name, settings

    def parameters(self, spec: dict) -> list[Parameter]:
        out: list[Parameter] = []
        seen: set[str] = set()
        for i, p in enumerate(spec.get("parameters") or []):
            loc = ("spec", "parameters", i)
            name, kind = p.get("name"), p.get("parameterType")
            if not name:
                raise self.fail(loc, "parameter needs a name")
            if name in seen:
                raise self.fail(loc + ("name",), f"parameter {name!r} is defined twice")
            seen.add(name)
            if kind not in PARAMETER_TYPES:
                raise self.fail(loc + ("parameterType",), f"must be one of {', '.join(PARAMETER_TYPES)} (got {kind!r})")
            space = p.get("feasibleSpace") or {}
            sloc = loc + ("feasibleSpace",)
            dist = space.get("distribution") or "uniform"
            if dist in KATIB_ONLY_DISTRIBUTIONS and self.local:
                raise self.fail(sloc + ("distribution",), f"distribution {dist!r} is not supported by the local "
                                "engine (Optuna samplers are uniform or log-uniform)")
            if kind in ("categorical", "discrete"):
                values = space.get("list")
                if not values:
                    raise self.fail(sloc, f"{kind} parameter {name!r} needs a non-empty feasibleSpace.list")
                if len(set(values)) != len(values):
                    raise self.fail(sloc + ("list",), "contains a value twice")
                if kind == "discrete":
                    for j, v in enumerate(values):
                        if _number(v) is None:
                            raise self.fail(sloc + ("list", j), f"discrete values must be numbers (got {v!r})")
                out.append(Parameter(name, kind, values=[str(v) for v in values]))
                continue
            bounds = {}
            for key in ("min", "max", "step"):
                raw = space.get(key)
                if raw is None or raw == "":
                    continue
                value = _number(raw)
                if value is None or (kind == "int" and math.isfinite(value) and value != int(value)):
                    what = "an integer" if kind == "int" else "a number"
                    raise self.fail(sloc + (key,), f"must be {what} (got {raw!r})")
                if not math.isfinite(value):
                    # No sampler draws from an infinite range: hyperopt and Optuna return nan/inf values.
                    raise self.fail(sloc + (key,), f"must be a finite number (got {raw!r})")
                bounds[key] = int(value) if kind == "int" else value
            if bounds["min"] > bounds["max"]:
                raise self.fail(sloc + ("min",), f"min {space['min']} is greater than max {space['max']}")
            if "step" in bounds and bounds["step"] <= 0:
                raise self.fail(sloc + ("step",), f"must be positive (got {space['step']!r})")
            log = dist == "logUniform"
            if log and bounds["min"] <= 0:
                raise self.fail(sloc + ("min",), "logUniform needs min > 0")
            if log and "step" in bounds and kind == "double" and self.local:
                raise self.fail(sloc + ("step",), "a double with logUniform cannot have a step on the local engine "
                                "(Optuna has no quantized log-uniform; Katib's hyperopt service has)")
            out.append(Parameter(name, kind, bounds["min"], bounds["max"], bounds.get("step"), log=log))
        return out

    def counts(self, spec: dict, algorithm: str) -> tuple[int, int | None, int | None]:
        parallel = spec.get("parallelTrialCount", DEFAULT_PARALLEL)
        max_trials = spec.get("maxTrialCount")
        max_failed = spec.get("maxFailedTrialCount")
        if max_trials is None and algorithm != "grid" and self.local:
            raise self.fail(("spec",), "spec.maxTrialCount is required by the local engine "
                            "(without it only a goal or an exhausted grid would end the search)")
        return parallel, max_trials, max_failed

    def collector(self, spec: dict):
        kind, source = katib_rules.check_collector(spec, self.katib_config, self.fail)
        loc = ("spec", "metricsCollectorSpec")
        formats = (source.get("filter") or {}).get("metricsFormat")
        if self.local and kind not in COLLECTORS:
            raise self.fail(loc + ("collector", "kind"), f"collector {kind!r} is not supported by the local engine; "
                            "supported: StdOut, File")
        if self.local:
            for i, fmt in enumerate(formats or []):
                try:
                    re.compile(fmt)
                except re.error as exc:
                    raise self.fail(loc + ("source", "filter", "metricsFormat", i),
                                    f"invalid regular expression: {exc}") from None
        if kind != "File":
            if source.get("fileSystemPath") and kind == "StdOut":
                self.warnings.append("spec.metricsCollectorSpec.source.fileSystemPath is ignored by the StdOut collector")
            return kind, formats, None, "TEXT"
        fsp = source["fileSystemPath"]
        return kind, formats, fsp["path"], fsp["format"]

    def trial_template(self, spec: dict) -> None:
        tt = spec["trialTemplate"]
        loc = ("spec", "trialTemplate")
        if not self.local:
            return  # Katib's rules (katib_rules.check_trial_template) said all there is to say
        trial_spec = tt["trialSpec"]
        primary = tt.get("primaryContainerName")
        container = template.find_container(trial_spec, primary)
        if container is None:
            what = f"no container named {primary!r}" if primary else "several containers: set primaryContainerName"
            raise self.fail(loc + ("trialSpec",), f"cannot find the primary container ({what})")
        if not container.get("command"):
            raise self.fail(loc + ("trialSpec",), f"container {container.get('name')!r} has no command; "
                            "the local engine runs the command, not the image's entrypoint")


_QUANTITY_KEYS = ("limits", "requests", "claims", "overhead")


def _is_quantity(loc: Loc) -> bool:
    """A resource.Quantity field (resources.limits/requests.<name>, emptyDir.sizeLimit, ...)."""
    return (len(loc) >= 2 and loc[-2] in _QUANTITY_KEYS) or (bool(loc) and loc[-1] in ("sizeLimit", "storage"))


def _number(raw: Any) -> float | None:
    if isinstance(raw, bool):
        return None
    try:
        return float(raw)
    except (TypeError, ValueError):
        return None
