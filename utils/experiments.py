"""The experiment grid behind ``all_datasets_training.py``.

One *run* is a (dataset, model, cells, seed, protocol) tuple. For each run the grid loads the
dataset, builds and trains the model, evaluates it, saves the weights and appends one row to
``logs/<model>_<cells>_cells_results.csv``. It is built to be interrupted:

* a run whose row is already in the log (with an empty ``error``) is skipped;
* weights and log files are written to a temporary name and renamed, so a kill at any moment
  leaves either the old file or the new one, never half of one;
* a run killed after its weights were saved but before its row was written is recovered from
  the weights and their sidecar on the next start (no retraining, no duplicate row);
* an existing weights file that does not belong to the run is never overwritten without
  ``overwrite=True``;
* a failing run is logged with its error and the grid goes on.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import platform
import time
import traceback
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from utils.atomic_files import check_writable_folder, remove_partial_files, write_text_atomic
from utils.checkpoints import (
    load_trained_model,
    read_sidecar,
    save_trained_model,
    sidecar_describes,
    weights_path,
)
from utils.errors import ConfigurationError, DatasetError, LSTMFCNError
from utils.interrupts import raise_if_stop_requested, stop_at_safe_points
from utils.training import PROTOCOLS

RUN_KEY = ("dataset", "model", "cells", "seed", "protocol")
SELECTION_KEY = ("dataset", "model", "seed", "protocol")
LOG_COLUMNS = (
    "dataset_id", "dataset", "model", "cells", "seed", "protocol", "leaky", "normalize",
    "epochs", "epochs_run", "best_epoch", "best_train_loss", "train_loss", "train_accuracy",
    "test_accuracy", "test_loss", "test_balanced_accuracy", "test_macro_f1", "train_seconds",
    "seconds_per_epoch", "n_params", "batch_size", "learning_rate", "class_weight",
    "backend", "keras_version", "backend_version", "numpy_version", "python_version",
    "weights_file", "status", "timestamp", "error",
)
MODES = ("train", "evaluate", "both")
NORMALIZATIONS = ("auto", "none", "sample", "dataset")


@dataclass
class GridConfig:
    """Settings of one invocation of the loop script (see its flags for meanings)."""

    datasets: list[str]
    models: list[str]
    cells: list[int]
    seeds: list[int] = field(default_factory=lambda: [0])
    epochs: int = 2000
    batch_size: int = 128
    protocol: str = "train-loss"
    normalize: str = "auto"
    learning_rate: float = 1e-3
    class_weight: str | None = None
    recalibrate_batchnorm: bool = True
    mode: str = "both"
    select_cells: bool = False
    overwrite: bool = False
    data_dir: str | None = None
    weights_dir: str = "weights"
    logs_dir: str = "logs"
    save_predictions: bool = False
    progress: bool = True
    snapshot_minutes: float = 5.0

    def validate(self) -> None:
        from utils.models import MODEL_BUILDERS

        if self.protocol not in PROTOCOLS:
            raise ConfigurationError(
                f"--protocol must be one of {', '.join(PROTOCOLS)}; got {self.protocol!r}"
            )
        if self.mode not in MODES:
            raise ConfigurationError(f"--mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        if self.normalize not in NORMALIZATIONS:
            raise ConfigurationError(
                f"--normalize must be one of {', '.join(NORMALIZATIONS)}; got {self.normalize!r}"
            )
        unknown = [name for name in self.models if name not in MODEL_BUILDERS]
        if unknown:
            raise ConfigurationError(
                f"--models: unknown model(s) {', '.join(unknown)}; "
                f"choose from {', '.join(MODEL_BUILDERS)}"
            )
        if not self.datasets or not self.models or not self.cells or not self.seeds:
            raise ConfigurationError("--datasets, --models, --cells and --seeds must not be empty")
        if any(c < 1 for c in self.cells):
            raise ConfigurationError(f"--cells must be positive integers; got {self.cells}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigurationError("--epochs and --batch-size must be >= 1")
        if self.select_cells and len(self.cells) < 2:
            raise ConfigurationError("--select-cells needs at least two --cells to choose from")


# --------------------------------------------------------------------------- results logs


def results_log_path(logs_dir: str | os.PathLike, model_name: str, cells: int | str) -> Path:
    """``logs/<model>_<cells>_cells_results.csv`` (``cells`` may be ``"selected"``)."""
    return Path(logs_dir) / f"{model_name}_{cells}_cells_results.csv"


def read_log(path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a results CSV as dicts of strings (empty list when the file does not exist).

    The project writes these files whole (``upsert_row``), each line ending in a newline. A
    file that does not end in one was cut short by something else (a copy, a full disk): its
    last line is dropped with a warning, and the run it held is recovered from its weights or
    trained again. Any other damage (bytes that are not UTF-8, a row with the wrong number of
    fields, no run-key columns) raises ``DatasetError`` naming the file and line: a damaged
    log is never read as results.
    """
    path = Path(path)
    if not path.exists():
        return []
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as error:
        raise DatasetError(f"{path}: cannot read the results log ({error})") from error
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: not a results log of this project (not UTF-8 text: "
                           f"{error}); move it away to start a new one") from error
    if text and not text.endswith("\n"):
        cut = text.rsplit("\n", 1)[-1]
        warnings.warn(f"{path}: the last line was cut short ({cut[:60]!r}...); it is ignored "
                      "and its run will be recovered from its weights or trained again",
                      stacklevel=2)
        text = text[: len(text) - len(cut)]
    try:
        records = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as error:
        raise DatasetError(f"{path}: damaged results log ({error})") from error
    if not records:
        return []
    header = records[0]
    if not set(RUN_KEY) <= set(header) or len(set(header)) != len(header):
        raise DatasetError(f"{path}, line 1: not the header of a results log (the columns "
                           f"{', '.join(RUN_KEY)} are needed, each once)")
    rows = []
    for number, record in enumerate(records[1:], start=2):
        if len(record) != len(header):
            raise DatasetError(
                f"{path}, row {number}: {len(record)} fields where the header has "
                f"{len(header)}; the log is damaged: repair or move it away")
        rows.append(dict(zip(header, record, strict=True)))
    return rows


