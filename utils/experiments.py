"""The bookkeeping of the experiment grid behind ``all_datasets_training.py``.

One *run* is a (dataset, model, cells, seed) of the grid, under the grid's protocol. The loop
script lists the runs, says what one run does and hands the runs to an executor
(``utils.executors``); this module keeps the books around that loop, so that it can be
interrupted at any moment and run on many machines:

* ``runs_still_to_do``: a run whose row is already in ``logs/<model>_<cells>_cells_results.csv``
  (with an empty ``error``) is skipped; a run killed after its weights were saved but before its
  row was written is recovered from the weights' sidecar (no retraining, no duplicate row); an
  existing weights file that does not belong to the run is never overwritten without
  ``overwrite=True``;
* ``group_into_packs``: runs that differ only in their seed form one unit of work;
* ``record_report``: the driver, and only the driver, writes what a run sent back: weights and
  sidecar, then the log row, each to a temporary name and renamed (a kill leaves the old file
  or the new one), the log under a lock (several loop processes may share ``logs/``);
* a failing run is logged with its error and the grid goes on (``failure_report``,
  ``lost_pack_reports``); ``GridProgress`` prints one overall line.

The helpers a run uses where it trains (``load_dataset_cached``, ``builder_arguments``,
``resume_settings``, ``load_saved_weights``, ``report_run``) are here too.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import hashlib
import io
import math
import os
import platform
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from utils.atomic_files import check_writable_folder, remove_partial_files, write_text_atomic
from utils.checkpoints import (
    check_weights_intact,
    read_sidecar,
    save_weights_file,
    sidecar_describes,
    weights_path,
)
from utils.errors import ConfigurationError, DatasetError, DatasetNotFoundError, LSTMFCNError
from utils.training import PROTOCOLS

RUN_KEY = ("dataset", "model", "cells", "seed", "protocol")
SELECTION_KEY = ("dataset", "model", "seed", "protocol")
LOG_COLUMNS = (
    "dataset_id", "dataset", "model", "cells", "seed", "protocol", "leaky", "normalize",
    "epochs", "epochs_run", "best_epoch", "best_train_loss", "train_loss", "train_accuracy",
    "test_accuracy", "test_loss", "test_balanced_accuracy", "test_macro_f1", "train_seconds",
    "seconds_per_epoch", "n_params", "batch_size", "learning_rate", "class_weight",
    "backend", "keras_version", "backend_version", "numpy_version", "python_version",
    "weights_file", "status", "timestamp", "error", "engine", "pack_size",
)
MODES = ("train", "evaluate", "both")
DEFAULT_XLA_PACK = 8  # seeds trained together by the xla engine unless --pack says otherwise
EXECUTORS = ("local", "ray")
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
    engine: str = "auto"  # fit | xla | auto (utils.engine_xla)
    precision: str = "float32"
    # where the runs execute (utils.executors)
    executor: str = "local"
    ray_address: str | None = None
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0
    max_retries: int = 2
    shared_filesystem: bool | None = None  # None: shared unless a --ray-address is given
    pack: int | None = None  # None: 8 when the engine is xla (trained together), else 1

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
        from utils.engine_xla import ENGINES, PRECISIONS

        if self.engine not in ENGINES or self.precision not in PRECISIONS:
            raise ConfigurationError(
                f"--engine must be one of {', '.join(ENGINES)} and --precision one of "
                f"{', '.join(PRECISIONS)}; got {self.engine!r}, {self.precision!r}")
        if self.select_cells and len(self.cells) < 2:
            raise ConfigurationError("--select-cells needs at least two --cells to choose from")
        self._validate_execution()

    def _validate_execution(self) -> None:
        if self.executor not in EXECUTORS:
            raise ConfigurationError(
                f"--executor must be one of {', '.join(EXECUTORS)}; got {self.executor!r}"
            )
        if self.ray_address and self.executor != "ray":
            raise ConfigurationError("--ray-address needs --executor ray")
        if self.cpus_per_run <= 0 or self.gpus_per_run < 0:
            raise ConfigurationError("--cpus-per-run must be > 0 and --gpus-per-run >= 0")
        if self.gpus_per_run > 1 and self.gpus_per_run != int(self.gpus_per_run):
            raise ConfigurationError(  # Ray's rule: a fraction of one device, or whole devices
                f"--gpus-per-run must be at most 1 or a whole number; got {self.gpus_per_run}"
            )
        if self.max_retries < 0 or (self.pack is not None and self.pack < 1):
            raise ConfigurationError("--max-retries must be >= 0 and --pack >= 1")
        if self.mode == "evaluate" and not self.filesystem_is_shared():
            raise ConfigurationError(
                "--mode evaluate reads the saved weights where it runs: on a cluster it needs "
                "--shared-filesystem (or run it with --executor local; it takes seconds)"
            )

    def resolved_engine(self) -> str:
        """``fit`` or ``xla`` for this process's Keras backend (``--engine auto`` resolved)."""
        from utils.engine_xla import resolve_engine

        return resolve_engine(self.engine)

    def pack_size(self) -> int:
        """Runs per unit of work: ``--pack``, or by default 8 seeds trained together when the
        engine is xla and 1 otherwise (on fit a pack trains one run after another)."""
        if self.pack is not None:
            return self.pack
        return DEFAULT_XLA_PACK if self.resolved_engine() == "xla" else 1

    def filesystem_is_shared(self) -> bool:
        """Whether the workers see this machine's ``weights/`` (always, unless a
        ``--ray-address`` is given without ``--shared-filesystem``)."""
        if self.shared_filesystem is None:
            return self.executor == "local" or not self.ray_address
        return self.shared_filesystem or self.executor == "local"


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


