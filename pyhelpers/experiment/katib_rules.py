"""What Katib itself accepts: its admission webhook and its suggestion/early-stopping services.

Derived from kubeflow/katib (commit 33c8ff4e, after v0.19.0) — docs/katib.md maps every rule to
its file there. Each check raises ``fail(loc, message)`` (a one-line BadInput naming file, line
and field); settings errors name the service that would refuse them. Anything Katib accepts but
ignores is returned as a warning, never an error. No heavy import happens here.

- ``check_webhook``: ``pkg/webhook/v1beta1/experiment/validator/validator.go`` after the
  defaulting of ``pkg/apis/controller/experiments/v1beta1/experiment_defaults.go``, plus the
  API server's own name rules and the primary-container lookup of the pod webhook.
- ``check_services``: ``ValidateAlgorithmSettings`` of the service that runs the algorithm under
  the given katib-config (``katib_config.py``), and ``ValidateEarlyStoppingSettings``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

from pyhelpers.errors import BadInput
from pyhelpers.experiment.katib_config import KatibConfig

Fail = Callable[..., BadInput]
Loc = tuple

NAME_RULE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MAX_NAME = 40  # validator.go: the Suggestion's Service "<name>-<algorithm>" must stay a DNS label
GENERATED_SUFFIX = 5  # the API server appends 5 random characters to generateName before admission
RESUME_POLICIES = ("Never", "LongRunning", "FromVolume")
PARAMETER_TYPES = ("double", "int", "discrete", "categorical")
DISTRIBUTIONS = ("uniform", "logUniform", "normal", "logNormal")
COLLECTOR_KINDS = ("StdOut", "File", "TensorFlowEvent", "PrometheusMetric", "Custom", "Push")
AUTO_INJECTED = ("StdOut", "TensorFlowEvent", "File", "PrometheusMetric")  # need a katib-config entry
KUBEFLOW_JOB_KINDS = ("TFJob", "PyTorchJob", "XGBoostJob", "MPIJob", "TrainJob")  # experiment_defaults.go
PLACEHOLDER_ANY = re.compile(r"\$\{trialParameters\..+?\}")  # consts.TrialTemplateParamReplaceFormatRegex
META_REF = re.compile(r"\$\{trialSpec\.(.+?)\}")  # consts.TrialTemplateMetaReplaceFormatRegex
META_KEYS = ("Name", "Namespace", "Kind", "APIVersion", "Annotations", "Labels")
TWO_GROUPS = re.compile(r".*\(.*\).*\(.*\).*")  # validator.go mustTwoBracket
DEFAULT_PARALLEL = 3


# -- the admission webhook --------------------------------------------------------------------
def check_name(meta: dict, fail: Fail) -> str:
    """metadata.name, or generateName (the webhook sees it with 5 characters appended)."""
    name, generate = meta.get("name"), meta.get("generateName")
    if not name and not generate:
        raise fail(("metadata",), "metadata.name or metadata.generateName is required")
    if name:
        if not NAME_RULE.match(str(name)) or len(str(name)) > MAX_NAME:
            raise fail(("metadata", "name"), f"{name!r}: Katib refuses it: a name must start with a lowercase "
                       f"letter, hold only lowercase letters, digits and '-', end with a letter or digit, "
                       f"and be at most {MAX_NAME} characters")
        return str(name)
    generate = str(generate)
    if not re.match(r"^[a-z][-a-z0-9]*$", generate) or len(generate) + GENERATED_SUFFIX > MAX_NAME:
        raise fail(("metadata", "generateName"), f"{generate!r}: Katib refuses the generated name: it must start "
                   f"with a lowercase letter, hold only lowercase letters, digits and '-', and be at most "
                   f"{MAX_NAME - GENERATED_SUFFIX} characters (the API server appends {GENERATED_SUFFIX})")
    return generate.rstrip("-")


def check_counts(spec: dict, fail: Fail) -> None:
    maxt, maxf = spec.get("maxTrialCount"), spec.get("maxFailedTrialCount")
    par = spec.get("parallelTrialCount", DEFAULT_PARALLEL)  # the mutating webhook defaults it first
    if maxf is not None and maxf < 0:
        raise fail(("spec", "maxFailedTrialCount"), f"{maxf}: Katib refuses it: should not be less than 0")
    if maxt is not None and maxt <= 0:
        raise fail(("spec", "maxTrialCount"), f"{maxt}: Katib refuses it: must be greater than 0")
    if par is not None and par <= 0:
        raise fail(("spec", "parallelTrialCount"), f"{par}: Katib refuses it: must be greater than 0")
    if maxf is not None and maxt is not None and maxf > maxt:
        raise fail(("spec", "maxFailedTrialCount"), f"{maxf}: Katib refuses it: should be less than or equal "
                   f"to spec.maxTrialCount ({maxt})")
    if par is not None and maxt is not None and par > maxt:
        given = "parallelTrialCount" in spec
        what = str(par) if given else f"{par} (Katib's default parallelTrialCount)"
        raise fail(("spec", "parallelTrialCount") if given else ("spec", "maxTrialCount"),
                   f"{what}: Katib refuses it: should be less than or equal to spec.maxTrialCount ({maxt})")


def check_resume_policy(spec: dict, fail: Fail) -> str:
    policy = spec.get("resumePolicy") or "Never"
    if policy not in RESUME_POLICIES:
        raise fail(("spec", "resumePolicy"), f"{policy!r}: Katib refuses it: invalid ResumePolicyType; "
                   f"one of {', '.join(RESUME_POLICIES)}")
    return policy


def check_algorithm_known(spec: dict, cfg: KatibConfig, fail: Fail) -> str:
    alg = spec.get("algorithm")
    if not isinstance(alg, dict) or not alg.get("algorithmName"):
        raise fail(("spec", "algorithm", "algorithmName"), "must be specified")
    name = alg["algorithmName"]
    if cfg.service(name) is None:
        raise fail(("spec", "algorithm", "algorithmName"), f"{name!r}: Katib refuses it: no suggestion for "
                   f"algorithm {name!r} in {cfg.source} (known: {', '.join(sorted(cfg.suggestions))})")
    return name


def check_early_stopping_known(spec: dict, cfg: KatibConfig, fail: Fail) -> None:
    es = spec.get("earlyStopping")
    if es is None:
        return
    name = (es or {}).get("algorithmName")
    if not name:
        raise fail(("spec", "earlyStopping", "algorithmName"), "must be specified")
    if name not in cfg.early_stoppings:
        raise fail(("spec", "earlyStopping", "algorithmName"), f"{name!r}: Katib refuses it: no early-stopping "
                   f"algorithm {name!r} in {cfg.source} (known: {', '.join(sorted(cfg.early_stoppings)) or 'none'})")


def check_parameters(spec: dict, fail: Fail) -> None:
    params, nas = spec.get("parameters") or [], spec.get("nasConfig")
    if not params and nas is None:
        raise fail(("spec",), "Katib refuses it: spec.parameters or spec.nasConfig must be specified")
    if params and nas is not None:
        raise fail(("spec", "nasConfig"), "Katib refuses it: only one of spec.parameters and spec.nasConfig "
                   "can be specified")
    for i, p in enumerate(params):
        loc = ("spec", "parameters", i)
        kind = p.get("parameterType")
        if kind not in PARAMETER_TYPES and kind not in (None, ""):
            raise fail(loc + ("parameterType",), f"{kind!r}: Katib refuses it: parameterType is not supported "
                       f"(one of {', '.join(PARAMETER_TYPES)})")
        space = p.get("feasibleSpace") or {}
        dist = space.get("distribution")
        if dist not in (None, "") and dist not in DISTRIBUTIONS:
            raise fail(loc + ("feasibleSpace", "distribution"), f"{dist!r}: Katib refuses it: distribution is "
                       f"not supported (one of {', '.join(DISTRIBUTIONS)})")
        if not any(space.get(k) not in (None, "", []) for k in ("min", "max", "step", "list", "distribution")):
            need = "list" if kind in ("categorical", "discrete") else "min and max"
            raise fail(loc + ("feasibleSpace",), f"Katib refuses it: feasibleSpace must be specified (a {kind} "
                       f"parameter needs feasibleSpace.{need})")
        if kind in ("double", "int"):
            if space.get("list"):
                raise fail(loc + ("feasibleSpace", "list"), f"Katib refuses it: feasibleSpace.list is not supported "
                           f"for parameterType {kind}")
            if space.get("min") in (None, "") or space.get("max") in (None, ""):
                raise fail(loc + ("feasibleSpace",), f"Katib refuses it: feasibleSpace.max and feasibleSpace.min "
                           f"must be specified for parameterType {kind}")
        elif kind in ("categorical", "discrete"):
            for key in ("min", "max", "step"):
                if space.get(key) not in (None, ""):
                    raise fail(loc + ("feasibleSpace", key), f"Katib refuses it: feasibleSpace .max, .min and .step "
                               f"are not supported for parameterType {kind}")


def check_trial_template(spec: dict, fail: Fail) -> dict | None:
    """Returns the inline trialSpec (None with a configMap source)."""
    tt = spec.get("trialTemplate")
    loc = ("spec", "trialTemplate")
    if not isinstance(tt, dict):
        raise fail(("spec", "trialTemplate"), "must be specified")
    if not tt.get("primaryContainerName"):
        raise fail(loc + ("primaryContainerName",), "must be specified (Katib's webhook requires it)")
    trial_spec, config_map = tt.get("trialSpec"), tt.get("configMap")
    kind = trial_spec.get("kind") if isinstance(trial_spec, dict) else None
    defaulted = kind == "Job" or kind in KUBEFLOW_JOB_KINDS  # experiment_defaults.go fills the conditions
    if not defaulted and (not tt.get("successCondition") or not tt.get("failureCondition")):
        raise fail(loc, f"Katib refuses it: successCondition and failureCondition must be specified "
                   f"(Katib defaults them only for Job and {', '.join(KUBEFLOW_JOB_KINDS)}, not {kind or 'a ConfigMap template'})")
    if tt.get("trialParameters") is None:
        raise fail(loc + ("trialParameters",), "must be specified (Katib's webhook requires it)")
    if trial_spec is None and config_map is None:
        raise fail(loc, "Katib refuses it: spec.trialTemplate.trialSpec or spec.trialTemplate.configMap must be specified")
    if trial_spec is not None and config_map is not None:
        raise fail(loc, "Katib refuses it: only one of spec.trialTemplate.trialSpec or spec.trialTemplate.configMap "
                   "can be specified")
    if config_map is not None:
        if not all((config_map or {}).get(k) for k in ("configMapName", "configMapNamespace", "templatePath")):
            raise fail(loc + ("configMap",), "Katib refuses it: configMapName, configMapNamespace and templatePath "
                       "must be specified")
    param_names = {p.get("name") for p in spec.get("parameters") or []}
    text = _template_text(trial_spec) if trial_spec is not None else None
    names: set[str] = set()
    refs: set[str] = set()
    for i, tp in enumerate(tt["trialParameters"] or []):
        ploc = loc + ("trialParameters", i)
        name, ref = tp.get("name"), tp.get("reference")
        if not name or not ref or "{" in str(name) or "}" in str(name):
            raise fail(ploc, "Katib refuses it: name and reference must be specified and name must not contain "
                       "'{' or '}'")
        if name in names:
            raise fail(ploc + ("name",), f"{name!r}: Katib refuses it: parameter name {name} can't be duplicated "
                       "in spec.trialTemplate.trialParameters")
        if ref in refs:
            raise fail(ploc + ("reference",), f"{ref!r}: Katib refuses it: parameter reference {ref} can't be "
                       "duplicated in spec.trialTemplate.trialParameters")
        names.add(name)
        refs.add(ref)
        if param_names and not is_meta_ref(ref) and ref not in param_names:
            raise fail(ploc + ("reference",), f"{ref!r}: Katib refuses it: parameter reference {ref} does not exist "
                       f"in spec.parameters ({', '.join(sorted(map(str, param_names)))})")
        if text is not None:
            placeholder = "${trialParameters." + str(name) + "}"
            if placeholder not in text:
                used = sorted(set(PLACEHOLDER_ANY.findall(text)) - {"${trialParameters." + str(n) + "}" for n in names})
                hint = f" (the template uses {', '.join(used)})" if used else ""
                raise fail(ploc + ("name",), f"{name!r}: Katib refuses it: {placeholder} is not found in the trial "
                           f"template{hint}")
            text = text.replace(placeholder, "test-value")
    if text is not None:
        left = PLACEHOLDER_ANY.findall(text)
        if left:
            raise fail(loc + ("trialSpec",), f"Katib refuses it: {', '.join(sorted(set(left)))} in the trial template "
                       "is not declared in spec.trialTemplate.trialParameters")
    # manifest/generator.go applyParameters: every suggested parameter must reach the template, else
    # no Trial can be created ("unable to find parameter from ParameterAssignment in TrialParameters").
    for i, p in enumerate(spec.get("parameters") or []):
        if p.get("name") not in refs:
            raise fail(("spec", "parameters", i), f"{p.get('name')!r} is referenced by no trialParameter: Katib's "
                       "controller could not create any Trial (every suggested value must be a trialParameter's reference)")
    if trial_spec is None:
        return None
    if not isinstance(trial_spec, dict):
        raise fail(loc + ("trialSpec",), "must be a mapping (a Kubernetes object)")
    meta = trial_spec.get("metadata") or {}
    if meta.get("name") or meta.get("namespace"):
        key = "name" if meta.get("name") else "namespace"
        raise fail(loc + ("trialSpec", "metadata", key), "Katib refuses it: metadata.name and metadata.namespace in "
                   "spec.trialTemplate must be omitted (Katib names each trial's object itself)")
    if not trial_spec.get("apiVersion") or not trial_spec.get("kind"):
        raise fail(loc + ("trialSpec",), "Katib refuses it: APIVersion and Kind in spec.trialTemplate must be specified")
    return trial_spec


def is_meta_ref(ref: str) -> bool:
    """validator.go isMetaKey: ${trialSpec.Name}, ${trialSpec.Labels[key]}, ..."""
    m = META_REF.search(str(ref))
    if not m:
        return False
    key = m.group(1)
    if key in META_KEYS:
        return True
    sub = re.search(r"(.+)\[(.+)]", key)
    return bool(sub) and sub.group(1) in META_KEYS


def _template_text(trial_spec: Any) -> str:
    import json

    return json.dumps(trial_spec)


def check_primary_container(tt: dict, trial_spec: dict, fail: Fail) -> None:
    """Katib's pod webhook finds the primary container by name in the trial's pods (those with
    primaryPodLabels, if set): pkg/webhook/v1beta1/pod/utils.go getPrimaryContainerIndex. Here
    it is found in the template as each kind names its pods' containers."""
    name = tt.get("primaryContainerName")
    labels = tt.get("primaryPodLabels") or {}
    kind = trial_spec.get("kind")
    group = str(trial_spec.get("apiVersion", "")).split("/")[0]
    loc = ("spec", "trialTemplate", "primaryContainerName")
    body = trial_spec.get("spec") or {}
    if kind == "Job" and group == "batch":
        names = _names(((body.get("template") or {}).get("spec") or {}).get("containers"))
        where = "spec.template.spec.containers"
    elif kind in ("TFJob", "PyTorchJob", "XGBoostJob", "MPIJob") and group == "kubeflow.org":
        names = []
        for key, replicas in body.items():
            if key.endswith("ReplicaSpecs") and isinstance(replicas, dict):
                for replica in replicas.values():
                    names += _names((((replica or {}).get("template") or {}).get("spec") or {}).get("containers"))
        where = f"the {kind}'s replica containers"
    elif kind == "Workflow" and group == "argoproj.io":
        # Argo runs a template's container as "main" in a pod labelled with the template's metadata.labels.
        templates = [t for t in body.get("templates") or [] if isinstance(t, dict) and
                     (t.get("container") or t.get("script"))]
        if labels:
            templates = [t for t in templates if _has_labels((t.get("metadata") or {}).get("labels"), labels)]
        names = ["main"] if templates else []
        where = "Argo's pods (a container or script template runs as container 'main'" + (
            f" in a template labelled {labels})" if labels else ")")
    elif kind == "PipelineRun" and group == "tekton.dev":
        # Tekton runs step S of a task as container "step-S" in a pod labelled tekton.dev/pipelineTask: <task>.
        task_name = labels.get("tekton.dev/pipelineTask")
        names = []
        for task in ((body.get("pipelineSpec") or {}).get("tasks") or []):
            if task_name and task.get("name") != task_name:
                continue
            names += [f"step-{s}" for s in _names((task.get("taskSpec") or {}).get("steps"))]
        where = "Tekton's step containers (step-<step name>" + (f" of task {task_name})" if task_name else ")")
    else:
        return  # TrainJob (containers come from its runtime) and other kinds: not checked, as Katib does
    if name not in names:
        raise fail(loc, f"{name!r}: no such container in {where}: {', '.join(names) or 'none'}; Katib's pod webhook "
                   "would refuse every trial pod (unable to find primary container)")


