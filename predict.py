"""Predict the classes of new series with a model trained by all_datasets_training.py.

    python predict.py NEW_SERIES.tsv --dataset GunPoint --model lstmfcn --cells 8
    python predict.py NEW_SERIES.ts --weights weights/lstmfcn_8_cells_weights/GunPoint.weights.h5

The file may be in any format the loader reads (UCR .tsv, the original's comma files, .ts,
.arff). Those formats put a class label first: for unlabelled series write any placeholder (e.g.
0). When every label is one of the training classes, the accuracy is printed too. The series get
the preprocessing the model was trained with (stored beside the weights); series longer than the
training length are cut to it, shorter ones are padded (and masked by variable-length models).
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
    from utils.checkpoints import load_trained_model, weights_path
    from utils.data import read_split_file
    from utils.errors import ConfigurationError, DatasetError, DatasetNotFoundError
    from utils.experiments import run_dataset_name
    from utils.preprocessing import coerce_labels, prepare_new_series
    from utils.training import predict_proba

    # 1. The trained model and how it was trained.
    path = Path(arguments.weights) if arguments.weights else weights_path(
        arguments.weights_dir, arguments.model, arguments.cells,
        run_dataset_name(arguments.dataset), arguments.seed, arguments.protocol)
    model, config = load_trained_model(path)
    classes = list(config["classes"])
    width = config["builder"]["max_sequence_length"]
    channels = config["builder"]["n_channels"]

    # 2. The new series, read and preprocessed as the training data were.
    series_file = Path(arguments.series)
    if not series_file.is_file():
        raise DatasetNotFoundError(f"{series_file}: no such file")
    raw = read_split_file(series_file, FORMATS_BY_SUFFIX.get(series_file.suffix.lower(), "csv"))
    if raw.values.shape[1] != channels:
        raise ConfigurationError(f"{series_file} has {raw.values.shape[1]} channels; the model "
                                 f"was trained on {channels}")
    mean = std = None
    if config["normalize"] == "dataset":
        mean, std = training_statistics(config["dataset"], arguments.data_dir)
    try:
        X, lengths = prepare_new_series(
            raw.values, width, config["normalize"], mean, std,
            trailing_nan_is_padding=config["builder"].get("variable_length", True))
    except DatasetError as error:
        raise DatasetError(f"{series_file}: {error}") from error

    # 3. Predict, write one row per series, report accuracy when the labels are known.
    probabilities = predict_proba(model, X, lengths)
    # one label type on both sides, so that "1.0000000e+00" in a file matches class "1"
    file_labels, classes = coerce_labels(raw.labels, np.asarray(classes))
    frame = pd.DataFrame({"case": np.arange(1, len(X) + 1),
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