@functools.lru_cache(maxsize=4)
def load_dataset_cached(token: str, data_dir: str | None, normalize: str) -> Any:
    """``load_dataset``, once per process: a grid visits each dataset for every model, cell
    count and seed, and a worker process runs many of those."""
    from utils.data import load_dataset

    return load_dataset(token, data_dir=data_dir, normalize=normalize)


# --------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class Run:
    """One (dataset, model, cells, seed) of the grid.

    ``dataset`` is the ``--datasets`` entry as expanded (a registry name, or the path of a
    folder of the user's data); ``name`` is what weights paths and log rows call it.
    """

    dataset: str
    model: str
    cells: int
    seed: int

    @property
    def name(self) -> str:
        return _display_name(self.dataset)

    @property
    def description(self) -> str:
        return f"{self.name} {self.model}-{self.cells} seed {self.seed}"

    def key(self, protocol: str) -> tuple[str, ...]:
        """The run's key in its results log (the ``RUN_KEY`` columns, as strings)."""
        return (self.name, self.model, str(self.cells), str(self.seed), protocol)

    def weights_file(self, config: GridConfig) -> Path:
        return weights_path(config.weights_dir, self.model, self.cells, self.name, self.seed,
                            config.protocol)


@dataclass
class RunReport:
    """What one run sends back to the driver, which writes it (``record_report``).

    Attributes
    ----------
    run : Run
    status : {"trained", "evaluated", "failed"}
    row : dict
        The log row (trained), or the test metrics of saved weights (evaluated).
    weights : bytes, optional
        The ``.weights.h5`` file of a trained run, and ``sidecar`` its JSON description.
    predictions : str, optional
        The ``--save-predictions`` CSV text.
    error, details : str
        ``"Type: message"`` of a failed run, and what to print about it (a traceback for an
        unexpected error).
    """

    run: Run
    status: str
    row: dict[str, Any] = field(default_factory=dict)
    weights: bytes | None = field(default=None, repr=False)
    sidecar: dict[str, Any] | None = field(default=None, repr=False)
    predictions: str | None = field(default=None, repr=False)
    error: str = ""
    details: str = ""


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


