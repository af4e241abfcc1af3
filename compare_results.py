"""Compare our accuracies with the published LSTM-FCN results and the field's best methods.

Reads the training loop's logs (``logs/<model>_<cells>_cells_results.csv``), joins them by dataset
with the published tables in ``Results/`` and writes to ``Results/report/``:

* ``per_dataset.csv`` / ``.md``: ours (mean, std and number of seeds per model and cell size) next
  to the published LSTM-FCN / ALSTM-FCN values and the chosen baselines;
* ``summary.csv`` / ``.md``: mean accuracy, MPCE, mean ranks and the original's "Count" row, on the
  datasets every column has;
* ``pairwise.csv``: wins / ties / losses and the Wilcoxon p-value of each of ours against each
  reference, on the datasets both have;
* ``wilcoxon_p_values.csv``: the pairwise p-value matrix (the Dunn-Sidak alpha is in the report);
* ``cd_nemenyi.png`` (as the original) and ``cd_wilcoxon_holm.png`` (as the field now does);
* ``scatter.png``: ours against the published accuracy, one point per dataset;
* ``report.md``: all of it, with the counts of compared datasets and of ignored failed runs.

``--reference-only`` needs no logs: it compares the published columns among themselves and, on the
original's training-loss table, prints the published statistics next to the recomputed ones.

Examples::

    python compare_results.py
    python compare_results.py --references paper,dl4tsc-fcn,dl4tsc-resnet,bakeoff-hc2
    python compare_results.py --reference-only
    python compare_results.py --references list
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: the report is files, never a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from utils import statistics  # noqa: E402
from utils.atomic_files import replacing, write_text_atomic  # noqa: E402
from utils.cli import run_main  # noqa: E402
from utils.errors import ConfigurationError  # noqa: E402

ROOT = Path(__file__).resolve().parent

# The original's figures for its training-loss table (titu1994/LSTM-FCN README and images,
# CD-training_loss.jpeg, P-Value-training_loss.jpeg; see Results/README.md). Printed next to
# the recomputed values by --reference-only.
PUBLISHED_MEAN_RANKS = {"LSTM-FCN (published)": 4.3176, "ALSTM-FCN (published)": 5.3882}
PUBLISHED_MPCE = {"LSTM-FCN (published)": 0.0408, "ALSTM-FCN (published)": 0.0427}
PUBLISHED_COUNT = {"LSTM-FCN (published)": 19, "ALSTM-FCN (published)": 14}
PUBLISHED_NEMENYI_CD = 2.152
PUBLISHED_WILCOXON_P = 1.12e-2

# Model name in our logs -> the published column of the same model.
PUBLISHED_OF_MODEL = {"lstmfcn": "lstmfcn-2019", "alstmfcn": "alstmfcn-2019"}
# Published columns that play "ours" in --reference-only.
PAPER_KEYS = ("lstmfcn-2019", "alstmfcn-2019", "lstmfcn-paper-leaky",
              "refined-lstmfcn-paper-leaky", "alstmfcn-paper-leaky", "refined-alstmfcn-paper-leaky")


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse and check the flags; a bad ``--alpha`` or ``--out`` raises ConfigurationError."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logs-dir", type=Path, default=ROOT / "logs",
                        help="folder of <model>_<cells>_cells_results.csv (default: logs/)")
    parser.add_argument("--results-dir", type=Path, default=ROOT / "Results",
                        help="folder of the published tables (default: Results/)")
    parser.add_argument("--out", type=Path, default=ROOT / "Results" / "report",
                        help="report folder (default: Results/report/)")
    parser.add_argument("--reference-only", action="store_true",
                        help="compare the published columns only (no logs needed)")
    parser.add_argument("--references", default=None,
                        help="comma-separated published columns or groups; 'list' shows them "
                             f"(default: {','.join(statistics.DEFAULT_REFERENCES)}; with "
                             "--reference-only: train-loss-table)")
    parser.add_argument("--alpha", type=float, default=0.05,
                        help="significance level of every test: 0.01, 0.05 or 0.1 (default 0.05)")
    arguments = parser.parse_args(argv)
    if arguments.alpha not in statistics.SUPPORTED_ALPHAS:
        raise ConfigurationError(
            f"--alpha {arguments.alpha}: must be one of {statistics.SUPPORTED_ALPHAS}"
        )
    if arguments.out.resolve() in (arguments.results_dir.resolve(), arguments.logs_dir.resolve()):
        raise ConfigurationError(
            f"--out {arguments.out}: would mix the report with the published tables or the logs; "
            "choose a folder of its own"
        )
    return arguments


# ----------------------------------------------------------------------------- writing files


REPORT_FILES = ("report.md", "per_dataset.csv", "per_dataset.md", "pairwise.csv", "summary.csv",
                "summary.md", "wilcoxon_p_values.csv", "failed_runs.csv", "cd_nemenyi.png",
                "cd_wilcoxon_holm.png", "scatter.png")


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, so no half-written file is left."""
    write_text_atomic(path, text)


