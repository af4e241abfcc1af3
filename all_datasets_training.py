"""Train and evaluate the LSTM-FCN family over (dataset, model, cells, seed) runs.

Edit the settings below, or override any of them with flags (``--help`` lists them):

    python all_datasets_training.py --datasets GunPoint --models lstmfcn --cells 8 --epochs 500

Each run writes ``weights/<model>_<cells>_cells_weights/<Dataset>.weights.h5`` (plus a ``.json``
that says how to rebuild it) and one row of ``logs/<model>_<cells>_cells_results.csv``. Runs that
are already in the log are skipped, so an interrupted invocation continues where it stopped.
With ``--executor ray`` the runs train as Ray tasks, on this machine or on a cluster; this
process still writes every file.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter quiet

from utils.experiments import (  # noqa: E402  (no Keras here: --help stays instant)
    GridConfig,
    GridProgress,
    Run,
    RunOutcome,
    RunReport,
    builder_arguments,
    config_for_workers,
    executor_for,
    expand_datasets,
    failure_report,
    group_into_packs,
    in_grid_order,
    load_dataset_cached,
    load_saved_weights,
    lost_pack_reports,
    pack_resume_settings,
    prepare_output_folders,
    record_report,
    report_run,
    resume_settings,
    runs_still_to_do,
    select_cells,
)
from utils.interrupts import raise_if_stop_requested, stop_at_safe_points  # noqa: E402

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
ENGINE = "auto"  # fit (model.fit) | xla (compiled JAX epochs, same results) | auto (xla on JAX)
PRECISION = "float32"  # float32 | mixed_bfloat16 (engine xla on a GPU only)
# where the runs execute (README, "Many runs at once: Ray")
EXECUTOR = "local"  # local (one run after another, here) | ray (Ray tasks)
RAY_ADDRESS = None  # None: a private Ray on this machine; "auto" or "ray://host:10001": a cluster
CPUS_PER_RUN = 1.0
GPUS_PER_RUN = 0.0  # fractions share a device: 0.125 puts 8 runs on each GPU
MAX_RETRIES = 2  # times a run whose worker process died is started again
PACK = None  # runs that differ only in their seed per unit of work (one Ray task); the xla
#             engine trains them together. None: 8 on the xla engine, else 1
# -----------------------------------------------------------------------------


def run_grid(config: GridConfig) -> list[RunOutcome]:
    """Run every (dataset, model, cells, seed) of ``config``; one outcome per run."""
    config.validate()
    prepare_output_folders(config)  # half-written files of a killed earlier invocation go
    datasets = expand_datasets(config.datasets, config.data_dir)

    runs = [Run(dataset, model, cells, seed)
            for model in config.models
            for cells in config.cells
            for dataset in datasets
            for seed in config.seeds]

    # Runs already in the logs are skipped (or recovered from their saved weights).
    to_do, outcomes = runs_still_to_do(runs, config)
    print(f"{len(to_do)} of {len(runs)} runs to do ({config.executor} executor)", flush=True)

    # The executor runs each unit here or as a Ray task; this process writes what comes back.
    # Ctrl-C stops at a safe point (the end of an epoch, or between two units) with the state
    # saved, and exits 130; the same command continues.
    progress = GridProgress(len(to_do))
    with stop_at_safe_points(), executor_for(config) as executor:
        for finished in executor.map(run_pack, group_into_packs(to_do, config.pack_size()),
                                     config_for_workers(config)):
            reports = finished.result
            if finished.error is not None:  # its worker died on every try: log, go on
                reports = lost_pack_reports(finished.unit, finished.error)
            recorded = [record_report(report, config) for report in reports]
            outcomes += recorded
            progress.update(recorded, running=sum(map(len, executor.running_units)))
            raise_if_stop_requested()  # a safe point between two units

    if config.select_cells and config.mode != "evaluate":
        select_cells(config, list(dict.fromkeys(run.name for run in runs)))
    return in_grid_order(outcomes, runs)


def run_one(run: Run, config: GridConfig) -> RunReport:
    """What one run does: load the data, build the model, train it, evaluate it.

    It runs where the executor puts it (here, or in a Ray worker) and returns what the driver
    logs; it writes no result file itself.
    """
    import keras  # imported here, so that --help and flag errors are instant

    from utils import MODEL_BUILDERS, evaluate_model, train_model
    from utils.engine_xla import dtype_policy_scope
    from utils.training import set_seed

    data = load_dataset_cached(run.dataset, config.data_dir, config.normalize)
    keras.utils.clear_session(free_memory=True)
    set_seed(run.seed)  # the same seed gives the same initial weights
    generate = MODEL_BUILDERS[run.model]  # generate_lstmfcn, generate_alstmfcn, ...
    with dtype_policy_scope(config.precision):  # float32 unless --precision says otherwise
        model = generate(**builder_arguments(data, run.cells))

    training = test = None  # a step that is skipped (by MODE or commented out) stays None
    if config.mode != "evaluate":
        training = train_model(
            model, data, config.epochs, config.batch_size, protocol=config.protocol,
            learning_rate=config.learning_rate, class_weight=config.class_weight, seed=run.seed,
            recalibrate_batchnorm_stats=config.recalibrate_batchnorm,
            progress=config.progress and run.description, engine=config.engine,
            precision=config.precision,
            **resume_settings(run, config, data),  # a killed run resumes from its last snapshot
        )
    if training is None:  # nothing trained here: evaluate the weights an earlier run saved
        load_saved_weights(model, run, config)
    if config.mode != "train":
        test = evaluate_model(model, data, config.batch_size)

    # Log: the row, and the weights as bytes, go back to the driver, the one writer of files.
    return report_run(run, config, data, model, training, test)


def run_pack(pack: list[Run], config: GridConfig) -> list[RunReport]:
    """One unit of work for the executor: runs that share dataset, model and cells and differ
    in their seed (one run unless packed). The xla engine trains them together; otherwise they
    train one after another, and one failing does not stop the others."""
    if len(pack) > 1 and config.mode != "evaluate" and config.resolved_engine() == "xla":
        try:
            return run_together(pack, config)
        except Exception as error:  # each run is logged with the pack's error
            return [failure_report(run, error) for run in pack]
    reports = []
    for run in pack:
        try:
            reports.append(run_one(run, config))
        except Exception as error:  # logged with its error by the driver; the grid goes on
            reports.append(failure_report(run, error))
    return reports


def run_together(pack: list[Run], config: GridConfig) -> list[RunReport]:
    """``run_one`` for the seeds of a pack at once: one model per seed, trained side by side by
    the xla engine (each with its own weights, batches, dropout and schedule), then each
    evaluated and reported as ``run_one`` would."""
    import keras

    from utils import MODEL_BUILDERS, evaluate_model
    from utils.engine_xla import dtype_policy_scope
    from utils.training import set_seed, train_packed

    data = load_dataset_cached(pack[0].dataset, config.data_dir, config.normalize)
    keras.utils.clear_session(free_memory=True)
    models = []
    for run in pack:
        set_seed(run.seed)
        with dtype_policy_scope(config.precision):
            models.append(MODEL_BUILDERS[run.model](**builder_arguments(data, run.cells)))

    trainings = train_packed(
        models, data, [run.seed for run in pack], config.epochs, config.batch_size,
        protocol=config.protocol, learning_rate=config.learning_rate,
        class_weight=config.class_weight,
        recalibrate_batchnorm_stats=config.recalibrate_batchnorm,
        progress=config.progress and f"{pack[0].description} x{len(pack)} seeds",
        engine="xla", precision=config.precision,
        **pack_resume_settings(pack, config, data),  # a killed pack resumes from its snapshot
    )
    reports = []
    for run, model, training in zip(pack, models, trainings, strict=True):
        test = evaluate_model(model, data, config.batch_size) if config.mode != "train" else None
        reports.append(report_run(run, config, data, model, training, test))
    return reports


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
    parser.add_argument("--engine", default=ENGINE, choices=["auto", "fit", "xla"],
                        help="fit: model.fit; xla: compiled JAX epochs (KERAS_BACKEND=jax), "
                        "the same batches and results, no Python work per batch; auto: xla on "
                        "the JAX backend")
    parser.add_argument("--precision", default=PRECISION,
                        choices=["float32", "mixed_bfloat16"],
                        help="mixed_bfloat16: engine xla on a GPU only")
    execution = parser.add_argument_group("where the runs execute")
    execution.add_argument("--executor", default=EXECUTOR, choices=["local", "ray"],
                           help="local: one run after another in this process; ray: each run "
                           "(or pack) is a Ray task")
    execution.add_argument("--ray-address", default=RAY_ADDRESS,
                           help="join this Ray cluster (auto, host:port, ray://host:10001); "
                           "default: start a private Ray on this machine")
    execution.add_argument("--cpus-per-run", type=float, default=CPUS_PER_RUN,
                           help="CPUs each Ray task asks for (and TensorFlow threads it uses)")
    execution.add_argument("--gpus-per-run", type=float, default=GPUS_PER_RUN,
                           help="GPUs each Ray task asks for; a fraction shares one device")
    execution.add_argument("--max-retries", type=int, default=MAX_RETRIES,
                           help="how often a Ray task whose worker process died is run again")
    execution.add_argument("--shared-filesystem", action=argparse.BooleanOptionalAction,
                           default=None,
                           help="the Ray workers see this machine's weights/ at the same path "
                           "(resume snapshots go there; --mode evaluate works); default: yes "
                           "for a local Ray, no with --ray-address")
    execution.add_argument("--pack", type=int, default=PACK,
                           help="runs that differ only in their seed per unit of work, trained "
                           "together by the xla engine (default: 8 on xla, else 1)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)

    from utils.checkpoints import weights_path
    from utils.experiments import results_log_path, summary_table

    # Every flag maps onto the GridConfig field of the same name.
    settings = vars(arguments)
    no_progress = settings.pop("no_progress")
    class_weight = settings.pop("class_weight")
    config = GridConfig(**settings, progress=not no_progress,
                        class_weight=None if class_weight == "none" else class_weight)
    if config.protocol == "test-checkpoint":
        print("WARNING: protocol test-checkpoint selects weights by TEST accuracy (leaky); "
              "use it only to reproduce the 2017 paper's Table 1.", file=sys.stderr)

    # Train / evaluate every run; failures are logged and the grid goes on.
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