# --------------------------------------------------------------------------- where a run trains


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
    """Keyword arguments of the ``generate_*`` builders for ``data`` (stored in the sidecar)."""
    return {
        "max_sequence_length": int(data.X_train.shape[2]),
        "nb_class": int(data.n_classes),
        "num_cells": int(cells),
        "n_channels": int(data.X_train.shape[1]),
        "variable_length": not bool(data.equal_length),
    }


def saved_run_settings(run: Run, config: GridConfig, data: Any) -> dict[str, Any]:
    """Everything that makes a saved run the run ``run`` of ``config`` (stored in the weights'
    sidecar; a resume snapshot or saved weights with other settings are not this run's)."""
    settings = {
        "model": run.model, "builder": builder_arguments(data, run.cells), "dataset": run.name,
        "normalize": data.normalize, "protocol": config.protocol, "seed": run.seed,
        "epochs": config.epochs, "batch_size": config.batch_size,
        "learning_rate": config.learning_rate, "class_weight": config.class_weight,
    }
    if not config.recalibrate_batchnorm:  # sidecars written before this option mean True
        settings["recalibrate_batchnorm"] = False
    return settings


def dataset_stem(weights_file: Path) -> str:
    """``GunPoint`` for ``.../GunPoint.weights.h5`` (seed and protocol suffixes included)."""
    return weights_file.name.removesuffix(".weights.h5")


def resume_settings(run: Run, config: GridConfig, data: Any) -> dict[str, Any]:
    """``train_model`` arguments that let a killed run resume from its last snapshot.

    Snapshots live beside the weights when the filesystem is shared (a retried task resumes on
    any machine), else in this machine's temporary folder (a retry here resumes).
    """
    weights_file = Path(run.weights_file(config)).absolute()
    folder = weights_file.with_name(f".{dataset_stem(weights_file)}.resume")
    if not config.filesystem_is_shared():
        digest = hashlib.sha256(str(weights_file).encode()).hexdigest()[:16]
        folder = Path(tempfile.gettempdir()) / "lstmfcn-resume" / digest
    return {"snapshot_dir": folder, "snapshot_seconds": 60.0 * config.snapshot_minutes,
            "snapshot_fingerprint": saved_run_settings(run, config, data)}


def pack_resume_settings(pack: Sequence[Run], config: GridConfig, data: Any) -> dict[str, Any]:
    """``train_packed`` arguments that let a killed pack resume from its last snapshot: one
    folder for the pack, named by its seeds, where its first run's would be."""
    settings = resume_settings(pack[0], config, data)
    folder = settings["snapshot_dir"]
    seeds = "-".join(str(run.seed) for run in pack)
    settings["snapshot_dir"] = folder.with_name(
        f"{folder.name.removesuffix('.resume')}.pack-{seeds}.resume")
    settings["snapshot_fingerprint"] = {**settings["snapshot_fingerprint"],
                                        "seeds": [run.seed for run in pack]}
    return settings


def load_saved_weights(model: Any, run: Run, config: GridConfig) -> None:
    """Load the weights an earlier invocation saved for ``run`` into ``model``."""
    path = run.weights_file(config)
    if not path.exists():
        raise DatasetNotFoundError(
            f"no trained weights at {path}; train them first (--mode both or train)"
        )
    check_weights_intact(path, read_sidecar(path))  # a damaged file is named, not half-read
    try:
        model.load_weights(path)
    except (OSError, ValueError) as error:
        raise ConfigurationError(
            f"{path}: cannot load the weights ({type(error).__name__}: {error})"[:800]
        ) from error