def _names(items: Any) -> list[str]:
    return [str(c.get("name")) for c in items or [] if isinstance(c, dict) and c.get("name")]


def _has_labels(have: Any, want: dict) -> bool:
    have = have or {}
    return all(str(have.get(k)) == str(v) for k, v in want.items())


def check_collector(spec: dict, cfg: KatibConfig, fail: Fail) -> tuple[str, dict]:
    """(kind, source) after Katib's defaulting; refuses what validateMetricsCollector refuses."""
    mcs = spec.get("metricsCollectorSpec") or {}
    loc = ("spec", "metricsCollectorSpec")
    kind = (mcs.get("collector") or {}).get("kind") or "StdOut"
    source = dict(mcs.get("source") or {})
    if kind not in COLLECTOR_KINDS:
        raise fail(loc + ("collector", "kind"), f"{kind!r}: Katib refuses it: invalid metrics collector kind "
                   f"(one of {', '.join(COLLECTOR_KINDS)})")
    if kind in AUTO_INJECTED and kind not in cfg.collectors:
        raise fail(loc + ("collector", "kind"), f"{kind!r}: Katib refuses it: no metrics collector {kind} in "
                   f"{cfg.source} (configured: {', '.join(sorted(cfg.collectors)) or 'none'})")
    fsp = dict(source.get("fileSystemPath") or {})
    floc = loc + ("source", "fileSystemPath")
    if kind == "File":
        # experiment_defaults.go fills empty values (absent or "") before the webhook looks
        fsp["kind"] = fsp.get("kind") or "File"
        fsp["path"] = fsp.get("path") or "/var/log/katib/metrics.log"  # common.DefaultFilePath
        fsp["format"] = fsp.get("format") or "TEXT"
        if fsp["kind"] != "File" or not PurePosixPath(str(fsp["path"])).is_absolute():
            raise fail(floc + ("path",), f"{fsp['path']!r}: Katib refuses it: the File collector needs an absolute "
                       "path of kind File")
        if fsp["format"] not in ("TEXT", "JSON"):
            raise fail(floc + ("format",), f"{fsp['format']!r}: Katib refuses it: format must be TEXT or JSON")
        if fsp["format"] == "JSON" and source.get("filter") is not None:
            raise fail(loc + ("source", "filter"), "Katib refuses it: filter must be nil when the format of the "
                       "metrics file is JSON")
    elif kind == "TensorFlowEvent":
        fsp["kind"] = fsp.get("kind") or "Directory"
        fsp["path"] = fsp.get("path") or "/var/log/katib/tfevent/"
        if fsp["kind"] != "Directory" or not PurePosixPath(str(fsp["path"])).is_absolute():
            raise fail(floc + ("path",), "Katib refuses it: TensorFlowEvent needs an absolute directory path "
                       "(fileSystemPath kind Directory)")
        if fsp.get("format"):
            raise fail(floc + ("format",), "Katib refuses it: must be empty for TensorFlowEvent")
    elif kind == "PrometheusMetric":
        http = (source.get("httpGet") or {})
        port = http.get("port") or 8080  # defaults for "" and 0, as experiment_defaults.go sets them
        path = http.get("path") or "/metrics"
        if not re.fullmatch(r"[+-]?\d+", str(port)) or int(port) <= 0:
            raise fail(loc + ("source", "httpGet", "port"), f"{port!r}: Katib refuses it: must be a positive integer "
                       "for PrometheusMetric")
        if not str(path).startswith("/"):
            raise fail(loc + ("source", "httpGet", "path"), f"{path!r}: Katib refuses it: path is invalid for "
                       "PrometheusMetric")
    elif kind == "Custom":
        if not (mcs.get("collector") or {}).get("customCollector"):
            raise fail(loc + ("collector",), "Katib refuses it: collector kind Custom needs collector.customCollector")
        if source.get("fileSystemPath") is not None:
            if not PurePosixPath(str(fsp.get("path", ""))).is_absolute() or fsp.get("kind") not in ("Directory", "File"):
                raise fail(floc, "Katib refuses it: .spec.metricsCollectorSpec.source is invalid (an absolute path of "
                           "kind Directory or File)")
    formats = (source.get("filter") or {}).get("metricsFormat") or []
    for i, fmt in enumerate(formats):
        problem = re2_problem(str(fmt))
        if problem:
            raise fail(loc + ("source", "filter", "metricsFormat", i), f"{fmt!r}: Katib refuses it: invalid filter "
                       f"(Go regexp, RE2 syntax): {problem}")
        if not TWO_GROUPS.search(str(fmt)):
            raise fail(loc + ("source", "filter", "metricsFormat", i), f"{fmt!r}: Katib refuses it: two top "
                       "subexpressions are required (metric name and value)")
    source["fileSystemPath"] = fsp
    return kind, source


