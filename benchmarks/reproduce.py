"""The reproduction study: LSTM-FCN, ALSTM-FCN and FCN at the papers' settings, over seeds.

Every run is trained by the loop script (``all_datasets_training.py``, driven through its command
line), then written as a tsml-eval results file under ``Results/ours/`` (see
``utils/results_files.py``); the audit report (``utils/reproduction.py``) is built from those
files alone. The study is

* resumable: a run whose results file exists is never trained again, and a run killed mid-way
  continues from the loop script's snapshot;
* shardable: ``--shard i/n`` takes every n-th (dataset, model, cells) unit, so slices started in
  different sessions or on different machines add up in one results folder;
* as fast as the loop script allows: ``--engine`` and ``--pack`` are passed on when the loop
  script has them (its ``--help`` is asked), with the JAX backend unless ``KERAS_BACKEND`` says
  otherwise.

Re-running a finished study trains nothing and rewrites the same report, byte for byte.

    python benchmarks/reproduce.py --plan                  # what would run, what is done
    python benchmarks/reproduce.py                         # run (or continue) the main study
    python benchmarks/reproduce.py --shard 2/4 --max-minutes 50
    python benchmarks/reproduce.py --study deviations      # BatchNorm recalibration, normalisation
    python benchmarks/reproduce.py --adopt ../study/logs   # import finished loop-script rows
    python benchmarks/reproduce.py --adopt ../study/logs --datasets CBF   # ... of CBF only
    python benchmarks/reproduce.py --report-only           # rebuild the report from Results/ours
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# ----------------------------------------------------------------------------- settings
# 8 small datasets of the original 85 that a 2-core CPU can finish first; the GPU list adds 22
# more small ones (30 in all, each in the authors' training-loss table).
DATASETS = ["ItalyPowerDemand", "SonyAIBORobotSurface1", "MoteStrain", "SonyAIBORobotSurface2",
            "TwoLeadECG", "ECGFiveDays", "CBF", "DiatomSizeReduction"]
GPU_DATASETS = DATASETS + [
    "Coffee", "ECG200", "GunPoint", "BeetleFly", "BirdChicken", "FaceFour", "Wine", "Beef",
    "OliveOil", "ArrowHead", "Lightning2", "Lightning7", "ToeSegmentation1", "ToeSegmentation2",
    "Trace", "Plane", "Meat", "Ham", "Herring", "SyntheticControl", "ECG5000", "Symbols",
]
# (model, cell counts): FCN has no recurrent layer; the loop logs it as 8 cells.
MODELS = [("fcn", [8]), ("lstmfcn", [8, 64, 128]), ("alstmfcn", [8, 64, 128])]
SEEDS = [0, 1, 2, 3, 4]
EPOCHS, BATCH_SIZE, LEARNING_RATE = 2000, 128, 1e-3  # the papers' settings
PROTOCOL = "train-loss"
# The deviation study: the project's deliberate departures from the 2017 code, switched off one
# at a time on LSTM-FCN (8 cells); the "paper" runs of the main study are the baseline. The five
# cheapest of the main list, so that the baseline is among the first runs the main study finishes.
DEVIATION_DATASETS = DATASETS[:5]
DEVIATION_SEEDS = [0, 1, 2]
DEVIATION_MODELS = [("lstmfcn", [8])]
RESULTS_DIR = ROOT / "Results" / "ours"
WORK_DIR = ROOT / "logs" / "reproduce"  # the loop script's logs and weights (git-ignored)
# -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One loop-script call: datasets x models x cells x seeds that still need training."""

    variant: str
    dataset: str
    models: tuple[str, ...]
    cells: tuple[int, ...]
    seeds: tuple[int, ...]

    @property
    def label(self) -> str:
        from utils.reproduction import classifier_name

        names = [classifier_name(m, c, self.variant) for m in self.models for c in self.cells]
        return f"{' '.join(names)} on {self.dataset}, seeds {' '.join(map(str, self.seeds))}"


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", choices=["main", "deviations"], default="main",
                        help="main: the paper-settings grid; deviations: the deviation study")
    parser.add_argument("--datasets", nargs="+", default=None,
                        help=f"default: {' '.join(DATASETS)} (main); 'gpu' for the 30-dataset "
                        "list of the GPU script")
    parser.add_argument("--models", nargs="+", default=None,
                        help="subset of fcn lstmfcn alstmfcn (default: all of the study's)")
    parser.add_argument("--cells", nargs="+", type=int, default=None,
                        help="subset of the recurrent models' cell counts")
    parser.add_argument("--seeds", nargs="+", type=int, default=None,
                        help=f"default: {SEEDS} (main), {DEVIATION_SEEDS} (deviations)")
    parser.add_argument("--resamples", action="store_true",
                        help="treat --seeds as aeon stratified resamples of train+test (0 = "
                        "published split, seed = resample id), written under resamples/")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--shard", default="1/1", help="i/n: run every n-th unit, from the i-th")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="start no loop call after this; stop a running one at it (it "
                        "resumes from its snapshot next time)")
    parser.add_argument("--engine", default=None,
                        help="passed on to the loop script when it has --engine")
    parser.add_argument("--pack", type=int, default=None,
                        help="passed on to the loop script when it has --pack")
    parser.add_argument("--data-dir", default=None, help="UCR archive folder (default: Data/)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR,
                        help="the loop script's logs and weights")
    parser.add_argument("--adopt", type=Path, nargs="+", default=None, metavar="LOGS_DIR",
                        help="import the finished rows of these loop-script logs folders (with "
                        "their predictions/) into the results folder, then report; with "
                        "--datasets, only the rows of those datasets")
    parser.add_argument("--plan", action="store_true", help="list the units and stop")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing; rebuild the report from the results folder")
    parser.add_argument("--no-report", action="store_true")
    parser.add_argument("--snapshot-minutes", type=float, default=2.0)
    arguments = parser.parse_args(argv)
    try:
        index, count = (int(part) for part in arguments.shard.split("/"))
    except ValueError:
        parser.error(f"--shard {arguments.shard!r}: expected i/n, e.g. 2/4")
    if not 1 <= index <= count:
        parser.error(f"--shard {arguments.shard}: i must be in 1..n")
    arguments.shard_index, arguments.shard_count = index, count
    if arguments.adopt and arguments.resamples:
        parser.error("--adopt imports runs on the published split only; drop --resamples")
    # --adopt takes every dataset in the logs unless --datasets names some
    arguments.adopt_datasets = (GPU_DATASETS if arguments.datasets == ["gpu"]
                                else arguments.datasets)
    return arguments


