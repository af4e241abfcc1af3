"""Reproduce the "minimum training loss" results of LSTM-FCN with the paper's settings.

The settings of the original repository's 2019 results (original_spec.md 4.5 and 8): protocol
``train-loss``, 2000 epochs, batch 128, Adam 1e-3, sample-wise z-normalisation, cells 8/64/128
with the cell count chosen per dataset by the lowest training loss. The runs go through the loop
script's grid, so an interrupted benchmark continues where it stopped; the table compares our
test accuracy with the published one in ``Results/LSTM-FCN/train_loss_old_datasets.csv`` (our
unchanged copy of the original repository's file).

    python benchmarks/paper_settings.py --data-dir archive   # the 16 default datasets
    python benchmarks/paper_settings.py --datasets Coffee CBF --data-dir archive
    python benchmarks/paper_settings.py --table-only         # just rebuild the table

Non-bundled datasets come from ``../shared/tools/get_ucr_archive.sh archive NAME...``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_DATASETS = ["Coffee", "ECG200", "GunPoint", "ItalyPowerDemand", "Beef", "OliveOil", "CBF",
                    "FaceFour", "ArrowHead", "Wine", "Lightning7", "BeetleFly", "BirdChicken",
                    "ToeSegmentation1", "SonyAIBORobotSurface1", "MoteStrain"]
PUBLISHED = ROOT / "Results" / "LSTM-FCN" / "train_loss_old_datasets.csv"
PUBLISHED_CELLS = ROOT / "Results" / "transcribed" / "lstmfcn_train_loss_model_chosen.csv"
PUBLISHED_COLUMN = {"lstmfcn": "LSTM-FCN", "alstmfcn": "ALSTM-FCN"}
PUBLISHED_CELLS_COLUMN = {"lstmfcn": "lstmfcn_cells_chosen", "alstmfcn": "alstmfcn_cells_chosen"}


def published_table(model: str):
    """Published accuracy and chosen cell count per dataset (2018 names)."""
    import pandas as pd

    from utils.statistics import canonical_dataset_name

    accuracy = pd.read_csv(PUBLISHED)
    cells = pd.read_csv(PUBLISHED_CELLS)
    accuracy["dataset"] = accuracy["Dataset"].map(canonical_dataset_name)
    cells["dataset"] = cells["Dataset"].map(canonical_dataset_name)
    table = accuracy[["dataset", PUBLISHED_COLUMN[model]]].merge(
        cells[["dataset", PUBLISHED_CELLS_COLUMN[model]]], on="dataset", how="left")
    return table.rename(columns={PUBLISHED_COLUMN[model]: "published_accuracy",
                                 PUBLISHED_CELLS_COLUMN[model]: "published_cells"})


def comparison_table(logs_dir: Path, model: str, cells: list[int], datasets: list[str]):
    """One row per dataset: ours per cell count, ours with selected cells, published."""
    import pandas as pd

    from utils.experiments import read_log, results_log_path

    frame = pd.DataFrame({"dataset": datasets})
    for cell in cells:
        rows = [r for r in read_log(results_log_path(logs_dir, model, cell)) if not r["error"]]
        per_cell = pd.DataFrame(rows or [{"dataset": None, "test_accuracy": None,
                                          "train_loss": None}])
        per_cell = per_cell[["dataset", "test_accuracy", "train_loss"]].rename(
            columns={"test_accuracy": f"acc_{cell}", "train_loss": f"train_loss_{cell}"})
        frame = frame.merge(per_cell, on="dataset", how="left")
    selected = pd.DataFrame(read_log(results_log_path(logs_dir, model, "selected"))
                            or [{"dataset": None, "cells": None, "test_accuracy": None}])
    selected = selected[["dataset", "cells", "test_accuracy"]].rename(
        columns={"cells": "selected_cells", "test_accuracy": "ours_selected"})
    frame = frame.merge(selected, on="dataset", how="left")
    frame = frame.merge(published_table(model), on="dataset", how="left")
    numeric = [c for c in frame.columns if c.startswith(("acc_", "train_loss_", "ours_",
                                                         "published_accuracy"))]
    frame[numeric] = frame[numeric].apply(pd.to_numeric, errors="coerce")
    frame["difference"] = frame["ours_selected"] - frame["published_accuracy"]
    return frame


def to_markdown(frame, model: str, cells: list[int]) -> str:
    headers = (["dataset"] + [f"ours m={c}" for c in cells]
               + ["ours (selected m)", "selected m", "published", "published m",
                  "ours - published"])
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]

    def fmt(value, digits=4):
        return "" if value != value or value is None else f"{value:.{digits}f}"  # NaN -> blank

    for _, row in frame.iterrows():
        cells_text = [fmt(row[f"acc_{c}"]) for c in cells]
        published_m = row.get("published_cells")
        lines.append("| " + " | ".join(
            [row["dataset"], *cells_text, fmt(row["ours_selected"]),
             "" if row["selected_cells"] != row["selected_cells"] else str(row["selected_cells"]),
             fmt(row["published_accuracy"]),
             "" if published_m != published_m else str(int(published_m)),
             fmt(row["difference"], 4)]) + " |")
    done = frame.dropna(subset=["ours_selected", "published_accuracy"])
    if len(done):
        wins = int((done["difference"] > 1e-9).sum())
        losses = int((done["difference"] < -1e-9).sum())
        lines.append("")
        lines.append(
            f"{model}: {len(done)} datasets finished; mean accuracy ours "
            f"{done['ours_selected'].mean():.4f} vs published "
            f"{done['published_accuracy'].mean():.4f}; ours better on {wins}, "
            f"worse on {losses}, tied on {len(done) - wins - losses}.")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=DEFAULT_DATASETS)
    parser.add_argument("--models", nargs="+", default=["lstmfcn"], choices=list(PUBLISHED_COLUMN))
    parser.add_argument("--cells", nargs="+", type=int, default=[8, 64, 128])
    parser.add_argument("--epochs", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--logs-dir",
                        default=str(ROOT / "benchmarks" / "results" / "paper_settings"))
    parser.add_argument("--weights-dir", default=str(ROOT / "weights" / "paper_settings"))
    parser.add_argument("--table-only", action="store_true", help="do not train, just tabulate")
    arguments = parser.parse_args()

    from all_datasets_training import run_grid
    from utils.atomic_files import write_text_atomic
    from utils.experiments import GridConfig, expand_datasets, select_cells

    config = GridConfig(
        datasets=arguments.datasets, models=arguments.models, cells=arguments.cells,
        epochs=arguments.epochs, batch_size=arguments.batch_size, protocol="train-loss",
        normalize="sample", select_cells=True, data_dir=arguments.data_dir,
        weights_dir=arguments.weights_dir, logs_dir=arguments.logs_dir,
    )
    datasets = expand_datasets(arguments.datasets, arguments.data_dir)
    if arguments.table_only:
        select_cells(config, datasets)
    else:
        run_grid(config)

    logs_dir = Path(arguments.logs_dir)
    for model in arguments.models:
        table = to_markdown(comparison_table(logs_dir, model, arguments.cells, datasets), model,
                            arguments.cells)
        header = (f"# {model}: paper settings (train-loss protocol, {arguments.epochs} epochs, "
                  f"batch {arguments.batch_size}, cells {'/'.join(map(str, arguments.cells))} "
                  "selected by training loss)\n\n")
        write_text_atomic(logs_dir / f"{model}_comparison.md", header + table + "\n")
        print(header + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
