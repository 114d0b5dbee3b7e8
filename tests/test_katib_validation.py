"""Probe specs for Katib's own rules (docs/katib.md): one accepted and one refused probe per
webhook rule and per setting of each suggestion service, each named after the rule it exercises.

The probes are small variations of one valid Job-based Experiment written here (not copied from
Katib). ``--engine katib`` must accept what Katib accepts and refuse, with Katib's reason, what it
refuses; the local engine keeps refusing what it cannot honour.
"""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from pyhelpers.errors import BadInput
from pyhelpers.experiment import algorithms, katib_config, katib_rules
from pyhelpers.experiment.spec import load_spec
from tests.conftest import EXAMPLE, run_mlops
from tests.fakes.k8s import KubeServer

BASE = {
    "apiVersion": "kubeflow.org/v1beta1",
    "kind": "Experiment",
    "metadata": {"name": "probe"},
    "spec": {
        "objective": {"type": "minimize", "objectiveMetricName": "loss"},
        "algorithm": {"algorithmName": "random"},
        "parallelTrialCount": 2,
        "maxTrialCount": 6,
        "parameters": [
            {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.01", "max": "0.1"}},
            {"name": "layers", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3"}},
        ],
        "trialTemplate": {
            "primaryContainerName": "train",
            "trialParameters": [{"name": "lr", "reference": "lr"}, {"name": "layers", "reference": "layers"}],
            "trialSpec": {
                "apiVersion": "batch/v1", "kind": "Job",
                "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{
                    "name": "train", "image": "example/train:1",
                    "command": ["python", "train.py", "--lr=${trialParameters.lr}",
                                "--layers=${trialParameters.layers}"]}]}}},
            },
        },
    },
}


def spec_of(change=None) -> dict:
    doc = copy.deepcopy(BASE)
    if change:
        change(doc)
    return doc


def load(doc: dict, engine: str = "katib", config: katib_config.KatibConfig | None = None):
    return load_spec("probe.yaml", text=yaml.safe_dump(doc, sort_keys=False), engine=engine, katib_config=config)


# -- small editors -------------------------------------------------------------------------
def put(path: str, value):
    """Set a dotted path (list indexes as numbers) of spec."""

    def change(doc):
        node = doc
        keys = [int(k) if k.isdigit() else k for k in path.split(".")]
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value

    return change


def drop(path: str):
    def change(doc):
        node = doc
        keys = [int(k) if k.isdigit() else k for k in path.split(".")]
        for k in keys[:-1]:
            node = node[k]
        del node[keys[-1]]

    return change


def both(*changes):
    def change(doc):
        for c in changes:
            c(doc)

    return change


def algorithm(name: str, **settings):
    items = [{"name": k, "value": str(v)} for k, v in settings.items()]
    return put("spec.algorithm", {"algorithmName": name, **({"algorithmSettings": items} if items else {})})


def collector(mcs: dict):
    return put("spec.metricsCollectorSpec", mcs)


def container_named(name: str):
    return put("spec.trialTemplate.trialSpec.spec.template.spec.containers.0.name", name)


def trial_spec(obj: dict, **template):
    def change(doc):
        doc["spec"]["trialTemplate"]["trialSpec"] = obj
        doc["spec"]["trialTemplate"].update(template)

    return change


CMD = ["python", "train.py", "--lr=${trialParameters.lr}", "--layers=${trialParameters.layers}"]
PYTORCH = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {
    "Master": {"replicas": 1, "template": {"spec": {"containers": [{"name": "pytorch", "image": "x", "command": CMD}]}}},
    "Worker": {"replicas": 1, "template": {"spec": {"containers": [{"name": "pytorch", "image": "x", "command": CMD}]}}},
}}}
WORKFLOW = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": {"entrypoint": "main-steps", "templates": [
    {"name": "main-steps", "steps": [[{"name": "fit", "template": "fit"}]]},
    {"name": "fit", "metadata": {"labels": {"role": "trainer"}}, "container": {"image": "x", "command": CMD}},
]}}
PIPELINE_RUN = {"apiVersion": "tekton.dev/v1beta1", "kind": "PipelineRun", "spec": {"pipelineSpec": {"tasks": [
    {"name": "fit", "taskSpec": {"steps": [{"name": "train", "image": "x", "command": CMD}]}},
]}}}
TRAIN_JOB = {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
             "spec": {"runtimeRef": {"name": "torch-distributed"}, "trainer": {"image": "x", "command": CMD}}}
CONDITIONS = {"successCondition": "status.[@this].#(phase==\"Succeeded\")#",
              "failureCondition": "status.[@this].#(phase==\"Failed\")#"}

def with_conditions(doc):
    doc["spec"]["trialTemplate"].update(CONDITIONS)


NAS = {
    "graphConfig": {"numLayers": 8, "inputSizes": [32, 32, 3], "outputSizes": [10]},
    "operations": [
        {"operationType": "convolution", "parameters": [
            {"name": "filter_size", "parameterType": "categorical", "feasibleSpace": {"list": ["3", "5"]}}]},
        {"operationType": "reduction", "parameters": [
            {"name": "reduction_type", "parameterType": "categorical", "feasibleSpace": {"list": ["max_pooling"]}}]},
    ],
}


def nas(name: str, **settings):
    def change(doc):
        spec = doc["spec"]
        del spec["parameters"]
        spec["nasConfig"] = copy.deepcopy(NAS)
        algorithm(name, **settings)(doc)
        tt = spec["trialTemplate"]
        tt["trialParameters"] = [{"name": "arch", "reference": "architecture"}, {"name": "cfg", "reference": "nn_config"}]
        tt["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"] = [
            "python", "nas.py", "--arch='${trialParameters.arch}'", "--cfg='${trialParameters.cfg}'"]

    return change


