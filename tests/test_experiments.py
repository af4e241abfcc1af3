"""The loop's bookkeeping, in-process: cell selection, stale files, settings of logged runs."""

from __future__ import annotations

import os
import subprocess
import sys

from all_datasets_training import run_grid
from utils.atomic_files import PARTIAL_MARKER, remove_partial_files
from utils.experiments import (
    GridConfig,
    read_log,
    results_log_path,
    select_cells,
    upsert_row,
)


def _config(tmp_path, **changes) -> GridConfig:
    settings = dict(datasets=["Chinatown"], models=["fcn"], cells=[8], epochs=2,
                    weights_dir=str(tmp_path / "weights"), logs_dir=str(tmp_path / "logs"),
                    progress=False)
    return GridConfig(**{**settings, **changes})


def test_selection_keeps_one_row_per_dataset_and_says_what_it_chose_from(tmp_path):
    config = _config(tmp_path, models=["lstmfcn"], cells=[8, 64], select_cells=True)
    base = {"dataset": "GunPoint", "model": "lstmfcn", "seed": 0, "protocol": "train-loss",
            "error": ""}
    for cells, loss in ((8, 0.3), (64, 0.1)):
        upsert_row(results_log_path(config.logs_dir, "lstmfcn", cells),
                   {**base, "cells": cells, "train_loss": loss, "test_accuracy": 0.9})
    select_cells(config, ["GunPoint"])
    # a retrained 8-cell run now has the lower training loss: the choice is replaced
    upsert_row(results_log_path(config.logs_dir, "lstmfcn", 8),
               {**base, "cells": 8, "train_loss": 0.05, "test_accuracy": 0.95})
    select_cells(config, ["GunPoint"])
    (chosen,) = read_log(results_log_path(config.logs_dir, "lstmfcn", "selected"))
    assert chosen["cells"] == "8" and chosen["test_accuracy"] == "0.95"
    assert chosen["selected_from"] == "8/64"


def test_a_sidecar_left_without_its_weights_does_not_block_training(tmp_path):
    config = _config(tmp_path)
    (first,) = run_grid(config)
    assert first.status == "trained"
    weights = tmp_path / "weights" / "fcn_8_cells_weights" / "Chinatown.weights.h5"
    weights.unlink()  # as if killed between writing the sidecar and renaming the weights
    results_log_path(config.logs_dir, "fcn", 8).unlink()
    (again,) = run_grid(config)
    assert again.status == "trained", again.error
    assert weights.exists()


def test_weights_and_a_sidecar_from_another_save_are_not_recovered_as_a_pair(tmp_path):
    run_grid(_config(tmp_path))
    weights = tmp_path / "weights" / "fcn_8_cells_weights" / "Chinatown.weights.h5"
    foreign = weights.read_bytes()
    config = _config(tmp_path, epochs=3)
    run_grid(_config(tmp_path, epochs=3, overwrite=True))  # new weights and sidecar
    weights.write_bytes(foreign)  # the old weights beside the new sidecar
    results_log_path(config.logs_dir, "fcn", 8).unlink()
    (outcome,) = run_grid(config)
    assert outcome.status == "failed" and "other settings" in outcome.error
    assert weights.read_bytes() == foreign  # and nothing was overwritten


def test_a_run_logged_with_other_settings_is_not_skipped_or_replaced(tmp_path):
    run_grid(_config(tmp_path))
    log = results_log_path(tmp_path / "logs", "fcn", 8)
    before = read_log(log)
    (outcome,) = run_grid(_config(tmp_path, epochs=3))
    assert outcome.status == "failed" and "epochs 2 (now 3)" in outcome.error
    assert read_log(log) == before  # the finished row stays as it was


def test_only_partial_files_of_dead_processes_are_removed(tmp_path):
    mine = tmp_path / f".a.csv{PARTIAL_MARKER}{os.getpid()}-x.tmp"
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    dead = tmp_path / f".b.csv{PARTIAL_MARKER}{finished.stdout.strip()}-y.tmp"
    for path in (mine, dead):
        path.write_text("half")
    assert remove_partial_files(tmp_path) == [dead]
    assert mine.exists() and not dead.exists()