# Constructs Python's re accepts but Go's regexp (RE2) refuses, and RE2 forms Python spells differently.
_RE2_REFUSES = (
    (re.compile(r"\(\?<?[=!]"), "lookaround (?=, (?!, (?<=, (?<! is not supported"),
    (re.compile(r"\(\?>"), "atomic groups (?> are not supported"),
    (re.compile(r"\(\?P=|\(\?\("), "backreferences and conditionals are not supported"),
    (re.compile(r"(?<!\\)\\[1-9]"), r"backreferences \1..\9 are not supported"),
    (re.compile(r"(?<!\\)[*+?}][+]"), "possessive quantifiers are not supported"),
)


def re2_problem(fmt: str) -> str | None:
    """Why Go's regexp.Compile refuses ``fmt`` (approximated: Python's parser + RE2's exclusions)."""
    for pattern, why in _RE2_REFUSES:
        if pattern.search(fmt):
            return why
    python_form = re.sub(r"\\p\{[A-Za-z_]+\}|\\p[A-Za-z]|\\P\{[A-Za-z_]+\}|\\P[A-Za-z]", "a", fmt)
    python_form = re.sub(r"\[:\^?[a-z]+:\]", "a", python_form).replace(r"\z", r"\Z")
    try:
        re.compile(python_form)
    except re.error as exc:
        return str(exc)
    return None