# (rule, probe, change, None = accepted | regex of the refusal)
CASES = [
    # webhook: metadata.name
    ("name", "40 characters", put("metadata.name", "a" * 40), None),
    ("name", "41 characters", put("metadata.name", "a" * 41), r"at most 40 characters"),
    ("name", "starts with a digit", put("metadata.name", "1probe"), r"must start with a lowercase letter"),
    ("name", "upper case", put("metadata.name", "Probe"), r"must start with a lowercase letter"),
    ("name", "underscore", put("metadata.name", "pro_be"), r"Katib refuses it"),
    ("name", "digits and dashes", put("metadata.name", "p-1-2"), None),
    ("generateName", "generateName only", both(drop("metadata.name"), put("metadata.generateName", "probe-")), None),
    ("generateName", "36 characters + 5", both(drop("metadata.name"), put("metadata.generateName", "a" * 36)),
     r"at most 35 characters"),
    # webhook: counts
    ("maxFailedTrialCount >= 0", "0", put("spec.maxFailedTrialCount", 0), None),
    ("maxFailedTrialCount >= 0", "-1", put("spec.maxFailedTrialCount", -1), r"should not be less than 0"),
    ("maxTrialCount > 0", "0", put("spec.maxTrialCount", 0), r"must be greater than 0"),
    ("parallelTrialCount > 0", "0", put("spec.parallelTrialCount", 0), r"must be greater than 0"),
    ("maxFailedTrialCount <= maxTrialCount", "equal", put("spec.maxFailedTrialCount", 6), None),
    ("maxFailedTrialCount <= maxTrialCount", "above", put("spec.maxFailedTrialCount", 7),
     r"maxFailedTrialCount: 7: Katib refuses it: should be less than or equal to spec.maxTrialCount"),
    ("parallelTrialCount <= maxTrialCount", "equal", put("spec.parallelTrialCount", 6), None),
    ("parallelTrialCount <= maxTrialCount", "above", put("spec.parallelTrialCount", 7), r"less than or equal"),
    ("parallelTrialCount <= maxTrialCount", "default 3 above 2", both(drop("spec.parallelTrialCount"),
                                                                     put("spec.maxTrialCount", 2)),
     r"3 \(Katib's default parallelTrialCount\): Katib refuses it"),
    # webhook: objective
    ("objective.type", "minimise", put("spec.objective.type", "minimise"), r"must be minimize or maximize"),
    ("objective.objectiveMetricName", "missing", drop("spec.objective.objectiveMetricName"), r"must be specified"),
    ("additionalMetricNames", "repeats objective", put("spec.objective.additionalMetricNames", ["loss"]),
     r"should not contain spec.objective.objectiveMetricName"),
    ("additionalMetricNames", "other metric", put("spec.objective.additionalMetricNames", ["acc"]), None),
    # webhook: algorithm and early stopping from katib-config
    ("algorithm in katib-config", "anneal", algorithm("anneal"), r"no suggestion for algorithm 'anneal'"),
    ("earlyStopping in katib-config", "medianstop", put("spec.earlyStopping", {"algorithmName": "medianstop"}), None),
    ("earlyStopping in katib-config", "mediansto", put("spec.earlyStopping", {"algorithmName": "mediansto"}),
     r"no early-stopping algorithm 'mediansto'"),
    # webhook: resumePolicy
    ("resumePolicy", "LongRunning", put("spec.resumePolicy", "LongRunning"), None),
    ("resumePolicy", "FromVolume", put("spec.resumePolicy", "FromVolume"), None),
    ("resumePolicy", "Never", put("spec.resumePolicy", "Never"), None),
    ("resumePolicy", "Sometimes", put("spec.resumePolicy", "Sometimes"), r"invalid ResumePolicyType"),
    # webhook: trial template
    ("primaryContainerName required", "missing", drop("spec.trialTemplate.primaryContainerName"),
     r"primaryContainerName: must be specified"),
    ("success/failureCondition", "Workflow without", trial_spec(WORKFLOW, primaryContainerName="main"),
     r"successCondition and failureCondition must be specified"),
    ("success/failureCondition", "Job defaults them", put("spec.trialTemplate.successCondition", "status.x"), None),
    ("trialParameters required", "missing", both(drop("spec.trialTemplate.trialParameters"),
                                                  put("spec.parameters", [])), r"trialParameters: must be specified"),
    ("trialSpec xor configMap", "both", put("spec.trialTemplate.configMap", {
        "configMapName": "t", "configMapNamespace": "kubeflow", "templatePath": "job.yaml"}), r"only one of"),
    ("trialSpec xor configMap", "configMap only", both(drop("spec.trialTemplate.trialSpec"), put(
        "spec.trialTemplate.configMap", {"configMapName": "t", "configMapNamespace": "kubeflow",
                                         "templatePath": "job.yaml"}), with_conditions), None),
    ("success/failureCondition", "configMap without", both(drop("spec.trialTemplate.trialSpec"), put(
        "spec.trialTemplate.configMap", {"configMapName": "t", "configMapNamespace": "kubeflow",
                                         "templatePath": "job.yaml"})), r"not a ConfigMap template"),
    ("configMap fields", "no templatePath", both(drop("spec.trialTemplate.trialSpec"), put(
        "spec.trialTemplate.configMap", {"configMapName": "t", "configMapNamespace": "kubeflow"}), with_conditions),
     r"configMapName, configMapNamespace and templatePath must be specified"),
    ("trialParameter name", "with a brace", put("spec.trialTemplate.trialParameters.0.name", "l{r"),
     r"must not contain '\{' or '\}'"),
    ("trialParameter names unique", "twice", put("spec.trialTemplate.trialParameters.1.name", "lr"),
     r"parameter name lr can't be duplicated"),
    ("trialParameter references unique", "twice", put("spec.trialTemplate.trialParameters.1.reference", "lr"),
     r"parameter reference lr can't be duplicated"),
    ("reference in parameters", "unknown", put("spec.trialTemplate.trialParameters.1.reference", "depth"),
     r"parameter reference depth does not exist in spec.parameters"),
    ("reference in parameters", "trial metadata", both(
        put("spec.trialTemplate.trialParameters", BASE["spec"]["trialTemplate"]["trialParameters"] + [
            {"name": "trialName", "reference": "${trialSpec.Name}"}]),
        put("spec.trialTemplate.trialSpec.spec.template.spec.containers.0.args", ["--name=${trialParameters.trialName}"])),
     None),
    ("placeholder for each trialParameter", "declared, unused", put(
        "spec.trialTemplate.trialSpec.spec.template.spec.containers.0.command", ["python", "--lr=${trialParameters.lr}"]),
     r"\$\{trialParameters.layers\} is not found in the trial template"),
    ("trialParameter for each placeholder", "used, undeclared", put(
        "spec.trialTemplate.trialSpec.spec.template.spec.containers.0.args", ["--x=${trialParameters.depth}"]),
     r"\$\{trialParameters.depth\} in the trial template is not declared"),
    ("every parameter reaches the template", "unreferenced parameter", put("spec.parameters", [
        *BASE["spec"]["parameters"], {"name": "unused", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "2"}}]),
     r"'unused' is referenced by no trialParameter"),
    ("template metadata.name", "set", put("spec.trialTemplate.trialSpec.metadata", {"name": "job"}),
     r"metadata.name and metadata.namespace in spec.trialTemplate must be omitted"),
    ("template metadata.name", "labels only", put("spec.trialTemplate.trialSpec.metadata", {"labels": {"a": "b"}}), None),
    ("template apiVersion and kind", "no apiVersion", drop("spec.trialTemplate.trialSpec.apiVersion"),
     r"APIVersion and Kind in spec.trialTemplate must be specified"),
    ("Job converts to batch/v1", "typo in the Job", put("spec.trialTemplate.trialSpec.spec.backofLimit", 1),
     r"unknown field; did you mean 'backoffLimit'"),
    ("Job converts to batch/v1", "unquoted quantities", put(
        "spec.trialTemplate.trialSpec.spec.template.spec.containers.0.resources",
        {"limits": {"cpu": 1, "nvidia.com/gpu": 1, "memory": "1Gi"}, "requests": {"cpu": 0.5}}), None),
    # webhook: parameters
    ("parameters or nasConfig", "neither", put("spec.parameters", []), r"spec.parameters or spec.nasConfig must be"),
    ("parameters or nasConfig", "both", put("spec.nasConfig", NAS), r"only one of spec.parameters and spec.nasConfig"),
    ("parameterType", "integer", put("spec.parameters.1.parameterType", "integer"), r"parameterType is not supported"),
    ("distribution", "gaussian", put("spec.parameters.0.feasibleSpace.distribution", "gaussian"),
     r"distribution is not supported"),
    ("distribution", "normal on hyperopt", put("spec.parameters.0.feasibleSpace.distribution", "normal"), None),
    ("feasibleSpace required", "empty", put("spec.parameters.0.feasibleSpace", {}), r"feasibleSpace must be specified"),
    ("no list for int/double", "list", put("spec.parameters.1.feasibleSpace.list", ["1"]),
     r"feasibleSpace.list is not supported for parameterType int"),
    ("min and max for int/double", "no max", drop("spec.parameters.0.feasibleSpace.max"),
     r"feasibleSpace.max and feasibleSpace.min must be specified"),
    ("no min/max/step for categorical", "step", put("spec.parameters.1", {
        "name": "layers", "parameterType": "categorical", "feasibleSpace": {"list": ["1", "2"], "step": "1"}}),
     r"are not supported for parameterType categorical"),
    ("finite bounds (mlops)", "inf", put("spec.parameters.0.feasibleSpace.max", "inf"), r"must be a finite number"),
    ("finite bounds (mlops)", "nan", put("spec.parameters.0.feasibleSpace.min", "nan"), r"must be a finite number"),
    # webhook: metrics collector
    ("collector kind", "None (gone from Katib)", collector({"collector": {"kind": "None"}}),
     r"invalid metrics collector kind"),
    ("collector kind", "Push", collector({"collector": {"kind": "Push"}}), None),
    ("collector in katib-config", "PrometheusMetric", collector({"collector": {"kind": "PrometheusMetric"}}),
     r"no metrics collector PrometheusMetric in upstream default katib-config"),
    ("File collector path", "relative", collector({"collector": {"kind": "File"}, "source": {
        "fileSystemPath": {"path": "metrics.txt", "kind": "File"}}}), r"needs an absolute path"),
    ("File collector path", "default", collector({"collector": {"kind": "File"}}), None),
    ("File collector format", "XML", collector({"collector": {"kind": "File"}, "source": {
        "fileSystemPath": {"path": "/m.txt", "format": "XML"}}}), r"format must be TEXT or JSON"),
    ("no filter with JSON", "filter", collector({"collector": {"kind": "File"}, "source": {
        "fileSystemPath": {"path": "/m.json", "format": "JSON"}, "filter": {"metricsFormat": ["(\\w+)=(\\d+)"]}}}),
     r"filter must be nil when the format of the metrics file is JSON"),
    ("no filter with JSON", "no filter", collector({"collector": {"kind": "File"}, "source": {
        "fileSystemPath": {"path": "/m.json", "format": "JSON"}}}), None),
    ("TensorFlowEvent source", "directory", collector({"collector": {"kind": "TensorFlowEvent"}, "source": {
        "fileSystemPath": {"path": "/logs", "kind": "Directory"}}}), None),
    ("TensorFlowEvent source", "with a format", collector({"collector": {"kind": "TensorFlowEvent"}, "source": {
        "fileSystemPath": {"path": "/logs", "kind": "Directory", "format": "TEXT"}}}), r"must be empty"),
    ("Custom needs customCollector", "missing", collector({"collector": {"kind": "Custom"}}),
     r"collector kind Custom needs collector.customCollector"),
    ("Custom needs customCollector", "given", collector({"collector": {"kind": "Custom", "customCollector": {
        "name": "c", "image": "x"}}, "source": {"fileSystemPath": {"path": "/out", "kind": "Directory"}}}), None),
    ("metricsFormat compiles (RE2)", "lookahead", collector({"source": {"filter": {"metricsFormat": [
        "(\\w+)(?==)=(\\d+)"]}}}), r"invalid filter \(Go regexp, RE2 syntax\): lookaround"),
    ("metricsFormat compiles (RE2)", "unbalanced", collector({"source": {"filter": {"metricsFormat": ["(\\w+)=(\\d+"]}}}),
     r"invalid filter"),
    ("metricsFormat compiles (RE2)", "RE2 class \\pL", collector({"source": {"filter": {"metricsFormat": [
        "([\\pL_]+)=([0-9.]+)"]}}}), None),
    ("metricsFormat has two groups", "one group", collector({"source": {"filter": {"metricsFormat": ["(\\w+)=\\d+"]}}}),
     r"two top subexpressions are required"),
    # the pod webhook's primary container, per trial kind
    ("primary container: Job", "absent", container_named("trainer"), r"'train': no such container"),
    ("primary container: PyTorchJob", "pytorch", trial_spec(PYTORCH, primaryContainerName="pytorch"), None),
    ("primary container: PyTorchJob", "train", trial_spec(PYTORCH), r"no such container in the PyTorchJob"),
    ("primary container: Argo Workflow", "main in labelled template", trial_spec(
        WORKFLOW, primaryContainerName="main", primaryPodLabels={"role": "trainer"}, **CONDITIONS), None),
    ("primary container: Argo Workflow", "template's own name", trial_spec(
        WORKFLOW, primaryContainerName="train", primaryPodLabels={"role": "trainer"}, **CONDITIONS),
     r"no such container in Argo's pods"),
    ("primary container: Tekton PipelineRun", "step-train", trial_spec(
        PIPELINE_RUN, primaryContainerName="step-train", primaryPodLabels={"tekton.dev/pipelineTask": "fit"},
        **CONDITIONS), None),
    ("primary container: Tekton PipelineRun", "train", trial_spec(
        PIPELINE_RUN, primaryContainerName="train", primaryPodLabels={"tekton.dev/pipelineTask": "fit"}, **CONDITIONS),
     r"no such container in Tekton's step containers"),
    ("primary container: TrainJob", "from its runtime", trial_spec(TRAIN_JOB, primaryContainerName="node"), None),

    # hyperopt service: tpe
    ("hyperopt tpe gamma", "0.5", algorithm("tpe", gamma="0.5"), None),
    ("hyperopt tpe gamma", "1", algorithm("tpe", gamma="1"), r"tpe runs on Katib's hyperopt service, which refuses it: "
     r"gamma should be in the range of \(0, 1\)"),
    ("hyperopt tpe prior_weight", "2", algorithm("tpe", prior_weight="2"), None),
    ("hyperopt tpe prior_weight", "0", algorithm("tpe", prior_weight="0"), r"prior_weight should be greater than zero"),
    ("hyperopt tpe n_EI_candidates", "12", algorithm("tpe", n_EI_candidates="12"), None),
    ("hyperopt tpe n_EI_candidates", "0", algorithm("tpe", n_EI_candidates="0"), r"n_EI_candidates should be greater"),
    ("hyperopt tpe random_state", "0", algorithm("tpe", random_state="0"), None),
    ("hyperopt tpe random_state", "-1", algorithm("tpe", random_state="-1"), r"random_state should be greater or equal"),
    ("hyperopt tpe unknown setting", "n_startup_trials", algorithm("tpe", n_startup_trials="4"),
     r"tpe runs on Katib's hyperopt service, which accepts gamma, prior_weight, n_EI_candidates, random_state; "
     r"got n_startup_trials"),
    # hyperopt service: random
    ("hyperopt random random_state", "7", algorithm("random", random_state="7"), None),
    ("hyperopt random random_state", "1.5", algorithm("random", random_state="1.5"), r"failed to validate random_state"),
    ("hyperopt random unknown setting", "seed", algorithm("random", seed="1"), r"accepts random_state; got seed"),
    # optuna service: multivariate-tpe, grid
    ("optuna multivariate-tpe n_startup_trials", "5", algorithm("multivariate-tpe", n_startup_trials="5"), None),
    ("optuna multivariate-tpe n_startup_trials", "-1", algorithm("multivariate-tpe", n_startup_trials="-1"),
     r"optuna service, which refuses it: n_startup_trials should be greater or equal"),
    ("optuna multivariate-tpe n_ei_candidates", "10", algorithm("multivariate-tpe", n_ei_candidates="10"), None),
    ("optuna multivariate-tpe n_ei_candidates", "x", algorithm("multivariate-tpe", n_ei_candidates="x"),
     r"failed to validate n_ei_candidates"),
    ("optuna multivariate-tpe random_state", "3", algorithm("multivariate-tpe", random_state="3"), None),
    ("optuna multivariate-tpe random_state", "-3", algorithm("multivariate-tpe", random_state="-3"), r"greater or equal"),
    ("optuna multivariate-tpe unknown setting", "hyperopt's gamma", algorithm("multivariate-tpe", gamma="0.25"),
     r"multivariate-tpe runs on Katib's optuna service, which accepts n_startup_trials, n_ei_candidates, "
     r"random_state; got gamma"),
    ("optuna: uniform/logUniform only", "normal", both(algorithm("multivariate-tpe"), put(
        "spec.parameters.0.feasibleSpace.distribution", "normal")), r"supports only uniform and logUniform"),
    ("optuna grid random_state", "1", both(algorithm("grid", random_state="1"),
                                           put("spec.parameters.0.feasibleSpace.step", "0.01")), None),
    ("optuna grid random_state", "-1", both(algorithm("grid", random_state="-1"),
                                            put("spec.parameters.0.feasibleSpace.step", "0.01")), r"greater or equal"),
    ("optuna grid maxTrialCount <= combinations", "30 = 10 x 3", both(
        algorithm("grid"), put("spec.parameters.0.feasibleSpace.step", "0.01"), put("spec.maxTrialCount", 30)), None),
    ("optuna grid maxTrialCount <= combinations", "31 > 10 x 3", both(
        algorithm("grid"), put("spec.parameters.0.feasibleSpace.step", "0.01"), put("spec.maxTrialCount", 31)),
     r"Max Trial Count: 31 > all possible search combinations: 30"),
    ("optuna grid double step", "missing", algorithm("grid"), r"Param lr step is nil"),
    # goptuna service: cmaes, sobol
    ("goptuna cmaes restart_strategy", "ipop", algorithm("cmaes", restart_strategy="ipop"), None),
    ("goptuna cmaes restart_strategy", "bipop", algorithm("cmaes", restart_strategy="bipop"), None),
    ("goptuna cmaes restart_strategy", "None (optuna's spelling)", algorithm("cmaes", restart_strategy="None"),
     r"cmaes runs on Katib's goptuna service, which refuses it: .*invalid restart_strategy"),
    ("goptuna cmaes sigma", "0.3", algorithm("cmaes", sigma="0.3"), None),
    ("goptuna cmaes sigma", "wide", algorithm("cmaes", sigma="wide"), r"failed to validate sigma"),
    ("goptuna cmaes random_state", "5", algorithm("cmaes", random_state="5"), None),
    ("goptuna cmaes random_state", "5.0", algorithm("cmaes", random_state="5.0"), r"strconv.Atoi"),
    ("goptuna cmaes dimensions", "one numeric parameter", both(algorithm("cmaes"), put("spec.parameters.1", {
        "name": "layers", "parameterType": "categorical", "feasibleSpace": {"list": ["1", "2"]}})),
     r"CMA-ES only supports two or more dimensional continuous search space"),
    ("goptuna search space", "int bound 1.0", both(algorithm("sobol"), put("spec.parameters.1.feasibleSpace.min", "1.0")),
     r"must be an integer|cannot parse"),
    ("goptuna sobol settings", "ignored", algorithm("sobol", scramble="true"), None),
    # skopt service: bayesianoptimization
    ("skopt base_estimator", "RF", algorithm("bayesianoptimization", base_estimator="RF"), None),
    ("skopt base_estimator", "XGB", algorithm("bayesianoptimization", base_estimator="XGB"),
     r"base_estimator must be GP, RF, ET or GBRT"),
    ("skopt n_initial_points", "0", algorithm("bayesianoptimization", n_initial_points="0"), None),
    ("skopt n_initial_points", "-1", algorithm("bayesianoptimization", n_initial_points="-1"), r"greater or equal"),
    ("skopt acq_func", "LCB", algorithm("bayesianoptimization", acq_func="LCB"), None),
    ("skopt acq_func", "UCB", algorithm("bayesianoptimization", acq_func="UCB"), r"acq_func must be gp_hedge"),
    ("skopt acq_optimizer", "lbfgs", algorithm("bayesianoptimization", acq_optimizer="lbfgs"), None),
    ("skopt acq_optimizer", "adam", algorithm("bayesianoptimization", acq_optimizer="adam"), r"acq_optimizer must be"),
    ("skopt random_state", "1", algorithm("bayesianoptimization", random_state="1"), None),
    ("skopt random_state", "-1", algorithm("bayesianoptimization", random_state="-1"), r"greater or equal"),
    ("skopt unknown setting", "xi", algorithm("bayesianoptimization", xi="0.01"),
     r"skopt service, which accepts base_estimator, .*; got xi"),
    # hyperband service
    ("hyperband r_l and resource_name", "r_l 9, eta 3, parallel 9", both(
        algorithm("hyperband", r_l="9", eta="3", resource_name="layers"), put("spec.parallelTrialCount", 9),
        put("spec.maxTrialCount", 20)), None),
    ("hyperband r_l and resource_name", "no r_l", algorithm("hyperband", resource_name="layers"),
     r"r_l and resource_name must be set"),
    ("hyperband r_l", "-1", algorithm("hyperband", r_l="-1", resource_name="layers"), r"r_l must be a positive float"),
    ("hyperband parallelTrialCount", "2 < 3", algorithm("hyperband", r_l="3", resource_name="layers"),
     r"parallelTrialCount must be not less than 3"),
    ("hyperband resource_name", "not a parameter", algorithm("hyperband", r_l="1", resource_name="epochs"),
     r"value of resource_name setting \('epochs'\) must be in parameters"),
    # pbt service
    ("pbt required settings", "all", algorithm("pbt", suggestion_trial_dir="/var/pbt", n_population="5",
                                               truncation_threshold="0.2"), None),
    ("pbt required settings", "no n_population", algorithm("pbt", suggestion_trial_dir="/var/pbt",
                                                           truncation_threshold="0.2"),
     r"Required params missing: n_population"),
    ("pbt n_population", "4", algorithm("pbt", suggestion_trial_dir="/d", n_population="4", truncation_threshold="0.2"),
     r"n_population\) should be >= 5"),
    ("pbt truncation_threshold", "1.5", algorithm("pbt", suggestion_trial_dir="/d", n_population="5",
                                                  truncation_threshold="1.5"), r"between 0 and 1"),
    ("pbt resample_probability", "0.5", algorithm("pbt", suggestion_trial_dir="/d", n_population="5",
                                                  truncation_threshold="0.2", resample_probability="0.5"),
     r"raises TypeError"),
    # enas service
    ("enas graphConfig", "complete", nas("enas"), None),
    ("enas graphConfig", "no numLayers", both(nas("enas"), drop("spec.nasConfig.graphConfig.numLayers")),
     r"missing numLayers"),
    ("enas controller_hidden_size", "64", nas("enas", controller_hidden_size="64"), None),
    ("enas controller_hidden_size", "0", nas("enas", controller_hidden_size="0"), r"must be at least 1"),
    ("enas controller_baseline_decay", "0.99", nas("enas", controller_baseline_decay="0.99"), None),
    ("enas controller_baseline_decay", "1.5", nas("enas", controller_baseline_decay="1.5"), r"must be in \(0.0, 1.0\]"),
    ("enas controller_temperature", "None", nas("enas", controller_temperature="None"), None),
    ("enas unknown setting", "num_epochs", nas("enas", num_epochs="3"), r"enas service, which accepts .*; got num_epochs"),
    # darts service
    ("darts operations", "complete", nas("darts"), None),
    ("darts operations", "operation without parameters", both(nas("darts"), put(
        "spec.nasConfig.operations.1", {"operationType": "skip_connection"})), r"missing parameters in the operation"),
    ("darts num_epochs", "3", nas("darts", num_epochs="3"), None),
    ("darts num_epochs", "0", nas("darts", num_epochs="0"), r"num_epochs should be greater than zero"),
    ("darts w_lr", "-0.1", nas("darts", w_lr="-0.1"), r"w_lr should be greater than or equal to zero"),
    ("darts batch_size", "None", nas("darts", batch_size="None"), None),
    ("darts batch_size", "0", nas("darts", batch_size="0"), r"batch_size should be greater than or equal to one"),
    # medianstop early stopping service
    ("medianstop min_trials_required", "3", put("spec.earlyStopping", {"algorithmName": "medianstop",
                                                "algorithmSettings": [{"name": "min_trials_required", "value": "3"}]}), None),
    ("medianstop min_trials_required", "0", put("spec.earlyStopping", {"algorithmName": "medianstop",
                                                "algorithmSettings": [{"name": "min_trials_required", "value": "0"}]}),
     r"min_trials_required must be greater than zero"),
    ("medianstop start_step", "1", put("spec.earlyStopping", {"algorithmName": "medianstop",
                                       "algorithmSettings": [{"name": "start_step", "value": "1"}]}), None),
    ("medianstop start_step", "0", put("spec.earlyStopping", {"algorithmName": "medianstop",
                                       "algorithmSettings": [{"name": "start_step", "value": "0"}]}),
     r"start_step must be greater or equal than one"),
    ("medianstop unknown setting", "min_steps", put("spec.earlyStopping", {"algorithmName": "medianstop",
                                                    "algorithmSettings": [{"name": "min_steps", "value": "1"}]}),
     r"medianstop service, which accepts min_trials_required, start_step; got min_steps"),
]


