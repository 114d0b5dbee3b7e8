"""Cluster rehearsal: the example's Jenkinsfile in cluster mode, end to end, on local servers.

Jenkins is the Groovy pipeline harness (tests/groovy/rehearsal/run_build.groovy: the Jenkinsfile and
vars/ with a real `sh` into the real `mlops`); every build works in a fresh clone, as an agent pod
does. Around it run what the real system would talk to:
- the project's git repository and the GitOps repository over smart HTTP (git http-backend, token);
- moto's S3 server (DVC remote and MLflow artifacts) and a real `mlflow server` proxying to it;
- the Kubernetes API stand-in with the Katib stand-in (Experiment -> Trials -> Job -> pod as local
  processes: the data init container's `dvc pull` from S3 with the Secret's credentials, then the
  primary container from the pushed image's files, metrics from its stdout) and the Argo CD stand-in;
- the GitHub and Slack stand-ins, and an image builder/registry stand-in on PATH.

Flow: a data commit on a branch -> branch build (data pushed, image built and pushed with the
computed reference, pull request opened) -> merge -> main build (Experiment on Katib with that
image and that data, best trial, Slack notice, deploy job started) -> deploy build (model trained
from the same data on the agent, registered on the MLflow server with its artifacts on S3, serving
manifest pushed, Argo CD Healthy at that revision). Each boundary asserts what the real system
received. Canary secrets must never appear in any output, object, manifest or git history.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
import typing
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from tests.conftest import BIN, EXAMPLE, REPO, add_batch, git, make_project
from tests.fakes.argocd_controller import ArgoCDStandIn
from tests.fakes.git_http import USER, GitHttpServer
from tests.fakes.github import GitHubServer
from tests.fakes.k8s import KatibStandIn, KubeServer
from tests.fakes.slack import SlackServer
from tests.test_s3 import free_port, start, stop, wait_http

AWS_CANARY = "CANARY-rehearsal-aws-5e2c"
GITHUB_CANARY = "ghp-CANARY-rehearsal-77aa"
SLACK_CANARY = "xoxb-CANARY-rehearsal-31"
K8S_CANARY = "k8s-CANARY-rehearsal-90b1"
REGISTRY_CANARY = "registry-CANARY-pass-12"
CANARIES = (AWS_CANARY, GITHUB_CANARY, SLACK_CANARY, K8S_CANARY, REGISTRY_CANARY)
NS, ARGO_NS = "mlops", "argocd"
DATA_BUCKET, MLFLOW_BUCKET = "mlops-data", "mlops-mlflow"
ORG_REPO = "example-org/taxi-fare"
BUILDER_NAMES = ("docker", "buildctl", "buildctl-daemonless.sh", "executor")


def _missing_tools() -> str | None:
    for tool in ("groovy", "java"):
        if not shutil.which(tool):
            return f"{tool} is not installed (apt-get install groovy default-jdk-headless)"
    if not (BIN / "moto_server").exists():
        return "moto[server] is not installed in this environment (test extra)"
    return None


pytestmark = pytest.mark.skipif(_missing_tools() is not None, reason=str(_missing_tools()))


def _targets() -> list[str]:
    """Every deploy.target the configuration knows, each rehearsed in `make test` (about a minute each)."""
    from pyhelpers.config import DeployConfig

    return list(typing.get_args(DeployConfig.model_fields["target"].annotation))


class Registry:
    """The registry stand-in's pushed images (tests/fakes/image_builder.py writes the index)."""

    def __init__(self, folder: Path):
        self.folder = folder

    def pushed(self) -> dict[str, str]:
        index = self.folder / "index.json"
        return json.loads(index.read_text())["pushed"] if index.is_file() else {}

    def __contains__(self, ref: str) -> bool:
        return ref in self.pushed()

    def __getitem__(self, ref: str) -> Path:
        return Path(self.pushed()[ref])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Every server of the rehearsal, started once (stopped by PID / shutdown at the end)."""
    import boto3

    tmp = tmp_path_factory.mktemp("rehearsal")
    aws = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": AWS_CANARY, "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials", "AWS_CONFIG_FILE": "/nonexistent/config",
           "AWS_EC2_METADATA_DISABLED": "true"}
    procs: list[subprocess.Popen] = []
    with KubeServer(token=K8S_CANARY) as kube, GitHubServer(token=GITHUB_CANARY, repos=(ORG_REPO,)) as github, \
            SlackServer(token=SLACK_CANARY, channels=("#ml-taxi-fare",)) as slack, \
            GitHttpServer(tmp / "git", token=GITHUB_CANARY) as githttp:
        try:
            s3 = f"http://127.0.0.1:{free_port()}"
            procs.append(start([BIN / "moto_server", "-H", "127.0.0.1", "-p", s3.rsplit(":", 1)[1]], tmp / "moto.log",
                               {**os.environ, **aws}))
            wait_http(f"{s3}/moto-api/", procs[-1], tmp / "moto.log", 30)
            client = boto3.client("s3", endpoint_url=s3, aws_access_key_id="testing", aws_secret_access_key=AWS_CANARY,
                                  region_name="us-east-1")
            for bucket in (DATA_BUCKET, MLFLOW_BUCKET):
                client.create_bucket(Bucket=bucket)
            mlflow = f"http://127.0.0.1:{free_port()}"
            env = {**os.environ, **aws, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_S3_ENDPOINT_URL": s3}
            procs.append(start([BIN / "mlflow", "server", "--host", "127.0.0.1", "--port", mlflow.rsplit(":", 1)[1],
                                "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}",
                                "--artifacts-destination", f"s3://{MLFLOW_BUCKET}/artifacts", "--workers", "1"],
                               tmp / "mlflow.log", env))
            wait_http(f"{mlflow}/health", procs[-1], tmp / "mlflow.log", 120)
            jenkins = Jenkins(tmp)
            try:
                yield SimpleNamespace(tmp=tmp, kube=kube, github=github, slack=slack, githttp=githttp, s3=s3,
                                      s3_client=client, mlflow=mlflow, aws=aws, jenkins=jenkins, timings={},
                                      fake_bin=fake_bin(tmp / "fakebin"))
            finally:
                jenkins.stop()
        finally:
            for proc in reversed(procs):
                stop(proc)


def fake_bin(folder: Path) -> Path:
    """The builder stand-in under every name the image step may call."""
    folder.mkdir(parents=True, exist_ok=True)
    script = REPO / "tests" / "fakes" / "image_builder.py"
    for name in BUILDER_NAMES:
        path = folder / name
        path.write_text(f"#!/bin/sh\nexec {sys.executable} {script} --as {name} \"$@\"\n")
        path.chmod(0o755)
    return folder


def cluster_profile(world, gitops_url: str) -> dict:
    """The example's cluster profile, with its endpoints pointed at the local servers (nothing else changed)."""
    profile = yaml.safe_load((EXAMPLE / "mlops.yaml").read_text())["profiles"]["cluster"]
    local = {("data", "endpoint_url"): world.s3, ("mlflow", "tracking_uri"): world.mlflow,
             ("gitops", "repo"): gitops_url, ("github", "api_url"): world.github.url}
    for (section, key), value in local.items():
        profile.setdefault(section, {})[key] = value
    profile["experiment"]["timeout_minutes"] = 2  # a stuck trial fails the rehearsal in minutes, not hours
    return profile