# ----------------------------------------------------------------------------- the plan


def planned_runs(arguments: argparse.Namespace) -> list[tuple[str, str, str, int, int]]:
    """(variant, dataset, model, cells, seed) of the study, in a fixed order."""
    deviations = arguments.study == "deviations"
    datasets = arguments.datasets or (DEVIATION_DATASETS if deviations else DATASETS)
    if datasets == ["gpu"]:
        datasets = GPU_DATASETS
    seeds = arguments.seeds or (DEVIATION_SEEDS if deviations else SEEDS)
    models = DEVIATION_MODELS if deviations else MODELS
    # the deviation study's baseline is the main study's run with the same seed ("paper"): a
    # results file both share, trained once
    variants = ["paper", "no-bn-recalibration", "no-normalization"] if deviations else ["paper"]
    runs = []
    for variant in variants:
        for dataset in datasets:
            for model, cells_list in models:
                if arguments.models and model not in arguments.models:
                    continue
                for cells in cells_list:
                    if arguments.cells and model != "fcn" and cells not in arguments.cells:
                        continue
                    runs += [(variant, dataset, model, cells, seed) for seed in seeds]
    return runs


def kind_of(arguments: argparse.Namespace) -> str:
    return "resamples" if arguments.resamples else "seeds"


def check_epochs(path: Path, epochs: int) -> None:
    """Refuse to count a results file made with another epoch count (a smoke test, say) as a run
    of this study."""
    import json

    from utils.errors import ConfigurationError

    with path.open(encoding="utf-8") as handle:
        handle.readline()
        logged = json.loads(handle.readline()).get("epochs")
    if logged != epochs:
        raise ConfigurationError(f"{path} holds a run of {logged} epochs, not --epochs {epochs}; "
                                 "use another --results-dir")