# -- the suggestion services ------------------------------------------------------------------
class ServiceRules:
    """ValidateAlgorithmSettings of each Katib suggestion service (and GetSuggestions refusals
    that fail every Experiment), applied to one spec. Values are strings, as Katib passes them."""

    def __init__(self, spec: dict, cfg: KatibConfig, fail: Fail, warnings: list[str]):
        self.spec = spec
        self.cfg = cfg
        self.fail = fail
        self.warnings = warnings
        self.algorithm = spec["algorithm"]["algorithmName"]
        self.service = cfg.service(self.algorithm)
        self.settings = [(i, s.get("name"), "" if s.get("value") is None else str(s.get("value")))
                         for i, s in enumerate(spec["algorithm"].get("algorithmSettings") or [])]
        self.params = spec.get("parameters") or []

    def refuse(self, index: int | None, why: str) -> BadInput:
        loc = ("spec", "algorithm") + (("algorithmSettings", index) if index is not None else ())
        return self.fail(loc, f"{self.algorithm} runs on Katib's {self.service} service, which refuses it: {why}")

    def unknown(self, index: int, name: str, accepted: tuple[str, ...]) -> BadInput:
        loc = ("spec", "algorithm", "algorithmSettings", index, "name")
        return self.fail(loc, f"{self.algorithm} runs on Katib's {self.service} service, which accepts "
                         f"{', '.join(accepted) or 'no settings'}; got {name}")

    def run(self) -> None:
        check = getattr(self, f"_{self.service}", None)
        if check is None:
            self.warnings.append(f"algorithm {self.algorithm} runs on {self.service!r} ({self.cfg.source}), a service "
                                 "mlops does not know: its algorithmSettings are not checked")
            return
        check()

    def _convert(self, index: int, name: str, value: str, convert: Callable[[str], Any]) -> Any:
        try:
            return convert(value)
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise self.refuse(index, f"failed to validate {name}({value}): {exc}") from None

    def _python_settings(self, table: dict[str, tuple[Callable[[str], Any], Callable[[Any], bool], str]]) -> None:
        for index, name, value in self.settings:
            if name not in table:
                raise self.unknown(index, name, tuple(table))
            convert, ok, rule = table[name]
            if not ok(self._convert(index, name, value, convert)):
                raise self.refuse(index, f"{name} {rule} (got {value!r})")

    def _unknown_algorithm(self, known: tuple[str, ...]) -> None:
        if self.algorithm not in known:
            raise self.fail(("spec", "algorithm", "algorithmName"), f"{self.algorithm!r}: the katib-config maps it to "
                            f"Katib's {self.service} service, which knows only {', '.join(known)}")

    # pkg/suggestion/v1beta1/hyperopt/service.py
    def _hyperopt(self) -> None:
        self._unknown_algorithm(("tpe", "random"))
        seed = (int, lambda v: v >= 0, "should be greater or equal than zero")
        if self.algorithm == "random":
            self._python_settings({"random_state": seed})
        else:
            self._python_settings({
                "gamma": (float, lambda v: 1 > v > 0, "should be in the range of (0, 1)"),
                "prior_weight": (float, lambda v: v > 0, "should be greater than zero"),
                "n_EI_candidates": (int, lambda v: v > 0, "should be greater than zero"),
                "random_state": seed,
            })

    # pkg/suggestion/v1beta1/optuna/service.py and base_service.py
    def _optuna(self) -> None:
        self._unknown_algorithm(("tpe", "multivariate-tpe", "cmaes", "random", "grid"))
        nonneg = (int, lambda v: v >= 0, "should be greater or equal than zero")
        if self.algorithm in ("tpe", "multivariate-tpe"):
            self._python_settings({"n_startup_trials": nonneg, "n_ei_candidates": nonneg, "random_state": nonneg})
        elif self.algorithm == "cmaes":
            self._python_settings({
                "restart_strategy": (str, lambda v: v in ("ipop", "None", "none"), "must be ipop, None or none"),
                "sigma": (float, lambda v: v >= 0, "should be greater or equal than zero"),
                "random_state": nonneg,
            })
            self._two_numeric("cmaes only supports two or more dimensional continuous search space")
        else:
            self._python_settings({"random_state": nonneg})
        if self.algorithm == "grid":
            self._grid_size()
        for i, p in enumerate(self.params):  # base_service.py: a ValueError in GetSuggestions
            dist = (p.get("feasibleSpace") or {}).get("distribution")
            if p.get("parameterType") in ("int", "double") and dist in ("normal", "logNormal"):
                raise self.fail(("spec", "parameters", i, "feasibleSpace", "distribution"),
                                f"{dist!r}: {self.algorithm} runs on Katib's optuna service, which supports only "
                                "uniform and logUniform for int and double parameters")

    def _grid_size(self) -> None:
        try:
            combos = grid_combinations(self.params)
        except (ValueError, KeyError, ZeroDivisionError) as exc:
            raise self.fail(("spec", "parameters"), f"grid runs on Katib's optuna service, which refuses it: failed "
                            f"to validate parameters: {exc}") from None
        max_trials = self.spec.get("maxTrialCount") or 0
        if max_trials > combos:
            raise self.fail(("spec", "maxTrialCount"), f"{max_trials}: grid runs on Katib's optuna service, which "
                            f"refuses it: Max Trial Count: {max_trials} > all possible search combinations: {combos}")

    def _two_numeric(self, why: str) -> None:
        if sum(p.get("parameterType") in ("int", "double") for p in self.params) < 2:
            raise self.fail(("spec", "parameters"), f"{self.algorithm} runs on Katib's {self.service} service, which "
                            f"refuses it: {why}")

    # pkg/suggestion/v1beta1/goptuna/service.go and converter.go (Go: strconv.Atoi / ParseFloat)
    def _goptuna(self) -> None:
        self._unknown_algorithm(("random", "cmaes", "tpe", "sobol"))
        if self.algorithm == "cmaes":
            self._two_numeric("CMA-ES only supports two or more dimensional continuous search space")
        read = {"cmaes": {"random_state": go_atoi, "sigma": go_parse_float, "restart_strategy": _restart},
                "tpe": {"random_state": go_atoi, "n_startup_trials": go_atoi, "n_ei_candidates": go_atoi},
                "random": {"random_state": go_atoi}, "sobol": {}}[self.algorithm]
        for index, name, value in self.settings:
            if name not in read:
                self.warnings.append(f"spec.algorithm.algorithmSettings[{index}]: {name!r} is ignored by Katib's goptuna "
                                     f"service for {self.algorithm} (it reads {', '.join(read) or 'no settings'})")
                continue
            self._convert(index, name, value, read[name])
        for i, p in enumerate(self.params):
            kind, space = p.get("parameterType"), p.get("feasibleSpace") or {}
            parse = go_atoi if kind == "int" else go_parse_float if kind == "double" else None
            for key in ("min", "max", "step") if parse else ():
                if space.get(key) not in (None, ""):
                    try:
                        parse(str(space[key]))
                    except ValueError as exc:
                        raise self.fail(("spec", "parameters", i, "feasibleSpace", key), f"{space[key]!r}: "
                                        f"{self.algorithm} runs on Katib's goptuna service, which cannot parse it: {exc}") from None

    # pkg/suggestion/v1beta1/skopt/service.py
    def _skopt(self) -> None:
        self._unknown_algorithm(("bayesianoptimization",))
        self._python_settings({
            "base_estimator": (str, lambda v: v in ("GP", "RF", "ET", "GBRT"), "must be GP, RF, ET or GBRT"),
            "n_initial_points": (int, lambda v: v >= 0, "should be greater or equal than zero"),
            "acq_func": (str, lambda v: v in ("gp_hedge", "LCB", "EI", "PI", "EIps", "PIps"),
                         "must be gp_hedge, LCB, EI, PI, EIps or PIps"),
            "acq_optimizer": (str, lambda v: v in ("auto", "sampling", "lbfgs"), "must be auto, sampling or lbfgs"),
            "random_state": (int, lambda v: v >= 0, "should be greater or equal than zero"),
        })

    # pkg/suggestion/v1beta1/hyperband/service.py
    def _hyperband(self) -> None:
        self._unknown_algorithm(("hyperband",))
        values = {name: (index, value) for index, name, value in self.settings}
        if "r_l" not in values or "resource_name" not in values:
            raise self.refuse(None, "r_l and resource_name must be set")
        index, raw = values["r_l"]
        try:
            r_l = float(raw)
        except ValueError:
            r_l = -1.0
        if r_l < 0:
            raise self.refuse(index, "r_l must be a positive float number")
        try:
            eta = int(float(values["eta"][1])) if "eta" in values else 3
            eta = 3 if eta <= 0 else eta
            max_parallel = int(math.ceil(eta ** int(math.log(r_l) / math.log(eta))))
        except (ValueError, ZeroDivisionError, OverflowError) as exc:
            raise self.refuse(values.get("eta", values["r_l"])[0], f"the service raises {type(exc).__name__}: {exc} "
                              "(r_l must be > 0 and eta > 1)") from None
        parallel = self.spec.get("parallelTrialCount") or DEFAULT_PARALLEL
        if parallel < max_parallel:
            raise self.fail(("spec", "parallelTrialCount"), f"{parallel}: hyperband runs on Katib's hyperband service, "
                            f"which refuses it: parallelTrialCount must be not less than {max_parallel}")
        index, resource = values["resource_name"]
        if resource not in {p.get("name") for p in self.params}:
            raise self.refuse(index, f"value of resource_name setting ({resource!r}) must be in parameters")

    # pkg/suggestion/v1beta1/pbt/service.py
    def _pbt(self) -> None:
        self._unknown_algorithm(("pbt",))
        values = {name: (index, value) for index, name, value in self.settings}
        missing = [k for k in ("suggestion_trial_dir", "n_population", "truncation_threshold") if k not in values]
        if missing:
            raise self.refuse(None, f"Required params missing: {', '.join(missing)}")
        index, raw = values["n_population"]
        if self._convert(index, "n_population", raw, int) < 5:
            raise self.refuse(index, "Param(n_population) should be >= 5")
        index, raw = values["truncation_threshold"]
        if not 0 <= self._convert(index, "truncation_threshold", raw, float) <= 1:
            raise self.refuse(index, "Param(truncation_threshold) should be between 0 and 1, inclusive")
        if "resample_probability" in values:
            # The service compares the string value with numbers (0 <= "0.5"): a TypeError, so any
            # resample_probability fails validation on Katib.
            raise self.refuse(values["resample_probability"][0], "resample_probability cannot be validated by this "
                              "service (it compares the setting's string with numbers and raises TypeError); leave it out")

    # pkg/suggestion/v1beta1/nas/enas/service.py and AlgorithmSettings.py
    def _enas(self) -> None:
        self._unknown_algorithm(("enas",))
        graph = (self.spec.get("nasConfig") or {}).get("graphConfig") or {}
        for key in ("inputSizes", "outputSizes", "numLayers"):
            if not graph.get(key):
                raise self.fail(("spec", "nasConfig", "graphConfig"), f"enas runs on Katib's enas service, which "
                                f"refuses it: missing {key} in graphConfig")
        self._nas_operations()
        table = {"controller_hidden_size": (int, 1, None), "controller_temperature": (float, 0, None),
                 "controller_tanh_const": (float, 0, None), "controller_entropy_weight": (float, 0.0, None),
                 "controller_baseline_decay": (float, 0.0, 1.0), "controller_learning_rate": (float, 0.0, 1.0),
                 "controller_skip_target": (float, 0.0, 1.0), "controller_skip_weight": (float, 0.0, None),
                 "controller_train_steps": (int, 1, None), "controller_log_every_steps": (int, 1, None)}
        none_ok = ("controller_temperature", "controller_tanh_const", "controller_entropy_weight",
                   "controller_skip_weight")
        for index, name, value in self.settings:
            if name not in table:
                raise self.unknown(index, name, tuple(table))
            if name in none_ok and value == "None":
                continue
            kind, low, high = table[name]
            v = self._convert(index, name, value, kind)
            if kind is float and (v <= low or (high is not None and v > high)):
                raise self.refuse(index, f"{name} must be in ({low}, {high or 'inf'}] (got {value})")
            if kind is int and v < low:
                raise self.refuse(index, f"{name} must be at least {low} (got {value})")

    # pkg/suggestion/v1beta1/nas/darts/service.py
    def _darts(self) -> None:
        self._unknown_algorithm(("darts",))
        self._nas_operations()
        rules: dict[str, tuple[Callable[[str], Any], Callable[[Any], bool], str]] = {
            "num_epochs": (int, lambda v: v > 0, "should be greater than zero")}
        for key in ("w_lr", "w_lr_min", "alpha_lr", "w_weight_decay", "alpha_weight_decay", "w_momentum", "w_grad_clip"):
            rules[key] = (float, lambda v: v >= 0.0, "should be greater than or equal to zero")
        rules["batch_size"] = (lambda s: None if s == "None" else int(s), lambda v: v is None or v >= 1,
                               "should be greater than or equal to one")
        rules["num_workers"] = (int, lambda v: v >= 0, "should be greater than or equal to zero")
        for key in ("init_channels", "print_step", "num_nodes", "stem_multiplier"):
            rules[key] = (int, lambda v: v >= 1, "should be greater than or equal to one")
        for index, name, value in self.settings:
            if name not in rules:
                self.warnings.append(f"spec.algorithm.algorithmSettings[{index}]: {name!r} is not checked by Katib's "
                                     "darts service (it knows " + ", ".join(rules) + ")")
                continue
            convert, ok, rule = rules[name]
            if not ok(self._convert(index, name, value, convert)):
                raise self.refuse(index, f"{name} {rule} (got {value!r})")

    def _nas_operations(self) -> None:
        """nas/common/validation.py validate_operations."""
        ops = ((self.spec.get("nasConfig") or {}).get("operations")) or []
        for i, op in enumerate(ops):
            loc = ("spec", "nasConfig", "operations", i)
            if not op.get("operationType"):
                raise self.fail(loc, f"{self.algorithm} runs on Katib's {self.service} service, which refuses it: "
                                "missing operationType")
            params = op.get("parameters") or []
            if not params:
                raise self.fail(loc, f"{self.algorithm} runs on Katib's {self.service} service, which refuses it: "
                                "missing parameters in the operation")
            for j, p in enumerate(params):
                ploc = loc + ("parameters", j)
                kind, space = p.get("parameterType"), p.get("feasibleSpace") or {}
                why = None
                if not p.get("name") or not kind:
                    why = "a parameter needs a name and a parameterType"
                elif kind in ("categorical", "discrete") and not space.get("list"):
                    why = "missing list in feasibleSpace"
                elif kind in ("int", "double") and not space.get("min") and not space.get("max"):
                    why = "missing max and min in feasibleSpace"
                elif kind == "double":
                    try:
                        if not space.get("step") or float(space["step"]) <= 0:
                            why = "step should be > 0 in feasibleSpace"
                    except ValueError as exc:
                        why = f"failed to validate feasibleSpace: {exc}"
                if why:
                    raise self.fail(ploc, f"{self.algorithm} runs on Katib's {self.service} service, which refuses "
                                    f"it: {why}")


