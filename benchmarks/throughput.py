"""Training throughput of LSTM-FCN (8 cells): the fit engine, the xla engine (K=1 and K packed
seeds), a plain ``model.fit`` and tsai's ``LSTM_FCN`` in a plain PyTorch loop, on the same arrays.

Every row runs in its own worker process (a Keras backend is fixed per process), one after the
other, so the ratios of one invocation are comparable. Each worker also measures a float32 GEMM
peak, and the FLOP bound of an epoch (from the layer shapes: conv, LSTM and dense multiply-adds,
backward pass counted as twice the forward) gives the efficiency column.

    python benchmarks/throughput.py                                  # the bundled sets
    python benchmarks/throughput.py --datasets FordA --data-dir /work/ucr --epochs 6

tsai and torch come from requirements-bench.txt (benchmark only); without them that row is
skipped. Columns: s/epoch median and min over the timed epochs (after warm-up, compilation not
included; for a pack: the pack's epoch divided by K, i.e. per run), training samples/s per run,
peak RSS of the worker, efficiency = FLOP-bound time / measured time.
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
# ----------------------------------------------------------------------------- settings
DATASETS = ["ItalyPowerDemand", "Chinatown", "GunPoint"]
KINDS = ["fit", "xla", "xla-pack", "keras-fit", "tsai"]
EPOCHS = 8  # timed epochs per row (>= 5)
WARMUP = 2  # epochs (or chunks) before timing
PACK = 8
BATCH_SIZE = 128
CELLS = 8
# -----------------------------------------------------------------------------


def epoch_flops(n_cases: int, length: int, n_channels: int, n_classes: int,
                cells: int = CELLS) -> float:
    """Multiply-adds x 2 of one training epoch of LSTM-FCN (forward + 2x backward)."""
    convs = [(n_channels, 128, 8), (128, 256, 5), (256, 128, 3)]
    forward = sum(2 * length * k * c_in * c_out for c_in, c_out, k in convs)
    # dimension shuffle: the LSTM reads C steps of T features
    forward += n_channels * 2 * 4 * cells * (length + cells)
    forward += 2 * (cells + 128) * n_classes
    return 3.0 * forward * n_cases


def gemm_peak(backend: str) -> float:
    """Float32 FLOP/s of a 1024^3 matrix product on this machine now (best of 5)."""
    import numpy as np

    n = 1024
    a = np.random.default_rng(0).normal(size=(n, n)).astype(np.float32)
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        dot = jax.jit(jnp.dot)
        aj = jnp.asarray(a)
        dot(aj, aj).block_until_ready()

        def product():
            dot(aj, aj).block_until_ready()
    else:
        def product():
            a @ a
    times = []
    for _ in range(5):
        started = time.perf_counter()
        product()
        times.append(time.perf_counter() - started)
    return 2 * n**3 / min(times)


def _load(name: str, data_dir: str | None):
    sys.path.insert(0, str(ROOT))
    from utils.data import load_dataset

    return load_dataset(name, data_dir=data_dir, normalize="sample")


def worker(kind: str, name: str, data_dir: str | None, epochs: int, warmup: int,
           pack: int) -> dict:
    """Inside the worker: train and return the per-epoch times of one row."""
    import resource

    data = _load(name, data_dir)
    n, channels, length = data.X_train.shape
    times: list[float] = []
    runs = 1
    compile_seconds = 0.0
    if kind == "tsai":
        times = _tsai_epochs(data, epochs + warmup)[warmup:]
        backend = "torch"
    else:
        import keras

        from utils.models import build_model
        from utils.training import compile_model, set_seed, train_model

        backend = keras.backend.backend()

        def model_for(seed: int):
            set_seed(seed)
            return build_model("lstmfcn", length, data.n_classes, num_cells=CELLS,
                               n_channels=channels)

        starts: list[float] = []

        class EpochTimer(keras.callbacks.Callback):
            """Epoch periods, begin to next begin: every callback's and fit's own per-epoch
            work is inside, as it is inside the xla engine's chunk times."""

            def on_epoch_begin(self, epoch, logs=None):
                starts.append(time.perf_counter())

            def on_train_end(self, logs=None):
                starts.append(time.perf_counter())
                times.extend(b - a for a, b in zip(starts, starts[1:], strict=False))

        if kind == "fit":
            train_model(model_for(0), data, epochs + warmup, BATCH_SIZE, engine="fit",
                        callbacks=[EpochTimer()], recalibrate_batchnorm_stats=False)
            times = times[warmup:]
        elif kind == "keras-fit":  # the network alone: no protocol callbacks
            model = compile_model(model_for(0))
            model.fit(data.X_train, data.y_train, batch_size=BATCH_SIZE, epochs=epochs + warmup,
                      callbacks=[EpochTimer()], verbose=0)
            times = times[warmup:]
        else:
            import jax

            import utils.engine_xla as engine
            from utils.training import train_packed

            runs = pack if kind == "xla-pack" else 1
            chunk_times: list[tuple[int, float]] = []
            run_chunk = engine.PackedProgram.run_chunk

            def timed(self, *arguments):  # measurement only; the last argument is the count
                started = time.perf_counter()
                out = jax.block_until_ready(run_chunk(self, *arguments))
                chunk_times.append((arguments[-1], time.perf_counter() - started))
                return out

            engine.PackedProgram.run_chunk = timed
            per_chunk = 1 if n > 1000 else 10
            results = train_packed([model_for(s) for s in range(runs)], data, list(range(runs)),
                                   per_chunk * (epochs + warmup), BATCH_SIZE, engine="xla",
                                   chunk_epochs=per_chunk, recalibrate_batchnorm_stats=False)
            compile_seconds = results[0].compile_seconds
            times = [seconds / count / runs for count, seconds in chunk_times[warmup:]]
    peak = gemm_peak("jax" if backend == "jax" else "numpy")
    median = statistics.median(times)
    flops = epoch_flops(n, length, channels, data.n_classes)
    return {
        "kind": kind, "dataset": name, "backend": backend, "runs": runs,
        "median": median, "min": min(times), "timed": len(times),
        "samples_per_s": n / median, "peak_rss_mib":
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "gemm_gflops": peak / 1e9, "efficiency": flops / peak / median,
        "compile_seconds": compile_seconds,
    }


