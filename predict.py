"""Predict the classes of new series with a model trained by all_datasets_training.py, or with
an LSTMFCNClassifier saved by ``clf.save(path)``.

    python predict.py NEW_SERIES.tsv --dataset GunPoint --model lstmfcn --cells 8
    python predict.py NEW_SERIES.ts --weights weights/lstmfcn_8_cells_weights/GunPoint.weights.h5
    python predict.py NEW_SERIES.tsv --estimator gunpoint.lstmfcn

The file may be in any format the loader reads (UCR .tsv, the original's comma files, .ts,
.arff). Those formats put a class label first: for unlabelled series write any placeholder (e.g.
0). When every label is one of the training classes, the accuracy is printed too. The series get
the preprocessing the model was trained with (stored beside the weights); series longer than the
training length are cut to it, shorter ones are padded (and masked by variable-length models).
A saved estimator applies its own rules (``LSTMFCNClassifier.predict_proba``): the training
length exactly, or any length for a model fitted on unequal-length series.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter quiet

# ----------------------------------------------------------------------------- settings
DATASET = "GunPoint"  # the dataset the model was trained on
MODEL = "lstmfcn"
CELLS = 8
SEED = 0
PROTOCOL = "train-loss"
WEIGHTS_DIR = "weights"
# -----------------------------------------------------------------------------

FORMATS_BY_SUFFIX = {".tsv": "tsv", ".ts": "ts", ".arff": "arff", ".csv": "csv", ".txt": "csv"}


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("series", help="file with the series to classify")
    parser.add_argument("--weights", default=None,
                        help="weights file (default: found from --dataset/--model/--cells)")
    parser.add_argument("--estimator", default=None,
                        help="a file written by LSTMFCNClassifier.save (instead of --weights)")
    parser.add_argument("--dataset", default=DATASET)
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--cells", type=int, default=CELLS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--protocol", default=PROTOCOL)
    parser.add_argument("--weights-dir", default=WEIGHTS_DIR)
    parser.add_argument("--data-dir", default=None,
                        help="only for models trained with --normalize dataset")
    parser.add_argument("--out", default=None,
                        help="predictions CSV (default: <series file>_predictions.csv)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)

    import numpy as np
    import pandas as pd

    from utils.atomic_files import write_text_atomic
    from utils.data import read_split_file
    from utils.errors import ConfigurationError, DatasetNotFoundError
    from utils.preprocessing import coerce_labels

    series_file = Path(arguments.series)
    if not series_file.is_file():
        raise DatasetNotFoundError(f"{series_file}: no such file")
    raw = read_split_file(series_file, FORMATS_BY_SUFFIX.get(series_file.suffix.lower(), "csv"))
    if arguments.estimator and arguments.weights:
        raise ConfigurationError("give --estimator or --weights, not both")
    if arguments.estimator:
        path = Path(arguments.estimator)
        probabilities, classes = estimator_probabilities(path, raw.values, series_file)
    else:
        path, probabilities, classes = weights_probabilities(arguments, raw.values, series_file)

    # Write one row per series, report accuracy when the labels are known.
    # one label type on both sides, so that "1.0000000e+00" in a file matches class "1"
    file_labels, classes = coerce_labels(raw.labels, np.asarray(classes))
    frame = pd.DataFrame({"case": np.arange(1, len(probabilities) + 1),
                          "label_in_file": file_labels,
                          "predicted_label": classes[probabilities.argmax(axis=1)]})
    for k, label in enumerate(classes):
        frame[f"p_{label}"] = probabilities[:, k]
    out = Path(arguments.out) if arguments.out else series_file.with_name(
        f"{series_file.stem}_predictions.csv")
    write_text_atomic(out, frame.to_csv(index=False))
    print(frame.head(10).to_string(index=False))
    print(f"{len(frame)} series classified with {path}; predictions written to {out}")
    known = frame["label_in_file"].isin(classes)
    if known.all():
        accuracy = float((frame["label_in_file"] == frame["predicted_label"]).mean())
        print(f"accuracy against the labels in the file: {accuracy:.4f}")
    return 0


def weights_probabilities(arguments: argparse.Namespace, values, series_file: Path):
    """(weights file, probabilities, classes) of a model trained by the loop script."""
    import numpy as np

    from utils.checkpoints import load_trained_model, weights_path
    from utils.errors import ConfigurationError, DatasetError
    from utils.experiments import run_dataset_name
    from utils.preprocessing import prepare_new_series
    from utils.training import predict_proba

    # The trained model and how it was trained.
    path = Path(arguments.weights) if arguments.weights else weights_path(
        arguments.weights_dir, arguments.model, arguments.cells,
        run_dataset_name(arguments.dataset), arguments.seed, arguments.protocol)
    model, config = load_trained_model(path)
    width = config["builder"]["max_sequence_length"]
    channels = config["builder"]["n_channels"]
    # The new series, preprocessed as the training data were.
    if values.shape[1] != channels:
        raise ConfigurationError(f"{series_file} has {values.shape[1]} channels; the model "
                                 f"was trained on {channels}")
    mean = std = None
    if config["normalize"] == "dataset":
        mean, std = training_statistics(config["dataset"], arguments.data_dir)
    try:
        X, lengths = prepare_new_series(
            values, width, config["normalize"], mean, std,
            trailing_nan_is_padding=config["builder"].get("variable_length", True))
    except DatasetError as error:
        raise DatasetError(f"{series_file}: {error}") from error
    return path, predict_proba(model, X, lengths), np.asarray(config["classes"])


def estimator_probabilities(path: Path, values, series_file: Path):
    """(probabilities, classes) of an LSTMFCNClassifier saved by ``save``."""
    from sklearn.exceptions import NotFittedError

    from utils.errors import DatasetError, DatasetNotFoundError
    from utils.estimator import LSTMFCNClassifier

    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: no such file (a saved LSTMFCNClassifier)")
    estimator = LSTMFCNClassifier.load(path)
    try:
        return estimator.predict_proba(values), estimator.classes_
    except (ValueError, NotFittedError) as error:  # scikit-learn's messages, about X
        raise DatasetError(f"{series_file}: {error}") from error


def training_statistics(dataset: str, data_dir: str | None):
    """Per-channel mean and std of the training split (for ``--normalize dataset`` models)."""
    import numpy as np

    from utils.data import load_dataset

    data = load_dataset(dataset, data_dir=data_dir, normalize="none")
    inside = np.arange(data.X_train.shape[2])[None, :] < data.lengths_train[:, None]
    values = np.where(inside[:, None, :], data.X_train, np.nan)
    return np.nanmean(values, axis=(0, 2)), np.nanstd(values, axis=(0, 2))


if __name__ == "__main__":
    from utils.cli import run_main

    run_main(main)
