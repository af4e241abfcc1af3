"""Faults: kills, Ctrl-C, read-only and full disks, damaged files. Nothing already obtained is
lost, nothing is half-written, and a resumed run ends exactly where an uninterrupted one does.

Real training on the bundled Chinatown (20 training cases), real processes killed with real
signals, real file systems (a small tmpfs where this machine lets us mount one).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from all_datasets_training import run_grid
from benchmarks.faults import grid_command, run_campaign
from utils import build_model, load_dataset, train_model
from utils.checkpoints import load_trained_model
from utils.errors import ConfigurationError
from utils.experiments import GridConfig, read_log, results_log_path
from utils.resume import STATE_FILE
from utils.training import set_seed

GRID = dict(datasets=["Chinatown"], models=["lstmfcn"], cells=[8], epochs=12, batch_size=8)
RUN = Path("lstmfcn_8_cells_weights") / "Chinatown.weights.h5"


def _weights(path: Path) -> list[np.ndarray]:
    model, _ = load_trained_model(path)
    return model.get_weights()


def _identical(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The grid of these tests run once without interruption (seeds 0 and 1)."""
    folder = tmp_path_factory.mktemp("reference")
    command = grid_command(folder, seeds=[0, 1], **GRID)
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    return folder


def _state_epoch(state: Path) -> int:
    try:
        return int(json.loads(state.read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return -1


def _run_until(command: list[str], folder: Path, state: Path, epoch: int,
               send: signal.Signals) -> subprocess.Popen:
    """Start the loop script; send ``send`` once its snapshot has reached ``epoch``."""
    process = subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 600
    while _state_epoch(state) < epoch and process.poll() is None:
        assert time.monotonic() < deadline, "the run never reached the epoch"
        time.sleep(0.02)
    assert process.poll() is None, process.communicate()[1]
    if send == signal.SIGKILL:
        os.killpg(process.pid, send)
    else:
        process.send_signal(send)
    return process


# --------------------------------------------------------------------------- kills


def test_a_run_killed_at_three_epochs_ends_bit_identical_to_an_uninterrupted_one(
        reference, tmp_path):
    command = grid_command(tmp_path, seeds=[0], **GRID)
    state = tmp_path / "weights" / RUN.parent / ".Chinatown.resume" / STATE_FILE
    killed_at = []
    for epoch in (3, 6, 9):
        process = _run_until(command, tmp_path, state, epoch, signal.SIGKILL)
        process.communicate()
        killed_at.append(_state_epoch(state))
    assert killed_at == sorted(set(killed_at)) and killed_at[-1] < GRID["epochs"]
    seconds_before = json.loads(state.read_text())["seconds"]

    finished = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True,
                              timeout=600)
    assert finished.returncode == 0, finished.stderr
    assert _identical(_weights(tmp_path / "weights" / RUN), _weights(reference / "weights" / RUN))
    (row,) = read_log(results_log_path(tmp_path / "logs", "lstmfcn", 8))
    expected = next(r for r in read_log(results_log_path(reference / "logs", "lstmfcn", 8))
                    if r["seed"] == "0")
    for column in ("test_accuracy", "test_loss", "train_loss", "best_epoch", "best_train_loss",
                   "epochs_run", "weights_file"):
        assert row[column] == expected[column], column
    # the time of the killed processes up to their last snapshot is counted
    assert float(row["train_seconds"]) > seconds_before
    assert float(row["seconds_per_epoch"]) == pytest.approx(
        float(row["train_seconds"]) / GRID["epochs"], rel=1e-3)


def test_fault_campaign_fast_case(reference, tmp_path):
    report = run_campaign(tmp_path, kills=3, seeds=[0, 1], **GRID, timeout=900,
                          reference=reference)
    print("\n".join(report.lines()))
    assert report.kills == 3 and report.restarts == 3
    assert (report.rows_expected, report.rows_present) == (2, 2)
    assert report.rows_duplicated == report.rows_lost == report.rows_failed == 0
    assert report.weights_loading == report.weights_identical == 2
    assert report.accuracy_mismatches == 0 and report.leftover_files == []


def test_ctrl_c_stops_at_a_safe_point_and_a_restart_continues(reference, tmp_path, capsys):
    from utils.cli import run_main

    config = GridConfig(**GRID, seeds=[0], weights_dir=str(tmp_path / "weights"),
                        logs_dir=str(tmp_path / "logs"), progress=False, snapshot_minutes=0)
    state = tmp_path / "weights" / RUN.parent / ".Chinatown.resume" / STATE_FILE

    def press_ctrl_c_at_epoch_4():  # a real SIGINT to this process, as a terminal sends it
        deadline = time.monotonic() + 600
        while _state_epoch(state) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    handler_before = signal.getsignal(signal.SIGINT)  # SIG_IGN when pytest runs as a background job
    presser = threading.Thread(target=press_ctrl_c_at_epoch_4, daemon=True)
    presser.start()
    with pytest.raises(SystemExit) as stopped:
        run_main(lambda: run_grid(config))
    presser.join()
    assert stopped.value.code == 130
    assert "stopped after Ctrl-C; the state of the run was saved" in capsys.readouterr().err
    stopped_at = _state_epoch(state)
    assert 4 <= stopped_at < GRID["epochs"]  # the epoch under way was finished and saved
    assert not (tmp_path / "weights" / RUN).exists()  # nothing claims to be finished
    assert read_log(results_log_path(tmp_path / "logs", "lstmfcn", 8)) == []
    assert signal.getsignal(signal.SIGINT) is handler_before  # put back

    (outcome,) = run_grid(config)  # the restart continues from the saved epoch
    assert outcome.status == "trained" and outcome.epochs_run == GRID["epochs"]
    assert _identical(_weights(tmp_path / "weights" / RUN), _weights(reference / "weights" / RUN))


@pytest.mark.parametrize("pressed_in_epoch", [3, 6])
def test_ctrl_c_in_the_last_epoch_finishes_the_run_and_stops_after_it(tmp_path, pressed_in_epoch):
    """Fit engine: a Ctrl-C during the last epoch lets the run finish (the grid logs it and then
    stops at its safe point); one during an earlier epoch saves that epoch and stops."""
    import keras

    from utils.interrupts import raise_if_stop_requested, stop_at_safe_points

    class PressCtrlC(keras.callbacks.Callback):  # a real SIGINT, as a terminal sends it
        def on_epoch_begin(self, epoch, logs=None):
            if epoch + 1 == pressed_in_epoch:
                os.kill(os.getpid(), signal.SIGINT)

    data = load_dataset("Chinatown")
    set_seed(0)
    model = build_model("lstmfcn", data.X_train.shape[2], data.n_classes, num_cells=8)
    snapshots = tmp_path / "snapshot"
    with stop_at_safe_points():
        try:
            result = train_model(model, data, epochs=6, batch_size=8, engine="fit",
                                 callbacks=[PressCtrlC()], snapshot_dir=snapshots,
                                 snapshot_seconds=3600)
            finished = len(result.history["loss"])
            with pytest.raises(KeyboardInterrupt):
                raise_if_stop_requested()  # the grid's next safe point, after the row
        except KeyboardInterrupt as stop:
            assert "stopped after Ctrl-C" in str(stop)
            finished = None
    if pressed_in_epoch == 6:
        assert finished == 6
    else:
        assert finished is None and _state_epoch(snapshots / STATE_FILE) == 3


# --------------------------------------------------------------------------- file systems


@contextlib.contextmanager
def _tmpfs(folder: Path, options: str):
    """Mount a small tmpfs at ``folder`` (root on Linux); skip the test where that fails."""
    folder.mkdir(parents=True, exist_ok=True)
    if sys.platform != "linux" or shutil.which("mount") is None:
        pytest.skip("needs Linux mount to create a small file system")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill(folder: Path) -> None:
    """Write until the file system of ``folder`` reports that it is full."""
    for number, size in enumerate((1 << 16, 4096, 512, 1)):  # down to the last byte
        with open(folder / f"filler-{number}", "wb", buffering=0) as handle:
            with contextlib.suppress(OSError):
                while handle.write(b"\0" * size):
                    pass
    with pytest.raises(OSError) as full:
        (folder / "filler-check").write_bytes(b"\0")
    assert full.value.errno == errno.ENOSPC


def _config(tmp_path: Path, **changes) -> GridConfig:
    settings = dict(datasets=["Chinatown"], models=["fcn"], cells=[8], epochs=2,
                    batch_size=8, weights_dir=str(tmp_path / "weights"),
                    logs_dir=str(tmp_path / "logs"), progress=False)
    return GridConfig(**{**settings, **changes})


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """Weights and log of the small grid (fcn on Chinatown, seeds 0 and 1), trained once."""
    folder = tmp_path_factory.mktemp("trained")
    assert [o.status for o in run_grid(_config(folder, seeds=[0, 1]))] == ["trained"] * 2
    return folder


def _copy(trained: Path, target: Path, seeds: tuple[int, ...] = (0, 1)) -> None:
    """The trained runs of ``seeds`` (weights, sidecars, log rows) into ``target``."""
    from utils.checkpoints import sidecar_path, weights_path
    from utils.experiments import upsert_row

    for seed in seeds:
        source = weights_path(trained / "weights", "fcn", 8, "Chinatown", seed)
        destination = weights_path(target / "weights", "fcn", 8, "Chinatown", seed)
        destination.parent.mkdir(parents=True, exist_ok=True)
        for path, copy in ((source, destination),
                           (sidecar_path(source), sidecar_path(destination))):
            shutil.copyfile(path, copy)
    for row in read_log(results_log_path(trained / "logs", "fcn", 8)):
        if int(row["seed"]) in seeds:
            upsert_row(results_log_path(target / "logs", "fcn", 8), row)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith("filler") and not p.name.endswith(".lock")}


