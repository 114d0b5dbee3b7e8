"""mlops.yaml: schema, line numbers, nearest keys, profiles, environment overrides, no secrets."""

import pytest

from pyhelpers.config import load_config
from pyhelpers.errors import BadInput


def write(tmp_path, text):
    path = tmp_path / "mlops.yaml"
    path.write_text(text)
    return path


def test_minimal_config_gets_local_defaults(tmp_path):
    cfg = load_config(write(tmp_path, "project: demo\n"), environ={})
    assert cfg.profile == "local"
    assert cfg.state == (tmp_path / ".mlops").resolve()
    assert cfg.tracking_uri == f"sqlite:///{tmp_path.resolve() / '.mlops/mlflow/mlflow.db'}"
    assert cfg.dvc_remote_url == str((tmp_path / ".mlops/dvc-remote").resolve())
    assert cfg.gitops_repo.endswith(".mlops/gitops.git")
    assert cfg.registered_model == "demo"


def test_unknown_key_names_line_and_nearest_key(tmp_path):
    path = write(tmp_path, "project: demo\ndata:\n  paths: [d]\n  remote_ulr: s3://x\n")
    with pytest.raises(BadInput) as err:
        load_config(path, environ={})
    msg = str(err.value)
    assert f"{path}:4" in msg and "data.remote_ulr" in msg and "did you mean 'remote_url'" in msg


def test_secret_in_config_is_refused_with_a_hint(tmp_path):
    path = write(tmp_path, "project: demo\nnotify:\n  slack_token: xoxb-123\n")
    with pytest.raises(BadInput) as err:
        load_config(path, environ={})
    assert "secrets are never read from mlops.yaml" in str(err.value)
    assert "xoxb-123" not in str(err.value)


@pytest.mark.parametrize("text, field, line", [
    ("project: Demo_1\n", "project", 1),
    ("project: demo\ndeploy:\n  replicas: 0\n", "deploy.replicas", 3),
    ("project: demo\nexperiment:\n  engine: slurm\n", "experiment.engine", 3),
    ("description: no project\n", "project", 1),
    ("project: demo\ndata: [a]\n", "data", 2),
])
def test_bad_values_name_field_and_line(tmp_path, text, field, line):
    path = write(tmp_path, text)
    with pytest.raises(BadInput) as err:
        load_config(path, environ={})
    assert f"{path}:{line}: {field}" in str(err.value)


def test_invalid_yaml_and_duplicate_keys(tmp_path):
    with pytest.raises(BadInput, match=r"mlops.yaml:3: invalid YAML: .*started at line 2"):
        load_config(write(tmp_path, "project: demo\ndata: [unclosed\n"), environ={})
    with pytest.raises(BadInput, match="duplicate key 'project'"):
        load_config(write(tmp_path, "project: a\nproject: b\n"), environ={})


def test_profiles_and_environment_overrides(tmp_path):
    path = write(tmp_path, "project: demo\nprofiles:\n  cluster:\n    mlflow:\n      tracking_uri: http://mlflow:5000\n")
    cfg = load_config(path, profile="cluster", environ={})
    assert cfg.tracking_uri == "http://mlflow:5000" and cfg.profile == "cluster"
    cfg = load_config(path, environ={"MLOPS_PROFILE": "cluster", "MLFLOW_TRACKING_URI": "http://other:5000"})
    assert cfg.tracking_uri == "http://other:5000"
    assert cfg.overrides == {"mlflow.tracking_uri": "MLFLOW_TRACKING_URI"}
    with pytest.raises(BadInput, match="profile 'prod' is not defined; known profiles: local, cluster"):
        load_config(path, profile="prod", environ={})


def test_bad_key_inside_profile_points_at_the_profile(tmp_path):
    path = write(tmp_path, "project: demo\nprofiles:\n  cluster:\n    mlflow:\n      trackin_uri: x\n")
    with pytest.raises(BadInput) as err:
        load_config(path, profile="cluster", environ={})
    assert f"{path}:5: profiles.cluster.mlflow.trackin_uri" in str(err.value)


