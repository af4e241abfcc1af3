"""Training speed of LSTM-FCN (8 cells): seconds per epoch and training samples per second.

Each (backend, dataset) is measured in a fresh worker process (a Keras backend is fixed per
process) through ``utils.training.train_model`` itself, so the figures include everything a real
run pays per epoch (callbacks, checkpoint bookkeeping). The first backend given is the baseline of
the ratio column; all rows of one invocation run one after another on the same machine.

    python benchmarks/bench_training.py                       # GunPoint, TF vs JAX
    python benchmarks/bench_training.py --datasets GunPoint FordA --data-dir archive

FordA is not bundled: ``../shared/tools/get_ucr_archive.sh archive FordA`` fetches it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(dataset_name: str, data_dir: str | None, epochs: int, warmup: int,
           steps_per_execution: int | None) -> dict:
    """Runs inside the worker process: train and time every epoch."""
    import resource

    import keras

    sys.path.insert(0, str(ROOT))
    from utils.data import load_dataset
    from utils.models import build_model
    from utils.training import set_seed, train_model

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            durations.append(time.perf_counter() - self.started)

    durations: list[float] = []
    data = load_dataset(dataset_name, data_dir=data_dir, normalize="sample")
    set_seed(0)
    model = build_model("lstmfcn", data.X_train.shape[2], data.n_classes, num_cells=8,
                        n_channels=data.X_train.shape[1])
    if steps_per_execution == 0:
        # baseline: a bare model.fit, none of train_model's callbacks or bookkeeping
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(data.X_train, data.y_train, batch_size=128, epochs=warmup + epochs,
                  callbacks=[EpochTimer()], verbose=0)
    else:
        train_model(model, data, epochs=warmup + epochs, batch_size=128, seed=0,
                    steps_per_execution=steps_per_execution, callbacks=[EpochTimer()],
                    recalibrate_batchnorm_stats=False)
    measured = durations[warmup:]
    median = statistics.median(measured)
    return {
        "dataset": data.name,
        "n_train": int(len(data.y_train)),
        "length": int(data.X_train.shape[2]),
        "backend": keras.backend.backend(),
        "steps_per_execution": {None: "epoch", 0: "bare fit"}.get(steps_per_execution,
                                                                  steps_per_execution),
        "median_s_per_epoch": median,
        "min_s_per_epoch": min(measured),
        "samples_per_s": len(data.y_train) / median,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "epochs_timed": len(measured),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["GunPoint"])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax"])
    parser.add_argument("--data-dir", default=None, help="where datasets not in Data/ live")
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first epochs")
    parser.add_argument("--steps-per-execution", nargs="+", default=["epoch"],
                        help="'epoch' (our default: one compiled call per epoch), integers, "
                        "and/or 'bare' (a plain model.fit baseline without train_model)")
    parser.add_argument("--out", default=None, help="also write the markdown table here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    arguments = parser.parse_args()

    if arguments.worker:  # inside a worker process: print one JSON line
        dataset, spe = arguments.worker.split("|")
        spe_value = {"epoch": None, "bare": 0}.get(spe)
        result = worker(dataset, arguments.data_dir, arguments.epochs, arguments.warmup,
                        spe_value if spe in ("epoch", "bare") else int(spe))
        print("RESULT " + json.dumps(result))
        return 0

    rows = []
    for dataset in arguments.datasets:
        for backend in arguments.backends:
            for spe in arguments.steps_per_execution:
                command = [sys.executable, __file__, "--worker", f"{dataset}|{spe}",
                           "--epochs", str(arguments.epochs), "--warmup", str(arguments.warmup)]
                if arguments.data_dir:
                    command += ["--data-dir", arguments.data_dir]
                environment = {**os.environ, "KERAS_BACKEND": backend}
                done = subprocess.run(command, capture_output=True, text=True, env=environment,
                                      cwd=ROOT)
                line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
                if line is None:
                    print(f"{dataset} on {backend} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
                    continue
                rows.append(json.loads(line[len("RESULT "):]))
                print(f"done: {dataset} {backend} spe={spe}", file=sys.stderr, flush=True)

    lines = ["| dataset (N x T) | backend | steps/exec | median s/epoch | min s/epoch | "
             "samples/s | peak RSS MB | speed vs first row of dataset |",
             "|---|---|---|---|---|---|---|---|"]
    baseline: dict[str, float] = {}
    for row in rows:
        base = baseline.setdefault(row["dataset"], row["median_s_per_epoch"])
        lines.append(
            f"| {row['dataset']} ({row['n_train']} x {row['length']}) | {row['backend']} | "
            f"{row['steps_per_execution']} | {row['median_s_per_epoch']:.4f} | "
            f"{row['min_s_per_epoch']:.4f} | {row['samples_per_s']:.0f} | "
            f"{row['peak_rss_mb']:.0f} | {base / row['median_s_per_epoch']:.2f}x |"
        )
    table = "\n".join(lines)
    note = (f"\nMedian of {arguments.epochs} epochs after {arguments.warmup} warm-up epochs, "
            "LSTM-FCN 8 cells, batch 128, sample z-norm, one worker process per row.")
    print(table + note)
    if arguments.out:
        Path(arguments.out).write_text(table + note + "\n")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
