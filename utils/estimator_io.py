"""A fitted LSTMFCNClassifier on disk: save / load as one file, export for serving.

Saved estimator
    One zip archive at exactly the path given, with two members::

        estimator.json   format name and version, parameters, classes, normalisation
                         statistics, training summary, library versions, SHA-256 of model.keras
        model.keras      the network in Keras 3's own format

    Nothing is pickled. Loading reads the JSON, checks every field and the model's checksum,
    and rebuilds the network with ``keras.saving.load_model(safe_mode=True)`` (which refuses
    serialised Python code); the network's input and output shapes must agree with the record.
    Anything else is refused with an error naming the file.

Exported model
    ``model.export`` of Keras 3 (a TensorFlow SavedModel folder, or an ONNX file through
    ``tf2onnx``) of a wrapper network: :class:`SeriesPreprocessing` (lengths from the NaN
    padding, missing values to 0, the fitted normalisation, zero padding) followed by the trained
    network. It takes one float32 input ``series`` (batch, n_channels, n_timepoints) of raw
    values, NaN after each series' end, and returns the class probabilities.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from utils.atomic_files import replacing, temporary_sibling
from utils.errors import ConfigurationError, DatasetError
from utils.preprocessing import STD_EPSILON

FORMAT_NAME = "lstmfcn-estimator"
FORMAT_VERSION = 1
#: the normalisations a fitted estimator can hold ("auto" is resolved at fit)
FITTED_NORMALIZATIONS = ("none", "sample", "dataset")
RECORD_MEMBER = "estimator.json"
MODEL_MEMBER = "model.keras"
EXPORT_FORMATS = ("tf_saved_model", "onnx")
#: refuse archives whose members would unpack to more than this (a corrupt or hostile file)
MAX_MEMBER_BYTES = 2 << 30


# ----------------------------------------------------------------------------- JSON fields

def _labels_to_json(classes: np.ndarray) -> dict[str, Any]:
    """Class labels with their type, so that 1, 1.0, "1" and True come back as they were."""
    kind = classes.dtype.kind
    if kind in "iu":
        return {"type": "int", "values": [int(label) for label in classes]}
    if kind == "f":
        return {"type": "float", "values": [float(label) for label in classes]}
    if kind == "b":
        return {"type": "bool", "values": [bool(label) for label in classes]}
    if kind == "U" or (kind == "O" and all(isinstance(label, str) for label in classes)):
        return {"type": "str", "values": [str(label) for label in classes]}
    raise ConfigurationError(
        f"classes_ of dtype {classes.dtype} cannot be saved: use int, float, bool or str labels")


def _labels_from_json(record: Any) -> np.ndarray:
    types = {"int": np.int64, "float": np.float64, "bool": np.bool_, "str": np.str_}
    if not isinstance(record, dict) or record.get("type") not in types or not isinstance(
            record.get("values"), list):
        raise ValueError("classes must be {'type': int|float|bool|str, 'values': [...]}")
    return np.asarray(record["values"], dtype=types[record["type"]])


def _params_to_json(params: dict[str, Any]) -> dict[str, Any]:
    saved = {}
    for name, value in params.items():
        if isinstance(value, np.generic):
            value = value.item()
        if name == "class_weight" and isinstance(value, dict):
            labels = np.asarray(list(value))
            value = {"labels": _labels_to_json(labels),
                     "weights": [float(weight) for weight in value.values()]}
        elif value is not None and not isinstance(value, bool | int | float | str):
            raise ConfigurationError(f"{name}={value!r} cannot be saved: use a number or a str")
        saved[name] = value
    return saved


def _params_from_json(saved: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(saved) - set(defaults))
    if unknown:
        raise ValueError(f"unknown parameters {unknown}")
    params = {**defaults, **saved}
    weights = params.get("class_weight")
    if isinstance(weights, dict):
        labels = _labels_from_json(weights.get("labels"))
        params["class_weight"] = dict(zip(labels.tolist(), map(float, weights["weights"]),
                                          strict=True))
    for name, value in params.items():
        if value is not None and not isinstance(value, bool | int | float | str | dict):
            raise ValueError(f"parameter {name} has a value of type {type(value).__name__}")
    return params


def library_versions() -> dict[str, str]:
    """The versions a saved estimator records (compared when it is loaded)."""
    import keras
    import sklearn

    return {"keras": keras.__version__, "keras_backend": keras.backend.backend(),
            "numpy": np.__version__, "scikit-learn": sklearn.__version__,
            "python": platform.python_version()}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------- save / load

def save_estimator(estimator: Any, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write a fitted estimator to the single file ``path`` (see the module docstring).

    Raises ConfigurationError if ``path`` exists (without ``overwrite``) or is a folder, or
    the estimator holds something that cannot be written without pickle.
    """
    import keras
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator)
    path = Path(path)
    if path.is_dir():
        raise ConfigurationError(f"{path} is a folder; save needs a file name")
    if path.exists() and not overwrite:
        raise ConfigurationError(f"{path} already exists; pass overwrite=True to replace it")
    with tempfile.TemporaryDirectory() as folder:
        model_file = Path(folder) / MODEL_MEMBER
        keras.saving.save_model(estimator.model_, model_file)
        model_bytes = model_file.read_bytes()

    def statistic(values: np.ndarray | None) -> list[float] | None:
        return None if values is None else [float(v) for v in values]

    record = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "estimator": type(estimator).__name__,
        "params": _params_to_json(estimator.get_params()),
        "fitted": {
            "classes_": _labels_to_json(estimator.classes_),
            "n_features_in_": int(estimator.n_features_in_),
            "n_channels_": int(estimator.n_channels_),
            "n_timepoints_": int(estimator.n_timepoints_),
            "normalize_": estimator.normalize_,
            "channel_mean_": statistic(estimator.channel_mean_),
            "channel_std_": statistic(estimator.channel_std_),
            "variable_length_": bool(estimator.variable_length_),
        },
        "training_result_": dataclasses.asdict(estimator.training_result_),
        "versions": library_versions(),
        "model_sha256": _sha256(model_bytes),
    }
    with replacing(path, ".tmp") as temporary:
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(RECORD_MEMBER, json.dumps(record, indent=2, allow_nan=True))
            archive.writestr(MODEL_MEMBER, model_bytes)
    return path