@pytest.mark.parametrize("rule, probe, change, refusal", CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_katib_rule(rule, probe, change, refusal):
    doc = spec_of(change)
    if refusal is None:
        spec = load(doc)
        assert spec.name
        return
    with pytest.raises(BadInput) as err:
        load(doc)
    assert re.search(refusal, str(err.value)), str(err.value)
    assert str(err.value).startswith("probe.yaml:"), str(err.value)


def test_every_rule_has_an_accepting_and_a_refusing_probe_or_says_why():
    """Rules with only one side are single-valued by nature (a missing field, an unknown name)."""
    accepted = {c[0] for c in CASES if c[3] is None}
    refused = {c[0] for c in CASES if c[3] is not None}
    one_sided = {r for r in accepted ^ refused}
    assert one_sided <= {
        "name", "maxTrialCount > 0", "parallelTrialCount > 0", "objective.type", "objective.objectiveMetricName",
        "algorithm in katib-config", "primaryContainerName required", "trialParameters required", "configMap fields",
        "trialParameter name", "trialParameter names unique", "trialParameter references unique",
        "placeholder for each trialParameter", "trialParameter for each placeholder",
        "every parameter reaches the template", "template apiVersion and kind", "parameters or nasConfig",
        "parameterType", "feasibleSpace required", "no list for int/double", "min and max for int/double",
        "no min/max/step for categorical", "finite bounds (mlops)", "collector in katib-config",
        "File collector format", "metricsFormat has two groups", "primary container: Job",
        "primary container: TrainJob", "hyperopt tpe unknown setting", "hyperopt random unknown setting",
        "optuna multivariate-tpe unknown setting", "optuna: uniform/logUniform only", "optuna grid double step",
        "goptuna cmaes dimensions", "goptuna search space", "goptuna sobol settings", "skopt unknown setting",
        "hyperband r_l", "hyperband parallelTrialCount", "hyperband resource_name", "pbt n_population",
        "pbt truncation_threshold", "pbt resample_probability", "enas unknown setting", "darts w_lr",
        "medianstop unknown setting", "generateName", "enas controller_temperature",
    } | {r for r in one_sided if r.startswith(("collector kind",))}, sorted(one_sided)


# -- the local engine: Katib's rules plus what it cannot honour -------------------------------
@pytest.mark.parametrize("what, change, refusal", [
    ("NAS", nas("enas"), r"nasConfig: not supported by the local engine"),
    ("hyperband", algorithm("hyperband", r_l="1", resource_name="layers"), r"'hyperband' is not supported by the local"),
    ("pbt", algorithm("pbt", suggestion_trial_dir="/d", n_population="5", truncation_threshold="0.2"),
     r"'pbt' is not supported by the local engine"),
    ("early stopping", put("spec.earlyStopping", {"algorithmName": "medianstop"}), r"earlyStopping: not supported"),
    ("TensorFlowEvent", collector({"collector": {"kind": "TensorFlowEvent"}}), r"'TensorFlowEvent' is not supported"),
    ("Push", collector({"collector": {"kind": "Push"}}), r"'Push' is not supported by the local engine"),
    ("Custom", collector({"collector": {"kind": "Custom", "customCollector": {"name": "c", "image": "x"}}}),
     r"'Custom' is not supported by the local engine"),
    ("normal", put("spec.parameters.0.feasibleSpace.distribution", "normal"), r"'normal' is not supported by the local"),
    ("logNormal", put("spec.parameters.0.feasibleSpace.distribution", "logNormal"), r"'logNormal' is not supported"),
    ("cmaes restarts", algorithm("cmaes", restart_strategy="ipop"), r"restart_strategy 'ipop' is not supported by the local"),
    ("random forest", algorithm("bayesianoptimization", base_estimator="RF"), r"base_estimator 'RF' is not supported by"),
])
def test_local_engine_refuses_what_it_cannot_honour_but_katib_accepts_it(what, change, refusal):
    doc = spec_of(change)
    with pytest.raises(BadInput, match=refusal):
        load(doc, engine="local")
    load(doc, engine="katib")


def test_local_engine_applies_katib_rules_too():
    with pytest.raises(BadInput, match="accepts gamma, prior_weight, n_EI_candidates, random_state; got n_startup_trials"):
        load(spec_of(algorithm("tpe", n_startup_trials="4")), engine="local")
    spec = load(spec_of(algorithm("tpe", gamma="0.3", prior_weight="2", n_EI_candidates="10", random_state="1")),
                engine="local")
    assert spec.settings == {"gamma": "0.3", "prior_weight": "2", "n_EI_candidates": "10", "random_state": "1"}


def test_spec_exposes_what_the_engines_need():
    spec = load(spec_of(both(put("spec.resumePolicy", "FromVolume"), put("spec.maxFailedTrialCount", 0), collector(
        {"collector": {"kind": "File"}, "source": {"fileSystemPath": {"path": "/out/m.json", "format": "JSON"}}}))),
        engine="local")
    assert (spec.resume_policy, spec.max_failed_trials, spec.file_path, spec.file_format) == (
        "FromVolume", 0, "/out/m.json", "JSON")
    spec = load(spec_of(), engine="local")
    assert (spec.resume_policy, spec.max_failed_trials, spec.collector) == ("Never", None, "StdOut")
    spec = load(spec_of(collector({"collector": {"kind": "File"}})), engine="local")
    assert (spec.file_path, spec.file_format) == ("/var/log/katib/metrics.log", "TEXT")  # Katib's defaults
    spec = load(spec_of(both(drop("metadata.name"), put("metadata.generateName", "probe-"))))
    assert (spec.name, spec.generate_name) == ("probe", "probe-")
    spec = load(spec_of(nas("darts")))
    assert spec.nas is not None and spec.parameters == []


def test_ignored_settings_are_warnings_not_errors():
    spec = load(spec_of(algorithm("cmaes", popsize="8")))
    assert any("'popsize' is ignored by Katib's goptuna service" in w for w in spec.warnings)
    spec = load(spec_of(trial_spec(WORKFLOW, primaryContainerName="main", **CONDITIONS)))
    assert any("Workflow.v1alpha1.argoproj.io is not in init.controller.trialResources" in w for w in spec.warnings)


def test_the_example_is_valid_on_both_engines():
    for engine in ("local", "katib"):
        spec = load_spec(EXAMPLE / "katib" / "experiment.yaml", engine=engine)
        assert spec.algorithm == "tpe" and katib_config.UPSTREAM.service("tpe") == "hyperopt"


# -- katib-config: the cluster's mapping ---------------------------------------------------------
TPE_ON_OPTUNA = """\
apiVersion: config.kubeflow.org/v1beta1
kind: KatibConfig
runtime:
  metricsCollectors:
    - kind: StdOut
      image: ghcr.io/kubeflow/katib/file-metrics-collector:v0.19.0
  suggestions:
    - algorithmName: tpe
      image: ghcr.io/kubeflow/katib/suggestion-optuna:v0.19.0
    - algorithmName: random
      image: ghcr.io/kubeflow/katib/suggestion-hyperopt:v0.19.0
"""


def test_a_katib_config_that_runs_tpe_on_optuna_accepts_optunas_settings(tmp_path):
    doc = spec_of(algorithm("tpe", n_startup_trials="4"))
    config = katib_config.from_document(yaml.safe_load(TPE_ON_OPTUNA), "test katib-config")
    assert load(doc, config=config).settings == {"n_startup_trials": "4"}
    with pytest.raises(BadInput, match="no suggestion for algorithm 'grid' in test katib-config"):
        load(spec_of(algorithm("grid")), config=config)
    with pytest.raises(BadInput, match="no metrics collector File in test katib-config"):
        load(spec_of(both(algorithm("tpe"), collector({"collector": {"kind": "File"}}))), config=config)
    # the same through the CLI, offline
    (tmp_path / "katib-config.yaml").write_text(TPE_ON_OPTUNA)
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(doc))
    r = run_mlops("experiment", "validate", "--engine", "katib", "--katib-config", "katib-config.yaml", "exp.yaml",
                  "--json", cwd=tmp_path)
    assert r.code == 0 and r.json()["suggestionService"] == "optuna", r
    r = run_mlops("experiment", "validate", "--engine", "katib", "exp.yaml", cwd=tmp_path)
    assert r.code == 2 and "which accepts gamma, prior_weight, n_EI_candidates, random_state; got n_startup_trials" in r.err


