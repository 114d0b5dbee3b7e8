"""Experiment names: what Katib accepts, names derived from data versions, folders kept in state.

Katib's admission webhook (pkg/webhook/v1beta1/experiment/validator/validator.go) refuses names
over 40 characters or not matching ``^[a-z]([-a-z0-9]*[a-z0-9])?``. Expected names below are
written out by hand, never computed with the function under test.
"""

from __future__ import annotations

import re

import pytest

from pyhelpers.errors import BadInput

naming = pytest.importorskip("pyhelpers.experiment.naming", reason="pyhelpers/experiment/naming.py not landed yet")

KATIB = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")  # validator.go, written out independently
VERSION = "dv-0123456789ab"


@pytest.mark.parametrize(("base", "version", "name"), [
    ("taxi-fare", VERSION, "taxi-fare-01234567"),
    ("taxi-fare", "DV-ABCDEF012345", "taxi-fare-abcdef01"),      # lower-cased, prefix dropped
    ("taxi-fare", "abc", "taxi-fare-abc"),                       # a short version is kept whole
    ("taxi-fare", "d.v_1-2/3", "taxi-fare-dv123"),               # only letters and digits of the version
    ("Taxi_Fare", VERSION, "taxi-fare-01234567"),
    ("taxi--fare", VERSION, "taxi-fare-01234567"),
    ("2024-taxi", VERSION, "taxi-01234567"),                     # must start with a letter
    ("-taxi", VERSION, "taxi-01234567"),
    ("2024", VERSION, "experiment-01234567"),
    ("", VERSION, "experiment-01234567"),
    ("a" * 60, VERSION, "a" * 31 + "-01234567"),                 # 40 characters exactly
    ("a" * 31, VERSION, "a" * 31 + "-01234567"),
    ("a" * 30, VERSION, "a" * 30 + "-01234567"),                 # 39: nothing cut
    ("x" * 30 + "-yyyy", VERSION, "x" * 30 + "-01234567"),       # cut at a '-': no '--'
    ("-" * 35 + "x", VERSION, "x-01234567"),
])
def test_name_from_base_and_data_version(base, version, name):
    assert naming.experiment_name(base, version) == name


def test_a_version_without_letters_or_digits_gets_a_stable_hash_suffix():
    assert naming.experiment_name("taxi", "---") == "taxi-cb3f91d5"   # sha256("---")[:8]
    assert naming.experiment_name("taxi", "dv-") == "taxi-58c554ca"   # sha256("dv-")[:8]


@pytest.mark.parametrize("base", ["m", "taxi-fare-hyperparameter-search-for-the-big-model", "Ünïcode Ñame",
                                  "a" * 100, "9" * 50 + "z", "UPPER-CASE-", "x_" * 30])
def test_every_derived_name_is_one_katib_accepts(base):
    name = naming.experiment_name(base, VERSION)
    assert len(name) <= 40 and KATIB.match(name), name
    assert naming.katib_name_problem(name) is None


@pytest.mark.parametrize(("name", "problem"), [
    ("", "an Experiment name is required"),
    (None, "an Experiment name is required"),
    ("a" * 41, f"{'a' * 41!r} is longer than 40 characters (Katib's limit for Experiment names)"),
    ("Taxi", "'Taxi' is not a valid Katib Experiment name: lowercase letters, digits and '-', starting with a "
             "letter and ending with a letter or digit"),
    ("1taxi", None),
    ("taxi-", None),
    ("../mlflow", None),
    ("taxi_fare", None),
])
def test_katib_name_problems(name, problem):
    found = naming.katib_name_problem(name)
    if problem is None:
        assert found is not None and "not a valid Katib Experiment name" in found
    else:
        assert found == problem


@pytest.mark.parametrize("name", ["a", "taxi-fare", "a" * 40, "t-1", "a1-b2"])
def test_names_katib_accepts(name):
    assert naming.katib_name_problem(name) is None
    assert naming.check_name(name, "metadata.name") == name


def test_check_name_names_the_field():
    with pytest.raises(BadInput) as caught:
        naming.check_name("../../data", "metadata.name")
    assert str(caught.value).startswith("metadata.name: '../../data' is not a valid Katib Experiment name")
    with pytest.raises(BadInput, match=r"^--name: an Experiment name is required"):
        naming.check_name("")


def test_experiment_folders_stay_in_the_state_folder(tmp_path):
    state = tmp_path / ".mlops"
    assert naming.experiment_dir(state, "taxi-01234567") == state / "experiments" / "taxi-01234567"
    assert naming.experiment_dir(state, "0abc") == state / "experiments" / "0abc"   # an existing DNS-1123 folder
    assert naming.experiment_dir(state, "a" * 63) == state / "experiments" / ("a" * 63)
    for bad in ("../mlflow", "..", "a/b", "", "A", "a" * 64, "-a", None):
        with pytest.raises(BadInput) as caught:
            naming.experiment_dir(state, bad)
        assert str(caught.value) == (f"experiment name {bad!r} is not a DNS-1123 name (lowercase letters, digits, "
                                     "'-'), so it cannot name a folder under the state folder")


def test_a_symlinked_experiment_folder_pointing_out_is_refused(tmp_path):
    state = tmp_path / ".mlops"
    (state / "experiments").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (state / "experiments" / "escape").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(BadInput, match="is outside .*; refusing to use it"):
        naming.experiment_dir(state, "escape")
