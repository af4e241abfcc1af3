"""utils/extract_all_datasets.py on zips and folders built from the bundled files."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from utils import DatasetError, load_dataset
from utils.extract_all_datasets import extract_archive

REPOSITORY = Path(__file__).resolve().parent.parent
DATA = REPOSITORY / "Data"


def _archive_folder(tmp_path: Path) -> Path:
    """A folder shaped like the unpacked UCR archive (plus one .ts set and some noise)."""
    root = tmp_path / "UCRArchive_2018"
    for name, suffix in (("GunPoint", ".tsv"), ("Chinatown", ".tsv"), ("BasicMotions", ".ts")):
        (root / name).mkdir(parents=True)
        for source in (DATA / name).glob(f"*{suffix}"):
            shutil.copyfile(source, root / name / source.name)
    (root / "GunPoint" / "README.md").write_text("not data\n")
    (root / "BasicMotions" / "BasicMotionsDimension1_TRAIN.arff").write_text("per dimension\n")
    return root


def _zip_folder(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            archive.write(path, path.relative_to(folder.parent).as_posix())
    return target


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*")
            if p.is_file()}


def test_zip_is_unpacked_unchanged_into_the_data_layout(tmp_path):
    archive = _zip_folder(_archive_folder(tmp_path), tmp_path / "UCRArchive_2018.zip")
    before = archive.read_bytes()
    out = tmp_path / "Data"
    report = extract_archive(archive, out)
    assert report.datasets == {"GunPoint", "Chinatown", "BasicMotions"}
    assert sorted(_snapshot(out)) == [
        "BasicMotions/BasicMotions_TEST.ts", "BasicMotions/BasicMotions_TRAIN.ts",
        "Chinatown/Chinatown_TEST.tsv", "Chinatown/Chinatown_TRAIN.tsv",
        "GunPoint/GunPoint_TEST.tsv", "GunPoint/GunPoint_TRAIN.tsv",
    ]
    assert (out / "GunPoint" / "GunPoint_TRAIN.tsv").read_bytes() == (
        DATA / "GunPoint" / "GunPoint_TRAIN.tsv").read_bytes()
    assert archive.read_bytes() == before
    loaded = load_dataset("Chinatown", data_dir=out)
    np.testing.assert_array_equal(loaded.X_test, load_dataset("Chinatown").X_test)


def test_rerun_skips_identical_files_and_refuses_to_overwrite_different_ones(tmp_path):
    source = _archive_folder(tmp_path)
    out = tmp_path / "Data"
    first = extract_archive(source, out, datasets=["gun_point"])  # aliases select too
    assert len(first.written) == 2 and first.datasets == {"GunPoint"}
    again = extract_archive(source, out)
    assert len(again.identical) == 2 and len(again.written) == 4
    changed = out / "GunPoint" / "GunPoint_TEST.tsv"
    changed.write_text("my own edits\n")
    before = _snapshot(out)
    with pytest.raises(DatasetError, match=r"1 existing file\(s\) differ .*GunPoint_TEST\.tsv: "
                       r"nothing was written; pass --overwrite"):
        extract_archive(source, out)
    assert _snapshot(out) == before  # no temporary files left behind, nothing replaced
    replaced = extract_archive(source, out, overwrite=True)
    assert replaced.written == [changed]
    assert changed.read_bytes() == (source / "GunPoint" / "GunPoint_TEST.tsv").read_bytes()


def _encrypted_zip(tmp_path: Path) -> Path:
    zip_tool = shutil.which("zip")
    if zip_tool is None:
        pytest.skip("the zip command is needed to build a password-protected zip")
    folder = tmp_path / "src" / "UCRArchive_2018" / "Coffee"
    folder.mkdir(parents=True)
    for source in (DATA / "Coffee").iterdir():
        shutil.copyfile(source, folder / source.name)
    target = tmp_path / "protected.zip"
    subprocess.run([zip_tool, "-q", "-r", "-P", "s3cret", str(target), "UCRArchive_2018"],
                   cwd=tmp_path / "src", check=True)
    return target


def test_password_protected_zip(tmp_path):
    archive = _encrypted_zip(tmp_path)
    out = tmp_path / "Data"
    with pytest.raises(DatasetError, match=r"protected\.zip: .*Coffee_T\w+\.tsv is encrypted: "
                       r"pass --password"):
        extract_archive(archive, out)
    with pytest.raises(DatasetError, match=r"wrong password|corrupt data"):
        extract_archive(archive, out, password="guess")
    assert not out.exists()  # failed runs leave no folders behind
    report = extract_archive(archive, out, password="s3cret")
    assert report.datasets == {"Coffee"} and len(report.written) == 2


@pytest.mark.parametrize("invocation", [["utils/extract_all_datasets.py"],
                                        ["-m", "utils.extract_all_datasets"]])
def test_command_line_as_script_and_module(invocation, tmp_path):
    source = _archive_folder(tmp_path)
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, *invocation, str(source), "--out", str(out)],
                          cwd=REPOSITORY, capture_output=True, text=True, check=True)
    assert "3 dataset(s)" in done.stdout and "6 file(s) written" in done.stdout
    failed = subprocess.run([sys.executable, *invocation, str(tmp_path / "nowhere.zip"),
                             "--out", str(out)], cwd=REPOSITORY, capture_output=True, text=True)
    assert failed.returncode == 2
    assert failed.stderr.count("\n") == 1
    assert "nowhere.zip: no such archive file or folder" in failed.stderr


def test_archive_without_split_files(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "README.md").write_text("nothing here\n")
    with pytest.raises(DatasetError, match=r"notes: no <Name>_TRAIN / <Name>_TEST files"):
        extract_archive(folder, tmp_path / "Data")


def test_not_a_zip(tmp_path):
    fake = tmp_path / "archive.zip"
    fake.write_text("this is text\n")
    with pytest.raises(DatasetError, match=r"archive\.zip: not a readable zip archive"):
        extract_archive(fake, tmp_path / "Data")


def test_the_ucr_zips_adjusted_copies_are_left_out(tmp_path):
    """UCRArchive_2018.zip holds edited copies of the datasets with missing values or unequal
    lengths, with the same file names, in a folder of their own; the originals are taken."""
    root = _archive_folder(tmp_path)
    (root / "DodgerLoopGame").mkdir()
    for source in (DATA / "DodgerLoopGame").glob("*.tsv"):
        shutil.copyfile(source, root / "DodgerLoopGame" / source.name)
    adjusted = root / "Missing_value_and_variable_length_datasets_adjusted" / "DodgerLoopGame"
    adjusted.mkdir(parents=True)
    for source in (DATA / "DodgerLoopGame").glob("*.tsv"):
        (adjusted / source.name).write_text(source.read_text().replace("NaN", "0"))
    archive = _zip_folder(root, tmp_path / "UCRArchive_2018.zip")
    out = tmp_path / "Data"
    report = extract_archive(archive, out)
    assert "DodgerLoopGame" in report.datasets
    assert (out / "DodgerLoopGame" / "DodgerLoopGame_TRAIN.tsv").read_bytes() == (
        DATA / "DodgerLoopGame" / "DodgerLoopGame_TRAIN.tsv").read_bytes()
