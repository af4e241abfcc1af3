"""Is loading a bottleneck? load_dataset against a bare pandas.read_csv of the same files.

The baseline only parses the two ``.tsv`` files into DataFrames; ``load_dataset`` also finds the
files, checks every cell, computes true lengths, encodes labels, z-normalises and builds the
float32 arrays. The ratio says what that work costs. Both run in this process, alternately, and
the medians of ``--repeats`` runs are compared.

    python benchmarks/bench_loading.py                     # FordA from archive/ (else the largest)
    python benchmarks/bench_loading.py --datasets FordA ElectricDevices --repeats 7

The archive folder comes from ``shared/tools/get_ucr_archive.sh archive`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from utils.cli import run_main  # noqa: E402
from utils.data import load_dataset, locate_dataset  # noqa: E402
from utils.errors import ConfigurationError, DatasetNotFoundError  # noqa: E402


def largest_tsv_dataset(data_dir: Path) -> str:
    """Name of the dataset whose ``.tsv`` files take the most bytes in ``data_dir``."""
    sizes = {
        folder.name: sum(path.stat().st_size for path in folder.glob("*.tsv"))
        for folder in data_dir.iterdir()
        if folder.is_dir()
    }
    if not sizes or max(sizes.values()) == 0:
        raise DatasetNotFoundError(f"{data_dir}: no .tsv datasets to time")
    return max(sizes, key=sizes.__getitem__)


def time_once(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def bench(name: str, data_dir: Path, repeats: int, normalize: str) -> dict[str, object]:
    location = locate_dataset(name, data_dir, file_format="tsv")
    files = (location.train, location.test)

    def baseline() -> None:
        for path in files:
            pd.read_csv(path, sep="\t", header=None)

    def ours() -> None:
        load_dataset(name, data_dir, normalize=normalize, file_format="tsv")

    baseline()
    ours()  # warm the file cache and imports before timing
    baseline_times, our_times = [], []
    for _ in range(repeats):
        baseline_times.append(time_once(baseline))
        our_times.append(time_once(ours))
    dataset = load_dataset(name, data_dir, normalize=normalize, file_format="tsv")
    baseline_median = statistics.median(baseline_times)
    our_median = statistics.median(our_times)
    return {
        "dataset": location.name,
        "megabytes": round(sum(path.stat().st_size for path in files) / 1e6, 1),
        "train_shape": list(dataset.X_train.shape),
        "test_shape": list(dataset.X_test.shape),
        "normalize": normalize,
        "repeats": repeats,
        "pandas_read_csv_median_s": round(baseline_median, 4),
        "load_dataset_median_s": round(our_median, 4),
        "ratio": round(our_median / baseline_median, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=REPOSITORY / "archive",
                        help="folder of <Name>/<Name>_TRAIN.tsv (default: archive/)")
    parser.add_argument("--datasets", nargs="+", default=None,
                        help="default: FordA if present, else the largest .tsv dataset")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs (median; >= 5)")
    parser.add_argument("--normalize", default="sample", choices=("none", "sample", "dataset"))
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    if args.repeats < 5:
        raise ConfigurationError(f"--repeats={args.repeats}: use at least 5 for a median")
    if not args.data_dir.is_dir():
        raise DatasetNotFoundError(
            f"{args.data_dir}: no archive folder; run shared/tools/get_ucr_archive.sh "
            f"{args.data_dir} FordA (or pass --data-dir)"
        )
    names = args.datasets or [
        "FordA" if (args.data_dir / "FordA").is_dir() else largest_tsv_dataset(args.data_dir)
    ]
    rows = [bench(name, args.data_dir, args.repeats, args.normalize) for name in names]
    print(f"{'dataset':<18}{'MB':>6}{'train':>16}{'pandas s':>10}{'ours s':>9}{'ratio':>7}")
    for row in rows:
        print(f"{row['dataset']:<18}{row['megabytes']:>6}{str(tuple(row['train_shape'])):>16}"
              f"{row['pandas_read_csv_median_s']:>10.3f}{row['load_dataset_median_s']:>9.3f}"
              f"{row['ratio']:>7.2f}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=args.json.parent, suffix=".tmp",
                                         delete=False) as handle:
            json.dump(rows, handle, indent=1)
        os.replace(handle.name, args.json)
    return 0


if __name__ == "__main__":
    run_main(main)
