"""A run interrupted mid-training resumes from its last snapshot (real training, real files)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from utils import build_model, load_dataset, train_model
from utils.training import set_seed

ROOT = Path(__file__).resolve().parents[1]


class StopAfter(keras.callbacks.Callback):
    """Interrupt training at the end of an epoch, as a kill would (before that epoch's
    snapshot, which runs after the user's callbacks)."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch
        self.started: list[int] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started.append(epoch)

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def chinatown():
    return load_dataset("Chinatown")


def _train(data, folder, epochs=6, callbacks=(), lr_patience=100):
    set_seed(0)
    model = build_model("fcn", data.X_train.shape[2], data.n_classes)
    result = train_model(model, data, epochs=epochs, batch_size=8, seed=0,
                         lr_patience=lr_patience, snapshot_dir=folder, snapshot_seconds=0,
                         callbacks=list(callbacks))
    return model, result


def test_interrupted_run_resumes_from_its_snapshot(chinatown, tmp_path):
    folder = tmp_path / "snapshot"
    stop = StopAfter(epoch=3)
    with pytest.raises(KeyboardInterrupt):
        _train(chinatown, folder, callbacks=[stop], lr_patience=1)
    state = json.loads((folder / "state.json").read_text())
    assert state["epoch"] == 3  # epochs 0, 1, 2 saved; epoch 3 was interrupted
    assert len(state["history"]["loss"]) == 3

    watch = StopAfter(epoch=-1)
    model, result = _train(chinatown, folder, callbacks=[watch], lr_patience=1)
    assert watch.started == [3, 4, 5]  # no epoch trained twice
    assert result.epochs_run == 6 and len(result.history["loss"]) == 6
    assert result.history["loss"][:3] == state["history"]["loss"]
    assert result.best_train_loss == pytest.approx(min(result.history["loss"]))
    assert not folder.exists()  # removed once the run finished
    # the optimizer went on from its saved state: 6 epochs of 3 steps (20 cases, batch 8)
    assert int(model.optimizer.iterations) == 18


def test_a_snapshot_of_other_settings_is_ignored(chinatown, tmp_path):
    folder = tmp_path / "snapshot"
    with pytest.raises(KeyboardInterrupt):
        _train(chinatown, folder, callbacks=[StopAfter(epoch=2)])
    watch = StopAfter(epoch=-1)
    _, result = _train(chinatown, folder, epochs=4, callbacks=[watch])  # other epochs
    assert watch.started == [0, 1, 2, 3] and result.epochs_run == 4


def test_a_snapshot_with_damaged_files_is_ignored(chinatown, tmp_path):
    folder = tmp_path / "snapshot"
    with pytest.raises(KeyboardInterrupt):
        _train(chinatown, folder, callbacks=[StopAfter(epoch=2)])
    (best,) = folder.glob("best-*.npz")
    best.write_bytes(best.read_bytes()[:-10])  # as if cut short
    watch = StopAfter(epoch=-1)
    _train(chinatown, folder, callbacks=[watch])
    assert watch.started[0] == 0


def test_the_loop_script_killed_mid_run_resumes(tmp_path):
    command = [sys.executable, str(ROOT / "all_datasets_training.py"), "--datasets", "Chinatown",
               "--models", "fcn", "--cells", "8", "--epochs", "150", "--batch-size", "4",
               "--snapshot-minutes", "0", "--weights-dir", str(tmp_path / "weights"),
               "--logs-dir", str(tmp_path / "logs")]
    state = tmp_path / "weights" / "fcn_8_cells_weights" / ".Chinatown.resume" / "state.json"
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if state.exists() and json.loads(state.read_text())["epoch"] >= 20:
            break
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    reached = json.loads(state.read_text())["epoch"]
    assert 20 <= reached < 150

    resumed = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed at epoch" in resumed.stderr
    sidecar = json.loads((state.parent.parent / "Chinatown.json").read_text())
    assert len(sidecar["history"]["loss"]) == 150 and sidecar["row"]["epochs_run"] == 150
    assert not state.parent.exists()
    assert np.isfinite(sidecar["row"]["test_accuracy"])