def _cluster_project(tmp_path, server: KubeServer):
    (tmp_path / "mlops.yaml").write_text("project: probe\nexperiment:\n  engine: katib\n  katib_namespace: katib-system\n")
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(spec_of(algorithm("tpe", n_startup_trials="4"))))
    return {"KUBECONFIG": str(server.kubeconfig(tmp_path / "kubeconfig"))}


def test_cluster_mode_reads_the_katib_config_configmap(tmp_path):
    with KubeServer() as server:
        env = _cluster_project(tmp_path, server)
        server.put({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "katib-config", "namespace": "katib-system"},
                    "data": {"katib-config.yaml": TPE_ON_OPTUNA}}, "configmaps")
        r = run_mlops("experiment", "validate", "--engine", "katib", "exp.yaml", "--json", cwd=tmp_path, env=env)
        assert r.code == 0, r
        assert r.json()["katibConfig"] == "ConfigMap katib-system/katib-config"
        assert any(q["path"].endswith("/namespaces/katib-system/configmaps/katib-config") for q in server.requests)


def test_cluster_mode_without_a_readable_configmap_falls_back_to_upstream_with_a_note(tmp_path):
    with KubeServer() as server:
        env = _cluster_project(tmp_path, server)  # no ConfigMap: the API server answers 404
        r = run_mlops("experiment", "validate", "--engine", "katib", "exp.yaml", cwd=tmp_path, env=env)
        assert r.code == 2, r
        assert "note: reading ConfigMap katib-system/katib-config answered 404" in r.err
        assert "got n_startup_trials" in r.err