def test_a_read_only_output_folder_is_refused_before_any_training(tmp_path):
    logs = tmp_path / "logs"
    if os.geteuid() == 0:  # root writes through permission bits: use a read-only mount
        context = _tmpfs(tmp_path / "weights", "ro,size=1m")
    else:
        (tmp_path / "weights").mkdir()
        (tmp_path / "weights").chmod(0o555)
        context = contextlib.nullcontext()
    with context:
        started = time.monotonic()
        with pytest.raises(ConfigurationError, match=r"--weights-dir .*weights: cannot write"):
            run_grid(_config(tmp_path))
        assert time.monotonic() - started < 30
        assert not any(logs.rglob("*.csv"))  # nothing ran


def test_a_full_disk_while_saving_weights_fails_the_run_and_keeps_earlier_files(trained,
                                                                                 tmp_path):
    with _tmpfs(tmp_path / "weights", "size=8m") as weights:
        _copy(trained, tmp_path, seeds=(1,))  # an earlier run's weights are on the small disk
        before = _files(weights)
        _fill(weights)
        (outcome,) = run_grid(_config(tmp_path, seeds=[0], snapshot_minutes=1e6))
        assert outcome.status == "failed" and "No space left on device" in outcome.error
        assert _files(weights) == before  # nothing new, nothing half-written
    rows = {r["seed"]: r for r in read_log(results_log_path(tmp_path / "logs", "fcn", 8))}
    assert "No space left on device" in rows["0"]["error"] and rows["1"]["error"] == ""


