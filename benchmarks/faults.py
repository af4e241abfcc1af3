"""Fault campaign: kill a training grid at random moments, restart it, and count what was lost.

The grid (small bundled datasets, few epochs) runs once without interruption as the reference.
Then the same grid runs in a fresh folder under ``all_datasets_training.py`` exactly as a user
starts it, and is SIGKILLed at ``KILLS`` random moments, restarted after each kill, and finally
left to finish. Afterwards every (dataset, model, cells, seed, protocol) row must be in the logs
exactly once, every weights file must load, and every accuracy must equal the reference run's
(resumes are exact, see ``utils.resume``). The printout:

    kills, restarts, rows expected / present / duplicated / lost, weights that load,
    weights bit-identical to the reference, accuracy mismatches, leftover temporary files

Run it niced on a shared machine, e.g. ``nice -n 10 python benchmarks/faults.py``. The fast
case of ``tests/test_faults.py`` calls :func:`run_campaign` with three kills.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.atomic_files import PARTIAL_MARKER  # noqa: E402  (after the path is set)

# ----------------------------------------------------------------------------- settings
DATASETS = ["Chinatown", "ItalyPowerDemand"]
MODELS = ["lstmfcn", "fcn"]
CELLS = [8]
SEEDS = [0, 1]
EPOCHS = 10
BATCH_SIZE = 16
KILLS = 20
CAMPAIGN_SEED = 0  # draws the kill moments
# -----------------------------------------------------------------------------

RUN_KEY = ("dataset", "model", "cells", "seed", "protocol")


@dataclass
class CampaignReport:
    """What the campaign counted (see the module docstring)."""

    kills: int = 0
    restarts: int = 0
    rows_expected: int = 0
    rows_present: int = 0
    rows_duplicated: int = 0
    rows_lost: int = 0
    rows_failed: int = 0
    weights_loading: int = 0
    weights_identical: int = 0
    accuracy_mismatches: int = 0
    leftover_files: list[str] = field(default_factory=list)
    kill_moments: list[float] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"kills: {self.kills}  restarts: {self.restarts}",
            f"kill moments (s after each start): "
            f"{', '.join(f'{t:.1f}' for t in self.kill_moments)}",
            f"rows expected: {self.rows_expected}  present: {self.rows_present}  "
            f"duplicated: {self.rows_duplicated}  lost: {self.rows_lost}  "
            f"failed: {self.rows_failed}",
            f"weights that load: {self.weights_loading} of {self.rows_expected}  "
            f"bit-identical to the uninterrupted run: {self.weights_identical}",
            f"accuracy mismatches: {self.accuracy_mismatches}",
            f"leftover temporary or snapshot files: {len(self.leftover_files)}",
        ]


def grid_command(folder: Path, datasets: list[str], models: list[str], cells: list[int],
                 seeds: list[int], epochs: int, batch_size: int) -> list[str]:
    """The loop script's command line for the campaign grid, writing under ``folder``."""
    return [
        sys.executable, str(ROOT / "all_datasets_training.py"),
        "--datasets", *datasets, "--models", *models, "--cells", *map(str, cells),
        "--seeds", *map(str, seeds), "--epochs", str(epochs), "--batch-size", str(batch_size),
        "--weights-dir", str(folder / "weights"), "--logs-dir", str(folder / "logs"),
        "--snapshot-minutes", "0", "--no-progress",
    ]


def _start(command: list[str], folder: Path) -> subprocess.Popen:
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _finish(command: list[str], folder: Path, timeout: float) -> float:
    """Run ``command`` to its end; returns its duration. A failing grid is an error here."""
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return time.monotonic() - started


