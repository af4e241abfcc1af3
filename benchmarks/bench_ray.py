"""What does --executor ray buy on one machine? A 12-run grid, local against Ray.

Each variant is one invocation of ``all_datasets_training.py`` in a fresh process with fresh
``logs/`` and ``weights/`` folders, as a user runs it: ``--executor local`` trains the runs one
after another; ``--executor ray`` starts a private Ray on this machine and trains them as tasks,
``--workers`` at a time. The wall times of ``--repeats`` alternating invocations are compared by
their medians. Ray's fixed start-up cost is measured apart, in fresh processes too: starting
Ray, getting one trivial task back from each of ``--workers`` workers that import the training
stack (what every worker does before its first run), and shutting Ray down.

    python benchmarks/bench_ray.py                       # 12 runs of 20 epochs, 3 repeats
    python benchmarks/bench_ray.py --epochs 100 --repeats 5

The grid is 6 bundled datasets x 2 models x 1 cell size. Timings on a shared machine are noisy:
compare the ratios, which come from one invocation of this script.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from utils.atomic_files import write_text_atomic  # noqa: E402
from utils.cli import run_main  # noqa: E402

DATASETS = ["Chinatown", "Coffee", "ECG200", "GunPoint", "ItalyPowerDemand", "SmoothSubspace"]
MODELS = ["lstmfcn", "alstmfcn"]

# Run in a fresh process: start a private Ray, let each worker import what a run imports, stop.
START_UP = """
import json, sys, time
sys.path.insert(0, {repository!r})
started = time.perf_counter()
from utils.executors import start_local_ray
ray = start_local_ray(num_cpus={workers})
initialised = time.perf_counter()

@ray.remote(num_cpus=1)
def warm_up():
    import keras, utils.training, utils.models  # what a worker imports before its first run
    return keras.__version__

ray.get([warm_up.remote() for _ in range({workers})])
warmed = time.perf_counter()
ray.shutdown()
stopped = time.perf_counter()
print(json.dumps({{"init_s": initialised - started, "workers_ready_s": warmed - initialised,
                  "shutdown_s": stopped - warmed, "total_s": stopped - started}}))
"""


def time_grid(executor: str, epochs: int, workers: int) -> float:
    """Wall seconds of one invocation of the loop script on the 12-run grid."""
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as folder:
        command = [sys.executable, str(REPOSITORY / "all_datasets_training.py"),
                   "--datasets", *DATASETS, "--models", *MODELS, "--cells", "8",
                   "--epochs", str(epochs), "--no-progress", "--executor", executor,
                   "--weights-dir", f"{folder}/weights", "--logs-dir", f"{folder}/logs"]
        if executor == "ray":
            command += ["--cpus-per-run", str(_cpus_per_run(workers))]
        started = time.perf_counter()
        finished = subprocess.run(command, cwd=folder, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if finished.returncode != 0:
            raise RuntimeError(f"{executor} grid failed:\n{finished.stdout}\n{finished.stderr}")
        return seconds


def _cpus_per_run(workers: int) -> float:
    """CPUs per task so that this machine runs ``workers`` tasks at once."""
    return (os.cpu_count() or 1) / workers


def time_start_up(workers: int) -> dict[str, float]:
    script = START_UP.format(repository=str(REPOSITORY), workers=workers)
    finished = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              cwd=REPOSITORY)
    if finished.returncode != 0:
        raise RuntimeError(f"Ray start-up failed:\n{finished.stderr}")
    return json.loads(finished.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(REPOSITORY / "benchmarks" / "results"
                                             / "bench_ray_cpu.md"))
    arguments = parser.parse_args()

    times: dict[str, list[float]] = {"local": [], "ray": []}
    start_ups: list[dict[str, float]] = []
    for repeat in range(arguments.repeats):  # alternate, so that load changes hit both
        for executor in ("local", "ray"):
            times[executor].append(time_grid(executor, arguments.epochs, arguments.workers))
            print(f"repeat {repeat + 1}: {executor} {times[executor][-1]:.1f} s", flush=True)
        start_ups.append(time_start_up(arguments.workers))
        print(f"repeat {repeat + 1}: Ray start-up {start_ups[-1]}", flush=True)

    local, ray = (statistics.median(times[name]) for name in ("local", "ray"))
    start_up = {key: statistics.median(s[key] for s in start_ups) for key in start_ups[0]}
    runs = len(DATASETS) * len(MODELS)
    lines = [
        f"# --executor local vs ray: {runs} runs ({len(DATASETS)} bundled datasets x "
        f"{'/'.join(MODELS)} x 8 cells), {arguments.epochs} epochs, {arguments.workers} Ray "
        "workers",
        "",
        f"Medians of {arguments.repeats} alternating invocations of all_datasets_training.py "
        "(fresh process and folders each) on this machine "
        f"({os.cpu_count()} CPUs); compare the ratios, which come from one invocation.",
        "",
        "| | median wall s | all (s) |",
        "|---|---|---|",
        f"| local (one run after another) | {local:.1f} | "
        f"{', '.join(f'{t:.1f}' for t in times['local'])} |",
        f"| ray ({arguments.workers} workers) | {ray:.1f} | "
        f"{', '.join(f'{t:.1f}' for t in times['ray'])} |",
        "",
        f"local / ray = **{local / ray:.2f}x**.",
        "",
        "Ray's fixed start-up cost (medians, fresh process): "
        f"start {start_up['init_s']:.1f} s, {arguments.workers} workers ready (training stack "
        f"imported) {start_up['workers_ready_s']:.1f} s, shutdown {start_up['shutdown_s']:.1f} s;"
        f" total {start_up['total_s']:.1f} s = {start_up['total_s'] / local:.0%} of the local "
        "grid's wall time.",
        "",
        "```json",
        json.dumps({"times": times, "start_up": start_ups}, indent=1),
        "```",
    ]
    write_text_atomic(arguments.out, "\n".join(lines) + "\n")
    print("\n".join(lines[:14]))
    print("written:", arguments.out)
    return 0


if __name__ == "__main__":
    run_main(main)