def test_a_full_disk_while_writing_a_log_row_keeps_the_log_and_the_row_is_recovered(
        trained, tmp_path):
    with _tmpfs(tmp_path / "logs", "size=1m") as logs:
        _copy(trained, tmp_path, seeds=(1,))
        before = _files(logs)
        _fill(logs)
        (outcome,) = run_grid(_config(tmp_path, seeds=[0]))
        assert outcome.status == "failed" and "No space left on device" in outcome.error
        assert _files(logs) == before
        for filler in logs.glob("filler*"):
            filler.unlink()
        (again,) = run_grid(_config(tmp_path, seeds=[0]))  # the weights were saved
        assert again.status == "recovered"
        rows = read_log(results_log_path(logs, "fcn", 8))
        assert sorted(r["seed"] for r in rows) == ["0", "1"]


def test_a_full_disk_while_writing_a_snapshot_keeps_the_previous_one(tmp_path):
    import keras

    data = load_dataset("Chinatown")

    class FillDiskAfter(keras.callbacks.Callback):  # runs before the snapshot of the epoch
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                _fill(folder.parent)

    def train(callbacks=()):
        set_seed(0)
        model = build_model("fcn", data.X_train.shape[2], data.n_classes)
        return train_model(model, data, epochs=5, batch_size=8, seed=0, snapshot_dir=folder,
                           snapshot_seconds=0, callbacks=list(callbacks))

    with _tmpfs(tmp_path / "disk", "size=16m") as disk:
        folder = disk / "snapshot"
        with pytest.raises(OSError, match="No space left on device"):
            train([FillDiskAfter()])
        state = json.loads((folder / STATE_FILE).read_text())
        assert state["epoch"] == 2  # the snapshot of epochs 0-1, intact
        assert sorted(p.name for p in folder.iterdir()) == sorted([STATE_FILE, *state["files"]])
        for filler in disk.glob("filler*"):
            filler.unlink()
        result = train()
        assert len(result.history["loss"]) == 5
        assert result.history["loss"][:2] == state["history"]["loss"]


