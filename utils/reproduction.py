"""The reproduction audit: our multi-seed results files against the published LSTM-FCN numbers.

Input: the tsml-eval results files of ``benchmarks/reproduce.py`` (``Results/ours/seeds/...``,
see ``utils.results_files``), whose JSON line holds each run's model, cell count, variant and
training loss; and the published tables in ``Results/``. Output: ``Results/ours/report/``:

* ``reproduction.md``: per dataset and model, mean +- std over seeds of every cell-selection rule
  (each fixed cell count, the cell count with the lowest training loss, the mean over cell
  counts, the published cell count, and the oracle: the best *test* accuracy over cell counts,
  which leaks test labels and is labelled so); for each rule how often the published value lies
  within our seeds' range, the mean difference and a Wilcoxon test; whether the published cell
  choices agree with the training loss or with the test set; the papers' central claim (LSTM-FCN
  and ALSTM-FCN against FCN and the published baselines: mean ranks, a critical-difference
  diagram); the deviation study;
* ``audit.csv``: the per-dataset numbers behind it;
* ``cd_diagram.svg``.

Everything is a function of the results files: no timestamps, no machine paths, fixed number
formats and figure metadata, so the same files always give the same bytes.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from utils import statistics
from utils.atomic_files import write_text_atomic
from utils.errors import DatasetError, DatasetNotFoundError
from utils.results_files import (
    from_predictions_csv,
    iter_results_files,
    read_results_file,
    write_accuracy_summaries,
    write_results_file,
)

# variant -> (normalisation, BatchNorm recalibration, classifier-name suffix)
VARIANTS = {
    "paper": ("sample", True, ""),
    "no-bn-recalibration": ("sample", False, "-noBNrecal"),
    "no-normalization": ("none", True, "-normNone"),
}
CLASSIFIER_NAMES = {"fcn": "FCN", "lstmfcn": "LSTM-FCN", "alstmfcn": "ALSTM-FCN"}
RECURRENT_MODELS = ("lstmfcn", "alstmfcn")
STUDY_SETTINGS = {"protocol": "train-loss", "batch_size": 128, "learning_rate": 1e-3,
                  "class_weight": "none"}
PUBLISHED_COLUMN = {"lstmfcn": "LSTM-FCN", "alstmfcn": "ALSTM-FCN"}
CHOSEN_CELLS_COLUMN = {"lstmfcn": "lstmfcn_cells_chosen", "alstmfcn": "alstmfcn_cells_chosen"}
LEAKY_TABLE1_COLUMN = {"lstmfcn": "lstm_fcn", "alstmfcn": "alstm_fcn"}
CHOSEN_CELLS_TABLE = "transcribed/lstmfcn_train_loss_model_chosen.csv"
ORACLE = "oracle [LEAKY]"
# Published values carry 4-5 decimals: within half of the last one counts as equal.
TOLERANCE = 5e-5
SVG_SALT = "lstmfcn-reproduction"


def classifier_name(model: str, cells: int, variant: str = "paper") -> str:
    """``LSTM-FCN-64``, ``FCN``, ``LSTM-FCN-8-noBNrecal``: the results files' classifier name."""
    base = CLASSIFIER_NAMES.get(model, model)
    if model != "fcn":
        base = f"{base}-{cells}"
    return base + VARIANTS[variant][2]


# --------------------------------------------------------------------------- adopting loop logs


def _typed(value: str):
    """A log cell as int, float, bool or str (so the JSON line holds numbers, not strings)."""
    text = str(value).strip()
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


_KEPT_COLUMNS = ("model", "cells", "seed", "protocol", "normalize", "epochs", "epochs_run",
                 "best_epoch", "batch_size", "learning_rate", "class_weight", "train_loss",
                 "best_train_loss", "train_accuracy", "test_accuracy", "n_params", "backend",
                 "backend_version", "keras_version", "numpy_version", "engine", "precision")