# -- the local samplers mean what the services mean -----------------------------------------
def test_tpe_maps_to_hyperopts_tpe():
    kwargs = algorithms.sampler_kwargs("tpe", {"gamma": "0.5", "prior_weight": "2", "n_EI_candidates": "10",
                                               "random_state": "3"}, parallel=4)
    assert (kwargs["seed"], kwargs["prior_weight"], kwargs["n_ei_candidates"], kwargs["n_startup_trials"]) == (3, 2.0, 10, 4)
    # hyperopt: n_below = min(ceil(gamma * sqrt(n)), 25)
    assert [kwargs["gamma"](n) for n in (1, 4, 16, 10_000)] == [1, 1, 2, 25]
    default = algorithms.sampler_kwargs("tpe", {}, parallel=2)
    assert (default["n_ei_candidates"], default["prior_weight"], default["gamma"](16)) == (24, 1.0, 1)


def test_grid_combinations_count_as_katib_does():
    params = [{"name": "a", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1", "step": "0.3"}},
              {"name": "b", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "10", "step": "4"}},
              {"name": "c", "parameterType": "categorical", "feasibleSpace": {"list": ["x", "y"]}}]
    # numpy.arange(0, 1.3, 0.3) = 0, .3, .6, .9, 1.2 -> last dropped (> 1): 4; range(1, 11, 4) = 1, 5, 9: 3
    assert katib_rules.grid_combinations(params) == 4 * 3 * 2