# --------------------------------------------------------------------------- damaged files


def test_damaged_weights_sidecar_or_snapshot_fail_their_run_and_the_loop_goes_on(
        trained, tmp_path, capsys):
    _copy(trained, tmp_path)
    folder = tmp_path / "weights" / "fcn_8_cells_weights"
    log = results_log_path(tmp_path / "logs", "fcn", 8)
    weights0 = folder / "Chinatown.weights.h5"
    weights0.write_bytes(weights0.read_bytes()[: weights0.stat().st_size // 2])  # cut short

    # the evaluation mode names the damaged file, and goes on to the next run
    outcomes = run_grid(_config(tmp_path, seeds=[0, 1], mode="evaluate"))
    assert [o.status for o in outcomes] == ["failed", "evaluated"]
    assert "damaged" in outcomes[0].error

    (folder / "Chinatown_seed1.json").write_text('{"model": "fcn", "buil')  # cut short
    log.unlink()  # so that both runs are looked at again
    outcomes = run_grid(_config(tmp_path, seeds=[0, 1]))
    assert [o.status for o in outcomes] == ["failed", "failed"]
    assert "does not match the SHA-256 its sidecar" in outcomes[0].error
    assert "Chinatown_seed1.json is not valid JSON" in outcomes[1].error
    whole = trained / "weights" / "fcn_8_cells_weights" / "Chinatown.weights.h5"
    assert weights0.stat().st_size < whole.stat().st_size  # left as it was: never overwritten

    # a damaged snapshot: said so, the run starts again from epoch 0 and finishes
    resume = folder / ".Chinatown_seed2.resume"
    resume.mkdir()
    (resume / STATE_FILE).write_text('{"epoch": 1, "fil')
    (outcome,) = run_grid(_config(tmp_path, seeds=[2]))
    assert outcome.status == "trained" and outcome.epochs_run == 2
    assert "snapshot" in capsys.readouterr().err


def test_a_results_log_cut_mid_line_is_recovered_and_other_damage_refused(trained, tmp_path):
    config = _config(tmp_path, seeds=[0, 1])
    _copy(trained, tmp_path)
    log = results_log_path(tmp_path / "logs", "fcn", 8)
    whole = read_log(log)
    raw = log.read_bytes()
    log.write_bytes(raw[: raw.rstrip(b"\n").rfind(b"\n") + 40])  # the last row cut short
    with pytest.warns(UserWarning, match="last line was cut short"):
        outcomes = run_grid(config)
    assert [o.status for o in outcomes] == ["skipped", "recovered"]
    again = read_log(log)
    assert [r["test_accuracy"] for r in again] == [r["test_accuracy"] for r in whole]

    damaged = raw.replace(b",train-loss,", b",train-loss,,", 1)  # one row with a field more
    log.write_bytes(damaged)
    outcomes = run_grid(config)
    assert [o.status for o in outcomes] == ["failed", "failed"]
    columns = len(raw.splitlines()[0].split(b","))
    assert f"row 2: {columns + 1} fields where the header has {columns}" in outcomes[0].error
    assert log.read_bytes() == damaged  # refused, never rewritten