def _key(row: dict[str, Any], key: Sequence[str] = RUN_KEY) -> tuple[str, ...]:
    return tuple(str(row[column]) for column in key)


@contextlib.contextmanager
def _exclusive(path: Path):
    """Hold an exclusive lock beside ``path`` (POSIX), so that several loop processes can
    share one logs folder without losing each other's rows."""
    try:
        import fcntl
    except ImportError:  # Windows: one process per logs folder
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upsert_row(path: str | os.PathLike, row: dict[str, Any],
               key: Sequence[str] = RUN_KEY) -> None:
    """Add ``row`` to the CSV at ``path``, replacing the row with the same ``key`` columns.

    The whole file is rewritten through a temporary file and a rename, under a lock: a kill
    leaves the old file or the new one, and a re-run never duplicates a row. Columns beyond
    ``LOG_COLUMNS`` are kept.
    """
    path = Path(path)
    with _exclusive(path):
        rows = [old for old in read_log(path) if _key(old, key) != _key(row, key)]
        rows.append({**dict.fromkeys(LOG_COLUMNS, ""), **row})
        columns = list(LOG_COLUMNS) + sorted({c for r in rows for c in r} - set(LOG_COLUMNS))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(path, buffer.getvalue())


def completed_rows(logs_dir: str | os.PathLike, model_name: str, cells: int) -> dict:
    """Successful rows of one log, by run key."""
    return {
        _key(row): row
        for row in read_log(results_log_path(logs_dir, model_name, cells))
        if not row.get("error")
    }


# --------------------------------------------------------------------------- datasets


def _bundled_dataset_names(data_dir: str | os.PathLike | None) -> list[str]:
    from utils.data import default_data_dir

    root = Path(data_dir) if data_dir else default_data_dir()
    return sorted(
        folder.name
        for folder in root.iterdir()
        if folder.is_dir() and any(folder.glob(f"{folder.name}_TRAIN*"))
    )


def expand_datasets(tokens: Sequence[str | int], data_dir: str | None = None) -> list[str]:
    """Turn ``--datasets`` tokens (names, 2015 aliases, ids, ``bundled``, ``all``, paths)
    into dataset names, in order, without duplicates. Unknown names raise with suggestions."""
    from utils.constants import DATASET_REGISTRY, resolve_dataset

    names: list[str] = []
    for token in tokens:
        text = str(token).strip()
        if text == "bundled":
            names += _bundled_dataset_names(data_dir)
        elif text == "all":
            names += [r.name for r in DATASET_REGISTRY.values() if r.id is not None]
        elif Path(text).exists() and (os.sep in text or Path(text).is_dir()):
            names.append(text)  # a folder or file of the user's own data
        else:
            names.append(resolve_dataset(int(text) if text.isdigit() else text).name)
    return list(dict.fromkeys(names))


