"""What a Katib trial runs on a cluster: the training image of this data version and commit, and
exactly the data of that version (docs/cluster.md).

- Image: ``image_ref`` is the one rule for the training image's reference,
  ``<image.name>:<data version>-<first 8 characters of the commit>`` — the tag ``mlopsImage``
  builds and pushes. The primary container of every pod template of the trial gets it.
- Data: an init container (same image; it has ``dvc``) writes the DVC pointer files of the commit
  (carried in the Experiment: hashes, not data) into a scratch DVC project on an ``emptyDir``
  volume and runs ``dvc pull`` from the remote; the primary container mounts each tracked path
  (``subPath``, read-only) where the image expects it. The storage credentials come from the
  Kubernetes Secret ``experiment.data_secret`` (``envFrom``), given to the init container only:
  never in the image, never in the Experiment.

``run_spec`` renders a Trial's run spec the way Katib's generator does (placeholders substituted,
metadata name/namespace set), and ``validate_run_spec`` checks it against the Kubernetes schema.
"""

from __future__ import annotations

import copy
import hashlib
import re
import shlex
from pathlib import Path
from typing import Any

from pyhelpers.errors import BadInput

DATA_VOLUME = "mlops-data"  # emptyDir shared by the init container and the primary container
DATA_INIT = "mlops-data"  # the init container that pulls the data
DATA_DIR = "/mnt/mlops-data"  # where the init container sees the volume
COMMIT = re.compile(r"^[0-9a-f]{7,40}$")
# The same rules mlopsImage applies (vars/mlopsImage.groovy).
REPOSITORY = re.compile(r"^[a-z0-9]+([._/:-][a-z0-9]+)*$")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
REFERENCE = re.compile(r"^[a-z0-9]+([._/:-][a-z0-9]+)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?$")
POD_SPEC_KINDS = "Job, PyTorchJob, TFJob, XGBoostJob, MPIJob and other kinds whose trial spec holds pod templates"


# -- the image ----------------------------------------------------------------------------------
def image_ref(repository: str, data_version: str, commit: str) -> str:
    """``<repository>:<data version>-<commit[:8]>``: the image built for this data and this code."""
    if not repository or not REPOSITORY.match(repository):
        raise BadInput(f"image.name: {repository!r} is not an image repository such as registry.example.com/ml/train")
    if not commit or not COMMIT.match(commit):
        raise BadInput(f"{commit!r} is not a git commit id")
    tag = f"{data_version}-{commit[:8]}"
    if not TAG.match(tag):
        raise BadInput(f"data version {data_version!r} does not make a valid image tag")
    return f"{repository}:{tag}"


def check_image(ref: str, source: str = "--image") -> str:
    if not REFERENCE.match(ref or "") or (":" not in ref.rsplit("/", 1)[-1] and "@" not in ref):
        raise BadInput(f"{source}: {ref!r} is not an image reference with a tag or digest "
                       "(e.g. registry.example.com/ml/train:dv-0123456789ab-89abcdef)")
    return ref


def default_image(cfg, data_version: str, commit: str | None) -> str:
    if not cfg.image.name:
        raise BadInput("image.name is not set: trials on Katib need the training image (or give --image)",
                       source=cfg.source)
    if not commit:
        raise BadInput(f"{cfg.root} has no git commit: the training image is tagged with it")
    return image_ref(cfg.image.name, data_version, commit)


# -- the data -----------------------------------------------------------------------------------
def project_dir_in_image(cfg) -> str:
    """The image path that holds the project (experiment.image_paths entry mapped to '.')."""
    root = cfg.root.resolve()
    for image_path, local in cfg.image_path_map().items():
        if local == root:
            return image_path.rstrip("/") or "/"
    raise BadInput("experiment.image_paths: no image path is mapped to the project folder ('.'), so the "
                   "trials' data cannot be placed (e.g. `image_paths: {/app: .}`)", source=cfg.source)


def data_pointers(cfg, commit: str, data_version: str) -> list[dict[str, str]]:
    """The .dvc files of ``data.paths`` at ``commit``: [{dvc_file, text, outs: [paths]}].

    They must describe ``data_version``: a mismatch means the commit and the version disagree.
    """
    import yaml

    from pyhelpers import data, scm

    outs = data.read_outs(cfg, commit)
    found = data.version_of(outs)
    if found != data_version:
        raise BadInput(f"commit {commit[:12]} has data {found}, not {data_version}: the Experiment would "
                       "name one version and pull another")
    pointers = []
    for dvc_file in data.dvc_files(cfg):
        text = scm.show(cfg.root, commit, dvc_file)
        base = Path(dvc_file).parent
        paths = [(base / o["path"]).as_posix() for o in (yaml.safe_load(text) or {}).get("outs") or []]
        pointers.append({"dvc_file": dvc_file, "text": text, "outs": paths})
    return pointers


