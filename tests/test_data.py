"""load_dataset on the real bundled datasets: shapes, labels, formats, options, data folders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from utils import load_dataset
from utils.constants import resolve_dataset
from utils.data import BUNDLED_DATA_DIR, DATA_DIR_ENV, read_split_file
from utils.preprocessing import true_lengths

BUNDLED = [
    "ItalyPowerDemand",
    "Chinatown",
    "GunPoint",
    "Coffee",
    "ECG200",
    "SmoothSubspace",
    "PickupGestureWiimoteZ",
    "DodgerLoopGame",
    "BasicMotions",
    "JapaneseVowels",
]
REPOSITORY = Path(__file__).resolve().parent.parent


def _file_lengths(path: Path, file_format: str, padding: bool) -> np.ndarray:
    return true_lengths(read_split_file(path, file_format).values, padding)


@pytest.mark.parametrize("name", BUNDLED)
def test_every_bundled_dataset_loads_with_the_registry_figures(name):
    data = load_dataset(name)
    record = resolve_dataset(name)
    assert data.name == record.name and data.dataset_id == record.id
    assert data.X_train.dtype == np.float32 and data.X_test.dtype == np.float32
    assert data.y_train.dtype == np.int64 and data.lengths_test.dtype == np.int64
    assert data.X_train.shape == (record.n_train, record.n_channels, data.lengths_train.max())
    assert data.X_test.shape == (record.n_test, record.n_channels, data.n_timepoints)
    assert data.n_classes == record.n_classes
    assert set(np.unique(data.y_train)) == set(range(record.n_classes))
    # lengths as the files have them (before test series are cut to the training length)
    padding = not record.equal_length
    in_files = np.concatenate(
        [_file_lengths(path, data.file_format, padding) for path in data.source_files]
    )
    assert in_files.max() == record.length
    assert in_files.min() == record.min_length
    assert data.equal_length == record.equal_length
    assert data.has_missing == record.has_missing


def test_gunpoint_tsv_and_ts_give_the_same_arrays_and_labels():
    from_tsv = load_dataset("GunPoint", file_format="tsv")
    from_ts = load_dataset("GunPoint", file_format="ts")
    assert from_tsv.source_files[0].suffix == ".tsv" and from_ts.source_files[0].suffix == ".ts"
    np.testing.assert_allclose(from_tsv.X_train, from_ts.X_train, atol=1e-6)
    np.testing.assert_allclose(from_tsv.X_test, from_ts.X_test, atol=1e-6)
    np.testing.assert_array_equal(from_tsv.y_train, from_ts.y_train)
    np.testing.assert_array_equal(from_tsv.y_test, from_ts.y_test)
    np.testing.assert_array_equal(from_tsv.classes, from_ts.classes)


def test_labels_are_encoded_on_train_and_decode_to_the_file_labels():
    ecg = load_dataset("ECG200")
    assert ecg.classes.tolist() == [-1, 1]
    raw_test = read_split_file(ecg.source_files[1], "tsv").labels.astype(float).astype(int)
    np.testing.assert_array_equal(ecg.decode_labels(ecg.y_test), raw_test)
    motions = load_dataset("BasicMotions")
    # the file's capitalisation is kept (aeon's reader lower-cases labels)
    assert motions.classes.tolist() == ["Badminton", "Running", "Standing", "Walking"]


@pytest.mark.parametrize("reference", [51, "51", "gun_point", "GUNPOINT"])
def test_ids_and_aliases_load_the_same_dataset(reference):
    assert load_dataset(reference).name == "GunPoint"


def test_paths_to_a_folder_or_a_train_file(bundled_copy):
    folder = bundled_copy("Coffee")
    by_folder = load_dataset(folder)
    by_file = load_dataset(str(folder / "Coffee_TRAIN.tsv"))
    assert by_folder.source_files == (folder / "Coffee_TRAIN.tsv", folder / "Coffee_TEST.tsv")
    np.testing.assert_array_equal(by_folder.X_test, by_file.X_test)
    assert by_file.dataset_id == 29


def test_data_dir_argument_then_environment_then_repository(bundled_copy, monkeypatch, tmp_path):
    folder = bundled_copy("Chinatown")
    monkeypatch.chdir(tmp_path)  # the default must not depend on the working directory
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    assert load_dataset("Chinatown").source_files[0].parent == BUNDLED_DATA_DIR / "Chinatown"
    monkeypatch.setenv(DATA_DIR_ENV, str(folder.parent))
    assert load_dataset("Chinatown").source_files[0].parent == folder
    other = tmp_path / "other"
    (other / "Chinatown").mkdir(parents=True)
    for path in folder.iterdir():
        (other / "Chinatown" / path.name).write_bytes(path.read_bytes())
    assert load_dataset("Chinatown", data_dir=other).source_files[0].parent == other / "Chinatown"


def test_sample_normalisation_uses_each_series_true_length():
    data = load_dataset("PickupGestureWiimoteZ", normalize="sample")
    for case, length in enumerate(data.lengths_train):
        series = data.X_train[case, 0].astype(np.float64)
        assert abs(series[:length].mean()) < 1e-5
        assert abs(series[:length].std() - 1.0) < 1e-4
        assert not series[length:].any()  # zero padding after the true length


def test_dataset_normalisation_uses_train_statistics_per_channel():
    raw = load_dataset("BasicMotions", normalize="none")
    scaled = load_dataset("BasicMotions", normalize="dataset")
    train = raw.X_train.astype(np.float64)
    mean = train.mean(axis=(0, 2))
    std = train.std(axis=(0, 2))
    np.testing.assert_allclose(scaled.X_train.mean(axis=(0, 2)), 0.0, atol=1e-5)
    expected_test = (raw.X_test - mean[None, :, None]) / (std[None, :, None] + 1e-8)
    np.testing.assert_allclose(scaled.X_test, expected_test, rtol=1e-4, atol=1e-4)
    assert abs(scaled.X_test.mean()) > 1e-3  # test data keep their own offset


def test_no_normalisation_keeps_the_file_values():
    smooth = load_dataset("SmoothSubspace", normalize="none")
    raw = read_split_file(smooth.source_files[0], "tsv").values
    np.testing.assert_allclose(smooth.X_train, raw.astype(np.float32))


def test_missing_values_zero_or_interpolated():
    name = "DodgerLoopGame"
    zero = load_dataset(name, normalize="none", missing="zero")
    line = load_dataset(name, normalize="none", missing="interpolate")
    raw = read_split_file(zero.source_files[1], "tsv").values[:, 0]
    gaps = np.isnan(raw)
    assert gaps.any()
    assert not zero.X_test[:, 0][gaps].any()
    np.testing.assert_allclose(line.X_test[:, 0][~gaps], raw[~gaps], rtol=1e-6)
    case, step = np.argwhere(gaps)[0]
    known = np.nonzero(~gaps[case])[0]
    before, after = known[known < step].max(), known[known > step].min()
    expected = np.interp(step, [before, after], raw[case, [before, after]])
    assert line.X_test[case, 0, step] == pytest.approx(expected, rel=1e-5)


def test_test_series_longer_than_training_are_truncated_or_resampled():
    truncated = load_dataset("JapaneseVowels", normalize="none")
    resampled = load_dataset("JapaneseVowels", normalize="none", longer_test="resample")
    raw = read_split_file(truncated.source_files[1], "ts").values
    lengths = true_lengths(raw, True)
    width = truncated.n_timepoints
    longest = int(np.argmax(lengths))
    assert lengths[longest] > width == truncated.lengths_train.max()
    assert truncated.lengths_test.max() == width
    np.testing.assert_allclose(truncated.X_test[longest], raw[longest, :, :width], rtol=1e-6)
    end = lengths[longest] - 1
    np.testing.assert_allclose(resampled.X_test[longest, :, 0], raw[longest, :, 0], rtol=1e-6)
    np.testing.assert_allclose(resampled.X_test[longest, :, -1], raw[longest, :, end], rtol=1e-6)
    assert not np.allclose(resampled.X_test[longest], truncated.X_test[longest])


def test_original_2015_comma_layout_without_extension(tmp_path):
    reference = load_dataset("GunPoint")
    for split in ("TRAIN", "TEST"):
        text = (BUNDLED_DATA_DIR / "GunPoint" / f"GunPoint_{split}.tsv").read_text()
        # the 2015 name, flat in the data folder, comma-separated, a trailing comma on each line
        (tmp_path / f"Gun_Point_{split}").write_text(text.replace("\t", ",").replace("\n", ",\n"))
    loaded = load_dataset("Gun_Point", data_dir=tmp_path)
    assert loaded.file_format == "csv" and loaded.name == "GunPoint"
    np.testing.assert_array_equal(loaded.X_train, reference.X_train)
    np.testing.assert_array_equal(loaded.y_test, reference.y_test)


def test_whitespace_separated_txt_with_nan_padding(bundled_copy):
    reference = load_dataset("PickupGestureWiimoteZ")
    folder = bundled_copy("PickupGestureWiimoteZ")
    for split in ("TRAIN", "TEST"):
        tsv = folder / f"PickupGestureWiimoteZ_{split}.tsv"
        rows = [line.split("\t") for line in tsv.read_text().splitlines()]
        lines = ["  ".join(f"{float(cell):.8e}" for cell in row) for row in rows]
        (folder / f"PickupGestureWiimoteZ_{split}.txt").write_text("\n".join(lines) + "\n")
        tsv.unlink()
    loaded = load_dataset(folder)
    assert loaded.file_format == "csv"
    np.testing.assert_allclose(loaded.X_train, reference.X_train, atol=1e-6)
    np.testing.assert_array_equal(loaded.lengths_test, reference.lengths_test)


def _write_arff(path: Path, values: np.ndarray, labels: np.ndarray, classes) -> None:
    """WEKA arff as the UEA archive writes it (relational attribute when multivariate)."""
    n_channels, width = values.shape[1:]
    header = ["@relation test"]
    attributes = [f"@attribute t{i} numeric" for i in range(width)]
    if n_channels == 1:
        header += attributes
        rows = [",".join(map(repr, case[0].tolist())) + f",{label}" for case, label in
                zip(values, labels, strict=True)]
    else:
        header += ["@attribute series relational", *attributes, "@end series"]
        rows = [
            "'" + "\\n".join(",".join(map(repr, channel.tolist())) for channel in case)
            + f"',{label}"
            for case, label in zip(values, labels, strict=True)
        ]
    header.append(f"@attribute target {{{','.join(map(str, classes))}}}")
    path.write_text("\n".join([*header, "@data", *rows]) + "\n")


@pytest.mark.parametrize("name", ["GunPoint", "BasicMotions"])
def test_arff_univariate_and_relational_multivariate(name, tmp_path):
    reference = load_dataset(name, normalize="none")
    folder = tmp_path / name
    folder.mkdir()
    for split, values, y in (
        ("TRAIN", reference.X_train, reference.y_train),
        ("TEST", reference.X_test, reference.y_test),
    ):
        labels = reference.decode_labels(y)
        _write_arff(folder / f"{name}_{split}.arff", values, labels, reference.classes)
    loaded = load_dataset(folder, normalize="none")
    assert loaded.file_format == "arff"
    np.testing.assert_allclose(loaded.X_test, reference.X_test, atol=1e-6)
    np.testing.assert_array_equal(loaded.decode_labels(loaded.y_test),
                                  reference.decode_labels(reference.y_test))


def test_npy_folder_of_the_mlstm_fcn_layout(tmp_path):
    reference = load_dataset("BasicMotions", normalize="none")
    folder = tmp_path / "motions"
    folder.mkdir()
    np.save(folder / "X_train.npy", reference.X_train)
    np.save(folder / "y_train.npy", reference.decode_labels(reference.y_train)[:, None])
    np.save(folder / "X_test.npy", reference.X_test)
    np.save(folder / "y_test.npy", reference.decode_labels(reference.y_test))
    loaded = load_dataset(folder, normalize="none")
    assert loaded.file_format == "npy" and loaded.dataset_id is None
    np.testing.assert_array_equal(loaded.X_train, reference.X_train)
    np.testing.assert_array_equal(loaded.y_test, reference.y_test)


def test_importing_the_data_layer_does_not_import_keras():
    code = (
        "import sys, utils.data, utils.constants, utils.preprocessing;"
        "from utils import load_dataset;"
        "bad = [m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPOSITORY, check=True)
