"""The dataset registry: original ids, 2018 names, 2015 aliases, UEA entries, lookups."""

import csv
from pathlib import Path

import pytest

from utils.constants import DATASET_REGISTRY, DATASETS_BY_ID, resolve_dataset
from utils.errors import DatasetNotFoundError

ORIGINAL_CONSTANTS = (
    Path(__file__).resolve().parents[2] / "shared" / "reference" / "original_dataset_constants.csv"
)


def test_registry_has_128_ucr_and_30_uea_datasets():
    archives = [record.archive for record in DATASET_REGISTRY.values()]
    assert archives.count("UCR") == 128
    assert archives.count("UEA") == 30
    assert sorted(DATASETS_BY_ID) == list(range(128))
    assert all(record.id is None for record in DATASET_REGISTRY.values() if record.archive == "UEA")


@pytest.mark.skipif(not ORIGINAL_CONSTANTS.is_file(), reason="shared reference not present")
def test_original_ids_names_lengths_and_classes_match_the_original_constants():
    with open(ORIGINAL_CONSTANTS) as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 128
    for row in rows:
        record = resolve_dataset(row["name"])
        assert record.id == int(row["id"]), row
        assert record.n_classes == int(row["n_classes"]), row
        assert record.original_length == int(row["max_len"]), row


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("50words", "FiftyWords"),
        ("Cricket_X", "CricketX"),
        ("Gun_Point", "GunPoint"),
        ("Lighting7", "Lightning7"),
        ("uWaveGestureLibrary_Z", "UWaveGestureLibraryZ"),
        ("NonInvasiveFatalECG_Thorax1", "NonInvasiveFetalECGThorax1"),
        ("SonyAIBORobotSurfaceII", "SonyAIBORobotSurface2"),
        ("synthetic_control", "SyntheticControl"),
        ("gunpoint", "GunPoint"),
        ("pems-sf", "PEMS-SF"),
        (51, "GunPoint"),
        ("7", "FiftyWords"),
    ],
)
def test_aliases_and_ids_resolve_to_2018_names(alias, name):
    assert resolve_dataset(alias).name == name


def test_variable_length_sets_record_both_lengths():
    record = resolve_dataset("AllGestureWiimoteX")
    assert not record.equal_length
    assert record.length == 385  # longest real series in the archive files
    assert record.original_length == 500  # the padded width the original code used
    assert record.min_length < record.length


def test_unknown_name_suggests_close_names():
    with pytest.raises(DatasetNotFoundError, match="did you mean GunPoint"):
        resolve_dataset("GunPiont")


def test_id_outside_the_original_range_is_rejected():
    with pytest.raises(DatasetNotFoundError, match="0 to 127"):
        resolve_dataset(128)