def pending_calls(arguments: argparse.Namespace) -> tuple[list[Call], int, int]:
    """This shard's loop calls for the runs without a results file; also the numbers of planned
    and finished runs (over all shards).

    The shard unit is a (variant, dataset, model, cells): shard i/n takes every n-th one. Its
    units are then merged into as few calls as the loop script's grid allows (models with the
    same cell counts and missing seeds share one call, which lets the engine pack them).
    """
    from utils.reproduction import classifier_name
    from utils.results_files import results_file_path

    by_unit: dict[tuple[str, str, str, int], list[int]] = {}
    done = 0
    runs = planned_runs(arguments)
    for variant, dataset, model, cells, seed in runs:
        key = (variant, dataset, model, cells)
        by_unit.setdefault(key, [])
        path = results_file_path(arguments.results_dir, kind_of(arguments),
                                 classifier_name(model, cells, variant), dataset, seed)
        if path.exists():
            check_epochs(path, arguments.epochs)
            done += 1
        else:
            by_unit[key].append(seed)
    mine = [(key, tuple(seeds)) for position, (key, seeds) in enumerate(by_unit.items())
            if position % arguments.shard_count == arguments.shard_index - 1 and seeds]
    # per (variant, dataset, model, seeds): the cell counts; then models with equal cells merge
    cells_of: dict[tuple[str, str, str, tuple[int, ...]], list[int]] = {}
    for (variant, dataset, model, cells), seeds in mine:
        cells_of.setdefault((variant, dataset, model, seeds), []).append(cells)
    merged: dict[tuple[str, str, tuple[int, ...], tuple[int, ...]], list[str]] = {}
    for (variant, dataset, model, seeds), cells in cells_of.items():
        merged.setdefault((variant, dataset, tuple(cells), seeds), []).append(model)
    calls = [Call(variant, dataset, tuple(models), cells, seeds)
             for (variant, dataset, cells, seeds), models in merged.items()]
    return calls, len(runs), done


# ----------------------------------------------------------------------------- the loop script


def loop_script_options() -> set[str]:
    """The flags the loop script's ``--help`` lists (so that newer ones are used when there)."""
    help_text = subprocess.run([sys.executable, str(ROOT / "all_datasets_training.py"), "--help"],
                               capture_output=True, text=True, cwd=ROOT, check=True).stdout
    return {word.strip("[],") for word in help_text.split() if word.startswith("--")}


def loop_command(call: Call, arguments: argparse.Namespace, options: set[str],
                 data_dir: str | None, logs_dir: Path, weights_dir: Path) -> list[str]:
    """The loop-script command line that trains ``call``."""
    from utils.reproduction import VARIANTS

    normalize, recalibrate, _ = VARIANTS[call.variant]
    command = [
        sys.executable, str(ROOT / "all_datasets_training.py"),
        "--datasets", call.dataset, "--models", *call.models, "--cells", *map(str, call.cells),
        "--seeds", *map(str, call.seeds), "--epochs", str(arguments.epochs),
        "--batch-size", str(BATCH_SIZE), "--learning-rate", str(LEARNING_RATE),
        "--protocol", PROTOCOL, "--normalize", normalize, "--class-weight", "none",
        "--logs-dir", str(logs_dir), "--weights-dir", str(weights_dir),
        "--save-predictions", "--no-progress",
        "--snapshot-minutes", str(arguments.snapshot_minutes),
    ]
    if data_dir:
        command += ["--data-dir", data_dir]
    if not recalibrate:
        if "--no-recalibrate-batchnorm" not in options:
            from utils.errors import ConfigurationError

            raise ConfigurationError("the loop script has no --no-recalibrate-batchnorm; the "
                                     "deviation study needs it")
        command.append("--no-recalibrate-batchnorm")
    for flag, value in (("--engine", arguments.engine), ("--pack", arguments.pack)):
        if value is None:
            continue
        if flag in options:
            command += [flag, str(value)]
        else:
            print(f"note: the loop script has no {flag}; running its default", flush=True)
    return command