def _read_archive(path: Path) -> tuple[dict[str, Any], bytes]:
    """The JSON record and the model bytes of a saved estimator, after the structural checks."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (a saved LSTMFCNClassifier)")
    if not zipfile.is_zipfile(path):
        raise DatasetError(f"{path} is not a saved LSTMFCNClassifier (not a zip archive)")
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename: info for info in archive.infolist()}
            if set(members) != {RECORD_MEMBER, MODEL_MEMBER}:
                raise DatasetError(
                    f"{path} is not a saved LSTMFCNClassifier: it holds {sorted(members)}, "
                    f"expected exactly {RECORD_MEMBER} and {MODEL_MEMBER}")
            if sum(info.file_size for info in members.values()) > MAX_MEMBER_BYTES:
                raise DatasetError(f"{path}: its members would unpack to more than "
                                   f"{MAX_MEMBER_BYTES} bytes; refused")
            record = json.loads(archive.read(RECORD_MEMBER).decode("utf-8"))
            model_bytes = archive.read(MODEL_MEMBER)
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{path} is damaged: {error}") from error
    if not isinstance(record, dict) or record.get("format") != FORMAT_NAME:
        raise DatasetError(f"{path} is not a saved LSTMFCNClassifier ({RECORD_MEMBER} has no "
                           f"format {FORMAT_NAME!r})")
    version = record.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise DatasetError(f"{path} has format version {version!r}; this code reads "
                           f"1..{FORMAT_VERSION} (saved by a newer version of the project?)")
    if record.get("model_sha256") != _sha256(model_bytes):
        raise DatasetError(f"{path}: {MODEL_MEMBER} does not match the checksum recorded in "
                           f"{RECORD_MEMBER}; the file was altered or damaged")
    return record, model_bytes


def _restore_fitted(estimator: Any, fitted: dict[str, Any]) -> None:
    """Set and check the fitted attributes of the JSON record."""
    estimator.classes_ = _labels_from_json(fitted["classes_"])
    for name in ("n_features_in_", "n_channels_", "n_timepoints_"):
        value = fitted[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")
        setattr(estimator, name, value)
    if estimator.n_features_in_ != estimator.n_channels_ * estimator.n_timepoints_:
        raise ValueError("n_features_in_ is not n_channels_ * n_timepoints_")
    if fitted["normalize_"] not in FITTED_NORMALIZATIONS:
        raise ValueError(f"normalize_ {fitted['normalize_']!r} is not one of "
                         f"{FITTED_NORMALIZATIONS}")
    estimator.normalize_ = fitted["normalize_"]
    for name in ("channel_mean_", "channel_std_"):
        values = fitted[name]
        if values is not None:
            values = np.asarray(values, dtype=np.float64)
            if values.shape != (estimator.n_channels_,) or not np.isfinite(values).all():
                raise ValueError(f"{name} must be {estimator.n_channels_} finite numbers")
        setattr(estimator, name, values)
    if (estimator.normalize_ == "dataset") != (estimator.channel_mean_ is not None):
        raise ValueError("channel statistics are present exactly when normalize_ is 'dataset'")
    if not isinstance(fitted["variable_length_"], bool):
        raise ValueError("variable_length_ must be true or false")
    estimator.variable_length_ = fitted["variable_length_"]


def _check_network(estimator: Any, model: Any) -> None:
    """The loaded network must take and give what the record says."""
    input_names = [tensor.name for tensor in model.inputs]
    expected_inputs = ["series", "lengths"] if estimator.variable_length_ else ["series"]
    if input_names != expected_inputs:
        raise ValueError(f"the network's inputs are {input_names}, expected {expected_inputs}")
    series_shape = tuple(model.inputs[0].shape[1:])
    if series_shape != (estimator.n_channels_, estimator.n_timepoints_):
        raise ValueError(f"the network takes series of shape {series_shape}, the record says "
                         f"{(estimator.n_channels_, estimator.n_timepoints_)}")
    if tuple(model.outputs[0].shape[1:]) != (len(estimator.classes_),):
        raise ValueError(f"the network gives {model.outputs[0].shape[1]} probabilities for "
                         f"{len(estimator.classes_)} classes")


def load_estimator(path: str | os.PathLike, cls: type) -> Any:
    """Read an estimator written by :func:`save_estimator`; refuse anything inconsistent."""
    import keras

    import utils.layers  # noqa: F401  (registers the custom layers safe mode may rebuild)
    from utils.training import TrainingResult

    path = Path(path)
    record, model_bytes = _read_archive(path)
    if record.get("estimator") != cls.__name__:
        raise DatasetError(f"{path} holds a {record.get('estimator')!r}, not a {cls.__name__}")
    saved_keras = str(record.get("versions", {}).get("keras", ""))
    if saved_keras.split(".")[0] != keras.__version__.split(".")[0]:
        raise DatasetError(f"{path} was saved with Keras {saved_keras or '?'}; this is Keras "
                           f"{keras.__version__} (a different major version cannot read it)")
    try:
        estimator = cls(**_params_from_json(record["params"], cls().get_params()))
        _restore_fitted(estimator, record["fitted"])
        estimator.training_result_ = TrainingResult(**record["training_result_"])
    except (KeyError, TypeError, ValueError) as error:
        raise DatasetError(f"{path}: {RECORD_MEMBER} is not valid: {error!r}") from error
    with tempfile.TemporaryDirectory() as folder:
        model_file = Path(folder) / MODEL_MEMBER
        model_file.write_bytes(model_bytes)
        try:
            model = keras.saving.load_model(model_file, compile=False, safe_mode=True)
        except Exception as error:  # Keras raises many types for files it cannot trust
            raise DatasetError(f"{path}: Keras refused {MODEL_MEMBER}: {error}") from error
    try:
        _check_network(estimator, model)
    except ValueError as error:
        raise DatasetError(f"{path}: {error}") from error
    estimator.model_ = model
    return estimator


# ----------------------------------------------------------------------------- export

def _preprocessing_layer_class() -> type:
    """:class:`SeriesPreprocessing`, defined once Keras is imported."""
    import keras
    from keras import ops

    class SeriesPreprocessing(keras.layers.Layer):
        """In-graph ``prepare_new_series`` for series already at the model's width.

        Input (batch, C, T) float32 with NaN after each series' end (and NaN for missing
        values inside it). Output: the normalised, zero-padded series, and, for variable-length
        networks, the int32 true lengths (1 + the last step with a value in any channel).
        """

        def __init__(self, mode: str, channel_mean: Any, channel_std: Any,
                     nan_is_padding: bool, **kwargs: Any):
            super().__init__(**kwargs)
            self.mode, self.nan_is_padding = mode, nan_is_padding
            self.channel_mean = None if channel_mean is None else np.asarray(channel_mean)
            self.channel_std = None if channel_std is None else np.asarray(channel_std)

        def call(self, series: Any) -> Any:
            width = series.shape[2]
            missing = ops.isnan(series)
            values = ops.where(missing, ops.zeros_like(series), series)
            steps = ops.arange(1, width + 1, dtype="int32")  # (T,)
            if self.nan_is_padding:
                present = ops.any(ops.logical_not(missing), axis=1)  # (B, T)
                lengths = ops.max(ops.where(present, steps[None, :], 0), axis=1)
            else:
                lengths = ops.full_like(ops.cast(series[:, 0, 0], "int32"), width)
            inside = ops.expand_dims(steps[None, :] <= lengths[:, None], 1)  # (B, 1, T)
            zeros = ops.zeros_like(values)
            if self.mode == "sample":
                count = ops.cast(ops.reshape(lengths, (-1, 1, 1)), values.dtype)
                mean = ops.sum(ops.where(inside, values, zeros), axis=2, keepdims=True) / count
                centred = values - mean
                variance = ops.sum(ops.where(inside, centred * centred, zeros), axis=2,
                                   keepdims=True) / count
                values = centred / (ops.sqrt(variance) + STD_EPSILON)
            elif self.mode == "dataset":
                mean = ops.convert_to_tensor(self.channel_mean[None, :, None], values.dtype)
                std = ops.convert_to_tensor(self.channel_std[None, :, None], values.dtype)
                values = (values - mean) / (std + STD_EPSILON)
            values = ops.where(inside, values, zeros)
            return [values, lengths] if self.nan_is_padding else values

    return SeriesPreprocessing


def serving_model(estimator: Any) -> Any:
    """The trained network behind :class:`SeriesPreprocessing`: raw NaN-padded series in,
    class probabilities out."""
    import keras

    layer = _preprocessing_layer_class()(
        estimator.normalize_, estimator.channel_mean_, estimator.channel_std_,
        nan_is_padding=bool(estimator.variable_length_), name="preprocessing")
    series = keras.Input((estimator.n_channels_, estimator.n_timepoints_), name="series")
    prepared = layer(series)
    if not estimator.variable_length_:
        prepared = [prepared]
    wrapper = keras.Model(series, estimator.model_(prepared),
                          name=f"{estimator.model_.name}_serving")
    # one call on a dummy batch: Keras exports only models that have been called
    wrapper(np.ones((1, estimator.n_channels_, estimator.n_timepoints_), dtype="float32"))
    return wrapper


def onnx_blocker(model: Any) -> str | None:
    """Why ``model`` cannot be converted to ONNX, or None.

    An AttentionLSTM over more than 16 steps (the no-shuffle variants on series longer than 16,
    or more than 16 channels with the shuffle) runs as a ``keras.ops.scan`` loop, whose
    TensorFlow while-loop carries the attention state; tf2onnx 1.17 fails on it ("Cannot find
    node with output .../while:3"). Shorter ones are unrolled and convert."""
    from utils.layers import AttentionLSTM

    for layer in model.layers:
        if isinstance(layer, AttentionLSTM):
            steps = layer.input.shape[1]
            if not (steps <= 16 if layer.unroll is None else layer.unroll):
                return (f"its AttentionLSTM runs over {steps} steps as a scan loop, which "
                        f"tf2onnx cannot convert (it converts the attention unrolled, up to 16 "
                        f"steps)")
    return None


def export_estimator(estimator: Any, path: str | os.PathLike, format: str = "tf_saved_model",
                     overwrite: bool = False) -> Path:
    """Export ``serving_model(estimator)`` with Keras 3's ``model.export`` (see module doc).

    Written under a temporary name and renamed onto ``path`` when complete. Raises
    ConfigurationError for an unknown format, an existing ``path`` (without ``overwrite``), or
    a network the installed converter cannot export (the message says which and why).
    """
    import keras
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator)
    if format not in EXPORT_FORMATS:
        raise ConfigurationError(f"format={format!r} is not valid: use one of "
                                 f"{', '.join(map(repr, EXPORT_FORMATS))}")
    path = Path(path)
    if path.exists() and not overwrite:
        raise ConfigurationError(f"{path} already exists; pass overwrite=True to replace it")
    if format == "onnx" and keras.backend.backend() == "tensorflow":
        try:
            import tf2onnx  # noqa: F401
        except ImportError as error:
            raise ConfigurationError(
                "export(format='onnx') needs tf2onnx: pip install -r requirements-export.txt"
            ) from error
    if format == "onnx":
        blocker = onnx_blocker(estimator.model_)
        if blocker:
            raise ConfigurationError(f"model {estimator.model!r} cannot be exported to onnx: "
                                     f"{blocker}; format='tf_saved_model' works")
    wrapper = serving_model(estimator)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_sibling(path, ".onnx" if format == "onnx" else "")
    temporary.unlink()  # model.export creates it (a SavedModel is a folder)
    try:
        try:
            wrapper.export(str(temporary), format=format, verbose=False)
        except Exception as error:  # converters raise their own types
            raise ConfigurationError(
                f"model {estimator.model!r} could not be exported to {format} with the "
                f"{keras.backend.backend()} backend: {type(error).__name__}: {error}"
            ) from error
        if path.is_dir():
            shutil.rmtree(path)
        os.replace(temporary, path)
    finally:
        if temporary.is_dir():
            shutil.rmtree(temporary)
        else:
            temporary.unlink(missing_ok=True)
    return path

