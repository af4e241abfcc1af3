"""Snapshots of a training run in progress, so that a killed run resumes instead of restarting.

A 2000-epoch run on a large dataset takes hours on a CPU. Every few minutes the snapshot
callback writes, into one folder per run:

    state-<epoch>.weights.h5   model weights and optimizer state (learning rate, Adam moments)
    best-<epoch>.npz           the best weights kept so far (what the protocol will return)
    state.json                 the epoch reached, the names and SHA-256 of the two files above,
                               the kept checkpoint's score, the learning-rate and early-stopping
                               counters, the history so far, a fingerprint of the run's settings

``state.json`` is written last: it is the commit point. The files of the previous snapshot are
deleted only after it, so a kill while a snapshot is being written leaves the previous one
intact. A snapshot whose fingerprint differs from
the run being started, or whose files do not match the recorded hashes, is ignored and the run
starts from epoch 0. Random-number state is not saved, so a resumed run shuffles and drops out
differently from an uninterrupted one; everything that decides what is kept is restored.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from utils.atomic_files import replacing, write_text_atomic
from utils.checkpoints import file_sha256

STATE_FILE = "state.json"
# counters of Keras callbacks that decide the learning rate and the stop
CALLBACK_STATE = ("wait", "best", "cooldown_counter", "best_epoch")


class TrainingSnapshot(keras.callbacks.Callback):
    """Save the run's state to ``folder`` every ``every_seconds``; restore it on request.

    Place it after the callbacks whose counters it saves: Keras resets those counters in their
    ``on_train_begin``, and this callback puts the saved values back after that.

    Parameters
    ----------
    folder : Path
        One folder per run.
    fingerprint : dict
        JSON-serialisable settings of the run; a snapshot of other settings is ignored.
    keep_best : object
        Holder of the best weights with attributes ``best``, ``best_epoch``, ``best_logs``,
        ``weights`` (``utils.training._KeepBest``).
    stateful_callbacks : list of keras.callbacks.Callback
        Callbacks whose counters (``wait``, ``best``, ...) are saved and restored.
    every_seconds : float
        Minimum time between two snapshots (0: after every epoch).
    """

    def __init__(self, folder: Path, fingerprint: dict[str, Any], keep_best: Any,
                 stateful_callbacks: list[Any], every_seconds: float):
        super().__init__()
        self.folder = Path(folder)
        self.fingerprint = json.loads(json.dumps(fingerprint, default=str))
        self.keep_best = keep_best
        self.stateful_callbacks = stateful_callbacks
        self.every_seconds = every_seconds
        self.history: dict[str, list[float]] = {}
        self._pending_callback_state: list[dict[str, Any]] | None = None
        self._last_save = time.monotonic()

    # ------------------------------------------------------------------ restoring

    def _valid_state(self) -> dict[str, Any] | None:
        state_path = self.folder / STATE_FILE
        if not state_path.exists():
            return None
        try:
            state = json.loads(state_path.read_text(encoding="utf-8"))
            consistent = state.get("fingerprint") == self.fingerprint and all(
                file_sha256(self.folder / name) == digest
                for name, digest in state["files"].items()
            )
        except (OSError, ValueError, KeyError, AttributeError):
            return None
        return state if consistent else None

    def restore(self, model: Any) -> int:
        """Load a valid snapshot into ``model`` (compiled) and return the epoch to start from
        (0 when there is none, in which case stale snapshot files are removed)."""
        state = self._valid_state()
        if state is None:
            self.discard()
            return 0
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        weights_file, best_file = state["files"]
        model.load_weights(self.folder / weights_file)
        with np.load(self.folder / best_file) as best:
            self.keep_best.weights = [best[f"arr_{i}"] for i in range(len(best.files))]
        kept = state["keep_best"]
        self.keep_best.best = kept["best"]
        self.keep_best.best_epoch = kept["best_epoch"]
        self.keep_best.best_logs = kept["best_logs"]
        self._pending_callback_state = state["callbacks"]
        self.history = state["history"]
        return int(state["epoch"])

    def on_train_begin(self, logs=None):
        if self._pending_callback_state is None:
            return
        for callback, saved in zip(self.stateful_callbacks, self._pending_callback_state,
                                   strict=True):
            for name, value in saved.items():
                setattr(callback, name, value)
        self._pending_callback_state = None

    # ------------------------------------------------------------------ saving

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        if time.monotonic() - self._last_save >= self.every_seconds:
            self.save(epoch + 1)

    def save(self, epochs_done: int) -> None:
        """Write the state after ``epochs_done`` epochs (weights first, ``state.json`` last)."""
        if self.keep_best.weights is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        weights_file, best_file = f"state-{epochs_done}.weights.h5", f"best-{epochs_done}.npz"
        with replacing(self.folder / weights_file, ".weights.h5") as temporary:
            self.model.save_weights(temporary, overwrite=True)
        with replacing(self.folder / best_file, ".npz") as temporary:
            with open(temporary, "wb") as handle:
                np.savez(handle, *self.keep_best.weights)
        state = {
            "fingerprint": self.fingerprint,
            "epoch": epochs_done,
            "keep_best": {"best": self.keep_best.best, "best_epoch": self.keep_best.best_epoch,
                          "best_logs": {k: float(v) for k, v in
                                        self.keep_best.best_logs.items()}},
            "callbacks": [
                {name: _plain(getattr(callback, name)) for name in CALLBACK_STATE
                 if hasattr(callback, name)}
                for callback in self.stateful_callbacks
            ],
            "history": self.history,
            # weights file first, best file second (restore relies on the order)
            "files": {name: file_sha256(self.folder / name) for name in (weights_file, best_file)},
        }
        write_text_atomic(self.folder / STATE_FILE, json.dumps(state))
        for old in self.folder.iterdir():  # the previous snapshot, now superseded
            if old.name.startswith(("state-", "best-")) and old.name not in state["files"]:
                old.unlink(missing_ok=True)
        self._last_save = time.monotonic()

    def discard(self) -> None:
        """Remove the snapshot folder (after the run finished, or when it is stale)."""
        shutil.rmtree(self.folder, ignore_errors=True)


def _plain(value: Any) -> Any:
    """A callback counter as a JSON value (numpy and backend scalars become Python numbers)."""
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return float(np.asarray(value))
