"""tsml-eval results files from a real (few-epoch) run, read back by our reader and by
tsml-eval's own loader; reference-results summaries; aeon's stratified resamples."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from utils.errors import DatasetError
from utils.reproduction import write_resampled_dataset
from utils.results_files import (
    RunResult,
    format_accuracy_summary,
    from_predictions_csv,
    read_accuracy_summary,
    read_results_file,
    write_accuracy_summaries,
    write_results_file,
)

DATA = Path(__file__).resolve().parents[1] / "Data"


@pytest.fixture(scope="module")
def real_predictions(tmp_path_factory) -> Path:
    """Per-case test predictions of LSTM-FCN trained for 3 epochs on ItalyPowerDemand."""
    from utils import build_model, evaluate_model, load_dataset, train_model
    from utils.training import set_seed

    folder = tmp_path_factory.mktemp("run")
    data = load_dataset("ItalyPowerDemand")
    set_seed(0)
    model = build_model("lstmfcn", max_sequence_length=data.X_train.shape[2],
                        nb_class=data.n_classes, num_cells=8)
    train_model(model, data, epochs=3, batch_size=128, seed=0)
    path = folder / "predictions.csv"
    evaluate_model(model, data, predictions_path=path)
    return path


def test_real_run_round_trips_through_our_reader_and_tsml_eval(real_predictions, tmp_path):
    parameters = {"model": "lstmfcn", "cells": 8, "epochs": 3, "train_loss": 0.5}
    result = from_predictions_csv(real_predictions, "LSTM-FCN-8", "ItalyPowerDemand", "seeds", 0,
                                  parameters, fit_milliseconds=1234)
    assert result.classes == ["1", "2"] and len(result.true_index) == 1029
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    path = write_results_file(tmp_path, result)
    assert path == tmp_path / "seeds/LSTM-FCN-8/Predictions/ItalyPowerDemand/testResample0.csv"
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith("ItalyPowerDemand,LSTM-FCN-8,TEST,0,MILLISECONDS,published")

    ours = read_results_file(path)
    assert (ours.kind, ours.index, ours.classes) == ("seeds", 0, ["1", "2"])
    assert ours.parameters == parameters and ours.fit_milliseconds == 1234
    np.testing.assert_array_equal(ours.true_index, result.true_index)
    np.testing.assert_array_equal(ours.predicted_index, result.predicted_index)
    np.testing.assert_allclose(ours.probabilities, result.probabilities, rtol=1e-9)

    # tsml-eval's loader checks the case count, class count, probability sums and accuracy
    storage = pytest.importorskip("tsml_eval.evaluation.storage")
    loaded = storage.load_classifier_results(str(path))
    assert (loaded.dataset_name, loaded.classifier_name, loaded.resample_id) == (
        "ItalyPowerDemand", "LSTM-FCN-8", 0)
    assert loaded.accuracy == result.accuracy and loaded.n_cases == 1029
    np.testing.assert_array_equal(loaded.predictions.astype(int), result.predicted_index)

    # re-writing the same results is harmless; other numbers are refused, the file is kept
    assert write_results_file(tmp_path, result) == path
    changed = RunResult(**{**result.__dict__, "predicted_index": 1 - result.predicted_index})
    with pytest.raises(DatasetError, match="already holds other results"):
        write_results_file(tmp_path, changed)
    assert read_results_file(path).accuracy == result.accuracy


def test_accuracy_summaries_keep_seeds_and_resamples_apart(real_predictions, tmp_path):
    for kind, index in (("seeds", 0), ("seeds", 3), ("resamples", 0)):
        result = from_predictions_csv(real_predictions, "LSTM-FCN-8", "ItalyPowerDemand", kind,
                                      index, {"model": "lstmfcn"})
        write_results_file(tmp_path, result)
    paths = write_accuracy_summaries(tmp_path)
    assert paths == [tmp_path / "seeds/LSTM-FCN-8_accuracy.csv",
                     tmp_path / "resamples/LSTM-FCN-8_accuracy.csv"]
    assert paths[0].read_text().splitlines()[0] == "Seeds:,0,3"
    assert paths[1].read_text().splitlines()[0] == "Resamples:,0"
    seeds = read_accuracy_summary(paths[0])
    assert list(seeds.columns) == [0, 3] and list(seeds.index) == ["ItalyPowerDemand"]
    assert seeds.loc["ItalyPowerDemand", 0] == pytest.approx(result.accuracy, abs=0)
    # a published reference-results file reads into the same layout
    peers = read_accuracy_summary(DATA.parent / "Results/peers/tsml-eval-bakeoff2023/"
                                  "deeplearning/CNN_accuracy.csv")
    assert list(peers.columns) == list(range(30)) and "ItalyPowerDemand" in peers.index
    with pytest.raises(ValueError, match="kind"):
        format_accuracy_summary(seeds, "folds")


def test_mismatched_arrays_are_refused(real_predictions):
    result = from_predictions_csv(real_predictions, "X", "ItalyPowerDemand", "seeds", 0, {})
    broken = RunResult(**{**result.__dict__, "probabilities": result.probabilities[:10]})
    with pytest.raises(DatasetError, match="do not match"):
        write_results_file("unused", broken)


def test_stratified_resamples_keep_the_class_counts(tmp_path):
    folder = write_resampled_dataset("ItalyPowerDemand", None, 3, tmp_path)
    source = DATA / "ItalyPowerDemand"
    lines = {split: [line for line in (source / f"ItalyPowerDemand_{split}.tsv").read_text()
                     .splitlines() if line.strip()] for split in ("TRAIN", "TEST")}
    resampled = {split: (folder / "ItalyPowerDemand" / f"ItalyPowerDemand_{split}.tsv")
                 .read_text().splitlines() for split in ("TRAIN", "TEST")}
    for split in ("TRAIN", "TEST"):
        assert len(resampled[split]) == len(lines[split])
        labels = Counter(line.split("\t", 1)[0] for line in resampled[split])
        assert labels == Counter(line.split("\t", 1)[0] for line in lines[split])
    assert resampled["TRAIN"] != lines["TRAIN"]  # a different split, same cases overall
    assert sorted(resampled["TRAIN"] + resampled["TEST"]) == sorted(lines["TRAIN"]
                                                                   + lines["TEST"])
