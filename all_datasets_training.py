"""Train and evaluate the LSTM-FCN family over (dataset, model, cells) triples.

Edit the settings below, or override any of them with flags (``--help`` lists them):

    python all_datasets_training.py --datasets GunPoint --models lstmfcn --cells 8 --epochs 500

Each run writes ``weights/<model>_<cells>_cells_weights/<Dataset>.weights.h5`` (plus a ``.json``
that says how to rebuild it) and one row of ``logs/<model>_<cells>_cells_results.csv``. Runs that
are already in the log are skipped, so an interrupted invocation continues where it stopped.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter quiet

# ----------------------------------------------------------------------------- settings
DATASETS = ["GunPoint"]  # names (2018 or 2015 spelling), ids 0..127, "bundled", "all", paths
MODELS = ["lstmfcn", "alstmfcn"]  # see utils.models.MODEL_BUILDERS
CELLS = [8, 64, 128]  # units of the recurrent layer (NUM_CELLS of the original)
SEEDS = [0]
EPOCHS = 2000  # the paper's settings: 2000 epochs, batch 128
BATCH_SIZE = 128
LEARNING_RATE = 1e-3
PROTOCOL = "train-loss"  # train-loss | validation | test-checkpoint (leaky, paper Table 1 only)
NORMALIZE = "auto"  # auto (univariate: sample, as LSTM-FCN; multivariate: none, as MLSTM-FCN)
#                    | sample | none | dataset
CLASS_WEIGHT = "none"  # none (as published) | balanced (as the original intended)
RECALIBRATE_BATCHNORM = True  # recompute BatchNorm statistics after training (False: original)
MODE = "both"  # train | evaluate | both
SELECT_CELLS = False  # keep, per dataset, the cell count with the lowest training loss
DATA_DIR = None  # default: Data/ (or the LSTMFCN_DATA_DIR environment variable)
WEIGHTS_DIR = "weights"
LOGS_DIR = "logs"
SNAPSHOT_MINUTES = 5.0  # how often a run's state is saved, so that a killed run resumes
# -----------------------------------------------------------------------------


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--datasets", nargs="+", default=DATASETS,
                        help="dataset names, ids, 'bundled' (all in Data/), 'all' (the 128 UCR ids)"
                        " or paths to your own data folders")
    parser.add_argument("--models", nargs="+", default=MODELS, help="model names")
    parser.add_argument("--cells", nargs="+", type=int, default=CELLS, help="recurrent units")
    parser.add_argument("--seeds", nargs="+", type=int, default=SEEDS, help="random seeds")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--learning-rate", type=float, default=LEARNING_RATE)
    parser.add_argument("--protocol", default=PROTOCOL,
                        choices=["train-loss", "validation", "test-checkpoint"],
                        help="model-selection protocol; test-checkpoint leaks test labels")
    parser.add_argument("--normalize", default=NORMALIZE,
                        choices=["auto", "none", "sample", "dataset"],
                        help="auto: sample-wise z-norm for univariate data (LSTM-FCN's default), "
                        "none for multivariate data (MLSTM-FCN's default)")
    parser.add_argument("--class-weight", default=CLASS_WEIGHT, choices=["none", "balanced"])
    parser.add_argument("--recalibrate-batchnorm", action=argparse.BooleanOptionalAction,
                        default=RECALIBRATE_BATCHNORM,
                        help="recompute BatchNorm statistics on the training split with the kept "
                        "weights (--no-recalibrate-batchnorm: as the original)")
    parser.add_argument("--mode", default=MODE, choices=["train", "evaluate", "both"],
                        help="evaluate: re-evaluate saved weights against the logged accuracy")
    parser.add_argument("--select-cells", action=argparse.BooleanOptionalAction,
                        default=SELECT_CELLS,
                        help="the original's cell search: per dataset, the cell count with the "
                        "lowest training loss, written to logs/<model>_selected_cells_results.csv")
    parser.add_argument("--overwrite", action="store_true",
                        help="retrain runs already logged and replace their weights")
    parser.add_argument("--save-predictions", action="store_true",
                        help="write per-case test predictions under logs/predictions/")
    parser.add_argument("--data-dir", default=DATA_DIR)
    parser.add_argument("--weights-dir", default=WEIGHTS_DIR)
    parser.add_argument("--logs-dir", default=LOGS_DIR)
    parser.add_argument("--snapshot-minutes", type=float, default=SNAPSHOT_MINUTES,
                        help="save the state of the run in progress this often; a killed run "
                        "resumes from it (0: after every epoch)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)

    # Keras is imported only now, so that --help and flag errors are instant.
    from utils.checkpoints import weights_path
    from utils.experiments import GridConfig, results_log_path, run_grid, summary_table

    # Every flag maps onto the GridConfig field of the same name.
    settings = vars(arguments)
    no_progress = settings.pop("no_progress")
    class_weight = settings.pop("class_weight")
    config = GridConfig(**settings, progress=not no_progress,
                        class_weight=None if class_weight == "none" else class_weight)
    if config.protocol == "test-checkpoint":
        print("WARNING: protocol test-checkpoint selects weights by TEST accuracy (leaky); "
              "use it only to reproduce the 2017 paper's Table 1.", file=sys.stderr)

    # Train / evaluate every run; failures are logged and the loop goes on.
    outcomes = run_grid(config)

    print()
    print(summary_table(outcomes))
    # Where everything went, so the next step (figures, compare_results.py) is one copy away.
    done = [o for o in outcomes if o.status != "failed"]
    print()
    for outcome in done:
        print("weights:", weights_path(config.weights_dir, outcome.model, outcome.cells,
                                       outcome.dataset, outcome.seed, config.protocol))
    for log in sorted({results_log_path(config.logs_dir, o.model, o.cells) for o in done}):
        print("results:", log)
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        print(f"{len(failed)} of {len(outcomes)} runs failed (see the error column)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    from utils.cli import run_main

    run_main(main)