@pytest.mark.parametrize("fmt, problem", [
    (r"(\w+)=(\d+)", None), (r"(?P<n>\w+)=(\d+)", None), (r"(\w+)\s*(?!x)=(\d+)", "lookaround"),
    (r"(\w+)=(\1)", "backreferences"), (r"(\w++)=(\d+)", "possessive"), (r"([[:alpha:]]+)=(\d+)", None),
])
def test_metrics_format_is_checked_as_go_regexp(fmt, problem):
    found = katib_rules.re2_problem(fmt)
    assert (found is None) if problem is None else (problem in found), found


def test_katib_config_files_that_are_not_katib_configs_are_bad_input(tmp_path):
    with pytest.raises(BadInput, match="ConfigMap has no data.katib-config.yaml"):
        katib_config.from_document({"kind": "ConfigMap", "data": {"suggestion": "{}"}}, "cm.yaml")
    with pytest.raises(BadInput, match="expected a KatibConfig"):
        katib_config.from_document({"kind": "Experiment"}, "exp.yaml")
    cm = {"kind": "ConfigMap", "data": {"katib-config.yaml": TPE_ON_OPTUNA}}
    assert katib_config.from_document(cm, "cm.yaml").service("tpe") == "optuna"
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(spec_of()))
    r = run_mlops("experiment", "validate", "--engine", "katib", "--katib-config", "missing.yaml", "exp.yaml", cwd=tmp_path)
    assert r.code == 2 and "--katib-config missing.yaml" in r.err and len(r.err.strip().splitlines()) == 1, r
    r = run_mlops("experiment", "validate", "--katib-config", "missing.yaml", "exp.yaml", cwd=tmp_path)
    assert r.code == 2 and "--katib-config applies to --engine katib" in r.err, r