def _display_name(dataset_token: str) -> str:
    """Name used in weights paths and log rows (the folder name for a path)."""
    path = Path(dataset_token)
    if path.exists() and (os.sep in dataset_token or path.is_dir()):
        folder = path if path.is_dir() else path.parent
        return folder.name
    return dataset_token


def run_dataset_name(token: str | int, data_dir: str | None = None) -> str:
    """The name a run of ``--datasets token`` is saved under (weights path and log rows): the
    registry's 2018 name for a name, alias or id, the folder name for a path. Unknown names
    raise ``ConfigurationError`` naming ``--dataset`` and suggesting close names."""
    try:
        expanded = expand_datasets([token], data_dir)
    except LSTMFCNError as error:
        raise ConfigurationError(f"--dataset {token}: {error}") from None
    if len(expanded) != 1:  # 'bundled' / 'all' stand for several datasets
        raise ConfigurationError(f"--dataset {token}: name one dataset")
    return _display_name(expanded[0])


# --------------------------------------------------------------------------- one run


def software_versions() -> dict[str, str]:
    """Versions recorded in every result row."""
    import keras

    backend = keras.backend.backend()
    try:
        backend_module = __import__({"tensorflow": "tensorflow", "jax": "jax",
                                     "torch": "torch"}.get(backend, backend))
        backend_version = getattr(backend_module, "__version__", "")
    except ImportError:
        backend_version = ""
    return {
        "backend": backend,
        "keras_version": keras.__version__,
        "backend_version": backend_version,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
    }


def builder_arguments(data: Any, cells: int) -> dict[str, Any]:
    """Keyword arguments of ``build_model`` for ``data`` (stored in the weights sidecar)."""
    return {
        "max_sequence_length": int(data.X_train.shape[2]),
        "nb_class": int(data.n_classes),
        "num_cells": int(cells),
        "n_channels": int(data.X_train.shape[1]),
        "variable_length": not bool(data.equal_length),
    }


@dataclass
class RunOutcome:
    """One line of the end-of-grid summary."""

    dataset: str
    model: str
    cells: int
    seed: int
    status: str  # trained, skipped, recovered, evaluated, failed
    test_accuracy: float = math.nan
    logged_accuracy: float = math.nan
    epochs_run: int = 0
    seconds: float = 0.0
    error: str = ""


class DatasetCache:
    """Load each dataset once per invocation (the grid visits it for every model and cell)."""

    def __init__(self, data_dir: str | None, normalize: str):
        self.data_dir, self.normalize = data_dir, normalize
        self._cache: dict[str, Any] = {}

    def get(self, token: str) -> Any:
        if token not in self._cache:
            from utils.data import load_dataset

            self._cache[token] = load_dataset(token, data_dir=self.data_dir,
                                              normalize=self.normalize)
        return self._cache[token]


def _sidecar_matches(path: Path, config: dict[str, Any], expected: dict[str, Any]) -> bool:
    """The saved run at ``path`` is exactly the run ``expected`` describes, and complete."""
    return (all(config.get(key) == value for key, value in expected.items()) and "row" in config
            and sidecar_describes(path, config))


def _row_base(config: GridConfig, data: Any, dataset: str, model_name: str, cells: int,
              seed: int) -> dict[str, Any]:
    return {
        "dataset_id": "" if getattr(data, "dataset_id", None) is None else data.dataset_id,
        "dataset": dataset,
        "model": model_name,
        "cells": cells,
        "seed": seed,
        "protocol": config.protocol,
        "leaky": config.protocol == "test-checkpoint",
        "normalize": data.normalize,  # what was applied ("auto" resolved)
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "learning_rate": config.learning_rate,
        "class_weight": config.class_weight or "none",
        "recalibrate_batchnorm": config.recalibrate_batchnorm,
        **software_versions(),
    }


def dataset_stem(weights_file: Path) -> str:
    """``GunPoint`` for ``.../GunPoint.weights.h5`` (seed and protocol suffixes included)."""
    return weights_file.name.removesuffix(".weights.h5")