def save_figure(figure, path: Path) -> None:
    """Save a figure atomically (temporary file, then rename) and close it."""
    try:
        with replacing(path) as temporary:
            figure.savefig(temporary, dpi=150, bbox_inches="tight")
    finally:
        plt.close(figure)


def format_number(value, digits: int = 4) -> str:
    """Integers as they are, floats to ``digits`` decimals (tiny ones in e-form), NaN as blank."""
    if isinstance(value, bool | str):
        return str(value)
    if isinstance(value, int | np.integer):
        return str(value)
    if value is None or pd.isna(value):
        return ""
    if 0 < abs(value) < 10 ** -(digits - 1):
        return f"{value:.2e}"
    return f"{value:.{digits}f}"


def markdown_table(table: pd.DataFrame, index_name: str = "") -> str:
    """A DataFrame as a GitHub markdown table (see ``format_number``), formatted column-wise."""
    header = [index_name, *map(str, table.columns)]
    cells = pd.DataFrame({column: table[column].map(format_number) for column in table.columns})
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, row in zip(table.index, cells.itertuples(index=False), strict=True):
        lines.append("| " + " | ".join([str(label), *row]) + " |")
    return "\n".join(lines) + "\n"


def summary_for_display(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary with its counting rows as integers (so they print without decimals)."""
    shown = summary.astype(object)
    for row in ("datasets", "count >= best of the others"):
        if row in shown.index:
            shown.loc[row] = [None if pd.isna(v) else int(v) for v in summary.loc[row]]
    return shown


# ----------------------------------------------------------------------------- the comparison


def per_dataset_table(
    columns: Sequence[statistics.AccuracyColumn], rows: pd.Index, names: dict[str, str]
) -> pd.DataFrame:
    """Ours as mean / std / runs over seeds and the references as published, one row a dataset."""
    parts = {"dataset": pd.Series({key: names.get(key, key) for key in rows})}
    for column in columns:
        accuracies = column.accuracies.reindex(rows)
        if column.runs is None:
            parts[column.label] = accuracies
            continue
        parts[f"{column.label} mean"] = accuracies
        parts[f"{column.label} std"] = column.std.reindex(rows)
        parts[f"{column.label} runs"] = column.runs.reindex(rows)
    return pd.DataFrame(parts, index=rows).sort_values("dataset")


def per_dataset_markdown(
    columns: Sequence[statistics.AccuracyColumn], rows: pd.Index, names: dict[str, str]
) -> str:
    """The per-dataset table with ours written as ``mean ± std (runs)``."""
    cells = {}
    for column in columns:
        values = column.accuracies.reindex(rows)
        if column.runs is None:
            cells[column.label] = values.map(format_number).tolist()
            continue
        std, runs = column.std.reindex(rows), column.runs.reindex(rows)
        cells[column.label] = [
            "" if pd.isna(mean) else f"{mean:.4f} ({int(count)})" if pd.isna(spread)
            else f"{mean:.4f} ± {spread:.4f} ({int(count)})"
            for mean, spread, count in zip(values, std, runs, strict=True)
        ]
    table = pd.DataFrame(cells, index=[names.get(key, key) for key in rows]).sort_index()
    return markdown_table(table, "dataset")


def scatter_partners(
    subjects: Sequence[statistics.AccuracyColumn], references: Sequence[statistics.AccuracyColumn]
) -> list[tuple[statistics.AccuracyColumn, statistics.AccuracyColumn]]:
    """Pair each subject with the published column of the same model, else the first reference."""
    by_key = {column.key: column for column in references}
    pairs = []
    for subject in subjects:
        model = statistics.normalise_name(subject.label.split(" (")[0])
        preferred = [PUBLISHED_OF_MODEL.get(model, ""), "fcn-wang"]
        partner = next((by_key[key] for key in preferred if key in by_key), None)
        if partner is None or partner is subject:
            partner = next((column for column in references if column is not subject), None)
        if partner is not None:
            pairs.append((subject, partner))
    return pairs


def scatter_figure(pairs, rows: pd.Index):
    """Ours (y) against a published column (x), one point per dataset, one panel per pair."""
    n_columns = min(3, len(pairs))
    n_rows = math.ceil(len(pairs) / n_columns)
    figure, axes = plt.subplots(n_rows, n_columns, figsize=(4.2 * n_columns, 4.2 * n_rows),
                                squeeze=False)
    for axis, (subject, reference) in zip(axes.flat, pairs, strict=False):
        both = pd.concat([reference.accuracies, subject.accuracies], axis=1).reindex(rows).dropna()
        wins, ties, losses = statistics.wins_ties_losses(both.iloc[:, 1], both.iloc[:, 0])
        axis.plot([0, 1], [0, 1], color="grey", linewidth=1)
        axis.scatter(both.iloc[:, 0], both.iloc[:, 1], s=14, alpha=0.8)
        axis.set(xlim=(0, 1.01), ylim=(0, 1.01), aspect="equal",
                 xlabel=reference.label, ylabel=subject.label)
        axis.set_title(f"{len(both)} datasets, W/T/L {wins}/{ties}/{losses}", fontsize=9)
        axis.xaxis.label.set_fontsize(8)
        axis.yaxis.label.set_fontsize(8)
    for axis in list(axes.flat)[len(pairs):]:
        axis.set_visible(False)
    figure.tight_layout()
    return figure


def reproduction_lines(summary: pd.DataFrame, p_matrix: pd.DataFrame, cd: float) -> list[str]:
    """Recomputed vs published figures of the original's training-loss table."""
    checks = [(f"mean rank {label}", f"{summary.loc['mean rank (ties min)', label]:.4f}",
               f"{published:.4f}") for label, published in PUBLISHED_MEAN_RANKS.items()]
    checks.append(("Nemenyi CD (14 classifiers, 85 datasets, alpha 0.05)", f"{cd:.3f}",
                   f"{PUBLISHED_NEMENYI_CD:.3f}"))
    p_value = p_matrix.loc["ALSTM-FCN (published)", "LSTM-FCN (published)"]
    checks.append(("Wilcoxon p ALSTM-FCN vs LSTM-FCN", f"{p_value:.3e}",
                   f"{PUBLISHED_WILCOXON_P:.2e}"))
    checks += [(f"MPCE {label}", f"{summary.loc['MPCE', label]:.4f}", f"{published:.4f}")
               for label, published in PUBLISHED_MPCE.items()]
    checks += [(f"Count (>= best baseline) {label}",
                f"{summary.loc['count >= best of the others', label]:.0f}", str(published))
               for label, published in PUBLISHED_COUNT.items()]
    lines = ["Published statistics of the original's training-loss table, recomputed:"]
    lines += [f"  {what:<54} {value:>10}   (published {published})"
              for what, value, published in checks]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Build the report (see the module docstring); returns the exit code."""
    arguments = parse_arguments(argv)

    # 1. The published columns, and ours (or, with --reference-only, the paper's as "ours").
    if arguments.references is not None and arguments.references.strip().lower() == "list":
        for column in statistics.load_references(arguments.results_dir, ["all"]):
            print(f"{column.key:<30} {column.label:<50} {','.join(column.groups)}")
        return 0
    default = (statistics.REFERENCE_ONLY_DEFAULT if arguments.reference_only
               else statistics.DEFAULT_REFERENCES)
    selection = arguments.references.split(",") if arguments.references else list(default)
    references = statistics.load_references(arguments.results_dir, selection)
    failed_runs, duplicate_runs, log_files = pd.DataFrame(), 0, []
    if arguments.reference_only:
        subjects = [column for column in references if column.key in PAPER_KEYS]
        others = [column for column in references if column.key not in PAPER_KEYS]
        if not references:
            raise ConfigurationError("--references: nothing selected")
    else:
        ours = statistics.load_our_results(arguments.logs_dir)
        subjects, others = ours.columns, references
        failed_runs, duplicate_runs, log_files = ours.failed_runs, ours.duplicate_runs, ours.files
    columns = [*subjects, *others]
    if len({column.label for column in columns}) != len(columns):
        raise ConfigurationError("--references: a published column has the label of one of ours")
    names: dict[str, str] = {}
    for column in reversed(columns):  # ours win: their names are 2018 names
        names.update(column.names)

    # 2. Rows: the datasets of ours; "common" = the ones every column has (all tests use these).
    table = statistics.accuracy_table(columns)
    focus = subjects or columns
    rows = table.index[table[[column.label for column in focus]].notna().any(axis=1)]
    table = table.loc[rows]
    common = statistics.common_datasets(table)
    n_columns, n_common = common.shape[1], len(common)
    subject_labels = [column.label for column in subjects]
    counts = statistics.class_counts(common.index, names, arguments.results_dir)
    summary = statistics.summary_table(common, counts, subject_labels) if n_common else None
    pairwise = statistics.pairwise_table(table, subject_labels,
                                         [column.label for column in others])

    # 3. Pairwise Wilcoxon matrix and the critical-difference diagrams on the common datasets.
    out = arguments.out
    out.mkdir(parents=True, exist_ok=True)
    for name in REPORT_FILES:  # files of an earlier report that this one may not rewrite
        (out / name).unlink(missing_ok=True)
    alpha = arguments.alpha
    p_matrix, cd, notes = None, None, []
    if n_columns >= 2 and n_common >= 2:
        p_matrix = statistics.wilcoxon_p_matrix(common)
        n_pairs = n_columns * (n_columns - 1) // 2
        sidak_alpha = statistics.dunn_sidak_alpha(alpha, n_pairs)
        cd = statistics.nemenyi_critical_difference(n_columns, n_common, alpha)
    if n_columns >= 3 and n_common >= 2:
        title = f"Nemenyi, alpha {alpha}, CD {cd:.3f}, {n_columns} classifiers, {n_common} datasets"
        save_figure(statistics.critical_difference_diagram(common, "nemenyi", alpha, title),
                    out / "cd_nemenyi.png")
        title = f"Wilcoxon-Holm, alpha {alpha}, {n_columns} classifiers, {n_common} datasets"
        save_figure(statistics.critical_difference_diagram(common, "wilcoxon-holm", alpha, title),
                    out / "cd_wilcoxon_holm.png")
    else:
        notes.append("No critical-difference diagrams: they need at least 3 columns and 2 "
                     f"common datasets (have {n_columns} and {n_common}).")
    pairs = scatter_partners(subjects, others)
    if pairs:
        save_figure(scatter_figure(pairs, rows), out / "scatter.png")

    # 4. Tables and the report.
    write_text(out / "per_dataset.csv", per_dataset_table(columns, rows, names).to_csv(index=False))
    write_text(out / "per_dataset.md", per_dataset_markdown(columns, rows, names))
    write_text(out / "pairwise.csv", pairwise.to_csv(index=False))
    if summary is not None:
        write_text(out / "summary.csv", summary.to_csv())
        write_text(out / "summary.md", markdown_table(summary_for_display(summary), "statistic"))
    if p_matrix is not None:
        write_text(out / "wilcoxon_p_values.csv", p_matrix.to_csv())
    if not failed_runs.empty:
        write_text(out / "failed_runs.csv", failed_runs.to_csv(index=False))

    report = [
        "# Comparison with published results",
        "",
        f"Ours: {', '.join(log_files) if log_files else 'none (--reference-only)'}.",
        "Published: " + "; ".join(f"{c.label} (`{c.source}`)"
                                  for c in (columns if arguments.reference_only else others))
        + ".",
        "",
        f"**{len(rows)} datasets** in the table; **{n_common}** are present in every column "
        f"({n_columns} columns) and are the ones the summary, ranks, p-values and diagrams use. "
        "The pairwise table uses the datasets each pair has in common.",
    ]
    missing = table.index.difference(common.index)
    if len(missing):
        report.append("Left out of the common set (a column has no value): "
                      + ", ".join(sorted(names.get(key, key) for key in missing)) + ".")
    if not failed_runs.empty:
        report.append(f"\n{len(failed_runs)} failed run(s) ignored (non-empty `error`; listed "
                      "in `failed_runs.csv`).")
    if duplicate_runs:
        report.append(f"{duplicate_runs} repeated run(s) of the same dataset and seed: the last "
                      "one was kept.")
    if any(column.leaky for column in columns):
        report.append(f"\nColumns marked `{statistics.LEAKY_SUFFIX.strip()}` chose their "
                      "checkpoint with test data (test leakage); they are never averaged with "
                      "honest runs and their accuracies are optimistic.")
    report += [f"\n{note}" for note in notes]
    if summary is not None:
        report += ["", f"## Summary over the {n_common} common datasets", "",
                   "Ranks: 1 = most accurate. MPCE = mean of (1 - accuracy) / classes.", "",
                   markdown_table(summary_for_display(summary), "statistic")]
    if not pairwise.empty:
        shown = pairwise.set_index(["subject", "reference"])
        shown.index = [f"{subject} vs {reference}" for subject, reference in shown.index]
        report += ["## Against each reference (datasets both have)", "",
                   "Wilcoxon signed-rank, two-sided, `zero_method='wilcox'`, continuity "
                   "correction.", "", markdown_table(shown, "comparison")]
    if p_matrix is not None:
        marked = p_matrix.map(lambda p: "" if pd.isna(p) else
                              format_number(p, 3) + ("*" if p < sidak_alpha else ""))
        report += ["## Pairwise Wilcoxon p-values", "",
                   f"Two-sided, `zero_method='wilcox'`, {n_common} datasets. Dunn-Sidak corrected "
                   f"alpha for the {n_pairs} pairs: 1 - (1 - {alpha})^(1/{n_pairs}) = "
                   f"**{sidak_alpha:.3g}**; `*` marks p below it. (The original README used "
                   f"{statistics.dunn_sidak_alpha(0.05, 11):.5f} = 1 - 0.95^(1/11).)", "",
                   markdown_table(marked, "")]
        report += ["## Critical-difference diagrams", "",
                    f"Nemenyi critical difference (alpha {alpha}, k = {n_columns}, "
                    f"N = {n_common}): **{cd:.3f}**. Diagram positions are mean ranks with ties "
                    "averaged (aeon); the summary also gives the original's min-tie ranks.", ""]
        if n_columns >= 3:
            report += ["![Nemenyi](cd_nemenyi.png)", "",
                       f"Wilcoxon-Holm cliques (aeon, alpha {alpha}):", "",
                       "![Wilcoxon-Holm](cd_wilcoxon_holm.png)", ""]
    if pairs:
        report += ["## Ours against published, per dataset", "", "![scatter](scatter.png)", ""]
    report += ["## Per-dataset accuracies", "", per_dataset_markdown(columns, rows, names)]
    write_text(out / "report.md", "\n".join(report) + "\n")

    # 5. What the user sees.
    print(f"{len(rows)} datasets; {n_common} present in all {n_columns} columns (compared).")
    if not failed_runs.empty:
        print(f"{len(failed_runs)} failed run(s) ignored; see {out / 'failed_runs.csv'}")
    if summary is not None:
        print(markdown_table(summary_for_display(summary), "statistic"))
    if arguments.reference_only and p_matrix is not None and is_train_loss_table(
            columns, arguments.results_dir):
        print("\n".join(reproduction_lines(summary, p_matrix, cd)))
    if p_matrix is not None:
        print(f"Dunn-Sidak alpha for {n_pairs} pairwise Wilcoxon tests: {sidak_alpha:.3g}")
    print(f"Report written to {out / 'report.md'}")
    return 0


def is_train_loss_table(columns, results_dir: Path) -> bool:
    """True when ``columns`` are exactly the original's training-loss table (whose published
    statistics the reference-only run reproduces)."""
    table = statistics.load_references(results_dir, ["train-loss-table"])
    return {column.key for column in columns} == {column.key for column in table}


if __name__ == "__main__":
    run_main(main)