def report_run(run: Run, config: GridConfig, data: Any, model: Any, training: Any,
               test: Any) -> RunReport:
    """Pack up what a run produced for the driver: the log row, the weights as bytes and their
    sidecar when it trained (``training`` is not None), the test metrics when it evaluated."""
    from utils.checkpoints import model_weights_bytes
    from utils.training import evaluate_model, predictions_csv

    predictions = None
    if test is not None and config.save_predictions:
        predictions = predictions_csv(data, data.y_test, test)
    if training is None:
        return RunReport(run, "evaluated", test.as_row(), predictions=predictions)

    train = evaluate_model(model, data, config.batch_size, split="train")
    row = {
        **_row_base(config, data, run),
        "epochs_run": training.epochs_run,
        "best_epoch": training.best_epoch,
        "best_train_loss": training.best_train_loss,
        "train_loss": train.loss,
        "train_accuracy": train.accuracy,
        **(test.as_row() if test is not None else {}),
        "train_seconds": round(training.train_seconds, 3),
        "seconds_per_epoch": round(training.train_seconds / max(training.epochs_run, 1), 5),
        "n_params": model.count_params(),
        "engine": training.engine,
        "pack_size": training.pack_size,
        "status": "trained",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "error": "",
    }
    sidecar = {**saved_run_settings(run, config, data), "classes": [str(c) for c in data.classes],
               "row": row, "history": training.history}
    return RunReport(run, "trained", row, weights=model_weights_bytes(model), sidecar=sidecar,
                     predictions=predictions)


