"""all_datasets_training.py end to end, as a user runs it: real data, real training,
real processes (killed with SIGKILL for the resume test)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "all_datasets_training.py"


def run_loop(tmp_path: Path, *arguments: str, timeout: float = 600) -> subprocess.CompletedProcess:
    command = [sys.executable, str(SCRIPT), "--weights-dir", str(tmp_path / "weights"),
               "--logs-dir", str(tmp_path / "logs"), "--no-progress", *arguments]
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=timeout)


def log_rows(tmp_path: Path, model: str = "lstmfcn", cells: int = 8) -> list[dict[str, str]]:
    path = tmp_path / "logs" / f"{model}_{cells}_cells_results.csv"
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_train_then_evaluate_reproduces_the_logged_accuracy(tmp_path):
    arguments = ("--datasets", "ItalyPowerDemand", "--models", "lstmfcn", "--cells", "8",
                 "--epochs", "15")
    trained = run_loop(tmp_path, *arguments)
    assert trained.returncode == 0, trained.stderr
    weights = tmp_path / "weights" / "lstmfcn_8_cells_weights" / "ItalyPowerDemand.weights.h5"
    assert weights.exists() and weights.with_name("ItalyPowerDemand.json").exists()
    (row,) = log_rows(tmp_path)
    assert row["dataset"] == "ItalyPowerDemand" and row["dataset_id"] == "16"
    assert row["error"] == "" and row["protocol"] == "train-loss"
    assert int(row["epochs_run"]) == 15 and 0.0 <= float(row["test_accuracy"]) <= 1.0

    evaluated = run_loop(tmp_path, *arguments, "--mode", "evaluate")
    assert evaluated.returncode == 0, evaluated.stderr
    summary = next(line for line in evaluated.stdout.splitlines() if "ItalyPowerDemand" in line)
    fields = summary.split()
    # columns: dataset model cells seed status test_accuracy logged_accuracy ...
    assert fields[4] == "evaluated"
    assert float(fields[5]) == pytest.approx(float(row["test_accuracy"]), abs=5e-5)
    assert float(fields[5]) == float(fields[6])

    again = run_loop(tmp_path, *arguments)  # already done: skipped, not duplicated
    assert again.returncode == 0 and "skipped" in again.stdout
    assert len(log_rows(tmp_path)) == 1

    # predict.py on the test file as "new data": the same accuracy, labels as in the file
    predict = [sys.executable, str(ROOT / "predict.py"),
               str(ROOT / "Data" / "ItalyPowerDemand" / "ItalyPowerDemand_TEST.tsv"),
               "--dataset", "ItalyPowerDemand", "--weights-dir", str(tmp_path / "weights"),
               "--out", str(tmp_path / "predictions.csv")]
    predicted = subprocess.run(predict, capture_output=True, text=True, timeout=300)
    assert predicted.returncode == 0, predicted.stderr
    accuracy = float(predicted.stdout.split("accuracy against the labels in the file:")[1])
    assert accuracy == pytest.approx(float(row["test_accuracy"]), abs=5e-5)
    with (tmp_path / "predictions.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1029 and {r["predicted_label"] for r in rows} <= {"1", "2"}

    # the original's 2015 comma files write labels as 1.0000000e+00: they still match class "1"
    lines = (ROOT / "Data" / "ItalyPowerDemand" / "ItalyPowerDemand_TEST.tsv").read_text()
    comma = tmp_path / "ItalyPowerDemand_new"
    comma.write_text("".join(
        f"{float(line.split()[0]):.7e}," + ",".join(line.split()[1:]) + "\n"
        for line in lines.splitlines()[:30]))
    old_style = subprocess.run([*predict[:2], str(comma), *predict[3:]], capture_output=True,
                               text=True, timeout=300)
    assert old_style.returncode == 0, old_style.stderr
    assert "accuracy against the labels in the file:" in old_style.stdout

    wrong_shape = subprocess.run(
        [*predict[:2], str(ROOT / "Data" / "BasicMotions" / "BasicMotions_TEST.ts"),
         *predict[3:]], capture_output=True, text=True, timeout=300)
    assert wrong_shape.returncode == 2 and "channels" in wrong_shape.stderr


def test_existing_weights_are_never_overwritten_silently(tmp_path):
    first = run_loop(tmp_path, "--datasets", "Chinatown", "--models", "fcn", "--cells", "8",
                     "--epochs", "3")
    assert first.returncode == 0, first.stderr
    weights = tmp_path / "weights" / "fcn_8_cells_weights" / "Chinatown.weights.h5"
    before = weights.read_bytes()
    (tmp_path / "logs" / "fcn_8_cells_results.csv").unlink()  # the row is gone, weights stay

    # different settings, same weights path: refused, logged, non-zero exit, bytes unchanged
    other = run_loop(tmp_path, "--datasets", "Chinatown", "--models", "fcn", "--cells", "8",
                     "--epochs", "4")
    assert other.returncode == 1
    assert "already exists" in other.stdout + other.stderr
    assert weights.read_bytes() == before
    (failed,) = log_rows(tmp_path, "fcn")
    assert "already exists" in failed["error"]

    # asked explicitly: replaced, and the failed row is replaced by the successful one
    replaced = run_loop(tmp_path, "--datasets", "Chinatown", "--models", "fcn", "--cells", "8",
                        "--epochs", "4", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    (row,) = log_rows(tmp_path, "fcn")
    assert row["error"] == "" and row["epochs_run"] == "4"


def test_a_failing_dataset_is_logged_and_the_loop_goes_on(tmp_path):
    broken = tmp_path / "Broken"
    broken.mkdir()
    (broken / "Broken_TRAIN.tsv").write_text("1\t0.5\t0.25\n2\tabc\t0.1\n")
    (broken / "Broken_TEST.tsv").write_text("1\t0.5\t0.25\n")
    result = run_loop(tmp_path, "--datasets", str(broken), "Chinatown", "--models", "fcn",
                      "--cells", "8", "--epochs", "2")
    assert result.returncode == 1
    rows = {row["dataset"]: row for row in log_rows(tmp_path, "fcn")}
    assert rows["Chinatown"]["error"] == ""
    assert "Broken_TRAIN.tsv" in rows["Broken"]["error"]


@pytest.mark.parametrize("flags, expected", [
    (("--models", "transformer"), "--models"),
    (("--datasets", "GunPointt"), "GunPoint"),
    (("--protocol", "best-test"), "--protocol"),
])
def test_bad_flags_exit_2_with_one_line(tmp_path, flags, expected):
    result = run_loop(tmp_path, "--epochs", "1", "--cells", "8", *flags)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_killed_at_any_moment_resumes_without_losing_or_duplicating(tmp_path):
    arguments = ("--datasets", "Chinatown", "ItalyPowerDemand", "SmoothSubspace",
                 "--models", "fcn", "--cells", "8", "--epochs", "40")
    command = [sys.executable, str(SCRIPT), "--weights-dir", str(tmp_path / "weights"),
               "--logs-dir", str(tmp_path / "logs"), "--no-progress", *arguments]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while len(log_rows(tmp_path, "fcn")) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # now inside the second run
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    killed_rows = log_rows(tmp_path, "fcn")
    assert 1 <= len(killed_rows) < 3

    resumed = run_loop(tmp_path, *arguments)
    assert resumed.returncode == 0, resumed.stderr
    rows = log_rows(tmp_path, "fcn")
    assert sorted(r["dataset"] for r in rows) == ["Chinatown", "ItalyPowerDemand",
                                                  "SmoothSubspace"]
    assert all(r["error"] == "" for r in rows)
    for old in killed_rows:  # finished rows are kept as they were
        assert old in rows
    leftovers = [p for p in tmp_path.rglob(".*partial-*")]
    assert leftovers == []
    weights = sorted(p.name for p in (tmp_path / "weights").rglob("*.weights.h5"))
    assert weights == ["Chinatown.weights.h5", "ItalyPowerDemand.weights.h5",
                       "SmoothSubspace.weights.h5"]