def _tsai_epochs(data, epochs: int) -> list[float]:
    """tsai's LSTM_FCN (same settings: 8 cells, 128-256-128 filters, 8/5/3 kernels, dropout 0.8,
    the dimension shuffle) with Adam(1e-3) and cross-entropy in a plain PyTorch loop."""
    import torch
    from tsai.models.RNN_FCN import LSTM_FCN

    torch.manual_seed(0)
    x = torch.tensor(data.X_train)
    y = torch.tensor(data.y_train, dtype=torch.long)
    model = LSTM_FCN(x.shape[1], data.n_classes, x.shape[2], hidden_size=CELLS,
                     rnn_layers=1, shuffle=True, rnn_dropout=0.8, fc_dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = torch.nn.CrossEntropyLoss()
    times = []
    for _ in range(epochs):
        started = time.perf_counter()
        model.train()
        for index in torch.randperm(len(x)).split(BATCH_SIZE):
            optimizer.zero_grad()
            loss = loss_fn(model(x[index]), y[index])
            loss.backward()
            optimizer.step()
        times.append(time.perf_counter() - started)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=DATASETS)
    parser.add_argument("--kinds", nargs="+", default=KINDS, choices=KINDS)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--warmup", type=int, default=WARMUP)
    parser.add_argument("--pack", type=int, default=PACK)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "throughput_cpu.md"),
                        help="markdown table of this invocation (written atomically)")
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "DATASET"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.epochs < 5:
        parser.error("--epochs must be >= 5 (medians of at least five epochs)")
    if arguments.worker:
        kind, name = arguments.worker
        print(json.dumps(worker(kind, name, arguments.data_dir, arguments.epochs,
                                arguments.warmup, arguments.pack)))
        return 0

    rows = []
    for name in arguments.datasets:
        for kind in arguments.kinds:
            backend = {"fit": "jax", "xla": "jax", "xla-pack": "jax",
                       "keras-fit": "tensorflow", "tsai": "jax"}[kind]
            command = [sys.executable, __file__, "--worker", kind, name, "--epochs",
                       str(arguments.epochs), "--warmup", str(arguments.warmup), "--pack",
                       str(arguments.pack)]
            if arguments.data_dir:
                command += ["--data-dir", arguments.data_dir]
            done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                                  env={**os.environ, "KERAS_BACKEND": backend})
            if done.returncode != 0:
                reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "?"
                print(f"{name} {kind}: skipped ({reason})", file=sys.stderr)
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{name:18s} {kind:9s} {row['backend']:10s} K={row['runs']:<2d} "
                  f"s/epoch {row['median']:.4f} (min {row['min']:.4f}) "
                  f"{row['samples_per_s']:9.0f} samples/s  RSS {row['peak_rss_mib']:6.0f} MiB  "
                  f"eff {row['efficiency']:.0%} of {row['gemm_gflops']:.0f} GFLOP/s"
                  + (f"  compile {row['compile_seconds']:.1f} s" if row["compile_seconds"]
                     else ""), flush=True)
    lines = [
        f"# Training throughput, LSTM-FCN 8 cells ({time.strftime('%Y-%m-%d')}, "
        f"{os.cpu_count()} CPUs)", "",
        "Command: `python benchmarks/throughput.py " + " ".join(sys.argv[1:]) + "`", "",
        "| dataset | row | backend | K | s/epoch per run, median (min) | samples/s | peak RSS MiB "
        "| FLOP-bound efficiency (GEMM peak) | compile s | ratio to fit |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        base = next((r for r in rows if r["dataset"] == row["dataset"] and r["kind"] == "fit"),
                    None)
        ratio = f"{row['median'] / base['median']:.2f}" if base else ""
        lines.append(
            f"| {row['dataset']} | {row['kind']} | {row['backend']} | {row['runs']} | "
            f"{row['median']:.4f} ({row['min']:.4f}) | {row['samples_per_s']:.0f} | "
            f"{row['peak_rss_mib']:.0f} | {row['efficiency']:.0%} ({row['gemm_gflops']:.0f} "
            f"GFLOP/s) | {row['compile_seconds']:.1f} | {ratio} |")
    print()
    print("\n".join(lines))
    sys.path.insert(0, str(ROOT))
    from utils.atomic_files import write_text_atomic

    write_text_atomic(arguments.out, "\n".join(lines) + "\n")
    print("written:", arguments.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