def adopt_logs(logs_dir: str | os.PathLike, results_dir: str | os.PathLike, variant: str,
               kind: str = "seeds", epochs: int = 2000, resample: int | None = None,
               quiet: bool = False, datasets: Collection[str] | None = None) -> list[Path]:
    """Write a results file for every finished loop-script run in ``logs_dir`` that matches the
    study's settings for ``variant`` and has its ``--save-predictions`` file; with ``datasets``,
    only the runs on those datasets (e.g. to leave out one whose runs are still under way).

    Rows with other settings, without predictions, or whose predictions disagree with the logged
    accuracy are skipped with a note; a results file that already holds other numbers is kept
    (never overwritten). Returns the files written or confirmed.
    """
    from utils.experiments import read_log

    logs_dir, results_dir = Path(logs_dir), Path(results_dir)
    normalize, recalibrate, _ = VARIANTS[variant]
    adopted, notes = [], []
    for log in sorted(logs_dir.glob("*_cells_results.csv")):
        if log.name.endswith("_selected_cells_results.csv"):
            continue
        for row in read_log(log):
            if row.get("error") or not row.get("test_accuracy"):
                continue
            if datasets is not None and row["dataset"] not in datasets:
                continue
            settings = {"protocol": row["protocol"], "batch_size": int(row["batch_size"]),
                        "learning_rate": float(row["learning_rate"]),
                        "class_weight": row["class_weight"]}
            row_recalibrate = row.get("recalibrate_batchnorm") or "True"  # older rows: default
            if (settings != STUDY_SETTINGS or int(row["epochs"]) != epochs
                    or row["normalize"] != normalize or (row_recalibrate == "True") != recalibrate):
                notes.append(f"{log.name} {row['dataset']} seed {row['seed']}: other settings")
                continue
            model, cells, seed = row["model"], int(row["cells"]), int(row["seed"])
            predictions = (logs_dir / "predictions" / f"{model}_{cells}_cells"
                           / f"{row['dataset']}_{row['protocol']}_seed{seed}.csv")
            if not predictions.is_file():
                notes.append(f"{log.name} {row['dataset']} seed {seed}: no predictions file")
                continue
            parameters = {column: _typed(row[column]) for column in _KEPT_COLUMNS
                          if row.get(column, "") != ""}
            parameters.update(variant=variant, recalibrate_batchnorm=recalibrate,
                              split="published" if not resample else f"resample {resample}")
            result = from_predictions_csv(
                predictions, classifier_name(model, cells, variant), row["dataset"], kind,
                seed if resample is None else resample, parameters,
                round(1000 * float(row.get("train_seconds") or -0.001)),
            )
            if abs(result.accuracy - float(row["test_accuracy"])) > 1e-9:
                notes.append(f"{predictions}: accuracy {result.accuracy} but the log says "
                             f"{row['test_accuracy']}")
                continue
            try:
                adopted.append(write_results_file(results_dir, result))
            except DatasetError as error:
                notes.append(str(error))
    if not quiet:
        for note in notes:
            print(f"  skipped: {note}", flush=True)
    return adopted


def write_resampled_dataset(dataset: str, data_dir: str | None, resample: int,
                            out_root: str | os.PathLike) -> Path:
    """aeon's stratified resample ``resample`` of a UCR ``.tsv`` dataset's train+test, written as
    ``<out_root>/resample<k>/<dataset>/<dataset>_{TRAIN,TEST}.tsv``; returns the data folder.

    The lines are copied as they are, so the values are exactly the archive's.
    """
    from aeon.benchmarking.resampling import stratified_resample_data_indices

    from utils.data import resolve_data_dir

    source = resolve_data_dir(data_dir) / dataset
    splits = {}
    for split in ("TRAIN", "TEST"):
        path = source / f"{dataset}_{split}.tsv"
        if not path.is_file():
            raise DatasetNotFoundError(f"{path}: resampling needs the UCR .tsv files")
        splits[split] = [line for line in path.read_text().splitlines() if line.strip()]
    labels = {s: np.array([line.split("\t", 1)[0] for line in lines])
              for s, lines in splits.items()}
    train_index, test_index = stratified_resample_data_indices(
        labels["TRAIN"], labels["TEST"], random_state=resample)
    pooled = splits["TRAIN"] + splits["TEST"]
    folder = Path(out_root) / f"resample{resample}"
    for split, indices in (("TRAIN", train_index), ("TEST", test_index)):
        text = "\n".join(pooled[i] for i in indices) + "\n"
        write_text_atomic(folder / dataset / f"{dataset}_{split}.tsv", text)
    return folder


# --------------------------------------------------------------------------- reading results