def _restart(value: str) -> str:
    if value not in ("ipop", "bipop", "none"):
        raise ValueError(f"invalid restart_strategy: '{value}' (goptuna reads ipop, bipop or none)")
    return value


def go_atoi(text: str) -> int:
    """Go's strconv.Atoi: optional sign and decimal digits, nothing else."""
    if not re.fullmatch(r"[+-]?\d+", text):
        raise ValueError(f'strconv.Atoi: parsing "{text}": invalid syntax')
    return int(text)


def go_parse_float(text: str) -> float:
    """Go's strconv.ParseFloat(s, 64) for decimal forms (inf/nan spellings included)."""
    if re.fullmatch(r"[+-]?(inf|infinity|nan)", text, re.I):
        return float(text)
    if not re.fullmatch(r"[+-]?(\d+(_\d+)*\.?\d*|\.\d+)([eE][+-]?\d+)?", text):
        raise ValueError(f'strconv.ParseFloat: parsing "{text}": invalid syntax')
    return float(text.replace("_", ""))


def grid_combinations(params: list[dict]) -> int:
    """Number of grid points as Katib's search_space.py convert_to_combinations counts them
    (int: range(min, max + 1, step or 1); double: numpy.arange(min, max + step, step) minus an
    overshooting last point; categorical/discrete: the list). Raises ValueError as it does."""
    total = 1
    for p in params:
        kind, space = p.get("parameterType"), p.get("feasibleSpace") or {}
        if kind == "int":
            n = len(range(int(space["min"]), int(space["max"]) + 1, int(space.get("step") or 1)))
        elif kind == "double":
            if space.get("step") in (None, ""):
                raise ValueError(f"Param {p.get('name')} step is nil; For discrete search space, all parameters "
                                 "must include step")
            low, high, step = float(space["min"]), float(space["max"]), float(space["step"])
            n = max(0, math.ceil((high + step - low) / step))  # numpy.arange's length
            if n and low + (n - 1) * step > high:
                n -= 1
        else:
            n = len(space.get("list") or [])
        total *= n
    return total


