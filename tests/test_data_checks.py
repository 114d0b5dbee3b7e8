"""Line 1's data checks: which data version the workspace holds, and when the line must refuse to run.

The project is a real git + DVC repository (tests/conftest.py ``project``). The case the line must
not miss: ``dvc add`` after new data but no commit — DVC itself then reports nothing to do
(``dvc status`` compares the workspace with the updated .dvc file), yet the data version in git is
not the one in the workspace, so an Experiment would run on data no commit describes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess

import pytest

from pyhelpers import data
from pyhelpers.config import load_config
from pyhelpers.errors import BadInput
from tests.conftest import add_batch, dvc, git


def cfg_of(project):
    return load_config(project / "mlops.yaml", environ={})


def nothing_ran(project) -> None:
    state = project / ".mlops"
    assert not (state / "experiments").exists()
    assert not (state / "data" / "processed.json").exists()
    assert not (state / "dvc-remote").exists() or not any((state / "dvc-remote").iterdir())


def run_line(cfg):
    from pyhelpers.line.data_line import run_data_line

    return run_data_line(cfg, local=True)


# -- data versions ---------------------------------------------------------------------------------
def test_data_version_is_a_digest_of_paths_and_hashes_in_any_order():
    outs = [{"path": "data/b", "md5": "2" * 32}, {"path": "data/a", "md5": "1" * 32 + ".dir"}]
    canon = '[["data/a","11111111111111111111111111111111.dir"],["data/b","22222222222222222222222222222222"]]'
    assert data.version_of(outs) == "dv-" + hashlib.sha256(canon.encode()).hexdigest()[:12]
    assert data.version_of(outs) == data.version_of(list(reversed(outs)))
    assert data.version_of([{"path": "data/a", "md5": "1" * 32 + ".dir"}]) != data.version_of(outs)


def test_tracked_paths_name_their_dvc_files(tmp_path):
    (tmp_path / "mlops.yaml").write_text("project: p\ndata:\n  paths: [data/trips/, data/extra.dvc, raw]\n")
    assert data.dvc_files(load_config(tmp_path / "mlops.yaml", environ={})) == \
        ["data/trips.dvc", "data/extra.dvc", "raw.dvc"]


def test_committed_data_clean_workspace(project):
    cfg = cfg_of(project)
    state = data.status(cfg)
    (out,) = data.read_outs(cfg, "HEAD")
    assert out["path"] == "data/trips" and out["md5"].endswith(".dir") and out["dvc_file"] == "data/trips.dvc"
    assert state["data_version"] == data.version_of([out]) == data.data_version(cfg)
    assert state["workspace_data_version"] == state["data_version"]
    assert state["workspace_clean"] is True and state["uncommitted_changes"] == []
    assert (state["processed_version"], state["changed"]) == (None, True)
    assert state["git_commit"] == git(project, "rev-parse", "HEAD").strip()


# -- what the line refuses ---------------------------------------------------------------------------
def test_dvc_add_without_commit_is_refused_before_anything_runs(project):
    cfg = cfg_of(project)
    committed = data.data_version(cfg)
    add_batch(project, 2, rows=50, commit=False)       # new data, `dvc add`ed, .dvc file not committed
    state = data.status(cfg)
    assert state["uncommitted_changes"] == []           # DVC sees nothing to do ...
    assert state["data_version"] == committed           # ... but git still has the old version
    assert state["workspace_data_version"] != committed and state["workspace_clean"] is False
    with pytest.raises(BadInput) as caught:
        run_line(cfg)
    assert str(caught.value) == ("uncommitted data changes in data/trips.dvc: `dvc add` and commit them (or "
                                 "`dvc checkout`), so the experiment runs on a data version that exists in git")
    nothing_ran(project)


def test_edited_data_without_dvc_add_is_refused_naming_the_data(project):
    cfg = cfg_of(project)
    victim = sorted((project / "data" / "trips").iterdir())[0]
    victim.write_text(victim.read_text() + "\n")
    state = data.status(cfg)
    assert state["uncommitted_changes"] == [{"path": "data/trips", "change": "modified",
                                             "dvc_file": "data/trips.dvc"}]
    assert state["workspace_clean"] is False
    with pytest.raises(BadInput, match=r"^uncommitted data changes in data/trips: "):
        run_line(cfg)
    nothing_ran(project)


def test_once_committed_the_new_version_is_a_change_to_process(project):
    cfg = cfg_of(project)
    before = data.data_version(cfg)
    data.mark_processed(cfg, before, git(project, "rev-parse", "HEAD").strip())
    assert data.status(cfg)["changed"] is False
    add_batch(project, 2, rows=50, commit=True)
    state = data.status(cfg)
    assert state["data_version"] != before and state["workspace_clean"] is True
    assert (state["processed_version"], state["changed"]) == (before, True)


def test_data_already_processed_is_a_no_op_decided_without_dvc(project):
    cfg = cfg_of(project)
    version, commit = data.data_version(cfg), git(project, "rev-parse", "HEAD").strip()
    data.mark_processed(cfg, version, commit)
    shutil.rmtree(project / ".dvc")  # every build's rerun reads git and the marker only, not DVC's repo
    result, code = run_line(cfg)
    assert (code, result["status"], result["data_version"], result["processed_version"]) == \
        (0, "unchanged", version, version)
    assert not (project / ".mlops" / "experiments").exists()


def test_the_processed_head_is_recognised_from_git_and_the_marker_alone(project):
    cfg = cfg_of(project)
    head, version = git(project, "rev-parse", "HEAD").strip(), data.data_version(cfg)
    assert data.processed_head(cfg) is None                      # nothing processed yet
    data.mark_processed(cfg, "dv-0123456789ab", head)
    assert data.processed_head(cfg) is None                      # another version was processed
    data.mark_processed(cfg, version, "0" * 40)
    assert data.processed_head(cfg) == {"data_version": version, "git_commit": head, "processed_version": version}
    add_batch(project, 2, rows=50, commit=False)                 # new data not committed: HEAD still counts
    assert data.processed_head(cfg) == {"data_version": version, "git_commit": head, "processed_version": version}
    (project / "data" / "trips.dvc").write_text("outs: []\n")    # a broken .dvc file committed at HEAD:
    git(project, "commit", "-qam", "broken")                     # the full status must explain it
    assert data.processed_head(cfg) is None
    with pytest.raises(BadInput, match="outs"):
        run_line(cfg)


def test_a_project_without_a_commit_is_refused(tmp_path, project):
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    for name in ("mlops.yaml", "katib", "train.py"):
        src = project / name
        subprocess.run(["cp", "-r", str(src), str(fresh / name)], check=True)
    git(fresh, "init", "-q", "-b", "main")
    dvc(fresh, "init", "-q")
    (fresh / "data" / "trips").mkdir(parents=True)
    (fresh / "data" / "trips" / "a.csv").write_text("x\n1\n")
    dvc(fresh, "add", "-q", "data/trips")
    with pytest.raises(BadInput, match="has no commit yet: commit the .dvc files first"):
        run_line(cfg_of(fresh))


# -- branch pipelines: compared with the base branch ---------------------------------------------------
def test_status_against_a_base_branch(project):
    cfg = cfg_of(project)
    first = git(project, "rev-parse", "HEAD").strip()
    assert data.status(cfg, base=first)["changed_from_base"] is False
    add_batch(project, 2, rows=50, commit=True)
    state = data.status(cfg, base=first)
    assert state["base"] == first and state["base_version"] == data.data_version(cfg, first)
    assert state["changed_from_base"] is True
    with pytest.raises(BadInput, match=r"unknown git revision 'origin/nope' for --base \(fetch it first\)"):
        data.status(cfg, base="origin/nope")


def test_a_base_without_the_dvc_file_has_no_data_version(project):
    git(project, "checkout", "-q", "--orphan", "empty")
    git(project, "rm", "-rq", "--cached", ".")
    git(project, "commit", "-q", "--allow-empty", "-m", "nothing tracked")
    empty = git(project, "rev-parse", "HEAD").strip()
    git(project, "checkout", "-q", "-f", "main")
    state = data.status(cfg_of(project), base=empty)
    assert state["base_version"] is None and state["changed_from_base"] is True


# -- .dvc files and the processed marker as inputs ----------------------------------------------------
def test_a_project_that_is_no_dvc_repository_says_how_to_make_it_one(project):
    shutil.rmtree(project / ".dvc")
    with pytest.raises(BadInput) as caught:
        data.status(cfg_of(project))
    assert str(caught.value) == (f"{project} is not a DVC repository: run `dvc init` there, then track the data "
                                 "with `dvc add data/trips`")


def test_data_outside_data_paths_does_not_count(project):
    cfg = cfg_of(project)
    (project / "notes").mkdir()
    (project / "notes" / "n.txt").write_text("a")
    dvc(project, "add", "-q", "notes")
    (project / "notes" / "n.txt").write_text("changed")   # DVC reports it; the line's data is unchanged
    state = data.status(cfg)
    assert state["uncommitted_changes"] == [] and state["workspace_clean"] is True


def test_an_untracked_path_says_how_to_track_it(project):
    (project / "data" / "trips.dvc").unlink()
    cfg = cfg_of(project)
    with pytest.raises(BadInput) as caught:
        data.read_outs(cfg)
    assert str(caught.value).startswith(f"{cfg.source}: data.paths[0]: data/trips is not tracked by DVC (no "
                                        "data/trips.dvc); run `dvc add data/trips")


def test_a_dvc_file_that_is_a_folder_or_not_text_is_bad_input(project):
    cfg = cfg_of(project)
    dvc_file = project / "data" / "trips.dvc"
    dvc_file.write_bytes(b"\xff\xfe outs")
    with pytest.raises(BadInput) as caught:
        data.read_outs(cfg)
    assert str(caught.value) == "data/trips.dvc: not a UTF-8 text file"
    dvc_file.unlink()
    dvc_file.mkdir()
    with pytest.raises(BadInput) as caught:
        data.read_outs(cfg)
    assert str(caught.value) == "data/trips.dvc: is a directory, expected a .dvc file"


def test_a_revision_without_the_dvc_file_is_bad_input(project):
    cfg = cfg_of(project)
    with pytest.raises(BadInput) as caught:
        data.read_outs(cfg, "HEAD~5")
    assert str(caught.value) == f"{cfg.source}: data.paths[0]: data/trips.dvc does not exist at git revision 'HEAD~5'"


def test_every_tracked_path_counts_in_the_data_version(tmp_path):
    (tmp_path / "mlops.yaml").write_text("project: p\ndata:\n  paths: [data/a, data/BOX/]\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.dvc").write_text(f"outs:\n- md5: {'1' * 32}.dir\n  path: a\n  nfiles: 2\n")
    (tmp_path / "data" / "BOX.dvc").write_text(f"outs:\n- md5: '{'2' * 32}'\n  path: BOX\n  size: 5\n")
    cfg = load_config(tmp_path / "mlops.yaml", environ={})
    assert data.dvc_files(cfg) == ["data/a.dvc", "data/BOX.dvc"]
    assert [(o["path"], o["md5"], o["dvc_file"]) for o in data.read_outs(cfg)] == [
        ("data/a", "1" * 32 + ".dir", "data/a.dvc"), ("data/BOX", "2" * 32, "data/BOX.dvc")]


def test_processed_marker_is_read_as_an_input(project):
    cfg = cfg_of(project)
    assert data.load_processed(cfg) is None
    marker = project / ".mlops" / "data" / "processed.json"
    doc = data.mark_processed(cfg, "dv-0123456789ab", "abc123", experiment="exp-01234567")
    assert json.loads(marker.read_text()) == doc and data.load_processed(cfg) == doc
    assert data.mark_processed(cfg, "dv-0123456789ab", None) and data.load_processed(cfg)["git_commit"] is None
    hint = "processed-data marker (delete it to reprocess)"
    for field, value, message in (
        ("data_version", "dv-XYZ", f"data_version: 'dv-XYZ' is not a data version (dv-<12 hex>); {hint}"),
        ("data_version", "dv-" + "f" * 50, f"data_version: {'dv-' + 'f' * 37!r} is not a data version (dv-<12 hex>); "
                                           f"{hint}"),   # a long value is cut to 40 characters
        ("data_version", None, f"data_version: missing in {hint}"),
        ("data_version", 12, "data_version: expected str, got int"),
        ("git_commit", "not a sha", f"git_commit: 'not a sha' is not a commit id; {hint}"),
        ("git_commit", "abc", f"git_commit: 'abc' is not a commit id; {hint}"),
        ("git_commit", "a" * 70, f"git_commit: {'a' * 40!r} is not a commit id; {hint}"),
        ("git_commit", 7, "git_commit: expected str, got int"),
    ):
        marker.write_text(json.dumps({**doc, field: value}))
        with pytest.raises(BadInput) as caught:
            data.load_processed(cfg)
        assert str(caught.value) == f"{marker}: {message}"  # one line naming the file and the field
    marker.write_text("{not json")
    with pytest.raises(BadInput) as caught:
        data.load_processed(cfg)
    assert str(caught.value).startswith(f"{marker}:1: invalid JSON in processed-data marker")


# -- the whole line on committed data (a tiny Experiment instead of the example's training) ---------
MINI = """\
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: mini
spec:
  objective: {type: minimize, objectiveMetricName: loss}
  algorithm: {algorithmName: grid}
  parallelTrialCount: 1
  parameters:
    - {name: x, parameterType: categorical, feasibleSpace: {list: ["0.5", "0.25"]}}
  trialTemplate:
    primaryContainerName: main
    trialParameters: [{name: x, reference: x}]
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: main
                image: example/trial:1
                command: ["python", "mini.py", "${trialParameters.x}"]
            restartPolicy: Never