# A scratch DVC project without git (core.no_scm), its config written in one go: one `dvc` start
# (1-2 s) per pod. The cache hard-links into the work tree on the same volume: the data takes its
# space once.
INIT_PROLOGUE = r"""set -eu
cd "$MLOPS_DATA_DIR"
mkdir -p .dvc
{
  printf '[core]\n    no_scm = True\n    analytics = false\n    remote = storage\n'
  printf '[%s]\n    url = %s\n' "'remote \"storage\"'" "$MLOPS_DVC_REMOTE_URL"
  if [ -n "${MLOPS_DVC_ENDPOINT_URL:-}" ]; then printf '    endpointurl = %s\n' "$MLOPS_DVC_ENDPOINT_URL"; fi
  printf '[cache]\n    type = "hardlink,copy"\n'
} > .dvc/config
"""


def init_script(pointers: list[dict[str, str]]) -> str:
    """The data init container's shell script: pointer files from the environment, then `dvc pull`."""
    lines = [INIT_PROLOGUE.rstrip("\n")]
    for i, p in enumerate(pointers):
        folder = shlex.quote(str(Path(p["dvc_file"]).parent))
        lines.append(f'mkdir -p {folder} && printf "%s\\n" "$MLOPS_DVC_FILE_{i}" > {shlex.quote(p["dvc_file"])}')
    lines.append("dvc pull " + " ".join(shlex.quote(p["dvc_file"]) for p in pointers))
    lines.append('echo "mlops: data $MLOPS_DATA_VERSION ready"')
    return "\n".join(lines) + "\n"


def data_init_container(image: str, pointers: list[dict[str, str]], data_version: str, remote_url: str,
                        endpoint_url: str | None, secret: str) -> dict[str, Any]:
    env = [{"name": "MLOPS_DATA_DIR", "value": DATA_DIR},
           {"name": "MLOPS_DATA_VERSION", "value": data_version},
           {"name": "MLOPS_DVC_REMOTE_URL", "value": remote_url}]
    if endpoint_url:
        env.append({"name": "MLOPS_DVC_ENDPOINT_URL", "value": endpoint_url})
    env += [{"name": f"MLOPS_DVC_FILE_{i}", "value": p["text"].rstrip("\n")} for i, p in enumerate(pointers)]
    container: dict[str, Any] = {"name": DATA_INIT, "image": image, "command": ["sh", "-c", init_script(pointers)],
                                 "env": env, "volumeMounts": [{"name": DATA_VOLUME, "mountPath": DATA_DIR}]}
    if secret:
        container["envFrom"] = [{"secretRef": {"name": secret}}]
    return container


def pod_specs(trial_spec: dict, container_name: str) -> list[dict]:
    """Every pod spec in the trial spec whose containers include ``container_name`` (Job: one;
    PyTorchJob: Master and Worker), as Katib's pod webhook finds the primary container by name."""
    from pyhelpers.experiment.template import container_holders

    return [node for node in container_holders(trial_spec)
            if any(isinstance(c, dict) and c.get("name") == container_name for c in node["containers"])]


def wire(spec: dict, image: str, data: dict[str, Any] | None, source: str = "experiment") -> dict:
    """The Experiment ``spec`` with the image (and, with ``data``, the data init container,
    volume and mounts) in every pod template of the trial. ``spec`` is not changed."""
    spec = copy.deepcopy(spec)
    template = spec.get("trialTemplate") or {}
    trial_spec = template.get("trialSpec")
    where = "spec.trialTemplate"
    if not isinstance(trial_spec, dict):
        raise BadInput(f"{where}.trialSpec: the image and data wiring needs the trial spec inline "
                       "(not in a ConfigMap)", source=source)
    primary = template.get("primaryContainerName")
    pods = pod_specs(trial_spec, primary) if primary else []
    if not pods:
        raise BadInput(f"{where}: no pod template of {trial_spec.get('kind')!r} has the primary container "
                       f"{primary!r}; image and data wiring supports {POD_SPEC_KINDS}", source=source)
    for pod in pods:
        main = next(c for c in pod["containers"] if c.get("name") == primary)
        main["image"] = image
        if data is None:
            continue
        volumes = pod.setdefault("volumes", [])
        inits = pod.setdefault("initContainers", [])
        if any(v.get("name") == DATA_VOLUME for v in volumes) or any(c.get("name") == DATA_INIT for c in inits):
            raise BadInput(f"{where}.trialSpec: the names {DATA_VOLUME!r} (volume, init container) are reserved "
                           "for the data wiring", source=source)
        volumes.append({"name": DATA_VOLUME, "emptyDir": {}})
        inits.insert(0, data_init_container(image, data["pointers"], data["data_version"], data["remote_url"],
                                            data.get("endpoint_url"), data.get("secret", "")))
        mounts = main.setdefault("volumeMounts", [])
        taken = {m.get("mountPath") for m in mounts}
        for p in data["pointers"]:
            for out in p["outs"]:
                mount_path = f"{data['project_dir'].rstrip('/')}/{out}"
                if mount_path in taken:
                    raise BadInput(f"{where}: the primary container already mounts {mount_path}, where the "
                                   "data goes", source=source)
                mounts.append({"name": DATA_VOLUME, "mountPath": mount_path, "subPath": out, "readOnly": True})
    return spec