def check_early_stopping_settings(spec: dict, cfg: KatibConfig, fail: Fail, warnings: list[str]) -> None:
    """pkg/earlystopping/v1beta1/medianstop/service.py ValidateEarlyStoppingSettings."""
    es = spec.get("earlyStopping")
    if not es:
        return
    name = es["algorithmName"]
    service = cfg.early_stoppings.get(name)
    if service != "medianstop":
        warnings.append(f"early stopping {name} runs on {service!r}, a service mlops does not know: its settings "
                        "are not checked")
        return
    if name != "medianstop":
        raise fail(("spec", "earlyStopping", "algorithmName"), f"{name!r}: Katib's medianstop service knows only medianstop")
    table = {"min_trials_required": (lambda v: v > 0, "must be greater than zero (>0)"),
             "start_step": (lambda v: v >= 1, "must be greater or equal than one (>=1)")}
    for i, s in enumerate(es.get("algorithmSettings") or []):
        loc = ("spec", "earlyStopping", "algorithmSettings", i)
        sname, value = s.get("name"), str(s.get("value", ""))
        if sname not in table:
            raise fail(loc + ("name",), f"medianstop runs on Katib's medianstop service, which accepts "
                       f"{', '.join(table)}; got {sname}")
        try:
            ok = table[sname][0](int(value))
        except ValueError as exc:
            raise fail(loc, f"medianstop runs on Katib's medianstop service, which refuses it: failed to validate "
                       f"{sname}({value}): {exc}") from None
        if not ok:
            raise fail(loc, f"medianstop runs on Katib's medianstop service, which refuses it: {sname} {table[sname][1]}")


