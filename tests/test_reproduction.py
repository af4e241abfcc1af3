"""The reproduction study runner and its audit: real few-epoch runs through the loop script,
resuming (a finished study trains nothing and rewrites the same bytes), sharding, adopting loop
logs, and the committed report regenerated from the committed results files."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from utils import statistics
from utils.reproduction import load_runs, rule_values, save_svg, write_report

ROOT = Path(__file__).resolve().parents[1]
RUNNER = ROOT / "benchmarks" / "reproduce.py"
COMMITTED = ROOT / "Results" / "ours"


def load_runner():
    spec = importlib.util.spec_from_file_location("reproduce", RUNNER)
    module = importlib.util.module_from_spec(spec)
    sys.modules["reproduce"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def run_study(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RUNNER), *arguments], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)


def file_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_study_runs_resumes_without_training_and_adopts_loop_logs(tmp_path):
    study = ("--datasets", "ItalyPowerDemand", "--models", "fcn", "lstmfcn", "--cells", "8", "64",
             "--seeds", "0", "--epochs", "2", "--results-dir", str(tmp_path / "ours"),
             "--work-dir", str(tmp_path / "work"))
    first = run_study(*study)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "0 of 3 runs have results" in first.stdout
    ours = tmp_path / "ours"
    for classifier in ("FCN", "LSTM-FCN-8", "LSTM-FCN-64"):
        assert (ours / "seeds" / classifier / "Predictions/ItalyPowerDemand/testResample0.csv"
                ).is_file()
    report = (ours / "report" / "reproduction.md").read_text()
    assert "| ItalyPowerDemand | 0." in report
    assert "no cell-count rule can be judged" in report  # 8 and 64 cells only: no full set
    assert str(tmp_path) not in report and str(ROOT) not in report  # no machine paths
    before = file_bytes(ours)

    again = run_study(*study)  # finished: no loop call, the same bytes
    assert again.returncode == 0, again.stderr[-3000:]
    assert "3 of 3 runs have results" in again.stdout and "0 loop call(s)" in again.stdout
    assert not any(line.startswith("[") for line in again.stdout.splitlines())
    assert file_bytes(ours) == before

    # the rules on these real runs: the oracle is the best cell count, the training-loss rule
    # takes the cell count with the lower training loss
    runs = load_runs(ours)
    lstm = runs[runs["model"] == "lstmfcn"]
    values = rule_values(lstm, 128, cell_counts=(8, 64))
    by_cells = lstm.set_index("cells")
    lowest_loss = by_cells["train_loss"].idxmin()
    assert values["train-loss selected"].iloc[0] == by_cells.loc[lowest_loss, "accuracy"]
    assert values["oracle [LEAKY]"].iloc[0] == by_cells["accuracy"].max()
    assert "published cell count" not in values  # 128 cells were not run

    # adopting the loop script's own logs writes the same results files
    adopted = run_study("--adopt", str(tmp_path / "work" / "paper" / "logs"), "--epochs", "2",
                        "--results-dir", str(tmp_path / "adopted"), "--no-report")
    assert adopted.returncode == 0, adopted.stderr[-3000:]
    assert "3 run(s) adopted" in adopted.stdout
    theirs = {k: v for k, v in file_bytes(tmp_path / "adopted").items() if "Predictions" in k}
    assert theirs == {k: v for k, v in before.items() if "Predictions" in k}

    # --datasets limits what is adopted: none of these rows are on GunPoint
    elsewhere = run_study("--adopt", str(tmp_path / "work" / "paper" / "logs"), "--epochs", "2",
                          "--datasets", "GunPoint", "--results-dir", str(tmp_path / "gunpoint"),
                          "--no-report")
    assert elsewhere.returncode == 0, elsewhere.stderr[-3000:]
    assert "0 run(s) adopted" in elsewhere.stdout
    assert not (tmp_path / "gunpoint" / "seeds").exists()

    # other settings (here: the epoch count) are not adopted as if they were the study's
    other = run_study("--adopt", str(tmp_path / "work" / "paper" / "logs"),
                      "--results-dir", str(tmp_path / "other"), "--no-report")
    assert "0 run(s) adopted" in other.stdout and "other settings" in other.stdout


def test_shards_split_the_study_without_overlap(tmp_path):
    runner = load_runner()
    base = ["--results-dir", str(tmp_path), "--datasets", "ItalyPowerDemand", "Coffee"]

    def runs_of(shard: str) -> set[tuple]:
        calls, planned, done = runner.pending_calls(runner.parse_arguments([*base, "--shard",
                                                                            shard]))
        assert (planned, done) == (2 * 7 * 5, 0)
        return {(c.dataset, m, cells, s) for c in calls for m in c.models for cells in c.cells
                for s in c.seeds}

    everything = runs_of("1/1")
    parts = [runs_of(f"{i}/3") for i in (1, 2, 3)]
    assert len(everything) == 70 and set().union(*parts) == everything
    assert sum(len(part) for part in parts) == 70  # disjoint
    with pytest.raises(SystemExit):
        runner.parse_arguments(["--shard", "4/3"])


@pytest.mark.skipif(not (COMMITTED / "report" / "reproduction.md").is_file(),
                    reason="no committed study results")
def test_committed_report_is_regenerated_byte_for_byte(tmp_path):
    copy = tmp_path / "ours"
    shutil.copytree(COMMITTED / "seeds", copy / "seeds")
    for summary in (copy / "seeds").glob("*_accuracy.csv"):
        summary.unlink()
    write_report(copy, ROOT / "Results", ROOT)
    for name in ("report/reproduction.md", "report/audit.csv"):
        assert (copy / name).read_bytes() == (COMMITTED / name).read_bytes(), name
    for summary in (COMMITTED / "seeds").glob("*_accuracy.csv"):
        assert (copy / "seeds" / summary.name).read_bytes() == summary.read_bytes()


@pytest.mark.skipif(not (COMMITTED / "report" / "reproduction.md").is_file(),
                    reason="no committed study results")
@pytest.mark.parametrize("datasets", [4, 7])
def test_strength_line_gives_the_smallest_p_that_scipy_can_return(tmp_path, datasets):
    """The report's closing line says how far a Wilcoxon test on that many datasets can go; the
    figure must be scipy's own p for that many differences all of one sign."""
    names = sorted(p.name for p in (COMMITTED / "seeds" / "LSTM-FCN-8" / "Predictions").iterdir())
    copy = tmp_path / "ours"
    for predictions in (COMMITTED / "seeds").glob("*/Predictions"):
        for name in names[:datasets]:
            if (predictions / name).is_dir():
                target = copy / predictions.relative_to(COMMITTED) / name
                shutil.copytree(predictions / name, target)
    write_report(copy, ROOT / "Results", ROOT)
    report = (copy / "report" / "reproduction.md").read_text()
    line = next(text for text in report.splitlines() if text.startswith("Strength of"))
    smallest = scipy_stats.wilcoxon(np.arange(1.0, datasets + 1)).pvalue
    assert f"Weak: {datasets} datasets" in line
    if smallest > 0.05:
        assert "cannot reach 0.05" in line
    else:
        assert f"at best p = {smallest:.3g}" in line