"""


def with_mini_experiment(project, behaviour: str = "print('loss=' + sys.argv[1])"):
    (project / "katib" / "mini.py").write_text(f"import sys\n{behaviour}\n")  # trials run in the spec's folder
    (project / "katib" / "experiment.yaml").write_text(MINI)
    return cfg_of(project)


def test_the_line_runs_the_experiment_on_committed_data_and_records_it(project):
    cfg = with_mini_experiment(project)
    version, commit = data.data_version(cfg), git(project, "rev-parse", "HEAD").strip()
    result, code = run_line(cfg)
    assert (code, result["status"], result["engine"], result["phase"]) == (0, "completed", "local", "Succeeded")
    assert (result["data_version"], result["git_commit"], result["processed_version"]) == (version, commit, None)
    assert result["experiment"] == f"mini-{version[3:11]}"
    assert result["best_trial"]["parameters"] == {"x": "0.25"}
    summary = result["diff"]["summary"]
    assert summary["added"] >= 1 and (summary["modified"], summary["deleted"]) == (0, 0)
    assert all(f["path"].startswith("data/trips") and f["change"] == "added" for f in result["diff"]["files"])
    assert result["pushed_files"] > 0 and any((project / ".mlops" / "dvc-remote").rglob("*"))
    assert result["notification"]["via"] == "log" and "mini-" in result["notification"]["text"]
    status_file = project / ".mlops" / "experiments" / result["experiment"] / "experiment.json"
    assert result["status_file"] == str(status_file) and status_file.is_file()
    marker = data.load_processed(cfg)
    assert (marker["data_version"], marker["git_commit"], marker["experiment"]) == \
        (version, commit, result["experiment"])

    again, code = run_line(cfg)
    assert (code, again["status"]) == (0, "unchanged")
    from pyhelpers.line.data_line import run_data_line

    forced, code = run_data_line(cfg, force=True)
    assert (code, forced["status"], forced["processed_version"]) == (0, "completed", version)
    assert forced["pushed_files"] == 0 and forced["diff"]["summary"]["added"] == 0  # since the processed commit


def test_a_failed_experiment_is_not_recorded_as_processed(project):
    cfg = with_mini_experiment(project, "sys.exit(3)")
    result, code = run_line(cfg)
    assert (code, result["status"], result["best_trial"]) == (1, "failed", None)
    assert data.load_processed(cfg) is None


def test_an_undelivered_notice_does_not_undo_the_experiment(project, monkeypatch):
    from tests.fakes.slack import SlackServer

    cfg = with_mini_experiment(project)
    with SlackServer() as slack:
        slack.responses = [(404, {}, "no_service")]
        monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
        monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.url + "/services/T0/B0/LINE-CANARY")
        result, code = run_line(cfg)
    assert (code, result["status"]) == (0, "completed")
    assert result["notification"]["error"].startswith("Slack webhook failed: HTTP 404")
    assert "LINE-CANARY" not in json.dumps(result)
    assert data.load_processed(cfg)["data_version"] == result["data_version"]


@pytest.mark.parametrize(("removed", "change"), [(("data/trips",), "deleted"),
                                                 (("data/trips", ".dvc/cache"), "not in cache")])  # a fresh clone
def test_workspace_without_the_data_pulls_it_from_the_remote(project, removed, change):
    cfg = with_mini_experiment(project)
    data.push(cfg)
    for path in removed:
        shutil.rmtree(project / path)
    assert {c["change"] for c in data.status(cfg)["uncommitted_changes"]} == {change}
    result, code = run_line(cfg)
    assert (code, result["status"]) == (0, "completed")
    assert any((project / "data" / "trips").iterdir())
