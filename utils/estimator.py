"""A scikit-learn classifier around the model zoo and ``train_model``.

For practitioners with their own arrays: ``LSTMFCNClassifier().fit(X, y).predict(X_new)``, with
the same models, protocols and preprocessing as the loop script, and scikit-learn's estimator
contract (it passes ``sklearn.utils.estimator_checks``; see ``tests/test_estimator_checks.py``
for the checks declared as expected failures and why). ``save`` / ``load`` keep a fitted
estimator in one file and ``export`` writes a serving artifact (``utils.estimator_io``).

Series come in three layouts: ``(n_cases, n_timepoints)`` for univariate series,
``(n_cases, n_channels, n_timepoints)``, and aeon's unequal-length collection, a list of
``(n_channels, n_timepoints_i)`` arrays. NaN after a series' end marks padding (the model then
masks it), NaN inside a series is a missing value (filled with 0, as the loader does).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from utils.errors import DatasetError
from utils.preprocessing import (
    channel_statistics,
    check_choice,
    prepare_new_series,
    resolve_normalization,
    true_lengths,
)

ESTIMATOR_PROTOCOLS = ("train-loss", "validation")
#: scikit-learn checks that cannot hold for this estimator, with the reason (pass it as
#: ``check_estimator(..., expected_failed_checks=EXPECTED_FAILED_CHECKS)``).
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


def _is_collection(X: Any) -> bool:
    """True for aeon's unequal-length layout: a list of (n_channels, n_timepoints_i) arrays."""
    return (isinstance(X, list | tuple) and len(X) > 0
            and all(np.ndim(case) == 2 for case in X))


def _pad_collection(cases: list | tuple, estimator: Any) -> np.ndarray:
    """A list of (n_channels, n_timepoints_i) arrays -> float64 (n_cases, n_channels, T_max),
    NaN after each series' end."""
    arrays = [check_array(case, dtype=np.float64, ensure_all_finite="allow-nan",
                          input_name=f"X[{index}]", estimator=estimator)
              for index, case in enumerate(cases)]
    channels = {array.shape[0] for array in arrays}
    if len(channels) > 1:
        raise ValueError(f"X: every series of a collection needs the same number of channels; "
                         f"got {sorted(channels)}")
    padded = np.full((len(arrays), arrays[0].shape[0], max(a.shape[1] for a in arrays)), np.nan)
    for index, array in enumerate(arrays):
        padded[index, :, : array.shape[1]] = array
    return padded