def project_repo(world, target: str) -> tuple[Path, str, Path]:
    """The example as a git + DVC project on the git server (main: data batch 1); a developer clone."""
    name = f"taxi-fare-{target}.git"
    bare = world.githttp.create(name)
    gitops_name = f"gitops-{target}.git"
    world.gitops_bare = world.githttp.create(gitops_name)
    dev = make_project(world.tmp / f"dev-{target}" / "taxi-fare", rows=300, max_trials=2)
    spec = dev / "katib" / "experiment.yaml"  # two trials, run side by side: one round of pods
    spec.write_text(spec.read_text().replace("maxFailedTrialCount: 3", "maxFailedTrialCount: 1"))
    config = yaml.safe_load((dev / "mlops.yaml").read_text())
    config["profiles"]["cluster"] = cluster_profile(world, world.githttp.repo_url(gitops_name))
    config.setdefault("deploy", {})["target"] = target
    config["mlflow"]["registered_model"] = f"taxi-fare-{target}"  # one MLflow server for both targets
    config["mlflow"]["experiment"] = f"taxi-fare-{target}"
    (dev / "mlops.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    git(dev, "commit", "-qam", "cluster profile of this installation, two trials")
    url = world.githttp.repo_url(name)
    auth = base64.b64encode(f"{USER}:{GITHUB_CANARY}".encode()).decode()
    git(dev, "config", f"http.{world.githttp.url}/.extraheader", f"Authorization: Basic {auth}")
    git(dev, "remote", "add", "origin", url)
    git(dev, "push", "-q", "origin", "main")
    return dev, url, bare


class Jenkins:
    """The build runner (tests/groovy/rehearsal/run_build.groovy --serve): one JVM for every build, as
    one Jenkins controller; a build whose trial pods cannot start is stopped at once (a real one would
    wait for its timeout) and reported with the kubelet's events."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.proc: subprocess.Popen | None = None
        self.lines: queue.Queue = queue.Queue()

    def _start(self) -> None:
        java = os.environ.get("JAVA_HOME") or str(Path(os.path.realpath(shutil.which("java"))).parents[1])
        log = open(self.tmp / "jenkins.log", "ab")
        self.proc = subprocess.Popen(["groovy", "-cp", str(REPO / "tests" / "groovy"), f"-Dmlops.root={REPO}",
                                      str(REPO / "tests" / "groovy" / "rehearsal" / "run_build.groovy"), "--serve"],
                                     cwd=REPO, env={**os.environ, "JAVA_HOME": java}, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)
        proc = self.proc
        threading.Thread(target=lambda: [self.lines.put(line) for line in proc.stdout], daemon=True).start()

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None

    def build(self, spec_file: Path, result_file: Path, stuck) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        self.proc.stdin.write(f"{spec_file} {result_file}\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                if self.lines.get(timeout=0.5).startswith(f"done {result_file}"):
                    return
            except queue.Empty:
                pass
            events = stuck()
            if events:
                self.stop()  # the build waits for pods that never start: stop it now, not at its timeout
                pytest.fail(f"Katib's trial pods cannot start: {events}")
            if self.proc.poll() is not None:
                pytest.fail(f"the build runner exited {self.proc.returncode}: {(self.tmp / 'jenkins.log').read_text()[-3000:]}")
        pytest.fail(f"build {spec_file.name} did not finish in 600 s")


def run_build(world, name: str, repo: str, branch: str, params: dict | None = None, stuck=lambda: None) -> dict:
    """One Jenkins build of the project's Jenkinsfile (fresh workspace) through the Groovy harness."""
    ws = world.tmp / "jenkins" / name
    home = world.tmp / "agent-home"
    home.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{USER}:{GITHUB_CANARY}".encode()).decode()
    # the agent's git reaches the SCM with its own credentials, as the Git plugin's credential helper does
    (home / ".gitconfig").write_text(f'[http "{world.githttp.url}/"]\n\textraheader = Authorization: Basic {auth}\n'
                                     "[user]\n\tname = jenkins\n\temail = jenkins@localhost\n")
    env = {"PATH": f"{world.fake_bin}:{BIN}:{os.environ['PATH']}", "HOME": str(home),
           "MLOPS_FAKE_REGISTRY": str(world.registry_dir), "SLACK_API_URL": f"{world.slack.url}/api/",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
           "AWS_CONFIG_FILE": "/nonexistent/config", "AWS_EC2_METADATA_DISABLED": "true", "DVC_NO_ANALYTICS": "1",
           "JOB_NAME": f"taxi-fare/{branch}", "BUILD_URL": f"https://jenkins.example/job/{name}/1/"}
    kubeconfig = yaml.safe_load(world.kube.kubeconfig(world.tmp / "kubeconfig").read_text())
    credentials = {"mlops-dvc-s3": {"username": "testing", "password": AWS_CANARY},
                   "mlops-registry": json.dumps({"auths": {"registry.example.com": {"auth": base64.b64encode(
                       f"ci:{REGISTRY_CANARY}".encode()).decode()}}}),
                   "mlops-github-token": GITHUB_CANARY, "mlops-slack": SLACK_CANARY,
                   "mlops-kubeconfig": yaml.safe_dump(kubeconfig)}
    spec = {"jenkinsfile": str(EXAMPLE / "Jenkinsfile"), "workspace": str(ws), "repo": repo, "branch": branch,
            "env": env, "params": params or {}, "credentials": credentials}
    spec_file, result_file = world.tmp / f"{name}.build.json", world.tmp / f"{name}.result.json"
    spec_file.write_text(json.dumps(spec))
    started = time.monotonic()
    world.jenkins.build(spec_file, result_file, stuck)
    world.timings[name] = round(time.monotonic() - started, 1)
    result = json.loads(result_file.read_text())
    text = json.dumps(result)
    for canary in CANARIES:
        assert canary not in text, f"a secret reached the {name} build's output"
    result["workspace"] = ws
    return result


def mlops_calls(build: dict) -> list[str]:
    return [c["env"]["MLOPS_COMMAND"] for c in build["sh"] if c["env"].get("MLOPS_COMMAND")]


def params_of(build: dict, command: str) -> dict:
    texts = [p["text"] for p in build["params_files"] if p["command"] == command]
    assert texts, f"no `mlops {command}` in the build"
    return json.loads(texts[-1])


def failed(build: dict) -> str:
    return f"{build['status']}: {build['error']}\n--- log ---\n{build['log'][-6000:]}"



def fresh_namespace(kube: KubeServer) -> None:
    """Each target's flow starts with no Katib objects left from the other (as a new namespace would)."""
    for plural, api in (("experiments", "kubeflow.org/v1beta1"), ("trials", "kubeflow.org/v1beta1"),
                        ("jobs", "batch/v1"), ("pods", "v1")):
        for obj in kube.items(api, plural, NS):
            kube.remove(api, plural, NS, obj["metadata"]["name"])


def stuck_pods(katib: KatibStandIn):
    return lambda: [e for e in katib.events if e["reason"] in ("ErrImagePull", "CreateContainerConfigError",
                                                               "FailedMount", "FailedCreatePodContainer")]


@pytest.mark.parametrize("target", _targets())
def test_cluster_rehearsal(world, target):
    from pyhelpers.config import load_config
    from pyhelpers.data import data_version
    from pyhelpers.deploy.render import render_application
    from pyhelpers.experiment.trial_wiring import DATA_INIT, DATA_VOLUME, image_ref
    from tests.crds import validate as crd_validate

    started = time.monotonic()
    world.registry_dir = world.tmp / f"registry-{target}"
    registry = Registry(world.registry_dir)
    dev, repo_url, _ = project_repo(world, target)
    cfg = load_config(dev / "mlops.yaml", profile="cluster", environ={})
    fresh_namespace(world.kube)

    # the cluster as its admin set it up (docs/cluster.md, k8s/): the data Secret and the Argo CD Application
    world.kube.put({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                    "metadata": {"name": cfg.experiment.data_secret, "namespace": NS},
                    "data": {k: base64.b64encode(v.encode()).decode()
                             for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": AWS_CANARY}.items()}},
                   "secrets")
    world.kube.put(render_application(cfg), "applications")
    # the node: what a container gets besides its own environment (tools on PATH stand in for the image's)
    node_env = {"PATH": f"{BIN}:{os.environ['PATH']}", "HOME": str(world.tmp / "node-home"),
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
                "AWS_CONFIG_FILE": "/nonexistent/config", "AWS_EC2_METADATA_DISABLED": "true", "DVC_NO_ANALYTICS": "1"}
    with KatibStandIn(world.kube, registry, world.tmp / f"pods-{target}", env=node_env) as katib, \
            ArgoCDStandIn(world.kube, world.gitops_bare, cfg.argocd_application, ARGO_NS, validate=crd_validate) as argocd:
        # -- 1. a data scientist commits new data on a branch, pushes the data (DVC) and the commit
        git(dev, "checkout", "-qb", "data/batch-2")
        add_batch(dev, 2, rows=300)
        subprocess.run([BIN / "mlops", "data", "push"], cwd=dev, check=True, capture_output=True,
                       env={**os.environ, **world.aws, "MLOPS_PROFILE": "cluster"})
        git(dev, "push", "-q", "origin", "data/batch-2")
        branch_commit = git(dev, "rev-parse", "HEAD").strip()
        version = data_version(cfg, "HEAD")

        known_pulls = len(world.github.pulls[ORG_REPO])
        branch = run_build(world, f"{target}-branch", repo_url, "data/batch-2")
        assert branch["status"] == "SUCCESS", failed(branch)
        assert mlops_calls(branch) == ["config validate", "data status", "data push", "config show", "pr open"]
        # the image: built from this commit's files, pushed under the reference the trials will name
        branch_ref = image_ref(cfg.image.name, version, branch_commit)
        assert sorted(registry.pushed()) == [branch_ref]
        assert (registry[branch_ref] / "app" / "train.py").read_text() == (dev / "train.py").read_text()
        # the pull request GitHub received: this branch into main, reporting the data version
        (pr,) = world.github.pulls[ORG_REPO][known_pulls:]
        assert pr["head"]["ref"] == "data/batch-2" and pr["base"]["ref"] == "main" and version in (pr["body"] or "")
        assert params_of(branch, "pr open") == {"branch": "data/batch-2", "base": "main"}
        assert not world.kube.items("kubeflow.org/v1beta1", "experiments", NS)  # branches run no Experiment
        # the data of this version is on the DVC remote (S3), where the trials will pull it from
        dir_md5 = yaml.safe_load((dev / "data" / "trips.dvc").read_text())["outs"][0]["md5"]
        stored = {o["Key"] for o in world.s3_client.list_objects_v2(Bucket=DATA_BUCKET).get("Contents", [])}
        assert f"taxi-fare/files/md5/{dir_md5[:2]}/{dir_md5[2:]}" in stored
        rows = sum(len(f.read_text().splitlines()) - 1 for f in (dev / "data" / "trips").glob("*.csv"))

        # -- 2. the pull request is merged with GitHub's merge commit
        git(dev, "checkout", "-q", "main")
        git(dev, "merge", "-q", "--no-ff", "-m", f"Merge pull request #{pr['number']} from data/batch-2", "data/batch-2")
        git(dev, "push", "-q", "origin", "main")
        pr["state"], pr["merged"] = "closed", True
        main_commit = git(dev, "rev-parse", "HEAD").strip()

        main = run_build(world, f"{target}-main", repo_url, "main", stuck=stuck_pods(katib))
        assert main["status"] == "SUCCESS", failed(main)
        ref = image_ref(cfg.image.name, version, main_commit)
        assert ref in registry, "the Experiment's image was never pushed"
        assert params_of(main, "line data") == {"local": False, "force": False, "image": ref}
        # the Experiment Katib received: this data version, this commit's image, the data wiring, no secret
        (exp,) = world.kube.items("kubeflow.org/v1beta1", "experiments", NS)
        ann = exp["metadata"]["annotations"]
        assert (ann["mlops.io/data-version"], ann["mlops.io/git-commit"], ann["mlops.io/image"]) == (version, main_commit, ref)
        pod = exp["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
        primary = next(c for c in pod["containers"] if c["name"] == exp["spec"]["trialTemplate"]["primaryContainerName"])
        assert primary["image"] == ref, "the trials would not run the image built for this data and commit"
        (init,) = [c for c in pod["initContainers"] if c["name"] == DATA_INIT]
        assert init["image"] == ref and init["envFrom"] == [{"secretRef": {"name": cfg.experiment.data_secret}}]
        pointer = next(e["value"] for e in init["env"] if e["name"] == "MLOPS_DVC_FILE_0")
        assert yaml.safe_load(pointer) == yaml.safe_load(git(dev, "show", f"{main_commit}:data/trips.dvc"))
        assert {"name": DATA_VOLUME, "emptyDir": {}} in pod["volumes"]
        assert {"name": DATA_VOLUME, "mountPath": "/app/data/trips", "subPath": "data/trips", "readOnly": True} \
            in primary["volumeMounts"]
        assert AWS_CANARY not in json.dumps(exp)
        # the Trials Katib made of it: parameters substituted into the same wiring, each ran on this data
        trials = world.kube.items("kubeflow.org/v1beta1", "trials", NS)
        assert len(trials) == exp["spec"]["maxTrialCount"]
        for trial in trials:
            job = trial["spec"]["runSpec"]
            assert "${trialParameters" not in json.dumps(job) and job["metadata"]["name"] == trial["metadata"]["name"]
            container = job["spec"]["template"]["spec"]["containers"][0]
            lr = next(a["value"] for a in trial["spec"]["parameterAssignments"] if a["name"] == "learning-rate")
            assert f"--learning-rate={lr}" in container["command"] and container["image"] == ref
            assert job["spec"]["template"]["spec"]["initContainers"][0]["image"] == ref
            assert trial["status"]["conditions"][-1]["type"] == "Succeeded", trial["status"]
            pod_log = next(text for (ns, pod_name, c), text in world.kube.pod_logs.items()
                           if pod_name.startswith(trial["metadata"]["name"]) and c == DATA_INIT)
            assert f"mlops: data {version} ready" in pod_log
            trainer_log = next(text for (ns, pod_name, c), text in world.kube.pod_logs.items()
                               if pod_name.startswith(trial["metadata"]["name"]) and c == primary["name"])
            assert f"rows={rows}" in trainer_log  # the trial read both batches: this data version, nothing older
        best = exp["status"]["currentOptimalTrial"]["bestTrialName"]
        assert best in {t["metadata"]["name"] for t in trials}
        # the Slack notice and the hand-over to the deploy job
        posted = [json.dumps(r["body"]) for r in world.slack.requests if r["path"] == "/api/chat.postMessage"]
        assert any(exp["metadata"]["name"] in p for p in posted)
        (handover,) = main["build"]
        assert handover["parameters"][0]["value"] == exp["metadata"]["name"]

        # -- 3. the deploy job: train on the agent from the same data, register, push, Argo CD
        deploy = run_build(world, f"{target}-deploy", repo_url, "main",
                           params={"MLOPS_LINE": "deploy", "EXPERIMENT": exp["metadata"]["name"]})
        assert params_of(deploy, "model train")["experiment"] == exp["metadata"]["name"]
        gitops = world.gitops_bare
        assert argocd.history, failed(deploy)
        pushed = argocd.history[0]["revision"]  # the deploy line's push, the first revision Argo CD synced
        assert argocd.history[0]["phase"] == "Succeeded" and argocd.history[0]["health"] == "Healthy", argocd.history
        manifest = yaml.safe_load(git(gitops, "show", f"{pushed}:{cfg.gitops_path}"))
        kind = {"seldon": "SeldonDeployment", "kserve": "InferenceService"}[target]
        assert manifest["kind"] == kind and not crd_validate(manifest)
        model_uri = json.dumps(manifest)
        assert f"s3://{MLFLOW_BUCKET}/artifacts/" in model_uri
        keys = [o["Key"] for o in world.s3_client.list_objects_v2(Bucket=MLFLOW_BUCKET).get("Contents", [])]
        assert any(k.endswith("MLmodel") for k in keys)
        # the model was trained on the agent from this data version and says so (MLflow run tags)
        from mlflow.tracking import MlflowClient

        client = MlflowClient(world.mlflow)
        (version_info,) = client.search_model_versions(f"name='{cfg.registered_model}'")
        run = client.get_run(version_info.run_id)
        assert run.data.tags["mlops.data_version"] == version and run.data.tags["mlops.experiment"] == exp["metadata"]["name"]
        assert run.data.tags["mlops.best_trial"] == best
        for canary in CANARIES:
            assert canary not in git(gitops, "log", "-p", "--all") and canary not in json.dumps(manifest)
        print(f"\nrehearsal [{target}] timings (s): {world.timings}, total {time.monotonic() - started:.0f}",
              file=sys.stderr)
        # no endpoint of the served model is reachable from an agent here: the smoke stage says so and is skipped
        assert "skipped: no smoke endpoint for cluster mode" in deploy["log"], failed(deploy)
        assert deploy["status"] == "SUCCESS", failed(deploy)
        app = world.kube.get("argoproj.io/v1alpha1", "applications", ARGO_NS, cfg.argocd_application)
        assert app["status"]["sync"]["revision"] == pushed and app["status"]["health"]["status"] == "Healthy"
