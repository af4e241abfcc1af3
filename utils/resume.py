"""Snapshots of a training run in progress, so that a killed run resumes instead of restarting.

A 2000-epoch run on a large dataset takes hours on a CPU. Every few minutes the snapshot
callback writes, into one folder per run:

    state-<epoch>.weights.h5   model weights and optimizer state (learning rate, Adam moments)
    best-<epoch>.npz           the best weights kept so far (what the protocol will return)
    state.json                 the epoch reached, the names and SHA-256 of the two files above,
                               the kept checkpoint's score, the learning-rate and early-stopping
                               counters, the random state (the Keras seed generators of dropout
                               and the shuffling seed), the seconds spent so far, the history so
                               far, a fingerprint of the run's settings

``state.json`` is written last: it is the commit point. The files of the previous snapshot are
deleted only after it, so a kill while a snapshot is being written leaves the previous one
intact. A snapshot whose fingerprint differs from the run being started, or whose files do not
match the recorded hashes, is ignored and the run starts from epoch 0.

Resuming is exact: the order of the training cases in epoch ``e`` is a function of the shuffling
seed and ``e`` alone (:class:`EpochBatches`), and dropout draws from Keras seed generators whose
states are saved. On a CPU a run killed at any epoch and resumed ends with bit-identical weights
to an uninterrupted run with the same seed.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from utils.atomic_files import replacing, write_text_atomic
from utils.checkpoints import file_sha256
from utils.interrupts import save_then_stop_if_requested

STATE_FILE = "state.json"
# counters of Keras callbacks that decide the learning rate and the stop
CALLBACK_STATE = ("wait", "best", "cooldown_counter", "best_epoch")


def epoch_order(seed: int, epoch: int, n_cases: int, shuffle: bool = True) -> np.ndarray:
    """The order of the training cases in ``epoch``: a permutation that depends on
    ``(seed, epoch)`` only, so that a resumed run visits the cases as an uninterrupted one.
    Both training engines take their batches in this order. ``shuffle=False``: the stored
    order (comparisons of engines only)."""
    if not shuffle:
        return np.arange(n_cases)
    return np.random.default_rng([seed, epoch]).permutation(n_cases)


class EpochBatches(keras.utils.PyDataset):
    """Shuffled mini-batches of arrays, in the order :func:`epoch_order` gives each epoch.

    Keras' own shuffling draws from a backend's global generator (NumPy for JAX, torch's for
    torch) or, on TensorFlow, from a seeded ``tf.data`` op that repeats the same order in every
    epoch; none of them can be put back where a killed process left it. Pair this dataset with
    :class:`EpochBatches.Tracker` among the callbacks so that it knows the epoch.

    Parameters
    ----------
    x : ndarray of shape (n_cases, ...) or dict of such arrays
        Model inputs (``utils.models.model_inputs``).
    y : ndarray of shape (n_cases,)
    batch_size : int
    seed : int
        Shuffling seed (the run's seed).
    shuffle : bool, default True
        False: the cases in their stored order every epoch (comparisons of engines only).
    """

    def __init__(self, x: Any, y: np.ndarray, batch_size: int, seed: int, shuffle: bool = True):
        super().__init__()
        self.x, self.y = x, np.asarray(y)
        self.batch_size, self.seed, self.shuffle = int(batch_size), int(seed), shuffle
        self.epoch = 0
        self._order: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return math.ceil(len(self.y) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[Any, np.ndarray]:
        if self._order is None or self._order[0] != self.epoch:
            self._order = (self.epoch, epoch_order(self.seed, self.epoch, len(self.y),
                                                   self.shuffle))
        rows = self._order[1][index * self.batch_size : (index + 1) * self.batch_size]
        if isinstance(self.x, dict):
            inputs = {name: np.asarray(values)[rows] for name, values in self.x.items()}
        else:
            inputs = np.asarray(self.x)[rows]
        return inputs, self.y[rows]

    def tracker(self) -> keras.callbacks.Callback:
        """A callback that tells this dataset which epoch is starting."""
        return _EpochTracker(self)


class _EpochTracker(keras.callbacks.Callback):
    def __init__(self, batches: EpochBatches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.epoch = epoch


def seed_state_variables(model: Any) -> list[Any]:
    """The states of the Keras seed generators of ``model`` (dropout): variables that
    ``save_weights`` leaves out, but that decide the next random draw."""
    weights = {id(variable) for variable in model.weights}
    return [variable for variable in model.variables if id(variable) not in weights]


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

    Attributes
    ----------
    seconds_before : float
        Training seconds spent on this run by earlier processes, up to the snapshot this one
        resumed from (0 for a fresh run); the clock of this process starts at construction.
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
        self.seconds_before = 0.0
        self._started = time.perf_counter()
        self._pending_callback_state: list[dict[str, Any]] | None = None
        self._last_save = time.monotonic()

    def seconds_so_far(self) -> float:
        """Training seconds of every process that worked on this run, this one included."""
        return self.seconds_before + time.perf_counter() - self._started

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
        except (OSError, ValueError, KeyError, AttributeError, TypeError):
            return None
        if not consistent or not _has_fields(state):
            return None
        return state

    def restore(self, model: Any) -> int:
        """Load a valid snapshot into ``model`` (compiled) and return the epoch to start from
        (0 when there is none, in which case stale snapshot files are removed)."""
        state = self._valid_state()
        if state is None:
            if (self.folder / STATE_FILE).exists():
                print(f"{self.folder}: the snapshot is damaged or of other settings; it is "
                      "removed and the run starts from epoch 0", file=sys.stderr, flush=True)
            self.discard()
            return 0
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        weights_file, best_file = state["files"]
        model.load_weights(self.folder / weights_file)
        with np.load(self.folder / best_file, allow_pickle=False) as best:
            self.keep_best.weights = [best[f"arr_{i}"] for i in range(len(best.files))]
        kept = state["keep_best"]
        self.keep_best.best = kept["best"]
        self.keep_best.best_epoch = kept["best_epoch"]
        self.keep_best.best_logs = kept["best_logs"]
        for variable, value in zip(seed_state_variables(model), state["seed_states"],
                                   strict=True):
            variable.assign(np.asarray(value, dtype=variable.dtype))
        self._pending_callback_state = state["callbacks"]
        self.history = state["history"]
        self.seconds_before = float(state["seconds"])
        return int(state["epoch"])

    def on_train_begin(self, logs=None):
        self._started = time.perf_counter()
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
        # trained (or stopped early): a Ctrl-C now waits for the caller's next safe point, so
        # that the finished run is logged rather than saved and restarted
        if epoch + 1 >= self.params.get("epochs", float("inf")) or self.model.stop_training:
            return
        save_then_stop_if_requested(lambda: self.save(epoch + 1),
                                    time.monotonic() - self._last_save >= self.every_seconds)

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
            "seed_states": [np.asarray(variable).tolist()
                            for variable in seed_state_variables(self.model)],
            "seconds": self.seconds_so_far(),
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


def _has_fields(state: Any) -> bool:
    """A state.json of the current layout (older snapshots lack the random state)."""
    return isinstance(state, dict) and all(
        key in state for key in ("epoch", "files", "keep_best", "callbacks", "history",
                                 "seed_states", "seconds"))


def _plain(value: Any) -> Any:
    """A callback counter as a JSON value (numpy and backend scalars become Python numbers)."""
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return float(np.asarray(value))
