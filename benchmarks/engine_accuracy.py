"""Does the xla engine change accuracy? The same seeds trained by both engines, 2000 epochs.

Each engine runs as one invocation of the loop script (JAX backend; ``--engine xla`` packs the
seeds of a dataset together), into its own logs folder, resumable: finished rows are skipped, so
a stopped study continues where it was. The table gives each dataset's mean test accuracy and the
seed-to-seed standard deviation per engine, and the wall time of each invocation.

    python benchmarks/engine_accuracy.py                       # 3 bundled sets x 5 seeds
    python benchmarks/engine_accuracy.py --epochs 200 --seeds 0 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from utils.atomic_files import write_text_atomic  # noqa: E402
from utils.cli import run_main  # noqa: E402
from utils.experiments import read_log  # noqa: E402

DATASETS = ["Chinatown", "ItalyPowerDemand", "GunPoint"]
ENGINES = ["fit", "xla"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=DATASETS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=2000)
    parser.add_argument("--work-dir", default=str(REPOSITORY / "benchmarks" / "results"
                                                  / "engine_accuracy"))
    parser.add_argument("--out", default=str(REPOSITORY / "benchmarks" / "results"
                                             / "engine_accuracy_cpu.md"))
    arguments = parser.parse_args()

    work = Path(arguments.work_dir)
    seconds: dict[str, float] = {}
    for engine in ENGINES:
        command = [sys.executable, str(REPOSITORY / "all_datasets_training.py"),
                   "--datasets", *arguments.datasets, "--models", "lstmfcn", "--cells", "8",
                   "--seeds", *map(str, arguments.seeds), "--epochs", str(arguments.epochs),
                   "--engine", engine, "--no-progress",
                   "--weights-dir", str(work / engine / "weights"),
                   "--logs-dir", str(work / engine / "logs")]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=REPOSITORY, env={**os.environ, "KERAS_BACKEND": "jax"})
        seconds[engine] = time.perf_counter() - started
        if done.returncode != 0:
            print(f"the {engine} grid failed (exit {done.returncode})", file=sys.stderr)
            return 1

    accuracy = {engine: {} for engine in ENGINES}
    for engine in ENGINES:
        for row in read_log(work / engine / "logs" / "lstmfcn_8_cells_results.csv"):
            if row["status"] in ("trained", "recovered") and int(row["seed"]) in arguments.seeds:
                accuracy[engine].setdefault(row["dataset"], []).append(float(row["test_accuracy"]))
    lines = [
        f"# Test accuracy by engine: LSTM-FCN 8 cells, {arguments.epochs} epochs, seeds "
        f"{' '.join(map(str, arguments.seeds))}, JAX backend on this machine ({os.cpu_count()} "
        "CPUs)",
        "",
        "| dataset | fit mean (sd) | xla mean (sd) | difference | within the seed spread |",
        "|---|---|---|---|---|",
    ]
    for name in arguments.datasets:
        fit, xla = accuracy["fit"].get(name, []), accuracy["xla"].get(name, [])
        if len(fit) < 2 or len(xla) < 2:
            lines.append(f"| {name} | {len(fit)} runs | {len(xla)} runs | | not enough runs |")
            continue
        spread = max(statistics.stdev(fit), statistics.stdev(xla))
        difference = statistics.mean(xla) - statistics.mean(fit)
        lines.append(
            f"| {name} | {statistics.mean(fit):.4f} ({statistics.stdev(fit):.4f}) | "
            f"{statistics.mean(xla):.4f} ({statistics.stdev(xla):.4f}) | {difference:+.4f} | "
            f"{'yes' if abs(difference) <= spread else 'NO'} |")
    lines += ["", "Wall time of this invocation's grids (finished runs skipped): "
              + ", ".join(f"{engine} {seconds[engine]:.0f} s" for engine in ENGINES) + ".",
              "", "Per-seed accuracies: " + "; ".join(
                  f"{engine} {name} " + " ".join(f"{a:.4f}" for a in values)
                  for engine in ENGINES for name, values in accuracy[engine].items())]
    write_text_atomic(arguments.out, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    run_main(main)
