"""The xla engine's figures that need a GPU (issue 11), in one invocation that fits a lent
device window; it runs on CPU too (with fewer epochs, to check it before a GPU is lent).

1. GunPoint, ``--epochs`` (2000) epochs, one run: training seconds and compile seconds, against
   the fit engine on the same machine (fit timed over ``--fit-epochs`` and scaled).
2. GunPoint, 8 packed seeds: the pack's training seconds.
3. FordA samples/s, float32 and mixed_bfloat16 (``--forda-epochs`` timed epochs each).
4. One (LSTM-FCN, cells 8/64/128, 1 seed) pass over the 128 UCR datasets, estimated: per-epoch
   times measured on ``--probe`` datasets of different sizes (a least-squares line in
   n_train x length), plus one compilation per distinct input shape (measured median), summed
   over the archive's shapes (``utils.constants``) and 2000 epochs.

    python benchmarks/engine_gpu.py --data-dir archive --out results.md
    python benchmarks/engine_gpu.py --data-dir archive --epochs 20 --fit-epochs 5 --forda-epochs 2

Needs KERAS_BACKEND=jax (set here when unset). Everything is written to ``--out`` as it comes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

PROBES = ["ItalyPowerDemand", "GunPoint", "ECG200", "Wafer", "FordA", "ElectricDevices"]


def build(data, cells: int, seed: int, precision: str = "float32"):
    from utils.engine_xla import dtype_policy_scope
    from utils.models import build_model
    from utils.training import set_seed

    set_seed(seed)
    with dtype_policy_scope(precision):
        return build_model("lstmfcn", data.X_train.shape[2], data.n_classes, num_cells=cells)


def train(data, seeds: list[int], epochs: int, cells: int = 8, engine: str = "xla",
          precision: str = "float32") -> tuple[float, float]:
    """(training seconds of the pack, compile seconds)."""
    from utils.training import train_packed

    models = [build(data, cells, seed, precision) for seed in seeds]
    started = time.perf_counter()
    results = train_packed(models, data, seeds, epochs, 128, engine=engine, precision=precision,
                           recalibrate_batchnorm_stats=False)
    return time.perf_counter() - started, results[0].compile_seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epochs", type=int, default=2000)
    parser.add_argument("--fit-epochs", type=int, default=200)
    parser.add_argument("--forda-epochs", type=int, default=5)
    parser.add_argument("--probe", nargs="+", default=PROBES)
    parser.add_argument("--probe-epochs", type=int, default=20)
    parser.add_argument("--out", default="engine_gpu.md")
    arguments = parser.parse_args()

    import jax

    from utils.atomic_files import write_text_atomic
    from utils.constants import DATASETS_BY_ID
    from utils.data import load_dataset

    lines = [f"# xla engine on {jax.devices()[0].device_kind} ({jax.default_backend()}), "
             f"{time.strftime('%Y-%m-%d')}", "",
             "Command: `python benchmarks/engine_gpu.py " + " ".join(sys.argv[1:]) + "`", ""]

    def say(line: str) -> None:
        lines.append(line)
        print(line, flush=True)
        write_text_atomic(arguments.out, "\n".join(lines) + "\n")

    def load(name: str):
        return load_dataset(name, data_dir=arguments.data_dir)

    gunpoint = load("GunPoint")
    fit_seconds, _ = train(gunpoint, [0], arguments.fit_epochs, engine="fit")
    say(f"- GunPoint, fit engine: {fit_seconds:.1f} s for {arguments.fit_epochs} epochs = "
        f"{fit_seconds * arguments.epochs / arguments.fit_epochs:.1f} s per {arguments.epochs}")
    seconds, compile_seconds = train(gunpoint, [0], arguments.epochs)
    say(f"- GunPoint, xla, one run, {arguments.epochs} epochs: {seconds:.1f} s "
        f"(compile and first epoch {compile_seconds:.1f} s of it)")
    seconds, compile_seconds = train(gunpoint, list(range(8)), arguments.epochs)
    say(f"- GunPoint, xla, 8 packed seeds, {arguments.epochs} epochs: {seconds:.1f} s for the "
        f"pack (compile {compile_seconds:.1f} s)")

    forda = load("FordA")
    for precision in ("float32", "mixed_bfloat16"):
        try:
            seconds, compile_seconds = train(forda, [0], arguments.forda_epochs + 1,
                                             precision=precision)
        except Exception as error:  # refused on CPU: said, not hidden
            say(f"- FordA {precision}: {type(error).__name__}: {error}")
            continue
        per_epoch = (seconds - compile_seconds) / arguments.forda_epochs
        say(f"- FordA {precision}: {len(forda.y_train) / per_epoch:.0f} samples/s "
            f"({per_epoch:.3f} s/epoch after the first; compile {compile_seconds:.1f} s)")

    # per-epoch time ~ a + b * n_train * length, from datasets of different sizes
    sizes, times, compiles = [], [], []
    for name in arguments.probe:
        data = load(name)
        seconds, compile_seconds = train(data, [0], arguments.probe_epochs + 1)
        per_epoch = (seconds - compile_seconds) / arguments.probe_epochs
        sizes.append(len(data.y_train) * data.X_train.shape[2])
        times.append(per_epoch)
        compiles.append(compile_seconds - per_epoch)
        say(f"- probe {name}: {per_epoch:.4f} s/epoch, compile {compiles[-1]:.1f} s")
    import numpy as np

    slope, intercept = np.polyfit(sizes, times, 1)
    records = [DATASETS_BY_ID[i] for i in sorted(DATASETS_BY_ID)]
    epochs_seconds = sum(max(intercept + slope * r.n_train * r.length, min(times))
                         for r in records) * 2000
    shapes = {(r.n_train, r.length, r.n_classes) for r in records}
    compile_total = len(shapes) * statistics.median(compiles)
    # the 64- and 128-cell models cost about what the 8-cell one does (convolutions dominate)
    total = 3 * (epochs_seconds + compile_total)
    say(f"- estimate, LSTM-FCN 8/64/128 cells x 1 seed x 128 UCR datasets x 2000 epochs: "
        f"{total / 60:.0f} min ({epochs_seconds / 60:.0f} min of epochs and "
        f"{compile_total / 60:.1f} min of compilation per cell size; {len(shapes)} distinct "
        f"shapes, median compile {statistics.median(compiles):.1f} s; epoch time "
        f"{intercept * 1e3:.2f} ms + {slope * 1e9:.2f} ns x n_train x length)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