def check_trial_kind_watched(trial_spec: dict | None, cfg: KatibConfig, warnings: list[str]) -> None:
    """The controller watches only trialResources (Kind.version.group); others never report status."""
    if not trial_spec:
        return
    api = str(trial_spec.get("apiVersion", ""))
    group, _, version = api.rpartition("/")
    gvk = f"{trial_spec.get('kind')}.{version}.{group}" if group else f"{trial_spec.get('kind')}.{version}"
    if gvk not in cfg.trial_resources:
        warnings.append(f"trial kind {gvk} is not in init.controller.trialResources of {cfg.source}: Katib's "
                        "controller will not follow these trials until it is added there")


def check_all(spec_doc: dict, cfg: KatibConfig, fail: Fail) -> tuple[str, list[str]]:
    """Every Katib rule on a whole Experiment document; (name, warnings)."""
    warnings: list[str] = []
    meta = spec_doc.get("metadata") or {}
    name = check_name(meta, fail)
    spec = spec_doc.get("spec")
    if not isinstance(spec, dict):
        raise fail(("spec",), "spec is required")
    check_counts(spec, fail)
    obj = spec.get("objective")
    if not isinstance(obj, dict):
        raise fail(("spec", "objective"), "must be specified")
    if obj.get("type") not in ("minimize", "maximize"):
        raise fail(("spec", "objective", "type"), f"{obj.get('type')!r}: Katib refuses it: must be minimize or maximize")
    if not obj.get("objectiveMetricName"):
        raise fail(("spec", "objective", "objectiveMetricName"), "must be specified")
    if obj["objectiveMetricName"] in (obj.get("additionalMetricNames") or []):
        raise fail(("spec", "objective", "additionalMetricNames"), "Katib refuses it: should not contain "
                   "spec.objective.objectiveMetricName")
    check_algorithm_known(spec, cfg, fail)
    check_early_stopping_known(spec, cfg, fail)
    check_resume_policy(spec, fail)
    trial_spec = check_trial_template(spec, fail)
    check_parameters(spec, fail)
    check_collector(spec, cfg, fail)
    if trial_spec is not None:
        check_primary_container(spec["trialTemplate"], trial_spec, fail)
    check_trial_kind_watched(trial_spec, cfg, warnings)
    ServiceRules(spec, cfg, fail, warnings).run()
    check_early_stopping_settings(spec, cfg, fail, warnings)
    return name, warnings