def data_wiring(cfg, commit: str, data_version: str) -> dict[str, Any]:
    """What ``wire`` needs to deliver ``data_version`` to the trials of this project."""
    remote_url = cfg.dvc_remote_url
    if "://" not in remote_url:
        raise BadInput(f"data.remote_url: {remote_url!r} is a folder of this machine; Katib trials need a "
                       "remote store they can reach (s3://bucket/prefix)", source=cfg.source)
    return {"pointers": data_pointers(cfg, commit, data_version), "data_version": data_version,
            "remote_url": remote_url, "endpoint_url": cfg.data.endpoint_url, "secret": cfg.experiment.data_secret,
            "project_dir": project_dir_in_image(cfg)}


# -- a Trial's run spec, as Katib renders it -----------------------------------------------------
def example_assignments(spec: dict) -> dict[str, str]:
    """A feasible value per parameter (min, or the first of the list): a stand-in first suggestion."""
    out: dict[str, str] = {}
    for p in spec.get("parameters") or []:
        space = p.get("feasibleSpace") or {}
        out[p["name"]] = str(space["list"][0]) if space.get("list") else str(space.get("min"))
    return out


def trial_name(experiment: str) -> str:
    """Katib names a Trial ``<experiment>-<8 random lowercase characters>``; a stable stand-in here."""
    suffix = "".join(chr(ord("a") + b % 26) for b in hashlib.sha256(experiment.encode()).digest()[:8])
    return f"{experiment}-{suffix}"


def run_spec(experiment: dict, assignments: dict[str, str], name: str | None = None) -> dict:
    """The object Katib's trial controller creates for one Trial: ``${trialParameters.x}`` replaced
    and metadata name/namespace set to the Trial's (pkg/controller.v1beta1/experiment/manifest)."""
    from pyhelpers.experiment.template import substitute

    name = name or trial_name(experiment["metadata"]["name"])
    namespace = experiment["metadata"]["namespace"]
    rendered = substitute(experiment["spec"], assignments, name, namespace)
    rendered.setdefault("metadata", {})
    rendered["metadata"]["name"] = name
    rendered["metadata"]["namespace"] = namespace
    return rendered


def validate_run_spec(obj: dict) -> dict[str, Any]:
    """Check a run spec against the Kubernetes schema of its kind (built-in kinds only)."""
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    group = api_version.split("/")[0] if "/" in api_version else ""
    if "." in group:  # e.g. kubeflow.org: a CRD, whose schema the cluster holds
        return {"validated": False, "reason": f"{kind} ({api_version}) is a custom resource: its schema is the "
                                              "CRD installed in the cluster, not checked here"}
    try:
        import kubernetes_validate
    except ImportError:
        return {"validated": False, "reason": "kubernetes-validate is not installed (pip install kubernetes-validate)"}
    version = kubernetes_validate.latest_version()
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        at = ".".join(str(p) for p in getattr(exc, "path", [])) or "(root)"
        raise BadInput(f"trial run spec ({kind}) is not valid for Kubernetes {version}: {at}: "
                       f"{getattr(exc, 'message', exc)}") from None
    except kubernetes_validate.SchemaNotFoundError:
        return {"validated": False, "reason": f"no Kubernetes {version} schema for {kind} ({api_version})"}
    return {"validated": True, "kubernetes": version}


# -- line 2 on the agent: the Experiment's result and exactly its data ----------------------------
def agent_status(cfg, name: str) -> None:
    """Make the Experiment's status document available here: the deploy job's workspace is not the
    data line's, so with ``experiment.engine: katib`` it is read from Katib when it is not on disk."""
    from pyhelpers.experiment import status as st

    if cfg.experiment.engine != "katib" or name.endswith(".json"):
        return
    if (st.experiment_dir(cfg.state, name) / st.STATUS_FILE).is_file():
        return
    from pyhelpers.experiment import katib

    katib.best(cfg, name)  # writes <state>/experiments/<name>/experiment.json


def ensure_agent_data(cfg, data_version: str) -> dict[str, Any]:
    """The work tree holds exactly ``data_version``: its .dvc files name it and the files are there
    (pulled from the DVC remote when missing). Anything else is refused, never trained on."""
    from pyhelpers import data

    state = data.status(cfg)
    if state["data_version"] != data_version:
        raise BadInput(f"the checked-out commit has data {state['data_version']}, but the Experiment was tuned on "
                       f"{data_version}: check out the Experiment's commit (annotation mlops.io/git-commit)")
    missing = [c for c in state["uncommitted_changes"] if c["change"] in ("deleted", "not in cache")]
    edited = [c for c in state["uncommitted_changes"] if c not in missing]
    if edited:
        raise BadInput(f"the work tree's data differs from {data_version} in "
                       f"{', '.join(sorted({c['path'] for c in edited}))}: `dvc checkout` it")
    if not missing:
        return {"data_version": data_version, "pulled": False}
    pulled = data.pull(cfg)  # a clear exit 1 when the remote cannot give it
    return {"data_version": data_version, "pulled": True, "fetched_files": pulled["fetched_files"]}
