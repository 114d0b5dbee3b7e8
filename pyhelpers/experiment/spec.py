"""Load and validate a Katib v1beta1 Experiment for the local engine.

Everything the local engine cannot honour is rejected with a message that says so; nothing
is silently ignored. With ``engine="katib"`` (a spec submitted to a cluster) only what Katib itself
would refuse is an error: its own features (hyperband, early stopping, other collectors, …) pass. Errors name the file, line and field (``exp.yaml:31: spec.parameters[2]
.feasibleSpace.min: ...``) and exit with code 2. No heavy import happens here.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyhelpers.errors import BadInput
from pyhelpers.experiment import algorithms, katib_fields, template
from pyhelpers.yamlsrc import Loc, SourcedYaml, load_yaml_file, parse_yaml

API_VERSION = "kubeflow.org/v1beta1"
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
PARAMETER_TYPES = ("double", "int", "discrete", "categorical")
DISTRIBUTIONS = ("uniform", "logUniform")
KATIB_ONLY_DISTRIBUTIONS = ("normal", "logNormal")
COLLECTORS = ("StdOut", "File")
KATIB_COLLECTORS = ("StdOut", "File", "TensorFlowEvent", "PrometheusMetric", "Custom", "None")
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


def load_spec(path: str | Path, text: str | None = None, engine: str = "local") -> ExperimentSpec:
    """Validate an Experiment for ``engine``: "local" (this machine) or "katib" (a cluster)."""
    path = Path(path)
    src = parse_yaml(text, str(path)) if text is not None else load_yaml_file(path)
    return Validator(src, path.resolve().parent, local=engine == "local").run()


class Validator:
    def __init__(self, src: SourcedYaml, spec_dir: Path, local: bool = True):
        self.src = src
        self.spec_dir = spec_dir
        self.local = local
        self.fields = katib_fields.table()

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

        meta = doc.get("metadata") or {}
        name = meta.get("name")
        if not name:
            raise self.fail(("metadata",), "metadata.name is required")
        if not DNS1123.match(name) or len(name) > 63:
            raise self.fail(("metadata", "name"), f"{name!r} is not a DNS-1123 name (lowercase letters, digits, '-')")
        spec = doc.get("spec")
        if not isinstance(spec, dict):
            raise self.fail(("spec",), "spec is required")

        for unsupported, why in (
            ("earlyStopping", "early stopping needs Katib's early-stopping service"),
            ("nasConfig", "neural architecture search is not supported by the local engine"),
        ):
            if self.local and spec.get(unsupported) is not None:
                raise self.fail(("spec", unsupported), f"not supported by the local engine: {why}; "
                                "remove it or submit the Experiment to Katib")

        objective = self.objective(spec)
        algorithm, settings = self.algorithm(spec)
        parameters = self.parameters(spec)
        parallel, max_trials, max_failed = self.counts(spec, algorithm)
        collector, formats, file_path, file_format = self.collector(spec)
        self.trial_template(spec, parameters)
        if algorithm == "grid":
            for i, p in enumerate(parameters):
                if p.type == "double" and not p.step:
                    raise self.fail(("spec", "parameters", i, "feasibleSpace"),
                                    f"grid search needs a step for double parameter {p.name!r}")
        if algorithm == "cmaes" and sum(p.type in ("int", "double") for p in parameters) < 2:
            raise self.fail(("spec", "parameters"), "cmaes needs at least two int or double parameters")

        return ExperimentSpec(
            doc=doc, source=self.src.source, name=name, namespace=meta.get("namespace") or "default",
            objective_type=objective[0], objective_metric=objective[1], goal=objective[2],
            additional_metrics=objective[3], strategies=objective[4], algorithm=algorithm,
            settings=settings, parallel=parallel, max_trials=max_trials, max_failed=max_failed,
            parameters=parameters, collector=collector, metrics_formats=formats, file_path=file_path,
            file_format=file_format, spec_dir=self.spec_dir,
            resume_policy=self.resume_policy(spec),
        )

    def resume_policy(self, spec: dict) -> str:
        policy = spec.get("resumePolicy") or "Never"
        if policy not in RESUME_POLICIES:
            raise self.fail(("spec", "resumePolicy"),
                            f"must be one of {', '.join(RESUME_POLICIES)} (got {policy!r})")
        return policy

    def objective(self, spec: dict):
        obj = spec.get("objective")
        loc = ("spec", "objective")
        if not isinstance(obj, dict):
            raise self.fail(("spec",), "spec.objective is required")
        kind = obj.get("type")
        if kind not in ("minimize", "maximize"):
            raise self.fail(loc + ("type",), f"must be 'minimize' or 'maximize' (got {kind!r})")
        metric = obj.get("objectiveMetricName")
        if not metric:
            raise self.fail(loc, "objectiveMetricName is required")
        additional = list(obj.get("additionalMetricNames") or [])
        if metric in additional:
            raise self.fail(loc + ("additionalMetricNames",), f"must not repeat the objective metric {metric!r}")
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
        alg = spec.get("algorithm")
        if not isinstance(alg, dict) or not alg.get("algorithmName"):
            raise self.fail(("spec",), "spec.algorithm.algorithmName is required")
        name = alg["algorithmName"]
        problem = algorithms.check_algorithm(name)
        if problem and (self.local or name not in algorithms.UNSUPPORTED):
            raise self.fail(("spec", "algorithm", "algorithmName"), problem)
        settings: dict[str, str] = {}
        for i, item in enumerate(alg.get("algorithmSettings") or []):
            sname = item.get("name")
            if not sname:
                raise self.fail(("spec", "algorithm", "algorithmSettings", i), "setting needs a name")
            if sname in settings:
                raise self.fail(("spec", "algorithm", "algorithmSettings", i, "name"), f"setting {sname!r} given twice")
            settings[sname] = item.get("value", "")
        _, errors = algorithms.convert_settings(name, settings) if name in algorithms.SETTINGS else ({}, {})
        if errors:
            key, message = next(iter(errors.items()))
            index = list(settings).index(key)
            raise self.fail(("spec", "algorithm", "algorithmSettings", index), message)
        return name, settings

    def parameters(self, spec: dict) -> list[Parameter]:
        params = spec.get("parameters")
        if not params:
            raise self.fail(("spec",), "spec.parameters must list at least one parameter")
        out: list[Parameter] = []
        seen: set[str] = set()
        for i, p in enumerate(params):
            loc = ("spec", "parameters", i)
            name, kind = p.get("name"), p.get("parameterType")
            if not name:
                raise self.fail(loc, "parameter needs a name")
            if name in seen:
                raise self.fail(loc + ("name",), f"parameter {name!r} is defined twice")
            seen.add(name)
            if kind not in PARAMETER_TYPES:
                raise self.fail(loc + ("parameterType",), f"must be one of {', '.join(PARAMETER_TYPES)} (got {kind!r})")
            space = p.get("feasibleSpace")
            if not isinstance(space, dict):
                raise self.fail(loc, f"parameter {name!r} needs a feasibleSpace")
            sloc = loc + ("feasibleSpace",)
            dist = space.get("distribution") or "uniform"
            if dist in KATIB_ONLY_DISTRIBUTIONS and self.local:
                raise self.fail(sloc + ("distribution",), f"distribution {dist!r} is not supported by the local "
                                "engine (Optuna samplers are uniform or log-uniform)")
            if dist not in DISTRIBUTIONS + KATIB_ONLY_DISTRIBUTIONS:
                raise self.fail(sloc + ("distribution",), f"must be one of uniform, logUniform, normal, logNormal (got {dist!r})")
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
                for key in ("min", "max", "step"):
                    if space.get(key) is not None:
                        raise self.fail(sloc + (key,), f"not allowed for a {kind} parameter (use list)")
                out.append(Parameter(name, kind, values=[str(v) for v in values]))
                continue
            if space.get("list"):
                raise self.fail(sloc + ("list",), f"not allowed for a {kind} parameter (use min/max)")
            bounds = {}
            for key in ("min", "max", "step"):
                raw = space.get(key)
                if raw is None:
                    if key == "step":
                        continue
                    raise self.fail(sloc, f"{kind} parameter {name!r} needs feasibleSpace.{key}")
                value = _number(raw)
                if value is None or (kind == "int" and value != int(value)):
                    what = "an integer" if kind == "int" else "a number"
                    raise self.fail(sloc + (key,), f"must be {what} (got {raw!r})")
                bounds[key] = int(value) if kind == "int" else value
            if bounds["min"] > bounds["max"]:
                raise self.fail(sloc + ("min",), f"min {space['min']} is greater than max {space['max']}")
            if "step" in bounds and bounds["step"] <= 0:
                raise self.fail(sloc + ("step",), f"must be positive (got {space['step']!r})")
            if "step" in bounds and bounds["step"] > bounds["max"] - bounds["min"] and bounds["max"] > bounds["min"]:
                raise self.fail(sloc + ("step",), f"step {space['step']} is larger than max - min")
            log = dist == "logUniform"
            if log and bounds["min"] <= 0:
                raise self.fail(sloc + ("min",), "logUniform needs min > 0")
            if log and "step" in bounds and kind == "double":
                raise self.fail(sloc + ("step",), "a double with logUniform cannot have a step")
            out.append(Parameter(name, kind, bounds["min"], bounds["max"], bounds.get("step"), log=log))
        return out

    def counts(self, spec: dict, algorithm: str) -> tuple[int, int | None, int | None]:
        parallel = spec.get("parallelTrialCount", DEFAULT_PARALLEL)
        max_trials = spec.get("maxTrialCount")
        max_failed = spec.get("maxFailedTrialCount")
        for key, value in (("parallelTrialCount", parallel), ("maxTrialCount", max_trials)):
            if value is not None and value < 1:
                raise self.fail(("spec", key), f"must be at least 1 (got {value})")
        if max_failed is not None and max_failed < 0:
            raise self.fail(("spec", "maxFailedTrialCount"), f"must not be negative (got {max_failed})")
        if max_trials is None and algorithm != "grid" and self.local:
            raise self.fail(("spec",), "spec.maxTrialCount is required by the local engine "
                            "(without it only a goal or an exhausted grid would end the search)")
        if max_trials is not None and parallel > max_trials:
            raise self.fail(("spec", "parallelTrialCount"),
                            f"parallelTrialCount {parallel} is greater than maxTrialCount {max_trials}")
        return parallel, max_trials, max_failed

    def collector(self, spec: dict):
        mcs = spec.get("metricsCollectorSpec") or {}
        loc = ("spec", "metricsCollectorSpec")
        kind = (mcs.get("collector") or {}).get("kind") or "StdOut"
        if kind in KATIB_COLLECTORS and not self.local:
            return kind, (mcs.get("source") or {}).get("filter", {}).get("metricsFormat"), None, "TEXT"
        if kind not in COLLECTORS:
            raise self.fail(loc + ("collector", "kind"), f"collector {kind!r} is not supported by the local engine; "
                            "supported: StdOut, File")
        source = mcs.get("source") or {}
        formats = (source.get("filter") or {}).get("metricsFormat")
        for i, fmt in enumerate(formats or []):
            try:
                compiled = re.compile(fmt)
            except re.error as exc:
                raise self.fail(loc + ("source", "filter", "metricsFormat", i), f"invalid regular expression: {exc}") from None
            if compiled.groups < 2:
                raise self.fail(loc + ("source", "filter", "metricsFormat", i),
                                "needs two capture groups: metric name and value")
        if source.get("httpGet"):
            raise self.fail(loc + ("source", "httpGet"), "httpGet sources are not supported by the local engine")
        file_path, file_format = None, "TEXT"
        if kind == "File":
            fsp = source.get("fileSystemPath") or {}
            file_path = fsp.get("path")
            if not file_path:
                raise self.fail(loc + ("source",), "the File collector needs source.fileSystemPath.path")
            if fsp.get("kind", "File") != "File":
                raise self.fail(loc + ("source", "fileSystemPath", "kind"), "must be File for the File collector")
            file_format = fsp.get("format") or "TEXT"
            if file_format not in ("TEXT", "JSON"):
                raise self.fail(loc + ("source", "fileSystemPath", "format"), f"must be TEXT or JSON (got {file_format!r})")
        elif source.get("fileSystemPath"):
            raise self.fail(loc + ("source", "fileSystemPath"), "only used with the File collector")
        return kind, formats, file_path, file_format

    def trial_template(self, spec: dict, parameters: list[Parameter]) -> None:
        tt = spec.get("trialTemplate")
        loc = ("spec", "trialTemplate")
        if not isinstance(tt, dict):
            raise self.fail(("spec",), "spec.trialTemplate is required")
        if tt.get("configMap") is not None and not self.local:
            return  # Katib reads the template from the ConfigMap; it is not here to check
        if tt.get("configMap") is not None:
            raise self.fail(loc + ("configMap",), "trial templates from a ConfigMap are not supported by the local "
                            "engine; inline the template as trialTemplate.trialSpec")
        trial_spec = tt.get("trialSpec")
        if not isinstance(trial_spec, dict):
            raise self.fail(loc, "trialTemplate.trialSpec is required")
        if trial_spec.get("apiVersion") == "batch/v1" and trial_spec.get("kind") == "Job":
            self.check_fields(trial_spec, katib_fields.JOB_ROOT, loc + ("trialSpec",))
        param_names = {p.name for p in parameters}
        declared: dict[str, int] = {}
        for i, tp in enumerate(tt.get("trialParameters") or []):
            tname, ref = tp.get("name"), tp.get("reference")
            if not tname:
                raise self.fail(loc + ("trialParameters", i), "trial parameter needs a name")
            if tname in declared:
                raise self.fail(loc + ("trialParameters", i, "name"), f"trial parameter {tname!r} is declared twice")
            if not ref:
                raise self.fail(loc + ("trialParameters", i), f"trial parameter {tname!r} needs a reference")
            if ref not in param_names and not template.METADATA_REF.match(ref):
                raise self.fail(loc + ("trialParameters", i, "reference"),
                                f"{ref!r} is not a parameter of this Experiment; parameters: {', '.join(sorted(param_names))}")
            declared[tname] = i
        used = template.placeholders(trial_spec)
        for name in sorted(used - set(declared)):
            raise self.fail(loc + ("trialSpec",), f"${{trialParameters.{name}}} is used but not declared in trialParameters")
        for name, i in declared.items():
            if name not in used:
                raise self.fail(loc + ("trialParameters", i), f"trial parameter {name!r} is never used in trialSpec")
        referenced = {tp.get("reference") for tp in tt.get("trialParameters") or []}
        for i, p in enumerate(spec.get("parameters") or []):
            if p.get("name") not in referenced:
                raise self.fail(("spec", "parameters", i), f"parameter {p.get('name')!r} is not referenced by any trialParameter")
        primary = tt.get("primaryContainerName")
        container = template.find_container(trial_spec, primary)
        if container is None:
            what = f"no container named {primary!r}" if primary else "several containers: set primaryContainerName"
            raise self.fail(loc + ("trialSpec",), f"cannot find the primary container ({what})")
        if not container.get("command") and self.local:
            raise self.fail(loc + ("trialSpec",), f"container {container.get('name')!r} has no command; "
                            "the local engine runs the command, not the image's entrypoint")


def _number(raw: Any) -> float | None:
    if isinstance(raw, bool):
        return None
    try:
        return float(raw)
    except (TypeError, ValueError):
        return None
