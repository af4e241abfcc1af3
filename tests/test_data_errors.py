"""Every kind of bad input raises one of the project's errors naming the file and the problem.

Each case starts from a real bundled dataset copied to a temporary folder and breaks one thing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from utils import ConfigurationError, DatasetError, DatasetNotFoundError, load_dataset


def _edit_lines(path: Path, edit) -> None:
    lines = path.read_text().splitlines()
    edit(lines)
    path.write_text("\n".join(lines) + "\n")


def _set_cell(lines: list[str], line: int, column: int, text: str, separator="\t") -> None:
    cells = lines[line - 1].split(separator)
    cells[column - 1] = text
    lines[line - 1] = separator.join(cells)


@pytest.fixture
def gunpoint(bundled_copy) -> Path:
    return bundled_copy("GunPoint", ".tsv")


def test_empty_file(gunpoint):
    (gunpoint / "GunPoint_TEST.tsv").write_text("")
    with pytest.raises(DatasetError, match=r"GunPoint_TEST\.tsv: the file is empty"):
        load_dataset(gunpoint)


def test_header_row_reports_line_and_column(gunpoint):
    def add_header(lines):
        lines.insert(0, "\t".join(["label", *(f"t{i}" for i in range(150))]))

    _edit_lines(gunpoint / "GunPoint_TRAIN.tsv", add_header)
    with pytest.raises(DatasetError, match=r"GunPoint_TRAIN\.tsv, line 1, column 2: 't0' is not "
                       r"a number \(a header row\?"):
        load_dataset(gunpoint)


@pytest.mark.parametrize(
    ("split", "line", "column", "text", "message"),
    [
        pytest.param("TEST", 3, 5, "0.1x", r", line 3, column 5: '0\.1x' is not a number$",
                     id="non-numeric cell"),
        pytest.param("TEST", 7, 10, "inf", r", line 7, column 10: infinite value at time step 9",
                     id="infinite value"),
        pytest.param("TEST", 5, 1, "7", r": test label\(s\) 7 never appear in the training set "
                     r".*training labels: 1, 2\)", id="test label unseen in training"),
    ],
)
def test_one_bad_cell_is_reported_with_its_place(gunpoint, split, line, column, text, message):
    path = gunpoint / f"GunPoint_{split}.tsv"
    _edit_lines(path, lambda lines: _set_cell(lines, line, column, text))
    with pytest.raises(DatasetError, match=rf"GunPoint_{split}\.tsv" + message):
        load_dataset(gunpoint)


@pytest.mark.parametrize(("change", "fields"), [(-1, 150), (1, 152)])
def test_ragged_rows_in_a_comma_file(tmp_path, gunpoint, change, fields):
    for split in ("TRAIN", "TEST"):
        text = (gunpoint / f"GunPoint_{split}.tsv").read_text().replace("\t", ",")
        (tmp_path / f"GunPoint_{split}").write_text(text)

    def change_row_length(lines):
        lines[3] = lines[3].rsplit(",", 1)[0] if change < 0 else lines[3] + ",0.5"

    _edit_lines(tmp_path / "GunPoint_TRAIN", change_row_length)
    with pytest.raises(DatasetError, match=rf"GunPoint_TRAIN, line 4: {fields} fields where "
                       r"line 1 has 151"):
        load_dataset("GunPoint", data_dir=tmp_path)


def test_line_numbers_count_blank_lines(gunpoint):
    def blank_lines_then_bad_cell(lines):
        lines.insert(0, "")
        lines.insert(3, "")
        _set_cell(lines, 6, 4, "1,5")

    _edit_lines(gunpoint / "GunPoint_TRAIN.tsv", blank_lines_then_bad_cell)
    with pytest.raises(DatasetError, match=r"GunPoint_TRAIN\.tsv, line 6, column 4: '1,5'"):
        load_dataset(gunpoint)


def test_all_nan_row(gunpoint):
    def blank_case(lines):
        label = lines[1].split("\t")[0]
        lines[1] = "\t".join([label] + ["NaN"] * 150)

    _edit_lines(gunpoint / "GunPoint_TRAIN.tsv", blank_case)
    with pytest.raises(DatasetError, match=r"GunPoint_TRAIN\.tsv, line 2: the series has no "
                       r"values \(all NaN\)"):
        load_dataset(gunpoint)


def test_train_and_test_with_different_channel_counts(tmp_path):
    motions = load_dataset("BasicMotions", normalize="none")
    folder = tmp_path / "mixed"
    folder.mkdir()
    np.save(folder / "X_train.npy", motions.X_train)
    np.save(folder / "y_train.npy", motions.y_train)
    np.save(folder / "X_test.npy", motions.X_test[:, :3])
    np.save(folder / "y_test.npy", motions.y_test)
    with pytest.raises(DatasetError, match=r"X_test\.npy: 3 channel\(s\) but the training file "
                       r".*X_train\.npy has 6"):
        load_dataset(folder)


def test_training_set_with_a_single_class(gunpoint):
    def one_class(lines):
        for index in range(len(lines)):
            _set_cell(lines, index + 1, 1, "1")

    _edit_lines(gunpoint / "GunPoint_TRAIN.tsv", one_class)
    with pytest.raises(DatasetError, match=r"GunPoint_TRAIN\.tsv: the training set has a single "
                       r"class"):
        load_dataset(gunpoint)


def test_ts_header_that_contradicts_its_data(bundled_copy):
    folder = bundled_copy("GunPoint", ".ts")
    path = folder / "GunPoint_TRAIN.ts"
    lines = path.read_text().splitlines()
    first_case = lines.index("@data") + 1
    values, label = lines[first_case + 2].rsplit(":", 1)
    lines[first_case + 2] = ",".join(values.split(",")[:-5]) + ":" + label
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=rf"GunPoint_TRAIN\.ts, line {first_case + 3}: 145 "
                       r"values per dimension, but the header says @equalLength true"):
        load_dataset(folder)


def test_ts_dimensions_that_contradict_the_header(bundled_copy):
    folder = bundled_copy("BasicMotions")
    path = folder / "BasicMotions_TEST.ts"
    text = path.read_text().replace("@dimensions 6", "@dimensions 5")
    path.write_text(text)
    with pytest.raises(DatasetError, match=r"BasicMotions_TEST\.ts, line \d+: 6 dimension\(s\) "
                       r"but the header says @dimensions 5"):
        load_dataset(folder)


def test_unknown_dataset_name_suggests_close_names():
    with pytest.raises(DatasetNotFoundError, match=r"'ItalyPowerDemnd' is neither a dataset of "
                       r"the registry nor a folder .* Did you mean ItalyPowerDemand\?"):
        load_dataset("ItalyPowerDemnd")


def test_registered_dataset_not_on_disk_says_where_and_how(tmp_path):
    with pytest.raises(DatasetNotFoundError) as raised:
        load_dataset("Adiac", data_dir=tmp_path)
    message = str(raised.value)
    assert "looked for Adiac_TRAIN" in message and str(tmp_path / "Adiac") in message
    assert "https://www.cs.ucr.edu/~eamonn/time_series_data_2018/" in message
    assert "https://timeseriesclassification.com" in message
    assert "python utils/extract_all_datasets.py ARCHIVE" in message


def test_missing_test_split(gunpoint):
    (gunpoint / "GunPoint_TEST.tsv").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"found .*GunPoint_TRAIN\.tsv but not its test "
                       r"split .*GunPoint_TEST\.tsv"):
        load_dataset(gunpoint)


def test_npy_holding_python_objects(tmp_path):
    folder = tmp_path / "objects"
    folder.mkdir()
    cases = np.empty(2, dtype=object)
    cases[0], cases[1] = np.zeros((1, 5)), np.zeros((1, 7))
    np.save(folder / "X_train.npy", cases, allow_pickle=True)
    for name in ("y_train.npy", "X_test.npy", "y_test.npy"):
        np.save(folder / name, np.zeros(2))
    with pytest.raises(DatasetError, match=r"X_train\.npy: holds Python objects \(dtype=object\)"):
        load_dataset(folder)


@pytest.mark.parametrize(
    ("option", "value"),
    [("normalize", "zscore"), ("missing", "mean"), ("longer_test", "pad"),
     ("file_format", "xlsx")],
)
def test_bad_option_values_name_the_argument(option, value):
    with pytest.raises(ConfigurationError, match=rf"{option}='{value}' is not valid"):
        load_dataset("GunPoint", **{option: value})
