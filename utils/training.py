"""Training and evaluation: the three protocols, callbacks, metrics, seeding.

``train_model`` fits a model built by ``utils.models`` on a ``utils.data.Dataset`` under one of
three named protocols (original_spec.md section 4):

``train-loss`` (default)
    The original repository's current regime ("minimum training loss"): keep the weights of the
    epoch with the lowest training loss, reduce the learning rate by 2^(-1/3) after 100 epochs
    without improvement of the training loss (down to 1e-4). The test set is never looked at.
``validation``
    A stratified, seeded hold-out from the training split drives the checkpoint, the learning-rate
    schedule and early stopping; the best weights are restored. The test set is never looked at.
``test-checkpoint``
    The 2017 paper regime that keeps the epoch with the best *test* accuracy. It leaks test labels
    into model selection and exists only to reproduce the paper's Table 1: it must be asked for by
    name and everything it returns says ``leaky=True``.

After training, BatchNorm moving statistics are recomputed over the training split with the
chosen weights (``recalibrate_batchnorm=True``). With fewer training cases than the batch size an
epoch is a single optimiser step, and after a few hundred epochs the moving averages (momentum
0.99) still remember their initial values, so inference-mode predictions can sit at chance while
the training loss is tiny. Recalibrating costs one pass over the training data and removes that
trap; ``recalibrate_batchnorm=False`` keeps the original behaviour.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from utils.errors import ConfigurationError

PROTOCOLS = ("train-loss", "validation", "test-checkpoint")
LEAKY_PROTOCOLS = ("test-checkpoint",)
CLASS_WEIGHT_CHOICES = (None, "none", "balanced")

# The original's ReduceLROnPlateau settings (original_spec.md 4.1).
LR_FACTOR = 2.0 ** (-1.0 / 3.0)
LR_PATIENCE = 100
MIN_LEARNING_RATE = 1e-4


@dataclass
class TrainingResult:
    """What ``train_model`` did.

    Attributes
    ----------
    protocol : str
        One of ``PROTOCOLS``.
    leaky : bool
        True when the test set was used for model selection (``test-checkpoint``).
    epochs_run : int
        Epochs actually run (early stopping may end a run before ``epochs``).
    best_epoch : int
        1-based epoch whose weights were kept.
    best_monitor : float
        Value of the monitored quantity at ``best_epoch``.
    best_train_loss : float
        Training loss (epoch mean in training mode, as Keras logs it) at ``best_epoch``.
    train_seconds : float
        Wall-clock time of the fit, BatchNorm recalibration included; for a resumed run, the
        time of every process that worked on it (up to each one's last snapshot); for a run
        packed with others by the ``xla`` engine, its share (the pack's time / ``pack_size``).
    history : dict
        Per-epoch logs (``loss``, ``accuracy``, ``learning_rate``, ``val_*`` when validating).
    engine : str
        ``"fit"`` (``model.fit``) or ``"xla"`` (``utils.engine_xla``).
    pack_size : int
        Runs trained together by the ``xla`` engine (1 unless packed).
    compile_seconds : float
        ``xla`` engine: time of the first call (compilation plus one epoch), within
        ``train_seconds``.
    """

    protocol: str
    leaky: bool
    monitor: str
    epochs_run: int
    best_epoch: int
    best_monitor: float
    best_train_loss: float
    train_seconds: float
    history: dict[str, list[float]] = field(repr=False, default_factory=dict)
    engine: str = "fit"
    pack_size: int = 1
    compile_seconds: float = 0.0


@dataclass
class EvaluationResult:
    """Test-set metrics of ``evaluate_model`` (probabilities have shape (n_cases, n_classes))."""

    accuracy: float
    loss: float
    balanced_accuracy: float
    macro_f1: float
    n_cases: int
    predictions: np.ndarray = field(repr=False)
    probabilities: np.ndarray = field(repr=False)

    def as_row(self, prefix: str = "test_") -> dict[str, float]:
        """The scalar metrics as a flat dict, e.g. for a results CSV."""
        return {
            f"{prefix}accuracy": self.accuracy,
            f"{prefix}loss": self.loss,
            f"{prefix}balanced_accuracy": self.balanced_accuracy,
            f"{prefix}macro_f1": self.macro_f1,
        }


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and the Keras backend (same seed on CPU -> same weights)."""
    import keras

    keras.utils.set_random_seed(int(seed))


def compile_model(model: Any, learning_rate: float = 1e-3, steps_per_execution: int = 1) -> Any:
    """Compile with the original's optimiser and loss: Adam(lr), categorical cross-entropy."""
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )
    return model


def _resolve_dataset(dataset: Any, normalize_timeseries: Any, data_dir: Any) -> Any:
    """Accept a loaded ``Dataset`` or anything ``load_dataset`` takes (name, id, path)."""
    if hasattr(dataset, "X_train"):
        return dataset
    from utils.data import load_dataset

    # None: the family's own default ("auto": sample-wise for univariate, none for
    # multivariate data); the original's flag: True/1 sample-wise, 2 dataset-wise, False none
    if normalize_timeseries is None:
        normalize = "auto"
    elif normalize_timeseries is True:
        normalize = "sample"
    elif normalize_timeseries is False:
        normalize = "none"
    else:
        normalize = {1: "sample", 2: "dataset"}.get(normalize_timeseries, normalize_timeseries)
    return load_dataset(dataset, data_dir=data_dir, normalize=normalize)


def class_weights(y: np.ndarray, n_classes: int,
                  mode: str | dict[int, float] | None) -> dict[int, float] | None:
    """``None`` (the published runs: the original's weights were silently ignored), the
    scikit-learn "balanced" weights N / (K * n_k), or given weights {class index: weight}, as
    the dict Keras 3 requires (classes missing from a given dict weigh 1)."""
    if isinstance(mode, dict):
        return {k: float(mode.get(k, 1.0)) for k in range(n_classes)}
    if mode in (None, "none"):
        return None
    if mode != "balanced":
        raise ConfigurationError(f"class_weight must be one of none, balanced; got {mode!r}")
    counts = np.bincount(y, minlength=n_classes).astype(float)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = len(y) / (present.sum() * counts[present])
    return {k: float(w) for k, w in enumerate(weights)}


def validation_split(
    y: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (fit, validation) of a stratified, seeded hold-out from the training split.

    Every class keeps at least one case on the fitting side: the only case of a class is never
    held out, and the other classes are split in proportion.
    """
    from sklearn.model_selection import train_test_split

    if not 0.0 < fraction < 1.0:
        raise ConfigurationError(f"validation_fraction must be in (0, 1); got {fraction}")
    counts = np.bincount(y)
    always_fit = np.flatnonzero(counts[y] == 1)
    splittable = np.flatnonzero(counts[y] >= 2)
    n_classes = int((counts >= 2).sum())
    n_validation = max(int(round(fraction * len(splittable))), n_classes)
    if n_classes == 0 or n_validation >= len(splittable):
        raise ConfigurationError(
            f"the training split has {len(y)} cases: too few for a validation hold-out of "
            f"{fraction:.0%}; use protocol train-loss"
        )
    fit, held_out = train_test_split(
        splittable, test_size=n_validation, random_state=seed, stratify=y[splittable]
    )
    return np.sort(np.concatenate([fit, always_fit])), np.sort(held_out)


def recalibrate_batchnorm(model: Any, inputs: Any, batch_size: int = 128) -> None:
    """Set every BatchNorm layer's moving mean/variance to the average batch statistics of
    ``inputs`` under the current weights (one forward pass in training mode, no weight update).

    Chunk i uses momentum (i-1)/i, so after the pass the moving statistics are the plain mean
    of the chunk statistics, independent of their initial values.
    """
    import keras

    batchnorms = [
        layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)
    ]
    if not batchnorms:
        return
    def chunk_of(start: int) -> Any:
        # the same structure model_inputs gives: a dict of arrays, or a one-element list
        if isinstance(inputs, dict):
            return {name: np.asarray(value[start : start + batch_size])
                    for name, value in inputs.items()}
        return [np.asarray(inputs[start : start + batch_size])]

    n_cases = len(next(iter(inputs.values())) if isinstance(inputs, dict) else inputs)
    original_momenta = [layer.momentum for layer in batchnorms]
    try:
        for chunk, start in enumerate(range(0, n_cases, batch_size), start=1):
            for layer in batchnorms:
                layer.momentum = (chunk - 1) / chunk
            model(chunk_of(start), training=True)
    finally:
        for layer, momentum in zip(batchnorms, original_momenta, strict=True):
            layer.momentum = momentum


def shuffle_seed(seed: int | None) -> int:
    """The seed of the epoch orders: the run's seed, or a fresh one for an unseeded run."""
    if seed is not None:
        return int(seed)
    return int(np.random.SeedSequence().generate_state(1)[0])


class _KeepBest:
    """Remember the weights of the best epoch in memory (no file written every improvement)."""

    def __init__(self, monitor: str, mode: str):
        self.monitor, self.mode = monitor, mode
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch = 0
        self.best_logs: dict[str, float] = {}
        self.weights: list[np.ndarray] | None = None

    def update(self, model: Any, epoch: int, logs: dict[str, float]) -> None:
        value = logs.get(self.monitor)
        if value is None or not np.isfinite(value):
            return
        improved = value < self.best if self.mode == "min" else value > self.best
        if improved:  # strictly better, as Keras-2 ModelCheckpoint(save_best_only=True)
            self.best, self.best_epoch, self.best_logs = float(value), epoch + 1, dict(logs)
            self.weights = model.get_weights()


def _make_callbacks(
    keep_best: _KeepBest,
    protocol_mode: str,
    monitor: str,
    lr_factor: float,
    lr_patience: int,
    min_learning_rate: float,
    early_stopping_patience: int | None,
) -> list[Any]:
    import keras

    class KeepBestCallback(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            keep_best.update(self.model, epoch, logs or {})

    callbacks: list[Any] = [
        KeepBestCallback(),
        keras.callbacks.ReduceLROnPlateau(
            monitor=monitor,
            mode=protocol_mode,
            factor=lr_factor,
            patience=lr_patience,
            min_lr=min_learning_rate,
            min_delta=1e-4,
            verbose=0,
        ),
        keras.callbacks.TerminateOnNaN(),
    ]
    if early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor, mode=protocol_mode, patience=early_stopping_patience
            )
        )
    return callbacks


def make_progress_callback(total_epochs: int, description: str, stream: Any = None,
                           initial: int = 0) -> Any:
    """One tqdm line per run: epoch count, loss, learning rate, seconds per epoch, ETA."""
    import keras
    from tqdm.auto import tqdm

    stream = stream or sys.stderr
    interactive = hasattr(stream, "isatty") and stream.isatty()

    class Progress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.bar = tqdm(
                total=total_epochs,
                initial=initial,
                desc=description,
                unit="ep",
                file=stream,
                mininterval=0.5 if interactive else 30.0,
                dynamic_ncols=interactive,
                leave=True,
            )
            self.best = math.inf

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            loss = float(logs.get("loss", math.nan))
            self.best = min(self.best, loss)
            self.bar.set_postfix(
                loss=f"{loss:.4f}",
                best=f"{self.best:.4f}",
                lr=f"{float(logs.get('learning_rate', math.nan)):.1e}",
                refresh=False,
            )
            self.bar.update(1)

        def on_train_end(self, logs=None):
            self.bar.close()

    return Progress()


def _check_settings(protocol: str, class_weight: Any, epochs: int, batch_size: int) -> None:
    if protocol not in PROTOCOLS:
        raise ConfigurationError(
            f"protocol must be one of {', '.join(PROTOCOLS)}; got {protocol!r}"
        )
    if not isinstance(class_weight, dict) and class_weight not in CLASS_WEIGHT_CHOICES:
        raise ConfigurationError(f"class_weight must be none or balanced; got {class_weight!r}")
    if epochs < 1 or batch_size < 1:
        raise ConfigurationError(f"epochs and batch_size must be >= 1; got {epochs}, {batch_size}")


def _protocol_setup(model: Any, data: Any, protocol: str, seed: int | None,
                    validation_fraction: float, lr_patience: int,
                    early_stopping_patience: int | None) -> tuple:
    """(fit indices, monitored (inputs, labels) or None, monitor, mode, early-stop patience)."""
    from utils.models import model_inputs

    fit_index = np.arange(len(data.y_train))
    validation_data = None
    if protocol == "validation":
        fit_index, held_out = validation_split(data.y_train, validation_fraction, seed or 0)
        validation_data = (
            model_inputs(model, data.X_train[held_out], data.lengths_train[held_out]),
            data.y_train[held_out],
        )
        monitor, mode = "val_loss", "min"
        if early_stopping_patience is None:
            early_stopping_patience = 3 * lr_patience
    elif protocol == "test-checkpoint":
        validation_data = (model_inputs(model, data.X_test, data.lengths_test), data.y_test)
        monitor, mode = "val_accuracy", "max"
    else:
        monitor, mode = "loss", "min"
    return fit_index, validation_data, monitor, mode, early_stopping_patience


def train_model(
    model: Any,
    dataset: Any,
    epochs: int = 2000,
    batch_size: int = 128,
    *,
    protocol: str = "train-loss",
    learning_rate: float = 1e-3,
    class_weight: str | dict[int, float] | None = None,
    seed: int | None = 0,
    normalize_timeseries: Any = None,
    data_dir: str | os.PathLike | None = None,
    validation_fraction: float = 0.2,
    lr_factor: float = LR_FACTOR,
    lr_patience: int = LR_PATIENCE,
    min_learning_rate: float = MIN_LEARNING_RATE,
    early_stopping_patience: int | None = None,
    recalibrate_batchnorm_stats: bool = True,
    steps_per_execution: int | None = None,
    progress: bool | str = False,
    callbacks: list[Any] | None = None,
    snapshot_dir: str | os.PathLike | None = None,
    snapshot_seconds: float = 300.0,
    snapshot_fingerprint: dict[str, Any] | None = None,
    verbose: int = 0,
    engine: str = "auto",
    shuffle: bool = True,
    precision: str = "float32",
) -> TrainingResult:
    """Fit ``model`` on ``dataset`` under a named protocol and keep its best weights.

    Parameters
    ----------
    model : keras.Model
        From ``utils.models`` (compiled here with Adam(learning_rate) and cross-entropy).
    dataset : utils.data.Dataset or str or int
        A loaded dataset, or a name / id / path given to ``load_dataset`` with
        ``normalize_timeseries`` (None or "auto": sample-wise for univariate and none for
        multivariate data, as the LSTM-FCN and MLSTM-FCN code; True or "sample": sample-wise
        z-norm; 2 or "dataset"; False or "none").
    epochs, batch_size : int, default 2000, 128
        The paper's settings.
    protocol : {"train-loss", "validation", "test-checkpoint"}, default "train-loss"
        See the module docstring. "test-checkpoint" uses test labels (leaky).
    learning_rate : float, default 1e-3
    class_weight : {None, "balanced"} or dict {class index: weight}, default None
        None as in the published runs; "balanced" as the original intended.
    seed : int or None, default 0
        Seeds shuffling and dropout (seed before building the model for identical weights).
    validation_fraction : float, default 0.2
        Size of the hold-out of the ``validation`` protocol.
    lr_factor, lr_patience, min_learning_rate : float, int, float
        ReduceLROnPlateau settings, default the original's 2^(-1/3), 100, 1e-4.
    early_stopping_patience : int or None
        Epochs without improvement before stopping; default None for ``train-loss`` and
        ``test-checkpoint`` (the original ran all epochs), 3 * lr_patience for ``validation``.
    recalibrate_batchnorm_stats : bool, default True
        Recompute BatchNorm statistics over the training split for the kept weights.
    steps_per_execution : int or None
        Optimiser steps per compiled call; default: all steps of an epoch (fewer Python round
        trips on small data).
    progress : bool or str
        Show a one-line progress bar (a str is used as its description).
    callbacks : list of keras.callbacks.Callback, optional
        Extra callbacks (e.g. timing, TensorBoard), run after the protocol's own.
    snapshot_dir : path-like, optional
        Save the state of the run there every ``snapshot_seconds`` and, when a snapshot of the
        same run (``snapshot_fingerprint`` plus these settings) is there, resume from it
        (``utils.resume``). The folder is removed when training ends.
    verbose : int, default 0
        Keras' own per-epoch output (off: the progress bar replaces it).
    engine : {"auto", "fit", "xla"}, default "auto"
        ``"fit"``: ``model.fit`` with the protocol's callbacks. ``"xla"``: the compiled JAX
        engine (``utils.engine_xla``; JAX backend only, no extra ``callbacks``): the same
        protocol, the same case orders, no Python work per batch. ``"auto"``: ``xla`` on the
        JAX backend when no ``callbacks`` are given, else ``fit``.
    shuffle : bool, default True
        Shuffle the training cases every epoch (False only for comparisons of engines).
    precision : {"float32", "mixed_bfloat16"}, default "float32"
        ``mixed_bfloat16`` needs engine ``xla`` on a GPU and a model built under that dtype
        policy (``utils.engine_xla.dtype_policy_scope``); it is refused on CPU.

    Returns
    -------
    TrainingResult
        The model keeps the best weights (and recalibrated BatchNorm statistics) on return.
    """
    _check_settings(protocol, class_weight, epochs, batch_size)
    from utils.engine_xla import check_precision, resolve_engine
    from utils.models import model_inputs

    engine = resolve_engine("fit" if engine == "auto" and callbacks else engine)
    check_precision(precision, engine)
    if engine == "xla":
        if callbacks:
            raise ConfigurationError(
                "keras callbacks run only with engine 'fit' (the xla engine has no per-epoch "
                "Python hook); pass engine='fit'")
        return train_packed(
            [model], dataset, [seed], epochs, batch_size, protocol=protocol,
            learning_rate=learning_rate, class_weight=class_weight,
            normalize_timeseries=normalize_timeseries, data_dir=data_dir,
            validation_fraction=validation_fraction, lr_factor=lr_factor,
            lr_patience=lr_patience, min_learning_rate=min_learning_rate,
            early_stopping_patience=early_stopping_patience,
            recalibrate_batchnorm_stats=recalibrate_batchnorm_stats, progress=progress,
            snapshot_dir=snapshot_dir, snapshot_seconds=snapshot_seconds,
            snapshot_fingerprint=snapshot_fingerprint, engine="xla", shuffle=shuffle,
            precision=precision)[0]

    data = _resolve_dataset(dataset, normalize_timeseries, data_dir)
    if seed is not None:
        set_seed(seed)

    fit_index, validation_data, monitor, mode, early_stopping_patience = _protocol_setup(
        model, data, protocol, seed, validation_fraction, lr_patience, early_stopping_patience)
    x_fit = model_inputs(model, data.X_train[fit_index], data.lengths_train[fit_index])
    y_fit = data.y_train[fit_index]
    steps_per_epoch = math.ceil(len(y_fit) / batch_size)
    compile_model(model, learning_rate, steps_per_execution or steps_per_epoch)

    keep_best = _KeepBest(monitor, mode)
    all_callbacks = _make_callbacks(
        keep_best, mode, monitor, lr_factor, lr_patience, min_learning_rate,
        early_stopping_patience,
    ) + list(callbacks or [])
    from utils.resume import EpochBatches

    snapshot, initial_epoch = None, 0
    if snapshot_dir is not None:
        import keras

        from utils.resume import TrainingSnapshot

        fingerprint = {
            **(snapshot_fingerprint or {}), "protocol": protocol, "epochs": epochs,
            "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed,
            "class_weight": class_weight, "validation_fraction": validation_fraction,
            "lr": [lr_factor, lr_patience, min_learning_rate], "n_fit": len(y_fit),
            "model": [model.name, model.count_params()],
        }
        stateful = [c for c in all_callbacks if isinstance(
            c, keras.callbacks.ReduceLROnPlateau | keras.callbacks.EarlyStopping)]
        snapshot = TrainingSnapshot(Path(snapshot_dir), fingerprint, keep_best, stateful,
                                    snapshot_seconds)
        initial_epoch = snapshot.restore(model)
        all_callbacks.append(snapshot)
    if progress:
        description = progress if isinstance(progress, str) else getattr(data, "name", "training")
        if initial_epoch:
            description += f" (resumed at epoch {initial_epoch})"
        all_callbacks.append(make_progress_callback(epochs, description, initial=initial_epoch))

    start = time.perf_counter()
    # shuffled by (seed, epoch) alone, so that a resumed run sees the batches of an
    # uninterrupted one (utils.resume.EpochBatches)
    batches = EpochBatches(x_fit, y_fit, batch_size, shuffle_seed(seed), shuffle=shuffle)
    history = model.fit(
        batches,
        epochs=epochs,
        callbacks=[batches.tracker(), *all_callbacks],
        class_weight=class_weights(y_fit, data.n_classes, class_weight),
        validation_data=validation_data,
        shuffle=False,  # the batches are shuffled already; Keras would reorder them again
        initial_epoch=initial_epoch,
        verbose=verbose,
    )
    if keep_best.weights is None:
        raise ConfigurationError(
            f"training on {getattr(data, 'name', 'the dataset')} produced no finite {monitor}; "
            "try a lower learning rate"
        )
    model.set_weights(keep_best.weights)
    if recalibrate_batchnorm_stats:
        recalibrate_batchnorm(model, x_fit, batch_size)
    seconds = time.perf_counter() - start

    logs = {key: [float(v) for v in values] for key, values in history.history.items()}
    if snapshot is not None:  # every epoch and every process, those before a resume included
        logs = snapshot.history
        seconds = snapshot.seconds_before + seconds
        snapshot.discard()
    return TrainingResult(
        protocol=protocol,
        leaky=protocol in LEAKY_PROTOCOLS,
        monitor=monitor,
        epochs_run=len(logs.get("loss", [])),
        best_epoch=keep_best.best_epoch,
        best_monitor=keep_best.best,
        best_train_loss=float(keep_best.best_logs.get("loss", math.nan)),
        train_seconds=seconds,
        history=logs,
    )


def train_packed(
    models: list[Any],
    dataset: Any,
    seeds: list[int | None],
    epochs: int = 2000,
    batch_size: int = 128,
    *,
    protocol: str = "train-loss",
    learning_rate: float = 1e-3,
    class_weight: str | dict[int, float] | None = None,
    normalize_timeseries: Any = None,
    data_dir: str | os.PathLike | None = None,
    validation_fraction: float = 0.2,
    lr_factor: float = LR_FACTOR,
    lr_patience: int = LR_PATIENCE,
    min_learning_rate: float = MIN_LEARNING_RATE,
    early_stopping_patience: int | None = None,
    recalibrate_batchnorm_stats: bool = True,
    progress: bool | str = False,
    snapshot_dir: str | os.PathLike | None = None,
    snapshot_seconds: float = 300.0,
    snapshot_fingerprint: dict[str, Any] | None = None,
    engine: str = "auto",
    shuffle: bool = True,
    precision: str = "float32",
    chunk_epochs: int | None = None,
) -> list[TrainingResult]:
    """Train several runs of one architecture on one dataset (e.g. the seeds of a
    (dataset, model, cells)) and return one ``TrainingResult`` per run, in order.

    With engine ``xla`` the K runs are trained together by ``utils.engine_xla`` (on CPU: one
    thread per core; on a GPU: one vectorised program). Each keeps its own weights, optimiser
    state, case orders, dropout stream, learning-rate schedule and best checkpoint, and gets
    what ``train_model(engine="xla")`` gives it alone. With engine ``fit`` the runs are trained
    one after the other with ``train_model``.

    Parameters
    ----------
    models : list of keras.Model
        One per run, built with its seed (``set_seed(seed)`` before ``build_model``), all of
        one architecture and input shape.
    dataset : utils.data.Dataset or str or int
        As in ``train_model``.
    seeds : list of int
        One per model: the case orders and the ``validation`` hold-out of that run.
    snapshot_dir : path-like, optional
        One folder for the whole pack (``fit``: one subfolder per run); a killed pack resumes
        from it when started again with the same runs and settings.
    chunk_epochs : int, optional
        ``xla``: epochs per host call (default: grown to about two seconds per call).

    The other parameters are ``train_model``'s.
    """
    _check_settings(protocol, class_weight, epochs, batch_size)
    if len(models) != len(seeds) or not models:
        raise ConfigurationError(
            f"train_packed needs one seed per model; got {len(models)} models, {len(seeds)} seeds")
    from utils.engine_xla import RunData, check_precision, fit_packed, resolve_engine
    from utils.models import model_inputs

    engine = resolve_engine(engine)
    check_precision(precision, engine)
    data = _resolve_dataset(dataset, normalize_timeseries, data_dir)
    common = dict(
        protocol=protocol, learning_rate=learning_rate, class_weight=class_weight,
        validation_fraction=validation_fraction, lr_factor=lr_factor, lr_patience=lr_patience,
        min_learning_rate=min_learning_rate, early_stopping_patience=early_stopping_patience,
        recalibrate_batchnorm_stats=recalibrate_batchnorm_stats,
        snapshot_seconds=snapshot_seconds, snapshot_fingerprint=snapshot_fingerprint,
        shuffle=shuffle, precision=precision,
    )
    if engine == "fit":
        return [
            train_model(model, data, epochs, batch_size, seed=seed, engine="fit",
                        progress=f"{progress} seed {seed}" if isinstance(progress, str)
                        else progress,
                        snapshot_dir=None if snapshot_dir is None
                        else Path(snapshot_dir) / f"seed{seed}", **common)
            for model, seed in zip(models, seeds, strict=True)
        ]

    start = time.perf_counter()
    runs, fit_inputs, inputs_by_index = [], [], {}
    for model, seed in zip(models, seeds, strict=True):
        fit_index, monitored, monitor, mode, patience = _protocol_setup(
            model, data, protocol, seed, validation_fraction, lr_patience,
            early_stopping_patience)
        signature = fit_index.tobytes()
        if signature not in inputs_by_index:  # one copy of the arrays when the runs share it
            inputs_by_index[signature] = (
                model_inputs(model, data.X_train[fit_index], data.lengths_train[fit_index]),
                data.y_train[fit_index], monitored)
        x_fit, y_fit, monitored = inputs_by_index[signature]
        weights = class_weights(y_fit, data.n_classes, class_weight)
        runs.append(RunData(
            x_fit=x_fit, y_fit=y_fit,
            sample_weight=None if weights is None
            else np.asarray([weights[int(k)] for k in y_fit], dtype=np.float32),
            x_monitor=None if monitored is None else monitored[0],
            y_monitor=None if monitored is None else monitored[1]))
        fit_inputs.append(x_fit)
        compile_model(model, learning_rate)
        first = (slice(0, 1),)
        model._symbolic_build(data_batch=(
            x_fit[first] if not isinstance(x_fit, dict)
            else {name: value[first] for name, value in x_fit.items()},
            y_fit[:1]))
    fingerprint = None
    if snapshot_dir is not None:
        fingerprint = {
            **(snapshot_fingerprint or {}), "protocol": protocol, "batch_size": batch_size,
            "learning_rate": learning_rate, "class_weight": class_weight,
            "validation_fraction": validation_fraction,
            "lr": [lr_factor, lr_patience, min_learning_rate], "n_fit": len(runs[0].y_fit),
            "model": [models[0].name, models[0].count_params()],
        }
    histories, summaries, compile_seconds = fit_packed(
        models, runs, [shuffle_seed(seed) for seed in seeds], epochs=epochs,
        batch_size=batch_size, monitor=monitor, mode=mode, learning_rate=learning_rate,
        lr_factor=lr_factor, lr_patience=lr_patience, min_learning_rate=min_learning_rate,
        early_stopping_patience=patience, shuffle=shuffle, progress=progress,
        snapshot_dir=snapshot_dir, snapshot_seconds=snapshot_seconds,
        snapshot_fingerprint=fingerprint, chunk_epochs=chunk_epochs,
    )
    for model, x_fit, summary in zip(models, fit_inputs, summaries, strict=True):
        if summary["best_epoch"] == 0:
            raise ConfigurationError(
                f"training on {getattr(data, 'name', 'the dataset')} produced no finite "
                f"{monitor}; try a lower learning rate"
            )
        if recalibrate_batchnorm_stats:
            recalibrate_batchnorm(model, x_fit, batch_size)
    seconds = time.perf_counter() - start
    return [
        TrainingResult(
            protocol=protocol, leaky=protocol in LEAKY_PROTOCOLS, monitor=monitor,
            epochs_run=len(history["loss"]), best_epoch=summary["best_epoch"],
            best_monitor=summary["best"], best_train_loss=summary["best_loss"],
            train_seconds=seconds / len(models), history=history, engine="xla",
            pack_size=len(models), compile_seconds=compile_seconds,
        )
        for history, summary in zip(histories, summaries, strict=True)
    ]


def predict_proba(model: Any, X: np.ndarray, lengths: np.ndarray | None = None,
                  batch_size: int = 128) -> np.ndarray:
    """Class probabilities, shape (n_cases, n_classes), in inference mode."""
    from utils.models import model_inputs

    return np.asarray(model.predict(model_inputs(model, X, lengths), batch_size=batch_size,
                                    verbose=0))


def classification_metrics(y_true: np.ndarray, probabilities: np.ndarray) -> EvaluationResult:
    """Accuracy, cross-entropy, balanced accuracy and macro F1 of predicted probabilities."""
    from sklearn.metrics import balanced_accuracy_score, f1_score

    predictions = probabilities.argmax(axis=1)
    clipped = np.clip(probabilities[np.arange(len(y_true)), y_true], 1e-7, 1.0)
    labels = np.arange(probabilities.shape[1])
    return EvaluationResult(
        accuracy=float(np.mean(predictions == y_true)),
        loss=float(-np.mean(np.log(clipped))),
        balanced_accuracy=float(balanced_accuracy_score(y_true, predictions)),
        macro_f1=float(f1_score(y_true, predictions, labels=labels, average="macro",
                                zero_division=0)),
        n_cases=len(y_true),
        predictions=predictions,
        probabilities=probabilities,
    )


def evaluate_model(
    model: Any,
    dataset: Any,
    batch_size: int = 128,
    *,
    split: str = "test",
    normalize_timeseries: Any = None,
    data_dir: str | os.PathLike | None = None,
    predictions_path: str | os.PathLike | None = None,
) -> EvaluationResult:
    """Evaluate ``model`` (inference mode) on the test split, or the train split.

    Parameters
    ----------
    model : keras.Model
        With the weights to evaluate (e.g. the best checkpoint kept by ``train_model``).
    dataset : utils.data.Dataset or str or int
        As in ``train_model``.
    split : {"test", "train"}, default "test"
        "train" gives the inference-mode training loss used to select the cell count.
    predictions_path : path-like, optional
        Write one row per case (index, true and predicted label in the original label names,
        one probability column per class) to this CSV, atomically.

    Returns
    -------
    EvaluationResult
        accuracy, loss, balanced_accuracy, macro_f1, predictions, probabilities.
    """
    if split not in ("test", "train"):
        raise ConfigurationError(f"split must be test or train; got {split!r}")
    data = _resolve_dataset(dataset, normalize_timeseries, data_dir)
    X, y, lengths = (
        (data.X_test, data.y_test, data.lengths_test)
        if split == "test"
        else (data.X_train, data.y_train, data.lengths_train)
    )
    result = classification_metrics(y, predict_proba(model, X, lengths, batch_size))
    if predictions_path is not None:
        write_predictions(predictions_path, data, y, result)
    return result


def write_predictions(path: str | os.PathLike, data: Any, y_true: np.ndarray,
                      result: EvaluationResult) -> None:
    """Per-case predictions and probabilities as CSV (original label names), atomically."""
    from utils.atomic_files import write_text_atomic

    write_text_atomic(path, predictions_csv(data, y_true, result))


def predictions_csv(data: Any, y_true: np.ndarray, result: EvaluationResult) -> str:
    """The text of :func:`write_predictions`' file: one row per case (index, true and predicted
    label in the original label names, one probability column per class)."""
    import pandas as pd

    classes = [str(label) for label in data.classes]
    frame = pd.DataFrame(
        {
            "case": np.arange(len(y_true)),
            "true_label": [classes[k] for k in y_true],
            "predicted_label": [classes[k] for k in result.predictions],
        }
    )
    for k, label in enumerate(classes):
        frame[f"p_{label}"] = result.probabilities[:, k]
    return frame.to_csv(index=False)