def _rows(logs: Path) -> list[dict[str, str]]:
    rows = []
    for path in sorted(logs.glob("*_cells_results.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            rows += list(csv.DictReader(handle))
    return rows


def _weights(path: Path):
    from utils.checkpoints import load_trained_model

    model, _ = load_trained_model(path)
    return model.get_weights()


def check_outputs(folder: Path, reference: Path, expected: set[tuple[str, ...]],
                  report: CampaignReport) -> None:
    """Count rows, loadable and identical weights, accuracy mismatches and leftovers."""
    import numpy as np

    rows = _rows(folder / "logs")
    reference_rows = {tuple(r[c] for c in RUN_KEY): r for r in _rows(reference / "logs")}
    keys = [tuple(r[c] for c in RUN_KEY) for r in rows]
    report.rows_expected = len(expected)
    report.rows_present = len(set(keys) & expected)
    report.rows_duplicated = len(keys) - len(set(keys))
    report.rows_lost = len(expected - set(keys))
    report.rows_failed = sum(1 for r in rows if r["error"])
    for row in rows:
        weights_file = folder / "weights" / row["weights_file"]
        try:
            weights = _weights(weights_file)
        except Exception as error:  # counted as not loading, and said why
            print(f"{weights_file}: does not load ({type(error).__name__}: {error})")
            continue
        report.weights_loading += 1
        key = tuple(row[c] for c in RUN_KEY)
        expected_row = reference_rows.get(key)
        if expected_row is None or row["test_accuracy"] != expected_row["test_accuracy"]:
            report.accuracy_mismatches += 1
            print(f"{key}: accuracy {row['test_accuracy']} where the uninterrupted run has "
                  f"{None if expected_row is None else expected_row['test_accuracy']}")
        if expected_row is not None:
            reference_weights = _weights(reference / "weights" / expected_row["weights_file"])
            report.weights_identical += all(
                np.array_equal(a, b) for a, b in zip(weights, reference_weights, strict=True))
    report.leftover_files = sorted(
        str(path.relative_to(folder)) for outputs in ("weights", "logs")
        for path in (folder / outputs).rglob(".*")
    )


def _outputs(folder: Path) -> set[tuple[str, int]]:
    """Names and modification times of the finished files under ``folder`` (a grid's outputs:
    snapshots, weights, rows; not folders, write checks or files still being written)."""
    found = set()
    for path in folder.rglob("*"):
        if PARTIAL_MARKER in path.name or path.name.endswith(".lock"):
            continue
        try:
            if path.is_file():
                found.add((str(path), path.stat().st_mtime_ns))
        except FileNotFoundError:  # renamed or removed while listing
            continue
    return found


def _first_output(process: subprocess.Popen, folder: Path, timeout: float) -> bool:
    """Wait until the running grid changes a file under ``folder``; False if it exits first."""
    before = _outputs(folder)
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if _outputs(folder) != before:
            return True
        time.sleep(0.05)
    return process.poll() is None


def run_campaign(folder: Path, kills: int = KILLS, datasets: list[str] | None = None,
                 models: list[str] | None = None, cells: list[int] | None = None,
                 seeds: list[int] | None = None, epochs: int = EPOCHS,
                 batch_size: int = BATCH_SIZE, campaign_seed: int = CAMPAIGN_SEED,
                 timeout: float = 3600.0, reference: Path | None = None) -> CampaignReport:
    """Reference run, then ``kills`` SIGKILLs at random moments with a restart after each.

    One kill in five lands at a uniform moment of the start-up (imports, loading the data,
    reading the logs); the others a uniform delay after the restarted grid first writes
    something, up to the time of one kill's share of the grid's work, so that they land in
    training, in snapshots, in saving weights and in writing rows while the grid still
    progresses between kills. Should the grid end before a kill, the campaign stops short
    (``kills`` then says how many happened).

    ``reference`` may name a folder where the same grid already ran uninterrupted (default:
    ``folder/reference``, run here).
    """
    datasets, models = datasets or DATASETS, models or MODELS
    cells, seeds = cells or CELLS, seeds or SEEDS
    reference, attacked = reference or folder / "reference", folder / "attacked"
    reference_command = grid_command(reference, datasets, models, cells, seeds, epochs,
                                     batch_size)
    ready = bool(_rows(reference / "logs")) if (reference / "logs").is_dir() else False
    startup_seconds = _finish(reference_command, reference, timeout)
    if not ready:  # that was the reference run; a second one only skips
        startup_seconds = _finish(reference_command, reference, timeout)
    work_seconds = max(sum(float(row["train_seconds"] or 0) for row in
                           _rows(reference / "logs")), 1.0)
    command = grid_command(attacked, datasets, models, cells, seeds, epochs, batch_size)

    from utils.experiments import expand_datasets

    expected = {(dataset, model, str(c), str(seed), "train-loss")
                for dataset in expand_datasets(datasets) for model in models for c in cells
                for seed in seeds}
    draw = random.Random(campaign_seed)
    report = CampaignReport()
    starts = 0
    deadline = time.monotonic() + timeout
    while report.kills < kills and time.monotonic() < deadline:
        during_startup = draw.random() < 0.2
        delay = draw.uniform(0.2, startup_seconds if during_startup
                             else work_seconds / max(kills, 1))
        process = _start(command, attacked)
        started = time.monotonic()
        starts += 1
        if not during_startup and not _first_output(process, attacked, timeout):
            if process.wait() != 0:
                raise RuntimeError(f"the grid exited {process.returncode} before being killed")
            break  # the grid finished before this kill
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            report.kills += 1
            report.kill_moments.append(time.monotonic() - started)
            continue
        if process.returncode != 0:
            raise RuntimeError(f"the grid exited {process.returncode} before being killed")
        break  # the grid finished before this kill
    else:
        _finish(command, attacked, timeout)  # the last restart, left to finish
        starts += 1
    report.restarts = starts - 1
    check_outputs(attacked, reference, expected, report)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, default=ROOT / "benchmarks" / "faults_work",
                        help="where the two grids write (created; must not hold old results)")
    parser.add_argument("--kills", type=int, default=KILLS)
    parser.add_argument("--datasets", nargs="+", default=DATASETS)
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--cells", nargs="+", type=int, default=CELLS)
    parser.add_argument("--seeds", nargs="+", type=int, default=SEEDS)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--campaign-seed", type=int, default=CAMPAIGN_SEED)
    parser.add_argument("--reference", type=Path, default=None,
                        help="a folder where the same grid already ran uninterrupted")
    arguments = parser.parse_args(argv)
    if arguments.folder.exists() and any(arguments.folder.iterdir()):
        print(f"error: {arguments.folder} is not empty; remove it or pass another --folder",
              file=sys.stderr)
        return 2
    report = run_campaign(arguments.folder, arguments.kills, arguments.datasets,
                          arguments.models, arguments.cells, arguments.seeds, arguments.epochs,
                          arguments.batch_size, arguments.campaign_seed,
                          reference=arguments.reference)
    print("\n".join(report.lines()))
    clean = (report.kills == arguments.kills and report.rows_lost == 0
             and report.rows_duplicated == 0 and report.accuracy_mismatches == 0
             and report.rows_failed == 0 and report.weights_loading == report.rows_expected
             and not report.leftover_files)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
