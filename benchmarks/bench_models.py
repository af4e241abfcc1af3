"""Size and inference speed of every model in the zoo (``utils.models.MODEL_BUILDERS``).

For each model: the parameter count for GunPoint (T=150, 2 classes) with 8 cells, and the time
of one forward pass (inference mode, compiled: ``predict_on_batch``) on a batch of 128
FordA-sized series (T=500, 1 channel, 2 classes, 8 cells), the median of ``--repeats`` calls
after ``--warmup`` untimed ones; the calls alternate between the models round by round. The
ratio column divides by the plain FCN measured in the same process. The backend is the one Keras
is set to, so compare backends with e.g.

    python benchmarks/bench_models.py
    KERAS_BACKEND=jax python benchmarks/bench_models.py
    python benchmarks/bench_models.py --models lstmfcn alstmfcn --repeats 20 --out table.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BASELINE = "fcn"


def measure(names, batch_size: int, length: int, cells: int, warmup: int, repeats: int) -> list:
    """One row per model: name, GunPoint parameters, median and min forward ms.

    The timed calls go round-robin over the models (one call of each per round), so a burst of
    load from elsewhere on the machine slows every model alike instead of one of them.
    """
    import numpy as np

    from utils.constants import resolve_dataset
    from utils.models import build_model

    gun_point = resolve_dataset("GunPoint")
    batch = np.random.default_rng(0).normal(size=(batch_size, 1, length)).astype("float32")
    models = {name: build_model(name, length, 2, cells) for name in names}
    for name, model in models.items():
        for _ in range(warmup):  # compilation and first-call allocations
            model.predict_on_batch(batch)
        print(f"  compiled {name}", file=sys.stderr, flush=True)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(repeats):
        for name, model in models.items():
            started = time.perf_counter()
            model.predict_on_batch(batch)
            seconds[name].append(time.perf_counter() - started)
    rows = []
    for name in names:
        parameters = build_model(
            name, gun_point.length, gun_point.n_classes, cells, gun_point.n_channels
        ).count_params()
        timings = seconds[name]
        rows.append((name, parameters, 1e3 * statistics.median(timings), 1e3 * min(timings)))
    return rows


def markdown_table(rows: list, batch_size: int, length: int, cells: int) -> str:
    baseline = {name: median for name, _, median, _ in rows}.get(BASELINE)
    lines = [
        f"| model | parameters (GunPoint, m={cells}) | forward ms, median "
        f"(batch {batch_size}, T={length}) | min ms | vs {BASELINE} |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, parameters, median, fastest in rows:
        ratio = f"{median / baseline:.2f}x" if baseline else "n/a"
        lines.append(f"| {name} | {parameters:,} | {median:.1f} | {fastest:.1f} | {ratio} |")
    return "\n".join(lines)


def main() -> int:
    from utils.models import MODEL_BUILDERS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODEL_BUILDERS), metavar="NAME")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--length", type=int, default=500, help="time steps (FordA: 500)")
    parser.add_argument("--cells", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls (compilation)")
    parser.add_argument("--repeats", type=int, default=9, help="timed calls (median reported)")
    parser.add_argument("--out", type=Path, help="also write the markdown table to this file")
    args = parser.parse_args()
    from utils.errors import ConfigurationError

    unknown = sorted(set(args.models) - set(MODEL_BUILDERS))
    if unknown:
        raise ConfigurationError(
            f"--models: unknown {', '.join(unknown)}; valid: {', '.join(MODEL_BUILDERS)}"
        )
    if args.repeats < 5:
        raise ConfigurationError(f"--repeats must be >= 5 for a stable median, got {args.repeats}")
    import keras

    names = sorted(args.models, key=lambda name: name != BASELINE)  # baseline first
    rows = measure(names, args.batch_size, args.length, args.cells, args.warmup, args.repeats)
    header = (
        f"Keras {keras.__version__}, backend {keras.backend.backend()}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible"
    )
    table = markdown_table(rows, args.batch_size, args.length, args.cells)
    print(f"{header}\n\n{table}")
    if args.out:
        # never a half-written file: write next to the target, then rename
        with tempfile.NamedTemporaryFile(
            "w", dir=args.out.parent, delete=False, suffix=".tmp"
        ) as handle:
            handle.write(f"{header}\n\n{table}\n")
        os.replace(handle.name, args.out)
    return 0


if __name__ == "__main__":
    from utils.cli import run_main

    run_main(main)