PROMETHEUS_CONFIG = """\
apiVersion: config.kubeflow.org/v1beta1
kind: KatibConfig
runtime:
  metricsCollectors:
    - kind: PrometheusMetric
      image: ghcr.io/kubeflow/katib/prometheus-metrics-collector:v0.19.0
  suggestions:
    - algorithmName: random
      image: ghcr.io/kubeflow/katib/suggestion-hyperopt:v0.19.0
"""


@pytest.mark.parametrize("http, refusal", [
    ({}, None),  # Katib's defaults: port 8080, path /metrics
    ({"port": 9090, "path": "/m"}, None),
    ({"port": "http"}, r"httpGet.port: 'http': Katib refuses it: must be a positive integer"),
    ({"path": "metrics"}, r"httpGet.path: 'metrics': Katib refuses it: path is invalid"),
])
def test_prometheus_collector_where_katib_config_has_it(http, refusal):
    """Rule "PrometheusMetric port/path": only reachable with a katib-config that lists the collector."""
    config = katib_config.from_document(yaml.safe_load(PROMETHEUS_CONFIG), "test katib-config")
    doc = spec_of(collector({"collector": {"kind": "PrometheusMetric"}, "source": {"httpGet": http}}))
    if refusal is None:
        assert load(doc, config=config).collector == "PrometheusMetric"
    else:
        with pytest.raises(BadInput, match=refusal):
            load(doc, config=config)