def train_one(config: GridConfig, data: Any, dataset: str, model_name: str, cells: int,
              seed: int, description: str) -> tuple[dict[str, Any], RunOutcome]:
    """Train, evaluate and save one run; returns its log row and summary line."""
    import keras

    from utils.models import build_model
    from utils.training import evaluate_model, set_seed, train_model

    path = weights_path(config.weights_dir, model_name, cells, dataset, seed, config.protocol)
    builder = builder_arguments(data, cells)
    expected = {
        "model": model_name, "builder": builder, "dataset": dataset,
        "normalize": data.normalize, "protocol": config.protocol, "seed": seed,
        "epochs": config.epochs, "batch_size": config.batch_size,
        "learning_rate": config.learning_rate, "class_weight": config.class_weight,
    }
    if not config.recalibrate_batchnorm:  # sidecars written before this option mean True
        expected["recalibrate_batchnorm"] = False
    if path.exists() and not config.overwrite:
        saved = read_sidecar(path)
        if not sidecar_describes(path, saved):
            raise ConfigurationError(
                f"{path} does not match the SHA-256 its sidecar records: the weights file is "
                "damaged, or it or its sidecar was replaced by one of other settings; move them "
                "away or pass --overwrite"
            )
        if not _sidecar_matches(path, saved, expected):
            raise ConfigurationError(
                f"{path} already exists and was trained with other settings; pass --overwrite "
                "to replace it, or move it away"
            )
        # killed between saving the weights and writing the row: recover, do not retrain
        model, _ = load_trained_model(path)
        test = evaluate_model(model, data, config.batch_size)
        row = {**saved["row"], **test.as_row(), "status": "recovered"}
        return row, RunOutcome(dataset, model_name, cells, seed, "recovered",
                               test.accuracy, epochs_run=int(row.get("epochs_run") or 0))

    keras.utils.clear_session(free_memory=True)
    set_seed(seed)
    model = build_model(model_name, **builder)
    result = train_model(
        model, data, config.epochs, config.batch_size, protocol=config.protocol,
        learning_rate=config.learning_rate, class_weight=config.class_weight, seed=seed,
        recalibrate_batchnorm_stats=config.recalibrate_batchnorm,
        progress=description if config.progress else False,
        # a killed run resumes from its last snapshot instead of epoch 0
        snapshot_dir=path.with_name(f".{dataset_stem(path)}.resume"),
        snapshot_seconds=60.0 * config.snapshot_minutes,
        snapshot_fingerprint=expected,
    )
    train = evaluate_model(model, data, config.batch_size, split="train")
    test_metrics: dict[str, Any] = {}
    test_accuracy = math.nan
    if config.mode == "both":
        test = evaluate_model(model, data, config.batch_size,
                              predictions_path=predictions_path(config, dataset, model_name,
                                                                cells, seed))
        test_metrics, test_accuracy = test.as_row(), test.accuracy

    row = {
        **_row_base(config, data, dataset, model_name, cells, seed),
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "best_train_loss": result.best_train_loss,
        "train_loss": train.loss,
        "train_accuracy": train.accuracy,
        **test_metrics,
        "train_seconds": round(result.train_seconds, 3),
        "seconds_per_epoch": round(result.train_seconds / max(result.epochs_run, 1), 5),
        "n_params": model.count_params(),
        # relative to the weights folder, so that logs and sidecars move between machines
        "weights_file": path.relative_to(config.weights_dir).as_posix(),
        "status": "trained",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "error": "",
    }
    sidecar = {**expected, "classes": [str(c) for c in data.classes], "row": row,
               "history": result.history}
    save_trained_model(model, path, sidecar, overwrite=config.overwrite)
    return row, RunOutcome(dataset, model_name, cells, seed, "trained", test_accuracy,
                           epochs_run=result.epochs_run, seconds=result.train_seconds)


def predictions_path(config: GridConfig, dataset: str, model_name: str, cells: int,
                     seed: int) -> Path | None:
    """Where ``--save-predictions`` writes per-case predictions (None when not asked)."""
    if not config.save_predictions:
        return None
    folder = Path(config.logs_dir) / "predictions" / f"{model_name}_{cells}_cells"
    return folder / f"{dataset}_{config.protocol}_seed{seed}.csv"