def test_config_show_reports_credentials_without_values(mlops, tmp_path):
    write(tmp_path, "project: demo\n")
    canary = "CANARY-s3cr3t-value"
    env = {"SLACK_BOT_TOKEN": canary, "GITHUB_TOKEN": canary, "AWS_SECRET_ACCESS_KEY": canary,
           "MLFLOW_TRACKING_URI": f"https://user:{canary}@mlflow.example.com"}
    for args in (["config", "show"], ["config", "show", "--json"]):
        r = mlops(*args, cwd=tmp_path, env=env)
        assert r.code == 0, r
        assert canary not in r.out + r.err
    doc = r.json()
    assert doc["credentials"]["SLACK_BOT_TOKEN"]["status"] == "set"
    assert doc["credentials"]["JENKINS_TOKEN"]["status"] == "not set"
    assert doc["config"]["mlflow"]["tracking_uri"] == "https://***@mlflow.example.com"


def test_config_validate_cli(mlops, tmp_path):
    write(tmp_path, "project: demo\nimage: {nme: x}\n")
    r = mlops("config", "validate", cwd=tmp_path)
    assert r.code == 2 and "image.nme" in r.err and "did you mean 'name'" in r.err, r
    r = mlops("config", "validate", cwd=tmp_path / "..")  # no mlops.yaml above tmp
    assert r.code == 2 and "no mlops.yaml" in r.err


def test_every_profile_is_checked_even_when_not_selected(tmp_path):
    path = write(tmp_path, "project: demo\nprofiles:\n  cluster:\n    deploy:\n      replicas: 0\n")
    with pytest.raises(BadInput) as err:
        load_config(path, environ={})
    assert f"{path}:5: profiles.cluster.deploy.replicas" in str(err.value)


BILLION_LAUGHS = "".join(
    ['x-a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n']
    + [f'x-{c}: &{c} [{",".join(["*" + p] * 9)}]\n' for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
)


def test_alias_bomb_is_refused_naming_the_file(tmp_path, mlops):
    """9 levels of 9 aliases (~350 bytes) would expand to 387 million values; the document is refused
    before anything walks it (the line walker used to follow every alias and needed ~20 GB)."""
    path = tmp_path / "mlops.yaml"
    path.write_text("project: bomb\n" + BILLION_LAUGHS)
    assert len(path.read_bytes()) < 400
    r = mlops("config", "validate", cwd=tmp_path)
    assert r.code == 2 and "mlops.yaml" in r.err and "aliases expand to more than" in r.err, r
    spec = tmp_path / "experiment.yaml"
    spec.write_text("apiVersion: kubeflow.org/v1beta1\nkind: Experiment\n" + BILLION_LAUGHS)
    r = mlops("experiment", "validate", str(spec), cwd=tmp_path)
    assert r.code == 2 and "experiment.yaml" in r.err and "aliases expand" in r.err, r


def test_a_few_aliases_are_fine(tmp_path):
    """Ordinary anchors (a value reused a few times) stay valid: the bound is on the expanded size."""
    path = tmp_path / "mlops.yaml"
    path.write_text("project: anchors\nprofiles:\n  ci: &ci\n    deploy: {replicas: 2}\n  staging: *ci\n")
    assert load_config(path, environ={}, profile="staging").deploy.replicas == 2


def test_merge_keys_in_mlops_yaml_and_in_an_experiment(tmp_path, mlops):
    """`<<: *anchor` (YAML merge keys) works; keys written beside it win, and errors in merged values
    still name a line."""
    path = tmp_path / "mlops.yaml"
    path.write_text(
        "project: merged\n"
        "profiles:\n"
        "  ci: &ci\n"
        "    deploy: {replicas: 2, namespace: ci-models}\n"
        "    experiment: {timeout_minutes: 30}\n"
        "  staging:\n"
        "    <<: *ci\n"
        "    experiment: {timeout_minutes: 60}\n"
    )
    cfg = load_config(path, environ={}, profile="staging")
    assert cfg.deploy.replicas == 2 and cfg.deploy.namespace == "ci-models" and cfg.experiment.timeout_minutes == 60

    path.write_text("project: merged\nx: &bad {replicas: 0}\ndeploy:\n  <<: *bad\n")
    with pytest.raises(BadInput) as err:
        load_config(path, environ={})
    assert "mlops.yaml" in str(err.value)

    from tests.conftest import write_experiment

    spec = write_experiment(tmp_path / "exp", name="merged")
    text = spec.read_text().replace("    - name: n\n      parameterType: int\n      feasibleSpace: {min: \"1\", max: \"3\"}\n",
                                    "    - name: n\n      <<: &int {parameterType: int}\n"
                                    "      feasibleSpace: {min: \"1\", max: \"3\"}\n")
    assert text != spec.read_text()
    spec.write_text(text)
    r = mlops("experiment", "validate", str(spec), cwd=tmp_path)
    assert r.code == 0, r
