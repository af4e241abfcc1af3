"""LSTM-FCN family of time-series classifiers on Keras 3.

The public names are imported lazily so that ``from utils import load_dataset`` does not pull in
Keras (the data layer never needs it), while ``from utils import generate_lstmfcn`` does.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from utils.errors import ConfigurationError as ConfigurationError
from utils.errors import DatasetError as DatasetError
from utils.errors import DatasetNotFoundError as DatasetNotFoundError
from utils.errors import LSTMFCNError as LSTMFCNError

# TensorFlow's C++ start-up messages bury the scripts' own output; a user's setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# public name -> module that defines it
_LAZY_NAMES = {
    "load_dataset": "utils.data",
    "Dataset": "utils.data",
    "DATASET_REGISTRY": "utils.constants",
    "resolve_dataset": "utils.constants",
    "AttentionLSTM": "utils.layers",
    "generate_lstmfcn": "utils.models",
    "generate_alstmfcn": "utils.models",
    "generate_mlstmfcn": "utils.models",
    "generate_malstmfcn": "utils.models",
    "generate_grufcn": "utils.models",
    "generate_rnnfcn": "utils.models",
    "generate_densefcn": "utils.models",
    "generate_fcn": "utils.models",
    "MODEL_BUILDERS": "utils.models",
    "build_model": "utils.models",
    "train_model": "utils.training",
    "evaluate_model": "utils.training",
    "LSTMFCNClassifier": "utils.estimator",
    "load_trained_model": "utils.checkpoints",
}

__all__ = sorted(
    [*_LAZY_NAMES, "ConfigurationError", "DatasetError", "DatasetNotFoundError", "LSTMFCNError"]
)


def __getattr__(name: str) -> Any:
    module_name = _LAZY_NAMES.get(name)
    if module_name is None:
        raise AttributeError(f"module 'utils' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return __all__