class LSTMFCNClassifier(ClassifierMixin, BaseEstimator):
    """LSTM-FCN family classifier with ``fit`` / ``predict`` / ``predict_proba``.

    Parameters
    ----------
    model : str, default "lstmfcn"
        A name of ``utils.models.MODEL_BUILDERS`` (lstmfcn, alstmfcn, mlstmfcn, malstmfcn, ...).
    num_cells : int, default 8
        Units of the recurrent layer.
    epochs, batch_size : int, default 2000, 128
        The paper's settings.
    protocol : {"train-loss", "validation"}, default "train-loss"
        How the kept weights are chosen (see ``utils.training``); the leaky test-checkpoint
        protocol needs a test set and is not offered here.
    learning_rate : float, default 1e-3
    normalize : {"auto", "sample", "dataset", "none"}, default "auto"
        Per-series z-normalisation (the original's univariate default), per-channel statistics
        of the training data, or none; "auto" is "sample" for univariate and "none" for
        multivariate series, resolved in ``fit`` (``normalize_``).
    class_weight : None, "balanced" or dict {label: weight}, default None
        Weights of the classes in the loss; labels missing from a dict weigh 1.
    random_state : int, RandomState or None, default 0
        Seeds the weights, shuffling and dropout (None: not seeded).
    verbose : bool, default False
        Show a progress bar while fitting.
    engine : {"auto", "fit", "xla"}, default "auto"
        The training engine (``utils.training.train_model``): ``xla`` runs compiled JAX
        epochs with the same batches and results as ``fit``; ``auto`` picks it on the JAX
        backend.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The labels seen in ``fit``, in class-index order.
    n_features_in_ : int
        n_channels_ * n_timepoints_, the width of a flattened training series.
    n_channels_, n_timepoints_ : int
        The input shape the network was built for (the longest training series).
    normalize_ : {"sample", "dataset", "none"}
        The normalisation used.
    channel_mean_, channel_std_ : ndarray of shape (n_channels_,) or None
        Training statistics of ``normalize="dataset"``.
    variable_length_ : bool
        True when some training series were shorter than n_timepoints_: the network masks the
        padding, and ``predict`` takes series of any length (longer ones are cut).
    model_ : keras.Model
        The trained network.
    training_result_ : utils.training.TrainingResult

    References
    ----------
    F. Karim, S. Majumdar, H. Darabi, S. Chen, "LSTM Fully Convolutional Networks for Time Series
    Classification", IEEE Access 6, 2018.
    """

    def __init__(self, model: str = "lstmfcn", num_cells: int = 8, epochs: int = 2000,
                 batch_size: int = 128, protocol: str = "train-loss",
                 learning_rate: float = 1e-3, normalize: str = "auto",
                 class_weight: str | dict | None = None, random_state: Any = 0,
                 verbose: bool = False, engine: str = "auto"):
        self.model = model
        self.num_cells = num_cells
        self.epochs = epochs
        self.batch_size = batch_size
        self.protocol = protocol
        self.learning_rate = learning_rate
        self.normalize = normalize
        self.class_weight = class_weight
        self.random_state = random_state
        self.verbose = verbose
        self.engine = engine

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # NaN marks the padding of shorter series
        tags.input_tags.three_d_array = True
        return tags

    # ------------------------------------------------------------------ input validation

    def _series(self, X: Any, y: Any = None, fitting: bool = False) -> Any:
        """Validate X (and y when fitting) -> float64 (n_cases, n_channels, n_timepoints).

        scikit-learn's own checks give the messages (sparse, complex, empty, 1-D, inf, the
        number of features); ``n_features_in_`` counts the values of a flattened series."""
        if not fitting:
            check_is_fitted(self)
        if _is_collection(X):
            X = _pad_collection(X, self)
        values = check_array(X, dtype=np.float64, ensure_all_finite="allow-nan", allow_nd=True,
                             input_name="X", estimator=self)
        if values.ndim == 2:
            values = values[:, np.newaxis, :]
        if values.ndim != 3:
            raise ValueError(f"X must have shape (n_cases, n_timepoints) or (n_cases, "
                             f"n_channels, n_timepoints); got {values.shape}")
        if not fitting:
            if values.shape[1] != self.n_channels_:
                raise ValueError(f"X has {values.shape[1]} channels, but {type(self).__name__} "
                                 f"was fitted on {self.n_channels_}")
            if self.variable_length_ and values.shape[2] != self.n_timepoints_:
                values = self._to_model_width(values)
        n_cases, n_channels = values.shape[:2]
        flat = values.reshape(n_cases, -1)
        if not fitting:
            flat = validate_data(self, flat, reset=False, skip_check_array=True)
            return flat.reshape(n_cases, n_channels, -1)
        flat, labels = validate_data(self, flat, y, dtype=np.float64,
                                     ensure_all_finite="allow-nan")
        return flat.reshape(n_cases, n_channels, -1), labels

    def _to_model_width(self, values: np.ndarray) -> np.ndarray:
        """NaN-pad shorter series and cut longer ones to n_timepoints_ (the loader's rule for
        test series longer than the training series)."""
        resized = np.full((*values.shape[:2], self.n_timepoints_), np.nan)
        keep = min(values.shape[2], self.n_timepoints_)
        resized[:, :, :keep] = values[:, :, :keep]
        return resized

    def _model_input(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fill missing values, normalise and zero-pad: float32 X and the true lengths."""
        try:
            return prepare_new_series(
                values, self.n_timepoints_, self.normalize_, self.channel_mean_,
                self.channel_std_, trailing_nan_is_padding=self.variable_length_)
        except DatasetError as error:
            raise ValueError(f"X: {error}") from error

    def _class_weights(self, y: np.ndarray) -> Any:
        """None, "balanced" (computed by train_model on the cases it fits) or {index: weight}."""
        if self.class_weight is None or isinstance(self.class_weight, str):
            return self.class_weight
        return dict(enumerate(compute_class_weight(self.class_weight, classes=self.classes_,
                                                   y=y).tolist()))

    # ------------------------------------------------------------------ estimator API

    def fit(self, X: Any, y: Any) -> LSTMFCNClassifier:
        """Train the network.

        Parameters
        ----------
        X : array of shape (n_cases, n_timepoints) or (n_cases, n_channels, n_timepoints), or
            a list of (n_channels, n_timepoints_i) arrays
            Training series; NaN after a series' end is padding.
        y : array-like of shape (n_cases,)
            Class labels (any type a LabelEncoder takes).

        Returns
        -------
        self
        """
        import keras

        from utils.data import Dataset
        from utils.models import build_model
        from utils.training import set_seed, train_model

        check_choice(self.protocol, ESTIMATOR_PROTOCOLS, "protocol")
        values, labels = self._series(X, y, fitting=True)
        check_classification_targets(labels)
        encoder = LabelEncoder().fit(labels)
        if len(encoder.classes_) < 2:
            raise ValueError(f"y has one class ({encoder.classes_[0]!r}): a classifier needs at "
                             f"least 2 classes, but the data contains only one class")
        self.classes_ = encoder.classes_
        n_cases, self.n_channels_, self.n_timepoints_ = values.shape
        self.normalize_ = resolve_normalization(self.normalize, self.n_channels_)
        self.channel_mean_ = self.channel_std_ = None
        if self.normalize_ == "dataset":
            self.channel_mean_, self.channel_std_ = channel_statistics(values)
        self.variable_length_ = bool(
            (true_lengths(values, trailing_nan_is_padding=True) < self.n_timepoints_).any())
        X_train, lengths = self._model_input(values)
        encoded = encoder.transform(labels).astype(np.int64)
        data = Dataset(
            X_train=X_train, y_train=encoded, X_test=X_train[:0],
            y_test=np.zeros(0, dtype=np.int64), lengths_train=lengths,
            lengths_test=lengths[:0], label_encoder=encoder, name="fit", dataset_id=None,
            source_files=(), file_format="array", equal_length=not self.variable_length_,
            has_missing=False, normalize=self.normalize_,
        )
        seed = self.random_state
        if seed is not None and not isinstance(seed, int | np.integer):
            seed = int(check_random_state(seed).randint(np.iinfo(np.int32).max))
        keras.utils.clear_session()
        if seed is not None:
            set_seed(seed)
        self.model_ = build_model(self.model, self.n_timepoints_, len(self.classes_),
                                  num_cells=self.num_cells, n_channels=self.n_channels_,
                                  variable_length=self.variable_length_)
        self.training_result_ = train_model(
            self.model_, data, self.epochs, self.batch_size, protocol=self.protocol,
            learning_rate=self.learning_rate, class_weight=self._class_weights(labels),
            seed=seed, progress=bool(self.verbose), engine=self.engine)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities.

        Parameters
        ----------
        X : array of shape (n_cases, n_timepoints) or (n_cases, n_channels, n_timepoints), or
            a list of (n_channels, n_timepoints_i) arrays
            With the training series' shape; a variable-length model (``variable_length_``)
            takes any length.

        Returns
        -------
        ndarray of shape (n_cases, n_classes), columns in ``classes_`` order.
        """
        from utils.models import model_inputs

        X_ready, lengths = self._model_input(self._series(X))
        inputs = model_inputs(self.model_, X_ready, lengths)
        # the network called directly, one batch at a time: each case's probabilities do not
        # depend on which other cases share its batch, and no predict function is traced
        chunks = []
        for start in range(0, len(X_ready), self.batch_size):
            batch = ({name: value[start: start + self.batch_size]
                      for name, value in inputs.items()} if isinstance(inputs, dict)
                     else [inputs[start: start + self.batch_size]])
            chunks.append(np.asarray(self.model_(batch, training=False), dtype=np.float64))
        return np.concatenate(chunks)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels, shape (n_cases,), from ``classes_`` (X as in ``predict_proba``)."""
        best = self.predict_proba(X).argmax(axis=1)
        return self.classes_[best]

    # ------------------------------------------------------------------ files

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> None:
        """Write the fitted estimator to the file ``path`` (one zip archive, no pickle).

        It holds the Keras model (``.keras`` format) and a JSON record of the parameters, the
        classes, the normalisation statistics and the library versions; see
        ``utils.estimator_io``. An existing file is replaced only with ``overwrite=True``.
        """
        from utils.estimator_io import save_estimator

        save_estimator(self, path, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike) -> LSTMFCNClassifier:
        """Read an estimator written by ``save`` (Keras safe mode; refuses altered files)."""
        from utils.estimator_io import load_estimator

        return load_estimator(path, cls)

    def export(self, path: str | os.PathLike, format: str = "tf_saved_model",
               overwrite: bool = False) -> None:
        """Export the network, with the preprocessing inside the graph, for serving.

        Parameters
        ----------
        path : path-like
            A folder for ``"tf_saved_model"``, a file for ``"onnx"``.
        format : {"tf_saved_model", "onnx"}, default "tf_saved_model"
            Keras 3's ``model.export`` formats; "onnx" needs ``requirements-export.txt``.
        overwrite : bool, default False

        The artifact takes one float32 input ``series`` of shape (batch, n_channels_,
        n_timepoints_), raw values with NaN after each series' end, and returns the
        probabilities of ``predict_proba`` (see ``utils.estimator_io.export_estimator``).
        """
        from utils.estimator_io import export_estimator

        export_estimator(self, path, format=format, overwrite=overwrite)