def evaluate_one(config: GridConfig, data: Any, dataset: str, model_name: str, cells: int,
                 seed: int) -> RunOutcome:
    """Re-evaluate saved weights and compare with the logged accuracy.

    A logged row is never changed, except that a row written by ``--mode train`` (no test
    metrics yet) gets them filled in.
    """
    from utils.training import evaluate_model

    path = weights_path(config.weights_dir, model_name, cells, dataset, seed, config.protocol)
    model, _ = load_trained_model(path)
    test = evaluate_model(model, data, config.batch_size,
                          predictions_path=predictions_path(config, dataset, model_name, cells,
                                                            seed))
    logged = completed_rows(config.logs_dir, model_name, cells).get(
        (dataset, model_name, str(cells), str(seed), config.protocol)
    )
    logged_accuracy = math.nan
    if logged and logged.get("test_accuracy"):
        logged_accuracy = float(logged["test_accuracy"])
    elif logged:
        upsert_row(results_log_path(config.logs_dir, model_name, cells),
                   {**logged, **test.as_row()})
    return RunOutcome(dataset, model_name, cells, seed, "evaluated", test.accuracy,
                      logged_accuracy=logged_accuracy)


def check_logged_settings(row: dict[str, str], config: GridConfig, log_path: Path,
                          normalize: str | None = None) -> None:
    """Refuse to count a logged run as done when it was run with other settings (e.g. a short
    smoke test before the real run): the user must say --overwrite to retrain it.

    ``normalize`` is the normalisation the run would apply now (``config.normalize`` with
    ``"auto"`` resolved for the dataset), compared with the one the row records."""
    wanted = {"epochs": str(config.epochs), "batch_size": str(config.batch_size),
              "normalize": normalize or config.normalize,
              "class_weight": config.class_weight or "none",
              "learning_rate": repr(float(config.learning_rate)),
              "recalibrate_batchnorm": str(config.recalibrate_batchnorm)}
    differences = []
    for column, value in wanted.items():
        logged = row.get(column, "")
        if column == "learning_rate" and logged:
            logged = repr(float(logged))
        if logged and logged != value:
            differences.append(f"{column} {logged} (now {value})")
    if differences:
        raise ConfigurationError(
            f"{log_path} already holds this run with {', '.join(differences)}; pass --overwrite "
            "to retrain it, or use another --logs-dir"
        )


def applied_normalization(config: GridConfig, cache: DatasetCache, dataset_token: str) -> str:
    """The normalisation a run of ``dataset_token`` applies: ``config.normalize``, or for
    ``"auto"`` the mode the loader resolved from the dataset's channel count."""
    if config.normalize != "auto":
        return config.normalize
    return cache.get(dataset_token).normalize


def _failure_row(config: GridConfig, dataset: str, model_name: str, cells: int, seed: int,
                 error: BaseException) -> dict[str, Any]:
    return {
        "dataset": dataset, "model": model_name, "cells": cells, "seed": seed,
        "protocol": config.protocol, "leaky": config.protocol == "test-checkpoint",
        "normalize": config.normalize, "epochs": config.epochs, "status": "failed",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "error": f"{type(error).__name__}: {error}".replace("\n", " "),
    }


def log_failure(config: GridConfig, log_path: Path, key: tuple[str, ...],
                row: dict[str, Any]) -> None:
    """Log a failed run, unless its row is finished already; when the log itself cannot be
    written (a full disk, an unreadable log) say so and let the grid go on."""
    if config.mode == "evaluate":
        return
    try:
        if key not in completed_rows(config.logs_dir, row["model"], row["cells"]):
            upsert_row(log_path, row)  # never replace a finished row
    except (OSError, LSTMFCNError) as error:
        print(f"could not log the failure in {log_path}: {error}", flush=True)


# --------------------------------------------------------------------------- cell selection


def select_cells(config: GridConfig, datasets: Iterable[str]) -> list[dict[str, str]]:
    """The original's cell search (hyperparameter_search.py): per dataset, model and seed, keep
    the cell count whose best checkpoint has the lowest training loss (inference mode, on the
    whole training split); ties keep the smaller cell count. Rows go to
    ``logs/<model>_selected_cells_results.csv``."""
    chosen_rows = []
    for model_name in config.models:
        logs = {cells: completed_rows(config.logs_dir, model_name, cells) for cells in config.cells}
        for dataset in datasets:
            for seed in config.seeds:
                candidates = []
                for cells in sorted(config.cells):
                    row = logs[cells].get((dataset, model_name, str(cells), str(seed),
                                           config.protocol))
                    if row and row.get("train_loss") not in (None, ""):
                        candidates.append((float(row["train_loss"]), cells, row))
                if len(candidates) < len(config.cells):
                    continue  # not all cell sizes finished: choose on a later run
                _, _, best = min(candidates, key=lambda item: (item[0], item[1]))
                chosen = {**best, "selected_from": "/".join(str(c) for c in sorted(config.cells))}
                # one row per (dataset, model, seed, protocol): a later choice replaces it
                upsert_row(results_log_path(config.logs_dir, model_name, "selected"), chosen,
                           key=SELECTION_KEY)
                chosen_rows.append(chosen)
    return chosen_rows


