"""A scikit-learn style classifier around the model zoo and ``train_model``.

For practitioners with their own arrays: ``LSTMFCNClassifier().fit(X, y).predict(X_new)``, with
the same models, protocols and preprocessing as the loop script, and the usual estimator contract
(parameters stored unchanged in ``__init__``, learned state ending in ``_``, ``get_params``,
``score``, ``sklearn.base.clone``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.preprocessing import LabelEncoder

from utils.errors import ConfigurationError, DatasetError
from utils.preprocessing import channel_statistics, prepare_new_series, resolve_normalization


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
        Per-series z-normalisation (the LSTM-FCN code's default), per-channel statistics of the
        training data, or none (the MLSTM-FCN code's default). ``"auto"`` picks ``"sample"`` for
        univariate and ``"none"`` for multivariate X; the choice is kept in ``normalize_``.
    class_weight : {None, "balanced"}, default None
    random_state : int, default 0
        Seeds the weights, shuffling and dropout.
    verbose : bool, default False
        Show a progress bar while fitting.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The labels seen in ``fit``, in class-index order.
    model_ : keras.Model
        The trained network.
    n_timepoints_, n_channels_ : int
        The input shape the network was built for.
    normalize_ : str
        The normalisation applied (``normalize`` with ``"auto"`` resolved).
    training_result_ : utils.training.TrainingResult

    References
    ----------
    F. Karim, S. Majumdar, H. Darabi, S. Chen, "LSTM Fully Convolutional Networks for Time Series
    Classification", IEEE Access 6, 2018.
    """

    def __init__(self, model: str = "lstmfcn", num_cells: int = 8, epochs: int = 2000,
                 batch_size: int = 128, protocol: str = "train-loss",
                 learning_rate: float = 1e-3, normalize: str = "auto",
                 class_weight: str | None = None, random_state: int = 0,
                 verbose: bool = False):
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

    # ------------------------------------------------------------------ preprocessing

    @staticmethod
    def _as_cases(X: Any) -> np.ndarray:
        """(N, T) or (N, C, T) numbers -> float64 (N, C, T); NaN marks padding/missing."""
        try:
            values = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ConfigurationError(f"X must be numeric: {error}") from error
        if values.ndim == 2:
            values = values[:, np.newaxis, :]
        if values.ndim != 3 or 0 in values.shape:
            raise ConfigurationError(
                f"X must have shape (n_cases, n_timepoints) or (n_cases, n_channels, "
                f"n_timepoints); got {np.shape(X)}")
        if np.isinf(values).any():
            raise ConfigurationError("X contains infinite values")
        return values

    def _prepare(self, X: Any, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Fill missing values, normalise and zero-pad; returns (float32 X, true lengths).

        ``width`` None means fitting: the width is X's, and dataset statistics are learned."""
        values = self._as_cases(X)
        if width is None:
            self.normalize_ = resolve_normalization(self.normalize, values.shape[1])
            if self.normalize_ == "dataset":
                self.channel_mean_, self.channel_std_ = channel_statistics(values)
        try:
            return prepare_new_series(
                values, width or values.shape[2], self.normalize_,
                getattr(self, "channel_mean_", None), getattr(self, "channel_std_", None))
        except DatasetError as error:
            raise ConfigurationError(f"X: {error}") from error

    # ------------------------------------------------------------------ estimator API

    def fit(self, X: Any, y: Any) -> LSTMFCNClassifier:
        """Train on series ``X`` of shape (n_cases, n_timepoints) or (n_cases, n_channels,
        n_timepoints) with labels ``y`` of shape (n_cases,). Returns ``self``."""
        import keras

        from utils.data import Dataset
        from utils.models import build_model
        from utils.training import set_seed, train_model

        if self.protocol not in ("train-loss", "validation"):
            raise ConfigurationError(
                f"protocol must be train-loss or validation; got {self.protocol!r}")
        X_train, lengths = self._prepare(X)
        labels = np.asarray(y)
        if labels.ndim != 1 or len(labels) != len(X_train):
            raise ConfigurationError(
                f"y must have shape ({len(X_train)},) to match X; got {labels.shape}")
        encoder = LabelEncoder().fit(labels)
        if len(encoder.classes_) < 2:
            raise ConfigurationError(f"y has a single class ({encoder.classes_[0]!r})")
        self.classes_ = encoder.classes_
        self.n_channels_, self.n_timepoints_ = X_train.shape[1], X_train.shape[2]
        variable_length = bool((lengths < self.n_timepoints_).any())
        data = Dataset(
            X_train=X_train, y_train=encoder.transform(labels), X_test=X_train[:0],
            y_test=np.zeros(0, dtype=np.int64), lengths_train=lengths,
            lengths_test=lengths[:0], label_encoder=encoder, name="fit", dataset_id=None,
            source_files=(), file_format="array", equal_length=not variable_length,
            has_missing=False, normalize=self.normalize_,
        )
        keras.utils.clear_session()
        set_seed(self.random_state)
        self.model_ = build_model(self.model, self.n_timepoints_, len(self.classes_),
                                  num_cells=self.num_cells, n_channels=self.n_channels_,
                                  variable_length=variable_length)
        self.training_result_ = train_model(
            self.model_, data, self.epochs, self.batch_size, protocol=self.protocol,
            learning_rate=self.learning_rate, class_weight=self.class_weight,
            seed=self.random_state, progress=bool(self.verbose))
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n_cases, n_classes), columns in ``classes_`` order."""
        from utils.training import predict_proba

        if not hasattr(self, "model_"):
            raise ConfigurationError("this LSTMFCNClassifier is not fitted yet; call fit first")
        X_ready, lengths = self._prepare(X, width=self.n_timepoints_)
        if X_ready.shape[1] != self.n_channels_:
            raise ConfigurationError(
                f"X has {X_ready.shape[1]} channels; the model was fitted on {self.n_channels_}")
        return predict_proba(self.model_, X_ready, lengths, self.batch_size)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels, shape (n_cases,), from ``classes_``."""
        best = self.predict_proba(X).argmax(axis=1)
        return self.classes_[best]
