"""Saved models on disk: where weights live, how they are written, how they are read back.

A trained model is two files side by side::

    weights/<model>_<cells>_cells_weights/<Dataset>.weights.h5    the Keras weights
    weights/<model>_<cells>_cells_weights/<Dataset>.json          how to rebuild and use them

The JSON sidecar holds the builder arguments, the preprocessing (normalisation, label order) and
the training summary, so that the evaluation mode of the loop script, the figure scripts and
``predict``-style code can rebuild exactly the trained model without the user repeating settings.
Both files are written to a temporary name first and then renamed, so an interrupted run never
leaves a half-written file, and an existing file is never replaced unless asked.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from utils.atomic_files import replacing, write_text_atomic
from utils.errors import ConfigurationError, DatasetNotFoundError, LSTMFCNError

DEFAULT_PROTOCOL = "train-loss"
WEIGHTS_SUFFIX = ".weights.h5"


def weights_path(
    weights_dir: str | os.PathLike,
    model_name: str,
    cells: int,
    dataset_name: str,
    seed: int = 0,
    protocol: str = DEFAULT_PROTOCOL,
) -> Path:
    """Path of the weights file of one run.

    The default run (seed 0, ``train-loss`` protocol) keeps the original repository's layout,
    ``weights/<model>_<cells>_cells_weights/<Dataset>.weights.h5``; other seeds and protocols get
    a suffix so that they never overwrite each other.
    """
    stem = dataset_name
    if protocol != DEFAULT_PROTOCOL:
        stem += f"_{protocol}"
    if seed != 0:
        stem += f"_seed{seed}"
    return Path(weights_dir) / f"{model_name}_{cells}_cells_weights" / f"{stem}{WEIGHTS_SUFFIX}"


def sidecar_path(weights_file: str | os.PathLike) -> Path:
    """The JSON file that describes ``weights_file`` (same folder, ``.json`` instead)."""
    weights_file = Path(weights_file)
    name = weights_file.name
    if name.endswith(WEIGHTS_SUFFIX):
        name = name[: -len(WEIGHTS_SUFFIX)]
    return weights_file.with_name(name + ".json")


def save_trained_model(
    model: Any, path: str | os.PathLike, config: dict[str, Any], overwrite: bool = False
) -> Path:
    """Write ``model``'s weights to ``path`` and ``config`` to its JSON sidecar, atomically.

    Parameters
    ----------
    model : keras.Model
        The trained model.
    path : path-like
        Target ``.weights.h5`` file (see :func:`weights_path`).
    config : dict
        JSON-serialisable description: at least ``model`` (registry name) and ``builder``
        (keyword arguments of :func:`utils.models.build_model`).
    overwrite : bool, default False
        Replace an existing weights file. Without it one raises ``ConfigurationError``: results
        a user already has are never overwritten silently. A sidecar without its weights file
        (left by a process killed between the two renames) is replaced.

    The sidecar records the SHA-256 of the weights it describes (``weights_sha256``), so that a
    sidecar and a weights file from two different saves are never taken for a pair.
    """
    return _save_pair(path, config, overwrite,
                      lambda temporary: model.save_weights(temporary, overwrite=True))


def save_weights_file(
    path: str | os.PathLike, weights: bytes, config: dict[str, Any], overwrite: bool = False
) -> Path:
    """:func:`save_trained_model` for weights that arrive as the bytes of a ``.weights.h5``
    file (from :func:`model_weights_bytes` in another process or on another machine)."""
    return _save_pair(path, config, overwrite, lambda temporary: temporary.write_bytes(weights))


def model_weights_bytes(model: Any) -> bytes:
    """The bytes of the ``.weights.h5`` file of ``model`` (what ``save_weights`` writes)."""
    with tempfile.TemporaryDirectory(prefix="lstmfcn-weights-") as folder:
        file = Path(folder) / f"model{WEIGHTS_SUFFIX}"
        model.save_weights(file)
        return file.read_bytes()


def _save_pair(path: str | os.PathLike, config: dict[str, Any], overwrite: bool,
               write_weights: Callable[[Path], Any]) -> Path:
    path = Path(path)
    if not path.name.endswith(WEIGHTS_SUFFIX):
        raise ConfigurationError(f"weights file {path} must end with {WEIGHTS_SUFFIX}")
    if path.exists() and not overwrite:
        raise ConfigurationError(
            f"{path} already exists; pass --overwrite (overwrite=True) to replace it"
        )
    with replacing(path, WEIGHTS_SUFFIX) as temporary:
        write_weights(temporary)
        config = {**config, "weights_sha256": file_sha256(temporary)}
        # the sidecar goes first: weights without a sidecar cannot be rebuilt, while a sidecar
        # without weights is harmless (the next run sees no weights and trains again)
        write_text_atomic(sidecar_path(path),
                          json.dumps(config, indent=2, sort_keys=True, default=str))
    return path


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sidecar_describes(path: str | os.PathLike, config: dict[str, Any]) -> bool:
    """True when ``config`` (a sidecar) was written together with the weights at ``path``."""
    return config.get("weights_sha256") == file_sha256(path)


def read_sidecar(path: str | os.PathLike) -> dict[str, Any]:
    """The configuration saved beside the weights file ``path``."""
    sidecar = sidecar_path(path)
    if not Path(path).exists():
        raise DatasetNotFoundError(
            f"no trained weights at {path}; train them first with all_datasets_training.py"
        )
    if not sidecar.exists():
        raise ConfigurationError(
            f"{sidecar} is missing: cannot tell how the weights in {path} were built"
        )
    try:
        config = json.loads(sidecar.read_bytes().decode("utf-8"))
    except OSError as error:
        raise ConfigurationError(f"{sidecar}: cannot read the file ({error})") from error
    except (ValueError, RecursionError) as error:  # bad UTF-8, bad JSON, absurd nesting
        raise ConfigurationError(
            f"{sidecar} is not valid JSON (damaged or cut short?): {error}"[:500]) from error
    if not isinstance(config, dict) or not isinstance(config.get("model"), str) or not \
            isinstance(config.get("builder"), dict):
        raise ConfigurationError(
            f"{sidecar} does not describe a model (a JSON object with 'model' and 'builder' "
            "is expected): damaged, or not a sidecar of this project"
        )
    return config


def check_weights_intact(path: str | os.PathLike, config: dict[str, Any]) -> None:
    """Raise ``ConfigurationError`` when the weights at ``path`` are not the ones their sidecar
    ``config`` records (a damaged or replaced file); sidecars without a hash are trusted."""
    if "weights_sha256" in config and not sidecar_describes(path, config):
        raise ConfigurationError(
            f"{path} does not match the SHA-256 its sidecar {sidecar_path(path)} records: the "
            "weights file is damaged, or one of the two was replaced; retrain with --overwrite"
        )


def load_trained_model(path: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """Rebuild the model described by the sidecar of ``path`` and load its weights.

    Returns
    -------
    model : keras.Model
        Uncompiled model with the trained weights (BatchNorm statistics included).
    config : dict
        The sidecar: builder arguments, dataset, normalisation, label classes, training summary.
    """
    from utils.models import build_model  # Keras is only needed once a model is rebuilt

    config = read_sidecar(path)
    check_weights_intact(path, config)
    try:
        model = build_model(config["model"], **config["builder"])
        model.load_weights(path)
    except (LSTMFCNError, KeyError, TypeError, ValueError, OSError) as error:
        raise ConfigurationError(
            f"{path}: cannot rebuild the model its sidecar describes or load the weights "
            f"({type(error).__name__}: {error})"[:800]
        ) from error
    return model, config