def test_critical_difference_svg_has_the_same_bytes_every_time(tmp_path):
    columns = statistics.load_references(ROOT / "Results", ["train-loss-table"])
    table = statistics.common_datasets(statistics.accuracy_table(columns)).iloc[:12, :5]
    outputs = []
    for attempt in range(2):
        figure = statistics.critical_difference_diagram(table, "wilcoxon-holm")
        save_svg(figure, tmp_path / f"cd{attempt}.svg")
        outputs.append((tmp_path / f"cd{attempt}.svg").read_bytes())
    assert outputs[0] == outputs[1] and b"<svg" in outputs[0]
    assert b"Date" not in outputs[0]


def test_loop_option_switches_batchnorm_recalibration_off(tmp_path):
    """The deviation study's switch reaches training: same seed, different inference loss."""
    from all_datasets_training import run_grid
    from utils.experiments import GridConfig, read_log

    rows = {}
    for recalibrate in (True, False):
        folder = tmp_path / str(recalibrate)
        config = GridConfig(datasets=["ItalyPowerDemand"], models=["lstmfcn"], cells=[8],
                            epochs=2, recalibrate_batchnorm=recalibrate, progress=False,
                            weights_dir=str(folder / "weights"), logs_dir=str(folder / "logs"))
        (outcome,) = run_grid(config)
        assert outcome.status == "trained", outcome.error
        (rows[recalibrate],) = read_log(folder / "logs" / "lstmfcn_8_cells_results.csv")
    assert rows[True]["recalibrate_batchnorm"] == "True"
    assert rows[False]["recalibrate_batchnorm"] == "False"
    assert rows[True]["train_loss"] != rows[False]["train_loss"]