def work_dirs(arguments: argparse.Namespace, variant: str, index: int | None) -> tuple[Path, Path]:
    """Logs and weights folders of one variant (and one resample): kept apart so that the loop
    script's own records of different settings never meet."""
    base = arguments.work_dir / variant
    if arguments.resamples:
        base = base / f"resample{index}"
    return base / "logs", base / "weights"


def run_call(call: Call, arguments: argparse.Namespace, options: set[str],
             deadline: float | None) -> int:
    """Train ``call`` with the loop script and adopt what it finished; returns its exit code."""
    from utils.reproduction import adopt_logs, write_resampled_dataset

    # resamples: one call per resample id, each on its own data and logs folders
    parts = [(None, call.seeds)] if not arguments.resamples else [(s, (s,)) for s in call.seeds]
    code = 0
    for resample, seeds in parts:
        data_dir = arguments.data_dir
        if resample:  # resample 0 is the published split itself
            data_dir = str(write_resampled_dataset(call.dataset, arguments.data_dir, resample,
                                                   arguments.work_dir / "resampled"))
        logs_dir, weights_dir = work_dirs(arguments, call.variant, resample)
        part = Call(call.variant, call.dataset, call.models, call.cells, seeds)
        command = loop_command(part, arguments, options, data_dir, logs_dir, weights_dir)
        timeout = None if deadline is None else max(deadline - time.monotonic(), 1.0)
        environment = {**os.environ, "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "jax")}
        print(f"[{part.label}]", flush=True)
        try:
            code = max(code, subprocess.run(command, cwd=ROOT, env=environment,
                                            timeout=timeout).returncode)
        except subprocess.TimeoutExpired:
            print("  stopped at --max-minutes; it resumes from its snapshot next time", flush=True)
            code = max(code, 124)
        adopt_logs(logs_dir, arguments.results_dir, call.variant, kind_of(arguments),
                   epochs=arguments.epochs, resample=resample)
    return code


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    from utils.reproduction import adopt_logs, write_report

    started = time.monotonic()
    deadline = None if arguments.max_minutes is None else started + 60 * arguments.max_minutes
    if arguments.adopt:
        for logs_dir in arguments.adopt:
            adopted = adopt_logs(logs_dir, arguments.results_dir, "paper", kind_of(arguments),
                                 epochs=arguments.epochs, datasets=arguments.adopt_datasets)
            print(f"{logs_dir}: {len(adopted)} run(s) adopted", flush=True)
    calls, planned, done = pending_calls(arguments)
    left = sum(len(c.seeds) * len(c.models) * len(c.cells) for c in calls)
    print(f"{arguments.study} study: {done} of {planned} runs have results; this shard "
          f"({arguments.shard}) has {left} left in {len(calls)} loop call(s)", flush=True)
    if arguments.plan:
        for call in calls:
            print(f"  {call.label}")
        return 0
    failures = 0
    if not (arguments.report_only or arguments.adopt) and calls:
        options = loop_script_options()
        for call in calls:
            if deadline is not None and time.monotonic() >= deadline:
                print("--max-minutes reached; the rest is left for the next call", flush=True)
                break
            failures += run_call(call, arguments, options, deadline) not in (0, 124)
    if not arguments.no_report:
        paths = write_report(arguments.results_dir, ROOT / "Results", ROOT)
        print("report:", ", ".join(str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)
                                   for p in paths))
    minutes = (time.monotonic() - started) / 60
    print(f"done in {minutes:.1f} min" + (f"; {failures} loop call(s) failed" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    from utils.cli import run_main

    run_main(main)