# --------------------------------------------------------------------------- the grid


def run_grid(config: GridConfig) -> list[RunOutcome]:
    """Run every (dataset, model, cells, seed) of ``config`` and return one outcome per run."""
    config.validate()
    datasets = expand_datasets(config.datasets, config.data_dir)
    check_output_folders(config)
    for folder in (config.weights_dir, config.logs_dir):  # leftovers of a killed earlier run
        remove_partial_files(folder)
    cache = DatasetCache(config.data_dir, config.normalize)
    runs = [(d, m, c, s) for m in config.models for c in config.cells for d in datasets
            for s in config.seeds]
    with stop_at_safe_points():  # Ctrl-C: save the run's state, exit 130, resume on restart
        return _run_all(config, runs, datasets, cache)


def check_output_folders(config: GridConfig) -> None:
    """Refuse, before any training, output folders this process cannot write to."""
    if config.mode != "evaluate":
        check_writable_folder(config.weights_dir, "--weights-dir")
    check_writable_folder(config.logs_dir, "--logs-dir")


def _run_all(config: GridConfig, runs: list[tuple[str, str, int, int]], datasets: list[str],
             cache: DatasetCache) -> list[RunOutcome]:
    outcomes: list[RunOutcome] = []
    for index, (dataset_token, model_name, cells, seed) in enumerate(runs, start=1):
        raise_if_stop_requested()  # a safe point between two runs
        dataset = _display_name(dataset_token)
        description = f"[{index}/{len(runs)}] {dataset} {model_name}-{cells} seed {seed}"
        log_path = results_log_path(config.logs_dir, model_name, cells)
        key = (dataset, model_name, str(cells), str(seed), config.protocol)  # as in RUN_KEY
        started = time.perf_counter()
        try:
            if config.mode == "evaluate":
                outcomes.append(evaluate_one(config, cache.get(dataset_token), dataset,
                                             model_name, cells, seed))
                continue
            done = completed_rows(config.logs_dir, model_name, cells).get(key)
            if done and not config.overwrite:
                check_logged_settings(done, config, log_path,
                                      applied_normalization(config, cache, dataset_token))
                outcome = RunOutcome(dataset, model_name, cells, seed, "skipped",
                                     float(done["test_accuracy"] or "nan"),
                                     epochs_run=int(done.get("epochs_run") or 0))
            else:
                row, outcome = train_one(config, cache.get(dataset_token), dataset,
                                         model_name, cells, seed, description)
                upsert_row(log_path, row)
            outcomes.append(outcome)
        except Exception as error:  # one failing run must not end the grid
            if isinstance(error, LSTMFCNError):
                message = str(error)
            else:
                message = traceback.format_exc(limit=3)
            print(f"{description}: FAILED: {message}", flush=True)
            log_failure(config, log_path, key, _failure_row(config, dataset, model_name, cells,
                                                            seed, error))
            outcomes.append(RunOutcome(dataset, model_name, cells, seed, "failed",
                                       seconds=time.perf_counter() - started,
                                       error=f"{type(error).__name__}: {error}"))
    if config.select_cells and config.mode != "evaluate":
        select_cells(config, [_display_name(d) for d in datasets])
    return outcomes


def summary_table(outcomes: Sequence[RunOutcome]) -> str:
    """The end-of-grid summary as aligned text."""
    import pandas as pd

    if not outcomes:
        return "(no runs)"
    frame = pd.DataFrame([asdict(o) for o in outcomes])
    if frame["logged_accuracy"].isna().all():
        frame = frame.drop(columns=["logged_accuracy"])
    if not frame["error"].astype(bool).any():
        frame = frame.drop(columns=["error"])
    return frame.to_string(index=False, float_format=lambda v: f"{v:.4f}")


__all__ = [
    "GridConfig", "RunOutcome", "run_grid", "summary_table", "select_cells", "expand_datasets",
    "run_dataset_name", "results_log_path", "read_log", "upsert_row",
]
