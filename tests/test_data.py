"""Data versions and diffs on a real git + DVC repository; push/pull through a local remote."""

import hashlib
import shutil

from tests.conftest import add_batch, git


def test_data_version_is_stable_and_follows_dvc_hashes(mlops, project):
    v1 = mlops("data", "version", cwd=project).out.strip()
    assert v1.startswith("dv-") and len(v1) == 15
    assert mlops("data", "version", cwd=project).out.strip() == v1
    # the same data in a different repository has the same version
    other = shutil.copytree(project, project.parent / "copy", ignore=shutil.ignore_patterns(".git"))
    git(other, "init", "-q")
    git(other, "add", "-A")
    git(other, "-c", "user.name=x", "-c", "user.email=x@y", "commit", "-qm", "same data, other history")
    assert mlops("data", "version", cwd=other).out.strip() == v1
    add_batch(project, 2)
    v2 = mlops("data", "version", cwd=project).out.strip()
    assert v2 != v1
    assert mlops("data", "version", "--rev", "HEAD~1", cwd=project).out.strip() == v1


def test_diff_between_revisions_lists_files_with_sizes_and_md5(mlops, project):
    add_batch(project, 2)
    r = mlops("data", "diff", "--json", cwd=project)
    assert r.code == 0, r
    doc = r.json()
    assert doc["summary"] == {"added": 1, "modified": 0, "deleted": 0, "renamed": 0}
    (row,) = doc["files"]
    csv = project / "data" / "trips" / "batch-0002.csv"
    assert row["path"] == "data/trips/batch-0002.csv" and row["change"] == "added"
    assert row["size"] == csv.stat().st_size
    assert row["md5"] == hashlib.md5(csv.read_bytes()).hexdigest()
    assert doc["from_version"] != doc["to_version"]


def test_diff_modified_and_deleted(mlops, project):
    add_batch(project, 2)
    csv1 = project / "data" / "trips" / "batch-0001.csv"
    csv1.write_text(csv1.read_text() + "2024-01-01 00:00:00,1,1,1,1.0,5.0,card,9.0\n")
    (project / "data" / "trips" / "batch-0002.csv").unlink()
    r = mlops("data", "diff", "HEAD", "workspace", "--json", cwd=project)
    assert r.code == 0, r
    changes = {f["path"]: f["change"] for f in r.json()["files"]}
    assert changes == {"data/trips/batch-0001.csv": "modified", "data/trips/batch-0002.csv": "deleted"}


def test_status_reports_changes_against_processed_version(mlops, project):
    doc = mlops("data", "status", "--json", cwd=project).json()
    assert doc["changed"] is True and doc["processed_version"] is None and doc["workspace_clean"] is True
    r = mlops("data", "diff", "--since-processed", "--json", cwd=project)
    assert r.json()["summary"]["added"] == 1  # nothing processed yet: everything is new
    csv = project / "data" / "trips" / "batch-0001.csv"
    csv.write_text(csv.read_text()[:-30])
    doc = mlops("data", "status", "--json", cwd=project).json()
    assert doc["workspace_clean"] is False and doc["uncommitted_changes"][0]["path"] == "data/trips"


def test_push_pull_round_trip_with_checksums(mlops, project):
    r = mlops("data", "push", "--json", cwd=project)
    assert r.code == 0 and r.json()["pushed_files"] >= 2, r
    assert mlops("data", "push", "--json", cwd=project).json()["changed"] is False
    original = hashlib.md5((project / "data/trips/batch-0001.csv").read_bytes()).hexdigest()
    shutil.rmtree(project / "data" / "trips")
    shutil.rmtree(project / ".dvc" / "cache")
    r = mlops("data", "pull", "--json", cwd=project)
    assert r.code == 0 and r.json()["fetched_files"] >= 2, r
    assert hashlib.md5((project / "data/trips/batch-0001.csv").read_bytes()).hexdigest() == original
    # the remote's location stays out of git: it is in .dvc/config.local
    assert "dvc-remote" not in (project / ".dvc" / "config").read_text()
    assert git(project, "status", "--porcelain").strip() == ""


def test_bad_revisions_and_untracked_paths(mlops, project):
    r = mlops("data", "diff", "nosuchrev", cwd=project)
    assert r.code == 2 and "unknown git revision 'nosuchrev'" in r.err, r
    (project / "mlops.yaml").write_text((project / "mlops.yaml").read_text().replace("[data/trips]", "[data/other]"))
    r = mlops("data", "version", "--rev", "workspace", cwd=project)
    assert r.code == 2 and "data.paths[0]: data/other is not tracked by DVC" in r.err, r


def test_status_against_a_base_branch(mlops, project):
    git(project, "branch", "base")
    doc = mlops("data", "status", "--base", "base", "--json", cwd=project).json()
    assert doc["changed_from_base"] is False and doc["base_version"] == doc["data_version"]
    add_batch(project, 2)
    doc = mlops("data", "status", "--base", "base", "--json", cwd=project).json()
    assert doc["changed_from_base"] is True and doc["base_version"] != doc["data_version"]
    r = mlops("data", "status", "--base", "origin/nope", cwd=project)
    assert r.code == 2 and "unknown git revision 'origin/nope'" in r.err, r