def _row_base(config: GridConfig, data: Any, run: Run) -> dict[str, Any]:
    return {
        "dataset_id": "" if getattr(data, "dataset_id", None) is None else data.dataset_id,
        "dataset": run.name,
        "model": run.model,
        "cells": run.cells,
        "seed": run.seed,
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


def failure_report(run: Run, error: BaseException) -> RunReport:
    """The report of a run that raised ``error`` (call it inside the ``except`` block)."""
    details = str(error) if isinstance(error, LSTMFCNError) else traceback.format_exc(limit=3)
    return RunReport(run, "failed", error=f"{type(error).__name__}: {error}", details=details)


def lost_pack_reports(pack: Sequence[Run], error: BaseException) -> list[RunReport]:
    """Failure reports for every run of a unit whose task was lost (its worker died on every
    try), so that each is logged with the error and the grid goes on."""
    return [RunReport(run, "failed", error=f"{type(error).__name__}: {error}", details=str(error))
            for run in pack]


def config_for_workers(config: GridConfig) -> GridConfig:
    """The settings sent with each unit. Outside this process: folders as absolute paths (a
    worker's working folder may differ from the driver's), and no per-run progress bars
    (several workers' bars would interleave; the driver prints one overall line)."""
    if config.executor == "local":
        return config
    absolute = {name: str(Path(getattr(config, name)).absolute())
                for name in ("weights_dir", "logs_dir") if config.filesystem_is_shared()}
    if config.data_dir:
        absolute["data_dir"] = str(Path(config.data_dir).absolute())
    return dataclasses.replace(config, **absolute, progress=False)


# --------------------------------------------------------------------------- the driver's books


def prepare_output_folders(config: GridConfig) -> None:
    """Refuse, before any training, output folders this process cannot write to; then remove
    the half-written files that killed writers left in ``weights/`` and ``logs/``."""
    if config.mode != "evaluate":
        check_writable_folder(config.weights_dir, "--weights-dir")
    check_writable_folder(config.logs_dir, "--logs-dir")
    for folder in (config.weights_dir, config.logs_dir):
        remove_partial_files(folder)


def executor_for(config: GridConfig) -> Any:
    """The executor ``config`` asks for (``utils.executors``), to use in a ``with``."""
    from utils.executors import make_executor

    return make_executor(config.executor, ray_address=config.ray_address,
                         cpus_per_unit=config.cpus_per_run, gpus_per_unit=config.gpus_per_run,
                         max_retries=config.max_retries)


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


def applied_normalization(config: GridConfig, run: Run) -> str:
    """The normalisation ``run`` applies: ``config.normalize``, or for ``"auto"`` the mode the
    loader resolved from the dataset's channel count."""
    if config.normalize != "auto":
        return config.normalize
    return load_dataset_cached(run.dataset, config.data_dir, config.normalize).normalize


def _sidecar_matches(path: Path, config: dict[str, Any], expected: dict[str, Any]) -> bool:
    """The saved run at ``path`` is exactly the run ``expected`` describes, and complete."""
    return (all(config.get(key) == value for key, value in expected.items()) and "row" in config
            and sidecar_describes(path, config))


def recover_saved_run(run: Run, config: GridConfig) -> RunOutcome:
    """Log the row of a run that was killed after its weights were saved but before its row was
    written (the row is in the weights' sidecar): no retraining, no duplicate row. Weights that
    belong to another run raise ``ConfigurationError``: they are never overwritten silently."""
    path = run.weights_file(config)
    saved = read_sidecar(path)
    if not sidecar_describes(path, saved):
        raise ConfigurationError(
            f"{path} does not match the SHA-256 its sidecar records: the weights file is "
            "damaged, or it or its sidecar was replaced by one of other settings; move them "
            "away or pass --overwrite"
        )
    data = load_dataset_cached(run.dataset, config.data_dir, config.normalize)
    if not _sidecar_matches(path, saved, saved_run_settings(run, config, data)):
        raise ConfigurationError(
            f"{path} already exists and was trained with other settings; pass --overwrite "
            "to replace it, or move it away"
        )
    row = {**saved["row"], "status": "recovered"}
    upsert_row(results_log_path(config.logs_dir, run.model, run.cells), row)
    return RunOutcome(run.name, run.model, run.cells, run.seed, "recovered",
                      float(row.get("test_accuracy") or "nan"),
                      epochs_run=int(row.get("epochs_run") or 0))


def runs_still_to_do(runs: Sequence[Run], config: GridConfig
                     ) -> tuple[list[Run], list[RunOutcome]]:
    """Split ``runs`` into those to run now and the outcomes of those already settled: a run
    with a finished row is skipped, a run with saved weights but no row is recovered, a run
    whose weights or row were made with other settings fails (without ``--overwrite``).
    ``--mode evaluate`` evaluates every run."""
    if config.mode == "evaluate":
        return list(runs), []
    to_do, settled = [], []
    for run in runs:
        log_path = results_log_path(config.logs_dir, run.model, run.cells)
        try:
            done = completed_rows(config.logs_dir, run.model, run.cells).get(
                run.key(config.protocol))
            if config.overwrite:
                to_do.append(run)
            elif done:
                check_logged_settings(done, config, log_path, applied_normalization(config, run))
                settled.append(RunOutcome(run.name, run.model, run.cells, run.seed, "skipped",
                                          float(done["test_accuracy"] or "nan"),
                                          epochs_run=int(done.get("epochs_run") or 0)))
            elif run.weights_file(config).exists():
                settled.append(recover_saved_run(run, config))
            else:
                to_do.append(run)
        except Exception as error:  # one unusable run must not end the grid
            settled.append(record_report(failure_report(run, error), config))
    return to_do, settled


def group_into_packs(runs: Sequence[Run], pack_size: int = 1) -> list[list[Run]]:
    """Units of work for the executor: runs that share dataset, model and cells (and so differ
    only in their seed), at most ``pack_size`` per unit, in the order of ``runs``."""
    packs: list[list[Run]] = []
    open_pack: dict[tuple[str, str, int], list[Run]] = {}
    for run in runs:
        group = (run.dataset, run.model, run.cells)
        pack = open_pack.get(group)
        if pack is None or len(pack) >= pack_size:
            pack = open_pack[group] = []
            packs.append(pack)
        pack.append(run)
    return packs


def record_report(report: RunReport, config: GridConfig) -> RunOutcome:
    """Write what a run sent back and return its summary line. Only the driver calls this:
    weights and sidecar first, then the log row (see the module docstring)."""
    run = report.run
    log_path = results_log_path(config.logs_dir, run.model, run.cells)
    try:
        if report.status == "failed":
            return _record_failure(report, config)
        if report.predictions is not None:
            write_text_atomic(predictions_path(config, run), report.predictions)
        if report.status == "evaluated":
            return _record_evaluation(report, config)
        path = run.weights_file(config)
        # relative to the weights folder, so that logs and sidecars move between machines
        row = {**report.row, "weights_file": path.relative_to(config.weights_dir).as_posix()}
        save_weights_file(path, report.weights, {**report.sidecar, "row": row},
                          overwrite=config.overwrite)
        upsert_row(log_path, row)
    except Exception as error:  # e.g. another process saved these weights meanwhile
        return _record_failure(failure_report(run, error), config)
    return RunOutcome(run.name, run.model, run.cells, run.seed, "trained",
                      float(row.get("test_accuracy", math.nan)),
                      epochs_run=int(row["epochs_run"]), seconds=float(row["train_seconds"]))


def _record_evaluation(report: RunReport, config: GridConfig) -> RunOutcome:
    """Compare re-evaluated saved weights with the logged accuracy. A logged row is never
    changed, except that a row of ``--mode train`` (no test metrics yet) gets them."""
    run = report.run
    logged = completed_rows(config.logs_dir, run.model, run.cells).get(run.key(config.protocol))
    logged_accuracy = math.nan
    if logged and logged.get("test_accuracy"):
        logged_accuracy = float(logged["test_accuracy"])
    elif logged:
        upsert_row(results_log_path(config.logs_dir, run.model, run.cells),
                   {**logged, **report.row})
    return RunOutcome(run.name, run.model, run.cells, run.seed, "evaluated",
                      float(report.row["test_accuracy"]), logged_accuracy=logged_accuracy)


def _record_failure(report: RunReport, config: GridConfig) -> RunOutcome:
    run = report.run
    print(f"{run.description}: FAILED: {report.details or report.error}", flush=True)
    log_failure(config, results_log_path(config.logs_dir, run.model, run.cells),
                run.key(config.protocol), {
                    "dataset": run.name, "model": run.model, "cells": run.cells,
                    "seed": run.seed, "protocol": config.protocol,
                    "leaky": config.protocol == "test-checkpoint",
                    "normalize": config.normalize, "epochs": config.epochs, "status": "failed",
                    "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
                    "error": report.error.replace("\n", " "),
                })
    return RunOutcome(run.name, run.model, run.cells, run.seed, "failed", error=report.error)


def predictions_path(config: GridConfig, run: Run) -> Path | None:
    """Where ``--save-predictions`` writes per-case predictions (None when not asked)."""
    if not config.save_predictions:
        return None
    folder = Path(config.logs_dir) / "predictions" / f"{run.model}_{run.cells}_cells"
    return folder / f"{run.name}_{config.protocol}_seed{run.seed}.csv"


def in_grid_order(outcomes: Iterable[RunOutcome], runs: Sequence[Run]) -> list[RunOutcome]:
    """``outcomes`` (finished in any order) in the order of the grid's ``runs``."""
    position = {(r.name, r.model, r.cells, r.seed): i for i, r in enumerate(runs)}
    return sorted(outcomes, key=lambda o: position.get((o.dataset, o.model, o.cells, o.seed), 0))


class GridProgress:
    """The driver's one overall line: runs done / running / failed, and the time left."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total, self.done, self.failed = total, 0, 0
        self.stream = stream
        self.started = time.monotonic()

    def update(self, outcomes: Iterable[RunOutcome], running: int) -> str:
        """Count newly finished runs and print the line (returned too)."""
        for outcome in outcomes:
            if outcome.status == "failed":
                self.failed += 1
            else:
                self.done += 1
        elapsed = time.monotonic() - self.started
        finished = self.done + self.failed
        left = elapsed / finished * (self.total - finished) if finished else math.nan
        line = (f"grid: {self.done}/{self.total} done, {running} running, {self.failed} failed,"
                f" {_duration(elapsed)} elapsed, ETA {_duration(left)}")
        print(line, file=self.stream or sys.stdout, flush=True)
        return line


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


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
    "GridConfig", "Run", "RunReport", "RunOutcome", "summary_table", "select_cells",
    "expand_datasets", "run_dataset_name", "results_log_path", "read_log", "upsert_row",
    "runs_still_to_do", "group_into_packs", "record_report", "GridProgress",
]