def load_runs(results_dir: str | os.PathLike, kind: str = "seeds") -> pd.DataFrame:
    """One row per results file: classifier, dataset, index, model, cells, variant, seed,
    accuracy, train_loss, epochs (sorted, so the table is the same whatever the file order)."""
    rows = []
    for path in iter_results_files(results_dir, kind):
        result = read_results_file(path)
        parameters = result.parameters
        rows.append({
            "classifier": result.classifier, "dataset": result.dataset, "index": result.index,
            "model": parameters.get("model", result.classifier),
            "cells": int(parameters.get("cells", 0)),
            "variant": parameters.get("variant", "paper"),
            "accuracy": result.accuracy,
            "train_loss": float(parameters.get("train_loss", math.nan)),
            "epochs": parameters.get("epochs"),
        })
    columns = ["classifier", "dataset", "index", "model", "cells", "variant", "accuracy",
               "train_loss", "epochs"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(["variant", "model", "cells", "dataset", "index"],
                             ignore_index=True)


def runs_from_logs(logs_dir: str | os.PathLike) -> pd.DataFrame:
    """The same table as ``load_runs`` from the loop script's logs (finished rows at the paper's
    settings), for runs that have no results files (the earlier single-seed benchmark)."""
    from utils.experiments import read_log

    rows = []
    for log in sorted(Path(logs_dir).glob("*_cells_results.csv")):
        if log.name.endswith("_selected_cells_results.csv"):
            continue
        for row in read_log(log):
            if row.get("error") or not row.get("test_accuracy") or row["normalize"] != "sample":
                continue
            model, cells = row["model"], int(row["cells"])
            rows.append({"classifier": classifier_name(model, cells), "dataset": row["dataset"],
                         "index": int(row["seed"]), "model": model, "cells": cells,
                         "variant": "paper", "accuracy": float(row["test_accuracy"]),
                         "train_loss": float(row["train_loss"]), "epochs": int(row["epochs"])})
    frame = pd.DataFrame(rows, columns=["classifier", "dataset", "index", "model", "cells",
                                        "variant", "accuracy", "train_loss", "epochs"])
    return frame.sort_values(["model", "cells", "dataset", "index"], ignore_index=True)


def published_tables(published_dir: str | os.PathLike) -> dict[str, pd.DataFrame]:
    """The published LSTM-FCN / ALSTM-FCN accuracies (2019 training-loss table), the transcribed
    chosen cell counts and the leaky Table 1, indexed by dataset key."""
    published_dir = Path(published_dir)
    tables = {}
    for name, path, dataset_column in (
            ("train_loss", statistics.TRAIN_LOSS_TABLE, "Dataset"),
            ("chosen_cells", CHOSEN_CELLS_TABLE, "Dataset"),
            ("table1", statistics.TEST_CHECKPOINT_TABLE, "name")):
        table = pd.read_csv(published_dir / path)
        table.index = table[dataset_column].map(statistics.dataset_key)
        tables[name] = table
    return tables


# --------------------------------------------------------------------------- the audit


CELL_COUNTS = (8, 64, 128)


def rule_values(runs: pd.DataFrame, chosen_cells: int | None,
                cell_counts: Sequence[int] = CELL_COUNTS) -> dict[str, pd.Series]:
    """Per seed (index), the test accuracy each cell-selection rule gives, for one dataset and
    model.

    A fixed cell count uses every seed that has it. The rules that choose among cell counts use
    only the seeds that have all of ``cell_counts`` and are left out when there is none.
    """
    table = runs.pivot_table(index="index", columns="cells", values=["accuracy", "train_loss"])
    accuracy, loss = table["accuracy"], table["train_loss"]
    values = {f"{c} cells": accuracy[c].dropna() for c in cell_counts if c in accuracy.columns}
    if not set(cell_counts) <= set(accuracy.columns):
        return values
    accuracy, loss = accuracy[list(cell_counts)], loss[list(cell_counts)]
    complete = accuracy.dropna().index.intersection(loss.dropna().index)
    if complete.empty:
        return values
    accuracy, loss = accuracy.loc[complete], loss.loc[complete]
    # lowest training loss; ties keep the smaller cell count (as the loop's --select-cells)
    chosen = loss.apply(lambda row: min(cell_counts, key=lambda c: (row[c], c)), axis=1)
    values["train-loss selected"] = pd.Series(
        [accuracy.loc[i, c] for i, c in chosen.items()], index=complete, dtype=float)
    values["mean over cells"] = accuracy.mean(axis=1)
    if chosen_cells in cell_counts:
        values["published cell count"] = accuracy[chosen_cells]
    values[ORACLE] = accuracy.max(axis=1)
    return values


RULES = ("8 cells", "64 cells", "128 cells", "train-loss selected", "mean over cells",
         "published cell count", ORACLE)


def audit_table(runs: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per (model, dataset, rule): seeds, mean, std, min, max of our accuracy, and the
    published (2019 training-loss) and leaky Table 1 values."""
    rows = []
    paper = runs[(runs["variant"] == "paper") & runs["model"].isin(RECURRENT_MODELS)]
    for (model, dataset), group in paper.groupby(["model", "dataset"], sort=True):
        key = statistics.dataset_key(dataset)
        chosen = tables["chosen_cells"].get(CHOSEN_CELLS_COLUMN[model], pd.Series()).get(key)
        chosen = None if chosen is None or pd.isna(chosen) else int(chosen)
        published = tables["train_loss"][PUBLISHED_COLUMN[model]].get(key, math.nan)
        table1 = tables["table1"][LEAKY_TABLE1_COLUMN[model]].get(key, math.nan)
        for rule, values in rule_values(group, chosen).items():
            if values.empty:
                continue
            rows.append({
                "model": model, "dataset": dataset, "rule": rule, "seeds": len(values),
                "mean": values.mean(), "std": values.std(ddof=1) if len(values) > 1 else math.nan,
                "min": values.min(), "max": values.max(), "published": published,
                "published_cells": chosen, "table1_leaky": table1,
            })
    return pd.DataFrame(rows, columns=["model", "dataset", "rule", "seeds", "mean", "std", "min",
                                       "max", "published", "published_cells", "table1_leaky"])


def rule_summary(audit: pd.DataFrame, reference: str = "published") -> pd.DataFrame:
    """Per (model, rule): datasets with a reference value, how many of those lie within our
    seeds' [min, max], mean difference (ours mean - reference), W/T/L and Wilcoxon p."""
    rows = []
    for (model, rule), group in audit.groupby(["model", "rule"], sort=False):
        group = group.dropna(subset=[reference])
        if group.empty:
            continue
        inside = ((group[reference] >= group["min"] - TOLERANCE)
                  & (group[reference] <= group["max"] + TOLERANCE))
        wins, ties, losses = statistics.wins_ties_losses(group["mean"], group[reference],
                                                         tolerance=TOLERANCE)
        rows.append({
            "model": model, "rule": rule, "datasets": len(group),
            "published within our range": int(inside.sum()),
            "ours mean": group["mean"].mean(), "published mean": group[reference].mean(),
            "mean difference": (group["mean"] - group[reference]).mean(),
            "W/T/L": f"{wins}/{ties}/{losses}",
            "wilcoxon p": statistics.wilcoxon_p_value(group["mean"], group[reference]),
        })
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    order = frame["model"].map(RECURRENT_MODELS.index) * len(RULES) + frame["rule"].map(
        RULES.index)
    return frame.iloc[np.argsort(order.to_numpy(), kind="stable")].reset_index(drop=True)


def cell_choice_agreement(runs: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """How often the published cell count equals our training-loss choice, and how often it is
    among the cell counts with the best test accuracy, per model over (dataset, seed) pairs,
    with what chance would give (1/3, and the mean share of test-best cells)."""
    rows = []
    paper = runs[(runs["variant"] == "paper") & runs["model"].isin(RECURRENT_MODELS)]
    for model in RECURRENT_MODELS:
        by_model = paper[paper["model"] == model]
        pairs = loss_hits = test_hits = 0
        chance_test = 0.0
        datasets = 0
        for dataset, group in by_model.groupby("dataset", sort=True):
            chosen = tables["chosen_cells"][CHOSEN_CELLS_COLUMN[model]].get(
                statistics.dataset_key(dataset))
            if chosen is None or pd.isna(chosen):
                continue
            table = group.pivot_table(index="index", columns="cells",
                                      values=["accuracy", "train_loss"])
            if not set(CELL_COUNTS) <= set(table["accuracy"].columns):
                continue
            table = table.dropna()
            if table.empty:
                continue
            datasets += 1
            accuracy, loss = table["accuracy"], table["train_loss"]
            cells = list(accuracy.columns)
            for seed in accuracy.index:
                pairs += 1
                loss_hits += min(cells, key=lambda c: (loss.loc[seed, c], c)) == int(chosen)
                best = [c for c in cells if accuracy.loc[seed, c] >= accuracy.loc[seed].max()]
                test_hits += int(chosen) in best
                chance_test += len(best) / len(cells)
        if pairs:
            rows.append({"model": model, "datasets": datasets, "dataset-seed pairs": pairs,
                         "published = our train-loss choice": loss_hits / pairs,
                         "chance (1/3)": 1 / 3,
                         "published among our test-best": test_hits / pairs,
                         "chance (share of test-best cells)": chance_test / pairs})
    return pd.DataFrame(rows)


def seed_means(runs: pd.DataFrame, classifier_rule: dict[str, tuple[str, str | None]]
               ) -> pd.DataFrame:
    """Mean over seeds per dataset of our classifiers for the central claim: recurrent models
    with the training-loss rule, FCN as it is. Rows = dataset keys, columns = labels."""
    columns = {}
    paper = runs[runs["variant"] == "paper"]
    for label, (model, rule) in classifier_rule.items():
        means = {}
        for dataset, group in paper[paper["model"] == model].groupby("dataset", sort=True):
            if rule is None:
                values = group["accuracy"]
            else:
                values = rule_values(group, None).get(rule, pd.Series(dtype=float))
            if len(values):
                means[statistics.dataset_key(dataset)] = float(values.mean())
        columns[label] = pd.Series(means, dtype=float)
    return pd.DataFrame(columns)


# The columns ours are tested against one by one (all of them enter the ranks and the diagram).
PAIRWISE_REFERENCES = ("FCN (ours)", "LSTM-FCN (published)", "ALSTM-FCN (published)",
                       "FCN (Wang 2017)", "ResNet (Wang 2017)", "COTE")
OUR_CLAIM_COLUMNS = {
    "LSTM-FCN (ours, train-loss cells)": ("lstmfcn", "train-loss selected"),
    "ALSTM-FCN (ours, train-loss cells)": ("alstmfcn", "train-loss selected"),
    "FCN (ours)": ("fcn", None),
}


def claim_tables(runs: pd.DataFrame, published_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame,
                                                                    pd.DataFrame]:
    """The central claim on the datasets every column has: the accuracy table (ours + the 14
    published columns of the training-loss table), its summary (mean accuracy, mean ranks) and
    ours against FCN (ours) and each published baseline (W/T/L, Wilcoxon)."""
    ours = seed_means(runs, OUR_CLAIM_COLUMNS)
    published = statistics.load_references(published_dir, ["train-loss-table"])
    table = pd.concat([ours, statistics.accuracy_table(published)], axis=1)
    table = table.loc[ours.dropna().index.intersection(table.index)]
    common = statistics.common_datasets(table).sort_index()
    if common.empty:
        return common, pd.DataFrame(), pd.DataFrame()
    summary = pd.DataFrame({
        "mean accuracy": common.mean(axis=0),
        "mean rank": statistics.mean_ranks(common, "average"),
    }).sort_values(["mean rank", "mean accuracy"], ascending=[True, False], kind="stable")
    subjects = list(OUR_CLAIM_COLUMNS)[:2]
    pairwise = statistics.pairwise_table(common, subjects, [c for c in PAIRWISE_REFERENCES
                                                            if c in common.columns])
    return common, summary, pairwise


def paired_seed_comparison(runs: pd.DataFrame) -> pd.DataFrame:
    """LSTM-FCN and ALSTM-FCN (training-loss cells) against FCN trained with the same seed on the
    same dataset: W/T/L over (dataset, seed) pairs and the Wilcoxon p over those pairs."""
    paper = runs[runs["variant"] == "paper"]
    fcn = paper[paper["model"] == "fcn"].set_index(["dataset", "index"])["accuracy"]
    rows = []
    for model in RECURRENT_MODELS:
        selected = {}
        for dataset, group in paper[paper["model"] == model].groupby("dataset", sort=True):
            rule = rule_values(group, None).get("train-loss selected", pd.Series(dtype=float))
            for seed, value in rule.items():
                selected[(dataset, seed)] = value
        ours = pd.Series(selected, dtype=float)
        both = pd.concat([ours, fcn], axis=1, join="inner").dropna()
        if both.empty:
            continue
        wins, ties, losses = statistics.wins_ties_losses(both.iloc[:, 0], both.iloc[:, 1])
        rows.append({"model": CLASSIFIER_NAMES[model], "pairs": len(both),
                     "datasets": both.index.get_level_values(0).nunique(),
                     "W/T/L against FCN (ours)": f"{wins}/{ties}/{losses}",
                     "mean difference": (both.iloc[:, 0] - both.iloc[:, 1]).mean(),
                     "wilcoxon p": statistics.wilcoxon_p_value(both.iloc[:, 0], both.iloc[:, 1])})
    return pd.DataFrame(rows)


def deviation_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (variant, dataset): LSTM-FCN (8 cells) mean accuracy with the deviation switched off,
    the paper variant on the same seeds, and their difference."""
    rows = []
    base = runs[(runs["model"] == "lstmfcn") & (runs["cells"] == 8)]
    paper = base[base["variant"] == "paper"].set_index(["dataset", "index"])["accuracy"]
    for (variant, dataset), group in base[base["variant"] != "paper"].groupby(
            ["variant", "dataset"], sort=True):
        values = group.set_index(["dataset", "index"])["accuracy"]
        both = pd.concat([values, paper], axis=1, join="inner").dropna()
        if both.empty:
            continue
        rows.append({"variant": variant, "dataset": dataset, "seeds": len(both),
                     "variant mean": both.iloc[:, 0].mean(), "paper mean": both.iloc[:, 1].mean(),
                     "difference": (both.iloc[:, 0] - both.iloc[:, 1]).mean()})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- formatting


def _number(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return f"{value:.{digits}f}"
    return str(value)


def _p(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3g}"


def markdown(frame: pd.DataFrame, formats: dict | None = None) -> str:
    """A DataFrame as a markdown table with fixed number formats (``formats``: column -> fn)."""
    formats = formats or {}
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |",
             "|" + "---|" * len(frame.columns)]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(formats.get(c, _number)(row[c]) for c in frame.columns)
                     + " |")
    return "\n".join(lines) + "\n"


def _mean_std(mean: float, std: float, seeds: int) -> str:
    if math.isnan(std):
        return f"{mean:.4f} ({seeds})"
    return f"{mean:.4f} ± {std:.4f} ({seeds})"


def per_dataset_markdown(audit: pd.DataFrame, model: str) -> str:
    """Rows = datasets, columns = rules (mean ± std (seeds)), then the published values."""
    part = audit[audit["model"] == model]
    rules = [rule for rule in RULES if rule in set(part["rule"])]
    header = ["dataset", *rules, "published 2019", "published cells", "Table 1 [LEAKY]"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for dataset, group in part.groupby("dataset", sort=True):
        by_rule = group.set_index("rule")
        cells = [_mean_std(by_rule.loc[r, "mean"], by_rule.loc[r, "std"], by_rule.loc[r, "seeds"])
                 if r in by_rule.index else "" for r in rules]
        first = group.iloc[0]
        chosen = first["published_cells"]
        lines.append("| " + " | ".join([dataset, *cells, _number(first["published"]),
                                        "n/a" if pd.isna(chosen) else str(int(chosen)),
                                        _number(first["table1_leaky"])]) + " |")
    return "\n".join(lines) + "\n"


def verdict_lines(summary: pd.DataFrame, agreement: pd.DataFrame) -> list[str]:
    """A plain statement of which rule the published numbers are consistent with, and how
    strongly the data say so."""
    lines = []
    for model in RECURRENT_MODELS:
        group = summary[summary["model"] == model]
        name = CLASSIFIER_NAMES[model]
        if "train-loss selected" not in set(group["rule"]):
            lines.append(f"- **{name}**: no dataset has all of {'/'.join(map(str, CELL_COUNTS))} "
                         "cells for a seed yet, so no cell-count rule can be judged.")
            continue
        by_rule = group.set_index("rule")
        n = int(by_rule["datasets"].max())
        honest = by_rule.drop(index=[ORACLE], errors="ignore")
        closest = honest["mean difference"].abs().idxmin()

        def describe(rule: str, rows=by_rule) -> str:
            row = rows.loc[rule]
            return (f"{rule}: published within our seeds' range on "
                    f"{row['published within our range']}/{row['datasets']} datasets, mean "
                    f"difference ours - published {row['mean difference']:+.4f}, Wilcoxon p "
                    f"{_p(row['wilcoxon p'])}")

        lines.append(f"- **{name}** ({n} dataset{'s' * (n != 1)} with a published value). "
                     + describe("train-loss selected") + "; "
                     + (describe(ORACLE) if ORACLE in by_rule.index else "no oracle") + ".")
        lines.append(f"  Of the honest rules, `{closest}` comes closest to the published numbers "
                     f"(mean difference {honest.loc[closest, 'mean difference']:+.4f}).")
        if ORACLE in by_rule.index:
            oracle = by_rule.loc[ORACLE, "mean difference"]
            selected = by_rule.loc["train-loss selected", "mean difference"]
            if abs(abs(oracle) - abs(selected)) < 1e-12:
                nearer = "neither is nearer"
            else:
                nearer = ("the leaky oracle is nearer" if abs(oracle) < abs(selected)
                          else "the training-loss rule is nearer")
            lines.append(f"  Between the paper's stated rule and the oracle, {nearer} "
                         f"({selected:+.4f} vs {oracle:+.4f}).")
        rows = agreement[agreement["model"] == model]
        if not rows.empty:
            row = rows.iloc[0]
            lines.append(
                f"  The published cell count equals our training-loss choice in "
                f"{row['published = our train-loss choice']:.0%} of {row['dataset-seed pairs']} "
                f"dataset-seed pairs (chance 33%) and is among our test-best cell counts in "
                f"{row['published among our test-best']:.0%} (chance "
                f"{row['chance (share of test-best cells)']:.0%}).")
    selected = summary[summary["rule"] == "train-loss selected"]
    total = int(selected["datasets"].max()) if not selected.empty else 0
    if total == 0:
        strength = "none yet: no dataset has the full set of cell counts."
    elif total < 10:
        # Without ties the smallest two-sided exact Wilcoxon p on n pairs is 2 / 2**n: every
        # difference with the same sign. Below 6 pairs that is above 0.05.
        floor = 2.0 / 2 ** total
        reach = ("cannot reach 0.05 at all" if floor > 0.05
                 else f"reaches at best p = {floor:.3g} (every dataset differing the same way)")
        strength = (f"Weak: {total} dataset{'s' * (total != 1)}. A two-sided Wilcoxon test on "
                    f"{total} pair{'s' * (total != 1)} {reach}, and the range of a few seeds "
                    "is narrow; these numbers can rule out gross differences only.")
    elif total < 30:
        strength = f"Moderate: {total} datasets."
    else:
        strength = f"Good: {total} datasets."
    lines += ["", f"Strength of the evidence: {strength}"]
    return lines


def completeness_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std (seeds) of every classifier of the paper variant on every dataset."""
    paper = runs[runs["variant"] == "paper"]
    if paper.empty:
        return pd.DataFrame()
    classifiers = sorted(set(paper["classifier"]), key=lambda c: (
        c != "FCN", c.startswith("A"), int(c.rsplit("-", 1)[1]) if c[-1].isdigit() else 0))
    rows = []
    for dataset, group in paper.groupby("dataset", sort=True):
        row = {"dataset": dataset}
        for classifier in classifiers:
            values = group.loc[group["classifier"] == classifier, "accuracy"]
            std = values.std(ddof=1) if len(values) > 1 else math.nan
            row[classifier] = _mean_std(values.mean(), std, len(values)) if len(values) else ""
        rows.append(row)
    return pd.DataFrame(rows)


def save_svg(figure, path: Path) -> None:
    """An SVG with no date and fixed element ids, so the same figure gives the same bytes."""
    import matplotlib
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": SVG_SALT, "svg.fonttype": "none"}):
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(figure)
    write_text_atomic(path, buffer.getvalue())


# --------------------------------------------------------------------------- the report


EARLIER_RUN = "benchmarks/results/paper_settings"  # one seed, 16 datasets (superseded)


def earlier_run_lines(root: Path, tables: dict[str, pd.DataFrame]) -> list[str]:
    """The audit's rule summary and cell-choice agreement on the earlier single-seed benchmark."""
    runs = runs_from_logs(root / EARLIER_RUN)
    if runs.empty:
        return []
    audit = audit_table(runs, tables)
    summary = rule_summary(audit)
    agreement = cell_choice_agreement(runs, tables)
    lines = ["## Earlier run: one seed (superseded, kept as context)", "",
             f"The same audit on `{EARLIER_RUN}/` (seed 0 only, {runs['dataset'].nunique()} "
             "datasets, LSTM-FCN and ALSTM-FCN at the same settings, H200, JAX). With one seed, "
             "`published within our range` means equal to our single value.", ""]
    if not summary.empty:
        lines += [markdown(summary, {"wilcoxon p": _p, "W/T/L": str}), ""]
    if not agreement.empty:
        lines += [markdown(agreement, {"chance (1/3)": lambda v: f"{v:.3f}"}), ""]
    return lines


def build_report(results_dir: str | os.PathLike, published_dir: str | os.PathLike,
                 root: str | os.PathLike | None = None
                 ) -> tuple[str, pd.DataFrame, pd.DataFrame | None]:
    """The report's markdown, the audit table and the central claim's accuracy table.

    ``root`` (the repository) adds the earlier single-seed benchmark as context.
    """
    results_dir, published_dir = Path(results_dir), Path(published_dir)
    runs = load_runs(results_dir)
    tables = published_tables(published_dir)
    audit = audit_table(runs, tables)
    summary = rule_summary(audit) if not audit.empty else pd.DataFrame()
    summary_table1 = rule_summary(audit, "table1_leaky") if not audit.empty else pd.DataFrame()
    agreement = cell_choice_agreement(runs, tables)
    common, claim_summary, pairwise = claim_tables(runs, published_dir)
    deviations = deviation_table(runs)

    out = ["# Reproduction audit", "",
           "Generated by `python benchmarks/reproduce.py --report-only` from the results files "
           "under `Results/ours/seeds/` (published train/test split, one file per classifier, "
           "dataset and seed). Protocol `train-loss`, 2000 epochs, batch 128, Adam 1e-3, "
           "sample-wise z-normalisation, BatchNorm statistics recalibrated after training, "
           "unless a section says otherwise.", ""]
    paper = runs[runs["variant"] == "paper"]
    out += ["## What stands behind the numbers", "",
            f"{len(runs)} runs in all; {len(paper)} at the paper's settings on "
            f"{paper['dataset'].nunique()} dataset(s). Test accuracy, mean ± std over seeds "
            "(number of seeds), per dataset and classifier:", ""]
    completeness = completeness_table(runs)
    out += [markdown(completeness) if not completeness.empty else "(none yet)\n"]

    out += ["## Cell-count selection rules against the published numbers", "",
            "Our test accuracy, mean ± std over seeds (number of seeds), for each rule that picks "
            "the cell count (8, 64 or 128) per dataset and seed: a fixed count; the count with "
            "the lowest training loss (the papers' stated rule, ties to the smaller count); the "
            "mean over the three counts; the count the authors published as chosen "
            "(`Results/transcribed/lstmfcn_train_loss_model_chosen.csv`); and the **oracle**, "
            "the best *test* accuracy over the three counts, which uses test labels to choose "
            "and is labelled `[LEAKY]`. `published 2019` is the authors' training-loss table "
            "(`Results/LSTM-FCN/train_loss_old_datasets.csv`); `Table 1 [LEAKY]` is the 2017 "
            "paper's test-checkpoint table (`Results/transcribed/lstmfcn_test_checkpoint_"
            "scores.csv`).", ""]
    for model in RECURRENT_MODELS:
        if (audit["model"] == model).any() if not audit.empty else False:
            out += [f"### {CLASSIFIER_NAMES[model]}", "", per_dataset_markdown(audit, model)]
    formats = {"wilcoxon p": _p, "W/T/L": str}
    if not summary.empty:
        out += ["### Each rule against the published 2019 column", "",
                f"`published within our range`: the published value lies in [min, max] of our "
                f"seeds (tolerance {TOLERANCE:g}). Mean difference = ours - published. W/T/L and "
                "the two-sided Wilcoxon signed-rank test compare our seed mean with the "
                "published value over the datasets.", "", markdown(summary, formats)]
    if not summary_table1.empty:
        table1 = summary_table1.rename(columns={"published mean": "Table 1 mean",
                                                "published within our range":
                                                "Table 1 within our range"})
        out += ["### Each rule against the 2017 Table 1 [LEAKY test-checkpoint]", "",
                markdown(table1, formats)]
    if not agreement.empty:
        out += ["### Which cell count did the authors publish?", "",
                "Per dataset and seed: is the published cell count the one with our lowest "
                "training loss, and is it among the cell counts with our best test accuracy? "
                "Chance levels assume the published count is unrelated to ours.", "",
                markdown(agreement, {"chance (1/3)": lambda v: f"{v:.3f}"})]
    if not summary.empty:
        out += ["### Verdict (generated from the tables above)", "",
                *verdict_lines(summary, agreement), ""]

    out += ["## The papers' central claim: LSTM-FCN and ALSTM-FCN against FCN and the baselines",
            ""]
    if common.empty:
        out += ["No dataset has LSTM-FCN, ALSTM-FCN and FCN results yet.", ""]
    else:
        names = ", ".join(sorted(runs.set_index(runs["dataset"].map(statistics.dataset_key))
                                 ["dataset"].loc[common.index].unique()))
        out += [f"Ours: mean over seeds (recurrent models with the training-loss cell rule; "
                f"FCN trained by us with the same seeds and settings). Published: the 14 columns "
                f"of the authors' training-loss table. {len(common)} datasets: {names}.", "",
                markdown(claim_summary.rename_axis("classifier").reset_index()), "",
                "Ours against FCN and the strongest published columns (datasets as pairs):", "",
                markdown(pairwise, {"wilcoxon p": _p})]
        seeds = paired_seed_comparison(runs)
        if not seeds.empty:
            out += ["The same against our FCN seed by seed (same dataset, same seed):", "",
                    markdown(seeds, {"wilcoxon p": _p, "W/T/L against FCN (ours)": str}), ""]
        if len(common) >= 3:
            figure = statistics.critical_difference_diagram(
                common, "wilcoxon-holm", title=f"{len(common)} datasets")
            save_svg(figure, results_dir / "report" / "cd_diagram.svg")
            out += ["Critical-difference diagram (aeon, Wilcoxon-Holm cliques, alpha 0.05):", "",
                    "![CD diagram](cd_diagram.svg)", ""]
        else:
            out += ["(A critical-difference diagram needs at least 3 datasets.)", ""]

    if root is not None:
        out += earlier_run_lines(Path(root), tables)

    out += ["## Deviation study: the project's departures from the 2017 code", ""]
    if deviations.empty:
        out += ["Not run yet (`python benchmarks/reproduce.py --study deviations`).", ""]
    else:
        overall = deviations.groupby("variant", sort=True).agg(
            datasets=("dataset", "count"), mean_difference=("difference", "mean"))
        out += ["LSTM-FCN, 8 cells: each variant switches one deviation off; `paper` is the "
                "main study's run with the same seed. Difference = variant - paper.", "",
                markdown(deviations), "", markdown(overall.reset_index()), ""]
    return "\n".join(out) + "\n", audit, common


def write_report(results_dir: str | os.PathLike, published_dir: str | os.PathLike,
                 root: str | os.PathLike | None = None) -> list[Path]:
    """Write the accuracy summaries and ``report/`` (see the module docstring); returns paths."""
    results_dir = Path(results_dir)
    if not any(iter_results_files(results_dir)):
        raise DatasetNotFoundError(f"{results_dir}: no results files yet; run the study first")
    paths = write_accuracy_summaries(results_dir)
    report_dir = results_dir / "report"
    (report_dir / "cd_diagram.svg").unlink(missing_ok=True)  # rewritten when there is one
    text, audit, common = build_report(results_dir, published_dir, root)
    write_text_atomic(report_dir / "reproduction.md", text)
    write_text_atomic(report_dir / "audit.csv", audit.to_csv(index=False, float_format="%.6f",
                                                             lineterminator="\n"))
    paths += [report_dir / "reproduction.md", report_dir / "audit.csv"]
    if (report_dir / "cd_diagram.svg").exists():
        paths.append(report_dir / "cd_diagram.svg")
    return paths


__all__ = ["VARIANTS", "classifier_name", "adopt_logs", "write_resampled_dataset", "load_runs",
           "audit_table", "rule_summary", "cell_choice_agreement", "claim_tables",
           "paired_seed_comparison",
           "deviation_table", "build_report", "write_report"]

