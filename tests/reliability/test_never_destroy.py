"""Never destroy what we did not create: DVC operations that can touch the work tree first check that
the data exists where it will come from (the DVC cache or the remote), and refuse otherwise.

Before this check, a wrong hash committed in a .dvc file made line 1 take "not in cache" for "the
workspace lacks the data", run `dvc pull`, and its checkout deleted data/trips/.
"""

from __future__ import annotations

import shutil

from tests.conftest import dvc, git
from tests.reliability.conftest import tree_snapshot


def _commit_wrong_hash(project) -> None:
    dvc_file = project / "data" / "trips.dvc"
    text = dvc_file.read_text()
    start = text.index("md5: ") + len("md5: ")
    dvc_file.write_text(text[:start] + "0" * 32 + text[start + 32:])  # a well-formed hash of nothing we have
    git(project, "commit", "-qam", "a wrong hash")


def test_a_wrong_hash_never_deletes_the_work_tree_data(mlops, project):
    data_before = tree_snapshot(project / "data" / "trips")
    assert data_before
    _commit_wrong_hash(project)

    for args in (["line", "data", "--local"], ["data", "pull"]):
        r = mlops(*args, cwd=project)
        assert r.code == 2, (args, r)
        line = r.err.strip().splitlines()[-1]
        assert "data/trips.dvc" in line and "neither in the DVC cache nor on remote" in line, line
        assert "refusing to pull" in line and "Traceback" not in r.err
        assert tree_snapshot(project / "data" / "trips") == data_before, f"{args} touched the work tree's data"
    assert not (project / ".mlops" / "experiments").exists()  # the line stopped before the Experiment


def test_a_folder_with_a_file_missing_everywhere_is_refused(mlops, project):
    """The .dir manifest is there but one of its files is in neither the cache nor the remote."""
    cache = project / ".dvc" / "cache" / "files" / "md5"
    files = [p for p in cache.rglob("*") if p.is_file() and not p.name.endswith(".dir")]
    assert files
    for f in files:
        f.unlink()  # the workspace copy is all there is
    shutil.rmtree(project / "data" / "trips")
    (project / "data" / "trips").mkdir()
    (project / "data" / "trips" / "mine.csv").write_text("a user's file DVC does not know\n")
    r = mlops("data", "pull", cwd=project)
    assert r.code == 2 and "neither in the DVC cache nor on remote" in r.err, r
    assert (project / "data" / "trips" / "mine.csv").read_text() == "a user's file DVC does not know\n"


def test_data_that_is_on_the_remote_is_still_pulled(mlops, project):
    """The check refuses only what is missing everywhere: data pushed earlier comes back."""
    assert mlops("data", "push", cwd=project).code == 0
    before = tree_snapshot(project / "data" / "trips")
    shutil.rmtree(project / "data" / "trips")
    shutil.rmtree(project / ".dvc" / "cache")
    r = mlops("data", "pull", "--json", cwd=project)
    assert r.code == 0, r
    assert tree_snapshot(project / "data" / "trips") == before
    dvc(project, "status")  # DVC itself agrees the workspace matches
