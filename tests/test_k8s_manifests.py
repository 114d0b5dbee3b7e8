"""k8s/: core kinds against the Kubernetes OpenAPI schemas (kubernetes-validate), CRD kinds against
the upstream CRDs in ../shared/crds, the Argo CD health Lua run for real, the PrometheusRule through
`promtool check rules` and `promtool test rules`, every dashboard PromQL expression parsed by promtool."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests import crds

K8S = Path(__file__).resolve().parents[1] / "k8s"
CORE_KINDS = {"Namespace", "ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Secret"}
CRD_KINDS = {"Application", "PodMonitor", "PrometheusRule"}


def manifests() -> list[tuple[str, dict]]:
    out = []
    for path in sorted(K8S.rglob("*.yaml")):
        if "tests" in path.relative_to(K8S).parts:
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out.append((f"{path.relative_to(K8S)}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return out


def one(kind: str, name: str | None = None) -> dict:
    found = [d for _, d in manifests() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def test_every_manifest_is_of_a_validated_kind():
    kinds = {d["kind"] for _, d in manifests()}
    assert kinds <= CORE_KINDS | CRD_KINDS, kinds - CORE_KINDS - CRD_KINDS
    assert {"Namespace", "Role", "Secret", "Application", "PodMonitor", "PrometheusRule", "ConfigMap"} <= kinds


@pytest.mark.parametrize("where,doc", [m for m in manifests() if m[1]["kind"] in CORE_KINDS], ids=lambda v: v if isinstance(v, str) else "")
def test_core_kinds_validate_against_kubernetes_schemas(where, doc):
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate (test extra)")
    kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


@pytest.mark.parametrize("where,doc", [m for m in manifests() if m[1]["kind"] in CRD_KINDS], ids=lambda v: v if isinstance(v, str) else "")
def test_crd_kinds_validate_against_upstream_crds(where, doc):
    crds.require_crds()
    assert crds.validate(doc) == []


def test_rbac_is_exactly_what_mlops_needs():
    def rules(name):
        return {(g, r, tuple(sorted(rule["verbs"]))) for rule in one("Role", name)["rules"]
                for g in rule["apiGroups"] for r in rule["resources"]}

    crud = tuple(sorted(["create", "get", "list", "watch", "delete"]))
    assert rules("mlops-experiments") == {("kubeflow.org", "experiments", crud), ("kubeflow.org", "trials", crud),
                                          ("", "pods", ("list",)), ("", "pods/log", ("get",))}
    assert rules("mlops-applications-reader") == {("argoproj.io", "applications", ("get", "list", "watch"))}
    # deploy wait (kserve) reads the InferenceService with a list by name, as pyhelpers.k8s.get_current does
    assert rules("mlops-inferenceservices-reader") == {("serving.kserve.io", "inferenceservices", ("get", "list"))}
    assert one("Role", "mlops-inferenceservices-reader")["metadata"]["namespace"] == "models"
    for _, doc in manifests():
        if doc["kind"] == "RoleBinding":
            assert doc["subjects"] == [{"kind": "ServiceAccount", "name": "mlops-jenkins", "namespace": "mlops"}]
    assert "katib.kubeflow.org/metrics-collector-injection" in one("Namespace", "mlops")["metadata"]["labels"]


def test_storage_secrets_are_templates_without_values():
    secrets = [d for _, d in manifests() if d["kind"] == "Secret"]
    assert {s["metadata"]["name"] for s in secrets} == {"mlops-storage", "mlops-kserve-s3"}
    for secret in secrets:
        assert "data" not in secret
        for key, value in secret["stringData"].items():
            if re.search(r"KEY|SECRET|TOKEN|PASSWORD", key):
                assert value == "", key


# KServe v0.20's names (pkg/credentials/s3/s3_secret.go: constants.KServeAPIGroupName + "/s3-…", the
# keys of config/configmap/inferenceservice.yaml's credentials.s3): a misspelt one is silently ignored.
KSERVE_S3_ANNOTATIONS = {"serving.kserve.io/s3-endpoint", "serving.kserve.io/s3-region", "serving.kserve.io/s3-verifyssl",
                         "serving.kserve.io/s3-usehttps", "serving.kserve.io/s3-usevirtualbucket",
                         "serving.kserve.io/s3-useaccelerate", "serving.kserve.io/s3-useanoncredential",
                         "serving.kserve.io/s3-cabundle-configmap", "serving.kserve.io/s3-cabundle"}


def test_kserve_storage_template_is_what_kserves_credential_builder_reads():
    from pyhelpers.config import ProjectConfig

    secret, account = one("Secret", "mlops-kserve-s3"), one("ServiceAccount", "mlops-kserve")
    ann = secret["metadata"]["annotations"]
    assert set(ann) <= KSERVE_S3_ANNOTATIONS and "serving.kserve.io/s3-endpoint" in ann
    # KServe takes a Secret as S3 credentials when it holds AWS_SECRET_ACCESS_KEY (s3SecretAccessKeyName)
    assert set(secret["stringData"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert account["secrets"] == [{"name": "mlops-kserve-s3"}]
    assert account["metadata"]["namespace"] == secret["metadata"]["namespace"] == "models"
    # the rendered InferenceService names this account by default
    assert ProjectConfig(project="p").deploy.service_account == account["metadata"]["name"]


def test_application_matches_the_example_cluster_profile():
    from pyhelpers.config import load_config

    cfg = load_config(K8S.parent / "examples" / "taxi-fare" / "mlops.yaml", "cluster", environ={})
    app = one("Application")
    assert app["metadata"]["name"] == cfg.argocd_application and app["metadata"]["namespace"] == cfg.argocd.namespace
    assert app["spec"]["source"]["path"] == str(Path(cfg.gitops_path).parent)
    assert app["spec"]["source"]["repoURL"] == cfg.gitops.repo and app["spec"]["source"]["targetRevision"] == cfg.gitops.branch
    assert app["spec"]["destination"]["namespace"] == cfg.deploy.namespace
    assert one("Secret", cfg.deploy.storage_secret)["metadata"]["namespace"] == cfg.deploy.namespace


@pytest.mark.parametrize("status,health", [
    ({"state": "Available"}, "Healthy"),
    ({"state": "Failed", "description": "Deployment does not have minimum availability."}, "Degraded"),
    ({"state": "Failed"}, "Degraded"),
    ({"state": "Creating"}, "Progressing"),
    (None, "Progressing"),
])
def test_seldon_health_lua(status, health):
    lupa = pytest.importorskip("lupa", reason="pip install lupa (test extra) to run Argo CD's Lua health check")
    cm = one("ConfigMap", "argocd-cm")
    script = cm["data"]["resource.customizations.health.machinelearning.seldon.io_SeldonDeployment"]
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    obj = {"apiVersion": "machinelearning.seldon.io/v1", "kind": "SeldonDeployment", "metadata": {"name": "m"}}
    if status is not None:
        obj["status"] = status
    hs = lua.execute(f"return function(obj)\n{script}\nend")(lua.table_from(obj, recursive=True))
    assert hs["status"] == health
    assert hs["message"]
    if status and status.get("description"):
        assert hs["message"] == status["description"]


def test_podmonitor_never_sets_a_model_target_label():
    monitor = one("PodMonitor")
    targets = {r.get("targetLabel") for ep in monitor["spec"]["podMetricsEndpoints"] for r in ep.get("relabelings", [])}
    assert "model" not in targets and "model_name" not in targets  # MLServer's own labels
    assert {"job", "seldon_deployment", "mlops_model_version"} <= targets


def test_podmonitor_scrapes_seldon_and_kserve_pods_with_the_same_labels():
    seldon, kserve = one("PodMonitor")["spec"]["podMetricsEndpoints"]

    def sets(ep):
        return {r["targetLabel"]: r.get("replacement") or tuple(r.get("sourceLabels", ()))
                for r in ep["relabelings"] if r.get("targetLabel") and not r["targetLabel"].startswith("__")}

    shared = {"job", "serving_target", "serving_name", "mlops_model_name", "mlops_model_version"}
    assert shared <= set(sets(seldon)) and shared <= set(sets(kserve))
    assert sets(seldon)["job"] == sets(kserve)["job"] == "mlops-mlserver"
    assert (sets(seldon)["serving_target"], sets(kserve)["serving_target"]) == ("seldon", "kserve")
    # the pod labels each operator sets: Seldon's seldon-deployment-id, KServe's serving.kserve.io/inferenceservice
    assert sets(seldon)["serving_name"] == ("__meta_kubernetes_pod_label_seldon_deployment_id",)
    assert sets(kserve)["serving_name"] == ("__meta_kubernetes_pod_label_serving_kserve_io_inferenceservice",)
    assert (seldon["port"], seldon["path"]) == ("metrics", "/prometheus")
    assert kserve["path"] == "/metrics" and not {"port", "portNumber", "targetPort"} & set(kserve)
    drop = seldon["relabelings"][0]
    assert drop["action"] == "drop" and drop["sourceLabels"] == ["__meta_kubernetes_pod_label_serving_kserve_io_inferenceservice"]
    keep, address = kserve["relabelings"][:2]
    assert keep["action"] == "keep"
    pod = {"__meta_kubernetes_pod_label_serving_kserve_io_inferenceservice": "taxi-fare",
           "__meta_kubernetes_pod_label_component": "predictor", "__meta_kubernetes_pod_container_name": "kserve-container"}

    def relabel_value(rule, labels):  # Prometheus joins source labels with ';' and anchors the regex
        return ";".join(labels.get(s, "") for s in rule["sourceLabels"])

    assert re.fullmatch(keep["regex"], relabel_value(keep, pod))
    for other in ({**pod, "__meta_kubernetes_pod_container_name": "queue-proxy"},
                  {**pod, "__meta_kubernetes_pod_label_component": "transformer"},
                  {k: v for k, v in pod.items() if "inferenceservice" not in k}):
        assert not re.fullmatch(keep["regex"], relabel_value(keep, other)), other
    # MLServer's metrics port, whether the pod declares the serving port (Knative) or none (Standard)
    for found, wanted in (("10.1.2.3:8080", "10.1.2.3:8082"), ("10.1.2.3", "10.1.2.3:8082"),
                          ("[fd00::7]:8080", "[fd00::7]:8082")):
        m = re.fullmatch(address["regex"], found)
        assert m and address["replacement"].replace("$1", m.group(1)) == wanted


# -- promtool ----------------------------------------------------------------------------------------
def promtool() -> str:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.skip("promtool not installed (apt-get install --no-install-recommends prometheus)")
    return tool


def check_rules(tmp_path: Path, groups: list[dict]) -> subprocess.CompletedProcess:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True)


def test_prometheus_rules_pass_promtool_check(tmp_path):
    proc = check_rules(tmp_path, one("PrometheusRule")["spec"]["groups"])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_prometheus_rule_unit_tests_make_every_alert_fire(tmp_path):
    rule = one("PrometheusRule")
    check_rules(tmp_path, rule["spec"]["groups"])
    unit = K8S / "monitoring" / "tests" / "prometheusrule.test.yaml"
    shutil.copy(unit, tmp_path / unit.name)
    proc = subprocess.run([promtool(), "test", "rules", unit.name], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0 and "SUCCESS" in proc.stdout, proc.stdout + proc.stderr

    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert alerts == {"MlopsModelHighErrorRate", "MlopsModelHighLatencyP95", "MlopsModelNoTraffic", "MlopsModelServerDown"}
    cases = yaml.safe_load(unit.read_text())["tests"]
    fired = {t["alertname"] for c in cases for t in c.get("alert_rule_test", []) if t.get("exp_alerts")}
    silent = {t["alertname"] for c in cases for t in c.get("alert_rule_test", []) if not t.get("exp_alerts")}
    assert fired == alerts and silent == alerts
    # every alert fires for a SeldonDeployment's and for an InferenceService's model server
    for name in alerts:
        targets = {a["exp_labels"]["serving_target"] for c in cases for t in c.get("alert_rule_test", [])
                   if t["alertname"] == name for a in t.get("exp_alerts") or []}
        assert targets == {"seldon", "kserve"}, name


def test_unit_tests_can_fail(tmp_path):
    """A wrong threshold must make `promtool test rules` fail (the tests are not vacuous)."""
    groups = one("PrometheusRule")["spec"]["groups"]
    for g in groups:
        for r in g["rules"]:
            if r.get("alert") == "MlopsModelServerDown":
                r["expr"] = r["expr"].replace("== 0", "== 2")
    check_rules(tmp_path, groups)
    shutil.copy(K8S / "monitoring" / "tests" / "prometheusrule.test.yaml", tmp_path / "t.yaml")
    proc = subprocess.run([promtool(), "test", "rules", "t.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode != 0 and "MlopsModelServerDown" in proc.stdout + proc.stderr


# -- the Grafana dashboard -----------------------------------------------------------------------------
GRAFANA_VARS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def dashboard() -> dict:
    return json.loads(one("ConfigMap", "mlops-model-serving-dashboard")["data"]["mlops-model-serving.json"])


def dashboard_exprs(dash: dict) -> list[str]:
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    for var in dash["templating"]["list"]:
        query = var.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        m = re.match(r"^label_values\((.+),\s*\w+\)$", query or "")
        if m:  # Grafana's label_values(selector, label): the selector is PromQL
            exprs.append(m.group(1))
    return exprs


def grafana_to_promql(expr: str) -> str:
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    return re.sub(r"\$\{?(\w+)\}?", r"grafana_var_\1", expr)  # template variables become plain label values


def test_dashboard_covers_the_required_panels():
    titles = {p["title"] for p in dashboard()["panels"]}
    assert {"Request rate", "Request latency percentiles", "Error ratio", "Deployed model version"} <= titles
    latency = next(p for p in dashboard()["panels"] if p["title"] == "Request latency percentiles")
    assert [t["legendFormat"] for t in latency["targets"]] == ["p50", "p95", "p99"]


def test_every_dashboard_expression_parses_with_promtool(tmp_path):
    exprs = dashboard_exprs(dashboard())
    assert len(exprs) >= 8
    groups = [{"name": "dashboard", "rules": [{"record": f"dashboard:expr_{i}", "expr": grafana_to_promql(e)}
                                              for i, e in enumerate(exprs)]}]
    proc = check_rules(tmp_path, groups)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # and the check is real: a broken expression is refused
    broken = check_rules(tmp_path, [{"name": "x", "rules": [{"record": "x:y", "expr": "sum by (le (rate(x[5m]))"}]}])
    assert broken.returncode != 0


def test_dashboard_uses_recorded_series_that_exist():
    recorded = {r["record"] for g in one("PrometheusRule")["spec"]["groups"] for r in g["rules"] if "record" in r}
    used = set(re.findall(r"\b(mlops:[\w:]+)", " ".join(dashboard_exprs(dashboard()))))
    assert used and used <= recorded


# -- the PodMonitor's relabelling, run by a real Prometheus against the Kubernetes stand-in --------------
def _snake(key: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), key)


def pod_discovery(pod: dict) -> list[dict]:
    """The targets Prometheus' Kubernetes pod discovery makes of a pod, as static_configs.

    Debian's Prometheus is built without Kubernetes discovery, so its output is restated from
    prometheus/prometheus discovery/kubernetes/pod.go (buildPod, podLabels): one target per declared
    container port (address podIP:port, the port's name and number), one per container without ports
    (address podIP alone); every target carries the pod's name, IP, phase, namespace and
    __meta_kubernetes_pod_label_<label> / ..._labelpresent_<label> with the label name sanitized.
    """
    def sanitize(label: str) -> str:
        return re.sub(r"[^a-zA-Z0-9_]", "_", label)

    meta = {"__meta_kubernetes_namespace": pod["metadata"]["namespace"],
            "__meta_kubernetes_pod_name": pod["metadata"]["name"],
            "__meta_kubernetes_pod_ip": pod["status"]["podIP"], "__meta_kubernetes_pod_phase": pod["status"]["phase"]}
    for key, value in pod["metadata"]["labels"].items():
        meta[f"__meta_kubernetes_pod_label_{sanitize(key)}"] = value
        meta[f"__meta_kubernetes_pod_labelpresent_{sanitize(key)}"] = "true"
    groups = []
    for c in pod["spec"]["containers"]:
        if not c.get("ports"):
            groups.append({"targets": [pod["status"]["podIP"]], "labels": {**meta, "__meta_kubernetes_pod_container_name": c["name"]}})
        for port in c.get("ports", []):
            groups.append({"targets": [f"{pod['status']['podIP']}:{port['containerPort']}"],
                           "labels": {**meta, "__meta_kubernetes_pod_container_name": c["name"],
                                      "__meta_kubernetes_pod_container_port_name": port.get("name", ""),
                                      "__meta_kubernetes_pod_container_port_number": str(port["containerPort"])}})
    return groups


def podmonitor_scrape_configs(monitor: dict, static_configs: list[dict]) -> list[dict]:
    """The scrape configs the Prometheus Operator generates from a PodMonitor, for the fields ours uses.

    Restated from prometheus-operator v0.93.0 pkg/prometheus/promcfg.go (generatePodMonitorConfig):
    job label into __tmp_prometheus_job_name, drop Failed/Succeeded pods, one keep per selector term
    (Exists: __meta_kubernetes_pod_labelpresent_<label> = true), keep the endpoint's port name (or
    number), namespace/container/pod target labels, job "<namespace>/<name>", endpoint = the port
    name, then the endpoint's own relabelings. Discovery is given as static_configs (pod_discovery).
    """
    ns, name = monitor["metadata"]["namespace"], monitor["metadata"]["name"]
    configs = []
    for i, ep in enumerate(monitor["spec"]["podMetricsEndpoints"]):
        rules: list[dict] = [{"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"},
                             {"action": "drop", "source_labels": ["__meta_kubernetes_pod_phase"],
                              "regex": "(Failed|Succeeded)"}]
        for exp in monitor["spec"]["selector"].get("matchExpressions", []):
            assert exp["operator"] == "Exists", "only Exists is restated here"
            label = re.sub(r"[^a-zA-Z0-9_]", "_", exp["key"])
            rules.append({"action": "keep", "source_labels": [f"__meta_kubernetes_pod_labelpresent_{label}"],
                          "regex": "true"})
        if ep.get("port"):
            rules.append({"action": "keep", "source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": ep["port"]})
        elif ep.get("portNumber"):
            rules.append({"action": "keep", "source_labels": ["__meta_kubernetes_pod_container_port_number"],
                          "regex": str(ep["portNumber"])})
        rules += [{"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                  {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
                  {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                  {"target_label": "job", "replacement": f"{ns}/{name}"}]
        if ep.get("port"):
            rules.append({"target_label": "endpoint", "replacement": ep["port"]})
        rules += [{_snake(k): v for k, v in r.items()} for r in ep.get("relabelings", [])]
        configs.append({"job_name": f"podMonitor/{ns}/{name}/{i}", "scrape_interval": ep.get("interval", "30s"),
                        "metrics_path": ep.get("path", "/metrics"), "static_configs": static_configs,
                        "relabel_configs": rules})
    return configs


def _pod(name: str, ip: str, labels: dict, containers: list[dict]) -> dict:
    return {"metadata": {"name": name, "namespace": "models", "labels": labels},
            "spec": {"containers": containers}, "status": {"phase": "Running", "podIP": ip}}


def test_podmonitor_targets_as_prometheus_relabels_them(tmp_path):
    """Seldon and KServe pods (Knative and Standard mode) as Prometheus' pod discovery sees them; a real
    Prometheus applies the operator's and our relabelling: one target per model server, with the labels
    the rules and the dashboard use, and nothing else."""
    import time
    import urllib.request

    from tests.test_s3 import free_port, start, stop, wait_http

    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.skip("prometheus not installed (apt-get install --no-install-recommends prometheus)")
    mlops_labels = {"app.kubernetes.io/managed-by": "mlops", "mlops.io/model-name": "taxi-fare"}
    queue_proxy = {"name": "queue-proxy", "ports": [{"name": n, "containerPort": p} for n, p in
                                                    (("http-queueadm", 8022), ("http-autometric", 9090),
                                                     ("http-usermetric", 9091), ("queue-port", 8012))]}
    pods = [
        # Seldon Core v1: the model container and the executor, metrics on the port named `metrics`
        _pod("taxi-fare-default-0-taxi-fare-1", "10.0.0.1",
             {**mlops_labels, "seldon-deployment-id": "taxi-fare", "mlops.io/model-version": "3"},
             [{"name": "taxi-fare", "ports": [{"name": "http", "containerPort": 9000},
                                              {"name": "metrics", "containerPort": 6000}]},
              {"name": "seldon-container-engine", "ports": [{"name": "http", "containerPort": 8000}]}]),
        # KServe, Knative mode: the serving port declared on kserve-container, queue-proxy beside it
        _pod("fare-ks-predictor-00001-deployment-1", "10.0.0.2",
             {**mlops_labels, "serving.kserve.io/inferenceservice": "fare-ks", "component": "predictor",
              "mlops.io/model-version": "4"},
             [{"name": "kserve-container", "ports": [{"name": "user-port", "containerPort": 8080}]}, queue_proxy]),
        # KServe, Standard (raw) mode: no declared port at all
        _pod("fare-raw-predictor-1", "10.0.0.3",
             {**mlops_labels, "serving.kserve.io/inferenceservice": "fare-raw", "component": "predictor",
              "mlops.io/model-version": "5"},
             [{"name": "kserve-container"}]),
        # not model servers: a transformer, and a pod mlops did not render
        _pod("fare-ks-transformer-1", "10.0.0.4",
             {**mlops_labels, "serving.kserve.io/inferenceservice": "fare-ks", "component": "transformer"},
             [{"name": "kserve-container", "ports": [{"name": "user-port", "containerPort": 8080}]}]),
        _pod("other-1", "10.0.0.5", {"app": "other"}, [{"name": "c", "ports": [{"name": "metrics", "containerPort": 6000}]}]),
    ]
    discovered = [group for pod in pods for group in pod_discovery(pod)]
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({"global": {"scrape_interval": "30s"},
                                      "scrape_configs": podmonitor_scrape_configs(one("PodMonitor"), discovered)}))
    check = subprocess.run([promtool(), "check", "config", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    port = free_port()
    proc = start([prometheus, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
                  f"--storage.tsdb.path={tmp_path / 'tsdb'}"], tmp_path / "prometheus.log", {"PATH": "/usr/bin:/bin"})
    try:
        wait_http(f"http://127.0.0.1:{port}/-/ready", proc, tmp_path / "prometheus.log", 30)
        deadline, previous = time.monotonic() + 30, None
        while time.monotonic() < deadline:  # until the target list is there and stable (two equal answers)
            time.sleep(0.5)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/targets?state=any", timeout=5) as r:
                data = json.load(r)["data"]
            current = sorted(json.dumps(t["labels"], sort_keys=True) for t in data["activeTargets"])
            if current and current == previous:
                break
            previous = current
        active = data["activeTargets"]
    finally:
        stop(proc)
    assert data["droppedTargets"], "the relabelling dropped nothing: the test would pass vacuously"
    found = {t["labels"]["pod"]: (t["scrapeUrl"], {k: v for k, v in t["labels"].items() if k in (
        "job", "serving_target", "serving_name", "seldon_deployment", "inference_service", "mlops_model_version")})
        for t in active}
    assert len(found) == len(active) == 3, active
    assert found == {
        "taxi-fare-default-0-taxi-fare-1": ("http://10.0.0.1:6000/prometheus", {
            "job": "mlops-mlserver", "serving_target": "seldon", "serving_name": "taxi-fare",
            "seldon_deployment": "taxi-fare", "mlops_model_version": "3"}),
        "fare-ks-predictor-00001-deployment-1": ("http://10.0.0.2:8082/metrics", {
            "job": "mlops-mlserver", "serving_target": "kserve", "serving_name": "fare-ks",
            "inference_service": "fare-ks", "mlops_model_version": "4"}),
        "fare-raw-predictor-1": ("http://10.0.0.3:8082/metrics", {
            "job": "mlops-mlserver", "serving_target": "kserve", "serving_name": "fare-raw",
            "inference_service": "fare-raw", "mlops_model_version": "5"}),
    }
