"""Statistics for comparing classifiers over many datasets, and readers for the result tables.

Everything here works on one layout: a ``pandas.DataFrame`` of test accuracies with one row per
dataset and one column per classifier (fractions in [0, 1]). The numbers follow the original
LSTM-FCN repository's ``Results/cd_diagram.py`` and ``Results/p_value.py`` (Karim et al., IEEE
Access 2018; the 2019 training-loss table) so that its published figures can be reproduced, and
the critical-difference diagrams come from aeon (``aeon.visualisation.plot_critical_difference``):

* ranks per dataset, highest accuracy = rank 1, ties get the minimum rank (the original's
  ``rank(method='min', ascending=False)``);
* the mean per-class error, MPCE = mean over datasets of (1 - accuracy) / n_classes
  (Wang, Yan & Oates, IJCNN 2017);
* wins / ties / losses and two-sided Wilcoxon signed-rank p-values (``scipy.stats.wilcoxon``,
  ``zero_method='wilcox'``, with the continuity correction that reproduces the published
  1.12e-2 for ALSTM-FCN vs LSTM-FCN);
* the Dunn-Sidak corrected alpha 1 - (1 - alpha)^(1/m);
* the Nemenyi critical difference q_alpha(k) * sqrt(k (k + 1) / (6 N)) (Demsar, JMLR 2006), with
  q_alpha(k) = studentized_range.ppf(1 - alpha, k, inf) / sqrt(2);
* the two diagrams: Nemenyi cliques (as the original, which used Orange) and Wilcoxon-Holm
  cliques (Benavoli et al., JMLR 2016; the field's current practice, as in aeon).

The readers turn the published tables under ``Results/`` and our training logs under ``logs/``
into such columns, keyed by dataset through the registry (``utils.constants.resolve_dataset``),
so that UCR 2015 names (``50words``, ``Cricket_X``) meet their UCR 2018 names.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats

from utils.constants import find_dataset, name_key
from utils.errors import ConfigurationError, DatasetError, DatasetNotFoundError
from utils.experiments import LOG_COLUMNS  # the columns the training loop writes

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LEAKY_SUFFIX = " [LEAKY test-checkpoint]"
"""Appended to every column whose checkpoint was chosen with test data (test leakage)."""

LEAKY_PROTOCOL = "test-checkpoint"

# Significance levels aeon's Nemenyi table (used for the Nemenyi diagram) knows.
SUPPORTED_ALPHAS = (0.01, 0.05, 0.1)

# --------------------------------------------------------------------------------------------
# Dataset names
# --------------------------------------------------------------------------------------------

# The registry (utils.constants) knows every 2015 spelling of the published tables, e.g.
# "50words", "Lighting7", "SonyAIBORobot Surface"; names it does not know join as written.
normalise_name = name_key


def canonical_dataset_name(name: str) -> str:
    """The UCR 2018 name of a dataset written under any known spelling.

    Parameters
    ----------
    name : str
        A dataset name as a results table writes it: a 2018 name (``FiftyWords``), a 2015 alias
        (``50words``, ``Cricket_X``, ``car``) or a variant with blanks (``SonyAIBORobot Surface``).

    Returns
    -------
    str
        The registry's name when the registry knows it, else ``name`` without surrounding
        blanks.
    """
    text = str(name).strip()
    record = find_dataset(text)
    return record.name if record is not None else text


def dataset_key(name: str) -> str:
    """The join key of a dataset: its canonical name, normalised (see ``normalise_name``)."""
    return normalise_name(canonical_dataset_name(name))


def registry_class_count(name: str) -> int | None:
    """The number of classes the registry records for ``name``, or None if it does not know."""
    record = find_dataset(str(name).strip())
    count = getattr(record, "n_classes", None) if record is not None else None
    return int(count) if count else None


# --------------------------------------------------------------------------------------------
# Statistics on an accuracy table (rows = datasets, columns = classifiers)
# --------------------------------------------------------------------------------------------


def rank_table(accuracies: pd.DataFrame, ties: str = "min") -> pd.DataFrame:
    """Rank the classifiers on every dataset, highest accuracy first.

    Parameters
    ----------
    accuracies : DataFrame, shape (n_datasets, n_classifiers)
        Test accuracies; no missing values.
    ties : {"min", "average"}, default "min"
        How tied accuracies are ranked: ``"min"`` gives each the best of their ranks, as the
        original ``cd_diagram.py`` did; ``"average"`` is the usual Friedman/Demsar convention
        (and aeon's).

    Returns
    -------
    DataFrame, shape (n_datasets, n_classifiers)
        Rank 1 = most accurate on that dataset.
    """
    if ties not in ("min", "average"):
        raise ConfigurationError(f"ties must be 'min' or 'average', got {ties!r}")
    _require_complete(accuracies)
    return accuracies.rank(axis=1, method=ties, ascending=False)


def mean_ranks(accuracies: pd.DataFrame, ties: str = "min") -> pd.Series:
    """Arithmetic mean rank of every classifier over the datasets (see ``rank_table``)."""
    return rank_table(accuracies, ties).mean(axis=0)


def geometric_mean_ranks(accuracies: pd.DataFrame, ties: str = "min") -> pd.Series:
    """Geometric mean rank of every classifier over the datasets (the original's "Geo mean")."""
    return np.exp(np.log(rank_table(accuracies, ties)).mean(axis=0))


def mean_per_class_error(accuracies: pd.DataFrame, class_counts: pd.Series) -> pd.Series:
    """Mean per-class error (MPCE) of every classifier (Wang, Yan & Oates, IJCNN 2017).

    Parameters
    ----------
    accuracies : DataFrame, shape (n_datasets, n_classifiers)
        Test accuracies, indexed by dataset.
    class_counts : Series
        Number of classes of each dataset, indexed like ``accuracies``.

    Returns
    -------
    Series, shape (n_classifiers,)
        Mean over datasets of (1 - accuracy) / n_classes.
    """
    counts = class_counts.reindex(accuracies.index)
    if counts.isna().any():
        missing = ", ".join(map(str, counts.index[counts.isna()]))
        raise DatasetError(f"no class count for dataset(s) {missing}: MPCE needs one per dataset")
    return (1.0 - accuracies).div(counts.astype(float), axis=0).mean(axis=0)


def wins_ties_losses(
    candidate: pd.Series, reference: pd.Series, tolerance: float = 1e-9
) -> tuple[int, int, int]:
    """Count the datasets where ``candidate`` beats, ties with, or loses to ``reference``.

    Only datasets where both have a value are counted; differences within ``tolerance``
    (default 1e-9) are ties.
    """
    both = pd.concat([candidate, reference], axis=1, join="inner").dropna()
    difference = both.iloc[:, 0] - both.iloc[:, 1]
    wins = int((difference > tolerance).sum())
    losses = int((difference < -tolerance).sum())
    return wins, len(difference) - wins - losses, losses


def wilcoxon_p_value(
    first: Sequence[float] | pd.Series,
    second: Sequence[float] | pd.Series,
    zero_method: str = "wilcox",
    correction: bool = True,
) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired accuracies (``scipy.stats.wilcoxon``).

    Parameters
    ----------
    first, second : array-like, shape (n_datasets,)
        Paired accuracies of two classifiers.
    zero_method : str, default "wilcox"
        ``"wilcox"`` drops datasets with equal accuracy, as the original ``p_value.py``.
    correction : bool, default True
        Continuity correction of the normal approximation; with it the original table gives the
        published 1.12e-2 for ALSTM-FCN vs LSTM-FCN (0.011085 without).

    Returns
    -------
    float
        The p-value; 1.0 when the two agree on every dataset (nothing to test), NaN when fewer
        than two datasets are paired.
    """
    first_values = np.asarray(first, dtype=float)
    second_values = np.asarray(second, dtype=float)
    if first_values.shape != second_values.shape:
        raise ConfigurationError(
            f"paired samples differ in length: {first_values.shape} vs {second_values.shape}"
        )
    if first_values.size < 2:
        return math.nan
    if np.allclose(first_values, second_values, rtol=0.0, atol=1e-12):
        return 1.0
    result = stats.wilcoxon(
        first_values, second_values, zero_method=zero_method, correction=correction
    )
    return float(result.pvalue)


def wilcoxon_p_matrix(accuracies: pd.DataFrame, **wilcoxon_options) -> pd.DataFrame:
    """Pairwise two-sided Wilcoxon p-values of every pair of columns (see ``wilcoxon_p_value``).

    Returns
    -------
    DataFrame, shape (n_classifiers, n_classifiers)
        Symmetric, labelled by classifier; the diagonal is NaN (no self-comparison).
    """
    _require_complete(accuracies)
    labels = list(accuracies.columns)
    matrix = pd.DataFrame(np.nan, index=labels, columns=labels)
    for row, first in enumerate(labels):
        for second in labels[row + 1 :]:
            p_value = wilcoxon_p_value(accuracies[first], accuracies[second], **wilcoxon_options)
            matrix.loc[first, second] = matrix.loc[second, first] = p_value
    return matrix


def dunn_sidak_alpha(alpha: float, n_comparisons: int) -> float:
    """Per-test significance level 1 - (1 - alpha)^(1/m) for a family of m tests (Sidak 1967).

    The original README compared its p-values with 0.00465 = ``dunn_sidak_alpha(0.05, 11)``.
    """
    _check_alpha(alpha)
    if n_comparisons < 1:
        raise ConfigurationError(f"n_comparisons must be at least 1, got {n_comparisons}")
    return 1.0 - (1.0 - alpha) ** (1.0 / n_comparisons)


def nemenyi_q(n_classifiers: int, alpha: float = 0.05) -> float:
    """Critical value q_alpha of the Nemenyi test for k classifiers (Demsar, JMLR 2006, Table 5).

    It is the studentized range quantile for k groups and infinite degrees of freedom, divided by
    sqrt(2): ``studentized_range.ppf(1 - alpha, k, inf) / sqrt(2)`` (3.3536 for k = 14).
    """
    _check_alpha(alpha)
    if n_classifiers < 2:
        raise ConfigurationError(
            f"the Nemenyi test needs at least 2 classifiers, got {n_classifiers}"
        )
    return float(stats.studentized_range.ppf(1.0 - alpha, n_classifiers, np.inf) / math.sqrt(2.0))


def nemenyi_critical_difference(n_classifiers: int, n_datasets: int, alpha: float = 0.05) -> float:
    """Nemenyi critical difference of mean ranks, q_alpha * sqrt(k (k + 1) / (6 N)).

    Two classifiers whose mean ranks differ by more than this are significantly different
    (Demsar, JMLR 2006). The original's 14 classifiers on 85 datasets give 2.152.
    """
    if n_datasets < 1:
        raise ConfigurationError(f"n_datasets must be at least 1, got {n_datasets}")
    spread = math.sqrt(n_classifiers * (n_classifiers + 1) / (6.0 * n_datasets))
    return nemenyi_q(n_classifiers, alpha) * spread


def count_at_least_best(candidate: pd.Series, others: pd.DataFrame) -> int:
    """Datasets where ``candidate`` is at least as accurate as the best of ``others``.

    The "Count" row of the original tables (19 for LSTM-FCN, 14 for ALSTM-FCN against the 12
    baselines of the training-loss table).
    """
    best = others.reindex(candidate.index).max(axis=1)
    return int((candidate >= best - 1e-12).sum())


def critical_difference_diagram(
    accuracies: pd.DataFrame, test: str, alpha: float = 0.05, title: str | None = None
) -> Figure:
    """Critical-difference diagram drawn by ``aeon.visualisation.plot_critical_difference``.

    Parameters
    ----------
    accuracies : DataFrame, shape (n_datasets, n_classifiers)
        At least 3 classifiers (aeon runs a Friedman test first) and 2 datasets.
    test : {"nemenyi", "wilcoxon-holm"}
        ``"nemenyi"``: cliques of classifiers within the Nemenyi critical difference, as the
        original's Orange diagram; ``"wilcoxon-holm"``: cliques from pairwise Wilcoxon tests with
        Holm's correction (aeon's default, Benavoli et al. 2016).
    alpha : float, default 0.05
        One of 0.01, 0.05, 0.1 (the levels of aeon's Nemenyi table).
    title : str, optional
        Drawn above the diagram.

    Returns
    -------
    matplotlib.figure.Figure
        Positions are mean ranks with ties averaged (aeon's convention).
    """
    from aeon.visualisation import plot_critical_difference

    _check_alpha(alpha)
    _require_complete(accuracies)
    n_datasets, n_classifiers = accuracies.shape
    if n_classifiers < 3 or n_datasets < 2:
        raise ConfigurationError(
            f"a critical-difference diagram needs at least 3 classifiers and 2 datasets, "
            f"got {n_classifiers} and {n_datasets}"
        )
    options = {"nemenyi": {"test": "nemenyi"}, "wilcoxon-holm": {"test": "wilcoxon"}}
    if test not in options:
        raise ConfigurationError(f"test must be 'nemenyi' or 'wilcoxon-holm', got {test!r}")
    figure, axes = plot_critical_difference(
        accuracies.to_numpy(dtype=float),
        [str(label) for label in accuracies.columns],
        alpha=alpha,
        correction="holm",
        **options[test],
    )
    if title:
        figure.suptitle(title, fontsize=10, y=1.02)
    return figure


# --------------------------------------------------------------------------------------------
# Published reference tables (Results/)
# --------------------------------------------------------------------------------------------


@dataclass
class AccuracyColumn:
    """One classifier's accuracies per dataset, from a published table or from our logs.

    Attributes
    ----------
    key : str
        Short identifier used on the command line (``lstmfcn-2019``, ``bakeoff-hc2``).
    label : str
        Column name in the report; leaky columns end with ``LEAKY_SUFFIX``.
    source : str
        File it was read from (relative to ``Results/`` or ``logs/``).
    accuracies : Series
        Mean test accuracy (fraction) indexed by dataset key (``dataset_key``).
    std : Series, optional
        Standard deviation over seeds (our columns only).
    runs : Series, optional
        Number of successful seeds per dataset (our columns only).
    names : dict
        Dataset key -> display name (the 2018 name where known).
    groups : tuple of str
        Group names that select it with ``--references`` (e.g. ``train-loss-table``).
    leaky : bool
        True when the checkpoint was chosen with test data.
    """

    key: str
    label: str
    source: str
    accuracies: pd.Series
    std: pd.Series | None = None
    runs: pd.Series | None = None
    names: dict[str, str] = field(default_factory=dict)
    groups: tuple[str, ...] = ()
    leaky: bool = False


TRAIN_LOSS_TABLE = "LSTM-FCN/train_loss_old_datasets.csv"
TEST_CHECKPOINT_TABLE = "transcribed/lstmfcn_test_checkpoint_scores.csv"
DATASET_SUMMARY_TABLE = "LSTM-FCN/history_utils/summary_of_dataset.csv"

# column of train_loss_old_datasets.csv -> (key, label in our report)
_TRAIN_LOSS_COLUMNS = {
    "LSTM-FCN": ("lstmfcn-2019", "LSTM-FCN (published)"),
    "ALSTM-FCN": ("alstmfcn-2019", "ALSTM-FCN (published)"),
    "WEASEL": ("weasel", "WEASEL"),
    "1-NN DTW CV": ("1nn-dtw-cv", "1-NN DTW CV"),
    "1-NN DTW": ("1nn-dtw", "1-NN DTW"),
    "BOSS": ("boss", "BOSS"),
    "Learning Shapelet (LS)": ("ls", "LS"),
    "TSBF": ("tsbf", "TSBF"),
    "ST": ("st", "ST"),
    "EE (PROP)": ("ee", "EE (PROP)"),
    "COTE (ensemble)": ("cote", "COTE"),
    "MLP": ("mlp-wang", "MLP (Wang 2017)"),
    "CNN": ("fcn-wang", "FCN (Wang 2017)"),
    "ResNet": ("resnet-wang", "ResNet (Wang 2017)"),
}

# column of lstmfcn_test_checkpoint_scores.csv -> (key, label)
_TEST_CHECKPOINT_COLUMNS = {
    "lstm_fcn": ("lstmfcn-paper-leaky", "LSTM-FCN (paper)" + LEAKY_SUFFIX),
    "refined_lstm_fcn": ("refined-lstmfcn-paper-leaky", "Refined LSTM-FCN (paper)" + LEAKY_SUFFIX),
    "alstm_fcn": ("alstmfcn-paper-leaky", "ALSTM-FCN (paper)" + LEAKY_SUFFIX),
    "refined_alstm_fcn": (
        "refined-alstmfcn-paper-leaky",
        "Refined ALSTM-FCN (paper)" + LEAKY_SUFFIX,
    ),
    "existing_sota": ("sota-paper", "Existing SOTA (paper Table 1)"),
}

DEFAULT_REFERENCES = ("lstmfcn-2019", "alstmfcn-2019", "fcn-wang", "resnet-wang")
"""Published columns compared with our logs when ``--references`` is not given."""

REFERENCE_ONLY_DEFAULT = ("train-loss-table",)
"""The original's 14-column training-loss table: what ``--reference-only`` reproduces."""


def _read_csv(path: Path, **options) -> pd.DataFrame:
    """``pandas.read_csv`` with our errors: a missing or unreadable file names itself."""
    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: published results file not found")
    try:
        return pd.read_csv(path, **options)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: cannot read as CSV ({error})") from error


def _column(
    key: str,
    label: str,
    source: str,
    names: Iterable[str],
    values: Iterable[float],
    groups: tuple[str, ...],
    leaky: bool = False,
) -> AccuracyColumn:
    """Build an ``AccuracyColumn`` keyed by dataset, dropping missing values."""
    accuracies: dict[str, float] = {}
    display: dict[str, str] = {}
    for name, value in zip(names, values, strict=True):
        if pd.isna(value):
            continue
        join_key = dataset_key(name)
        accuracies[join_key] = float(value)
        display[join_key] = canonical_dataset_name(name)
    series = pd.Series(accuracies, dtype=float, name=label)
    return AccuracyColumn(key, label, source, series, names=display, groups=groups, leaky=leaky)


def _train_loss_columns(results_dir: Path) -> list[AccuracyColumn]:
    table = _read_csv(results_dir / TRAIN_LOSS_TABLE)
    columns = []
    for column, (key, label) in _TRAIN_LOSS_COLUMNS.items():
        paper = ("paper",) if key in ("lstmfcn-2019", "alstmfcn-2019") else ()
        columns.append(
            _column(key, label, TRAIN_LOSS_TABLE, table["Dataset"], table[column],
                    ("train-loss-table", *paper))
        )
    return columns


def _test_checkpoint_columns(results_dir: Path) -> list[AccuracyColumn]:
    table = _read_csv(results_dir / TEST_CHECKPOINT_TABLE)
    return [
        _column(key, label, TEST_CHECKPOINT_TABLE, table["name"], table[column],
                ("leaky",), leaky=key.endswith("-leaky"))
        for column, (key, label) in _TEST_CHECKPOINT_COLUMNS.items()
    ]


def _bakeoff_columns(results_dir: Path) -> list[AccuracyColumn]:
    # Column "0" is the original UCR train/test split, the one our runs use.
    columns = []
    for path in sorted((results_dir / "peers" / "tsml-eval-bakeoff2023").glob("*/*_accuracy.csv")):
        table = _read_csv(path)
        name = path.name.removesuffix("_accuracy.csv")
        source = str(path.relative_to(results_dir))
        columns.append(
            _column(f"bakeoff-{name.lower()}", f"{name} (bake off, split 0)", source,
                    table.iloc[:, 0], table["0"], ("bakeoff",))
        )
    return columns


def _dl4tsc_columns(results_dir: Path) -> list[AccuracyColumn]:
    source = "peers/dl-4-tsc/results/results-ucr-128.csv"
    table = _read_csv(results_dir / source)
    means = table.groupby(["classifier_name", "dataset_name"])["accuracy"].mean()
    display = {"fcn": "FCN", "resnet": "ResNet", "mlp": "MLP", "cnn": "Time-CNN",
               "encoder": "Encoder", "mcdcnn": "MCDCNN", "tlenet": "t-LeNet", "twiesn": "TWIESN"}
    columns = []
    for classifier, per_dataset in means.groupby(level=0):
        label = f"{display.get(classifier, classifier)} (dl-4-tsc, mean of 5)"
        columns.append(
            _column(f"dl4tsc-{classifier}", label, source,
                    per_dataset.index.get_level_values(1), per_dataset.to_numpy(), ("dl4tsc",))
        )
    return columns


def _dl4tsc_old_columns(results_dir: Path) -> list[AccuracyColumn]:
    source = "peers/dl-4-tsc/results/results-uea-avg-std.csv"
    table = _read_csv(results_dir / source)
    # the file ends with two summary rows ("Average Rank", "Wins") that are not datasets
    table = table[~table.iloc[:, 0].map(normalise_name).isin(["averagerank", "wins"])]
    columns = []
    for column in table.columns[1:]:
        # cells are "mean(std)" in percent
        means = table[column].astype(str).str.extract(r"^\s*([0-9.]+)")[0].astype(float) / 100.0
        columns.append(
            _column(f"dl4tsc85-{normalise_name(column)}", f"{column} (dl-4-tsc 2015, mean of 10)",
                    source, table.iloc[:, 0], means, ("dl4tsc-85",))
        )
    return columns


def _inceptiontime_columns(results_dir: Path) -> list[AccuracyColumn]:
    ensemble_source = "peers/InceptionTime/results-InceptionTime-128.csv"
    single_source = "peers/InceptionTime/results-inception-128.csv"
    ensemble = _read_csv(results_dir / ensemble_source)
    single = _read_csv(results_dir / single_source).groupby("dataset_name")["accuracy"].mean()
    return [
        _column("inceptiontime", "InceptionTime (Fawaz 2020)", ensemble_source,
                ensemble["dataset_name"], ensemble["accuracy"], ("inceptiontime",)),
        _column("inception", "Inception (Fawaz 2020, mean of 5)", single_source,
                single.index, single.to_numpy(), ("inceptiontime",)),
    ]


def _lite_columns(results_dir: Path) -> list[AccuracyColumn]:
    source = "peers/LITE/results.csv"
    table = _read_csv(results_dir / source)
    return [
        _column(f"lite-{normalise_name(column)}", f"{column} (LITE table)", source,
                table["dataset"], table[column], ("lite",))
        for column in table.columns[1:]
    ]


_REFERENCE_READERS = (
    _train_loss_columns,
    _test_checkpoint_columns,
    _bakeoff_columns,
    _dl4tsc_columns,
    _dl4tsc_old_columns,
    _inceptiontime_columns,
    _lite_columns,
)


def load_references(
    results_dir: Path | str, selection: Sequence[str] = ("all",)
) -> list[AccuracyColumn]:
    """Read the published columns named by ``selection`` from ``results_dir``.

    Parameters
    ----------
    results_dir : path
        The ``Results/`` folder (see its README for the files and their sources).
    selection : sequence of str, default ("all",)
        Column keys (``lstmfcn-2019``, ``fcn-wang``, ``bakeoff-hc2``, ``dl4tsc-fcn``, ...) or
        group names (``paper``, ``train-loss-table``, ``leaky``, ``bakeoff``, ``dl4tsc``,
        ``dl4tsc-85``, ``inceptiontime``, ``lite``, ``all``), in the order wanted.

    Returns
    -------
    list of AccuracyColumn
        In the order of ``selection``, without repeats.

    Raises
    ------
    ConfigurationError
        If a name is neither a key nor a group (the message lists the valid ones).
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise DatasetNotFoundError(f"{results_dir}: results folder not found")
    wanted = [name.strip().lower() for name in selection if name.strip()]
    catalogue = [column for reader in _REFERENCE_READERS for column in reader(results_dir)]
    by_key = {column.key: column for column in catalogue}
    groups = {group for column in catalogue for group in column.groups} | {"all"}
    unknown = [name for name in wanted if name not in by_key and name not in groups]
    if unknown:
        raise ConfigurationError(
            f"--references: unknown name(s) {', '.join(unknown)}; groups: "
            f"{', '.join(sorted(groups))}; columns: {', '.join(by_key)}"
        )
    chosen: dict[str, AccuracyColumn] = {}
    for name in wanted:
        for column in catalogue:
            if name in (column.key, "all") or name in column.groups:
                chosen.setdefault(column.key, column)
    return list(chosen.values())


def published_class_counts(results_dir: Path | str) -> pd.Series:
    """Class counts of the 85 old UCR datasets from the original's ``summary_of_dataset.csv``."""
    table = _read_csv(Path(results_dir) / DATASET_SUMMARY_TABLE)
    return pd.Series(
        table["Classes"].to_numpy(dtype=float), index=[dataset_key(n) for n in table["Dataset"]]
    )


def class_counts(keys: Iterable[str], names: dict[str, str], results_dir: Path | str) -> pd.Series:
    """Class count of every dataset key: from the registry, else from the published table."""
    published = published_class_counts(results_dir)
    counts = {}
    for key in keys:
        count = registry_class_count(names.get(key, key))
        counts[key] = float(count) if count else published.get(key, np.nan)
    return pd.Series(counts, dtype=float)


# --------------------------------------------------------------------------------------------
# Our training logs (logs/)
# --------------------------------------------------------------------------------------------

_REQUIRED_LOG_COLUMNS = ("dataset", "model", "cells", "seed", "protocol", "test_accuracy", "error")
_LOG_FILE = re.compile(r"^(?P<model>.+)_(?P<cells>\d+|selected)_cells_results\.csv$")


@dataclass
class OurResults:
    """Our runs read from ``logs/``, averaged over seeds per model / cells / protocol.

    Attributes
    ----------
    columns : list of AccuracyColumn
        One per (model, cell size or "selected cells", protocol); leaky ones are labelled.
    failed_runs : DataFrame
        Rows with a non-empty ``error`` (file, dataset, model, cells, seed, error); ignored.
    duplicate_runs : int
        Successful rows that repeat a (file, dataset, seed, protocol); the last one is kept.
    files : list of str
        The log files read.
    """

    columns: list[AccuracyColumn]
    failed_runs: pd.DataFrame
    duplicate_runs: int
    files: list[str]


def _is_true(value) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes")


def _read_log(path: Path) -> pd.DataFrame:
    table = _read_csv(path, dtype={"error": str, "protocol": str, "dataset": str, "model": str},
                      keep_default_na=False, na_values=[""])
    missing = [name for name in _REQUIRED_LOG_COLUMNS if name not in table.columns]
    if missing:
        raise DatasetError(
            f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(LOG_COLUMNS)}"
        )
    table["error"] = table["error"].fillna("").astype(str).str.strip()
    table["file"] = path.name
    table["selected"] = _LOG_FILE.match(path.name)["cells"] == "selected"
    return table


def _validate_accuracies(table: pd.DataFrame, logs_dir: Path) -> pd.Series:
    """Numeric accuracies; an empty cell (a ``--mode train`` run not yet evaluated) is NaN."""
    text = table["test_accuracy"].fillna("").astype(str).str.strip()
    accuracy = pd.to_numeric(text.where(text != ""), errors="coerce")
    bad = (text != "") & (accuracy.isna() | (accuracy < 0) | (accuracy > 1))
    if bad.any():
        row = table[bad].iloc[0]
        raise DatasetError(
            f"{logs_dir / row['file']}: test_accuracy {row['test_accuracy']!r} for "
            f"{row['dataset']} is not a fraction in [0, 1]"
        )
    return accuracy


def _our_label(row: pd.Series, show_protocol: bool) -> str:
    cells = "selected cells" if row["selected"] else f"{row['cells']} cells"
    protocol = row["protocol"]
    if row["is_leaky"]:
        suffix = LEAKY_SUFFIX if protocol == LEAKY_PROTOCOL else f" [LEAKY {protocol}]"
        return f"{row['model']} ({cells}){suffix}"
    return f"{row['model']} ({cells}, {protocol})" if show_protocol else f"{row['model']} ({cells})"


def load_our_results(logs_dir: Path | str) -> OurResults:
    """Read every ``<model>_<cells>_cells_results.csv`` in ``logs_dir`` and average over seeds.

    Parameters
    ----------
    logs_dir : path
        The training loop's log folder. ``<model>_selected_cells_results.csv`` (cell size chosen
        per dataset by the lowest training loss, the paper's protocol) becomes the column
        ``"<model> (selected cells)"``; each fixed cell size its own column.

    Returns
    -------
    OurResults
        Failed rows (non-empty ``error``) are set aside and listed; rows whose protocol is
        ``test-checkpoint`` (or ``leaky`` is true) form separate columns labelled
        ``LEAKY_SUFFIX``, never averaged with honest rows.

    Raises
    ------
    ConfigurationError
        If the folder holds no log files.
    DatasetError
        If a log misses a column, has an accuracy outside [0, 1], or no run succeeded.
    """
    logs_dir = Path(logs_dir)
    if not logs_dir.is_dir():
        raise ConfigurationError(f"--logs-dir {logs_dir}: folder not found")
    paths = sorted(path for path in logs_dir.iterdir() if _LOG_FILE.match(path.name))
    if not paths:
        raise ConfigurationError(
            f"--logs-dir {logs_dir}: no <model>_<cells>_cells_results.csv files; train first "
            "(all_datasets_training.py) or use --reference-only"
        )
    table = pd.concat([_read_log(path) for path in paths], ignore_index=True)
    failed = table[table["error"] != ""]
    runs = table[table["error"] == ""].copy()
    runs["test_accuracy"] = _validate_accuracies(runs, logs_dir)
    runs = runs[runs["test_accuracy"].notna()]  # trained with --mode train, not evaluated yet
    if runs.empty:
        raise DatasetError(f"{logs_dir}: no run in the logs succeeded and was evaluated "
                           "(see their error column; --mode evaluate fills test metrics in)")
    runs["protocol"] = runs["protocol"].fillna("unknown").astype(str).str.strip()
    leaky_flag = runs["leaky"].map(_is_true) if "leaky" in runs else False
    runs["is_leaky"] = (runs["protocol"] == LEAKY_PROTOCOL) | leaky_flag
    runs["key"] = runs["dataset"].map(dataset_key)
    show_protocol = runs.loc[~runs["is_leaky"], "protocol"].nunique() > 1
    runs["label"] = runs.apply(_our_label, axis=1, show_protocol=show_protocol)
    before = len(runs)
    runs = runs.drop_duplicates(subset=["file", "key", "seed", "protocol", "is_leaky"], keep="last")
    columns = []
    for label, group in runs.groupby("label", sort=True):
        per_dataset = group.groupby("key")["test_accuracy"]
        accuracies = per_dataset.mean().rename(label)
        pairs = zip(group["key"], group["dataset"], strict=True)
        names = {key: canonical_dataset_name(name) for key, name in pairs}
        columns.append(AccuracyColumn(
            key=normalise_name(label), label=label, source=", ".join(sorted(set(group["file"]))),
            accuracies=accuracies, std=per_dataset.std(ddof=1).rename(label),
            runs=per_dataset.size().rename(label), names=names, groups=("ours",),
            leaky=bool(group["is_leaky"].iloc[0]),
        ))
    failed_view = failed.reindex(columns=["file", "dataset", "model", "cells", "seed", "error"])
    return OurResults(columns, failed_view.reset_index(drop=True), before - len(runs),
                      [path.name for path in paths])


# --------------------------------------------------------------------------------------------
# Tables that combine columns
# --------------------------------------------------------------------------------------------


def accuracy_table(columns: Sequence[AccuracyColumn]) -> pd.DataFrame:
    """Outer join of the columns' accuracies: rows = dataset keys, columns = labels."""
    return pd.concat([column.accuracies.rename(column.label) for column in columns], axis=1)


def common_datasets(table: pd.DataFrame) -> pd.DataFrame:
    """The rows where every column has a value (the set every multi-classifier test uses)."""
    return table.dropna(axis=0, how="any")


def summary_table(
    accuracies: pd.DataFrame, counts: pd.Series, subjects: Sequence[str] = ()
) -> pd.DataFrame:
    """Summary rows of a complete accuracy table, one column per classifier.

    Rows: datasets, mean accuracy, MPCE (NaN where a class count is missing), mean rank (ties
    min, as the original), mean rank (ties averaged), geometric mean rank (ties min), and for
    each of ``subjects`` the number of datasets where it is at least as accurate as the best of
    the non-subject columns (the original's "Count" row).
    """
    _require_complete(accuracies)
    rows = {
        "datasets": pd.Series(len(accuracies), index=accuracies.columns, dtype=float),
        "mean accuracy": accuracies.mean(axis=0),
    }
    try:
        rows["MPCE"] = mean_per_class_error(accuracies, counts)
    except DatasetError:
        rows["MPCE"] = pd.Series(np.nan, index=accuracies.columns)
    if accuracies.shape[1] > 1:
        rows["mean rank (ties min)"] = mean_ranks(accuracies, "min")
        rows["mean rank (ties averaged)"] = mean_ranks(accuracies, "average")
        rows["geometric mean rank (ties min)"] = geometric_mean_ranks(accuracies, "min")
    others = [label for label in accuracies.columns if label not in subjects]
    if subjects and others:
        rows["count >= best of the others"] = pd.Series(
            {s: count_at_least_best(accuracies[s], accuracies[others]) for s in subjects},
            index=accuracies.columns, dtype=float,
        )
    return pd.DataFrame(rows).T


def pairwise_table(
    table: pd.DataFrame, subjects: Sequence[str], references: Sequence[str]
) -> pd.DataFrame:
    """Each subject against each reference, over the datasets both have.

    Returns
    -------
    DataFrame
        One row per (subject, reference): datasets, wins, ties, losses, mean accuracy of each on
        those datasets, mean difference and the two-sided Wilcoxon p-value.
    """
    rows = []
    for subject in subjects:
        for reference in references:
            if reference == subject:
                continue
            both = table[[subject, reference]].dropna()
            wins, ties, losses = wins_ties_losses(both[subject], both[reference])
            rows.append({
                "subject": subject, "reference": reference, "datasets": len(both),
                "wins": wins, "ties": ties, "losses": losses,
                "subject mean": both[subject].mean(), "reference mean": both[reference].mean(),
                "mean difference": (both[subject] - both[reference]).mean(),
                "wilcoxon p": wilcoxon_p_value(both[subject], both[reference]),
            })
    return pd.DataFrame(rows)


def _require_complete(accuracies: pd.DataFrame) -> None:
    if accuracies.isna().any().any():
        raise DatasetError(
            "accuracy table has missing values: restrict it to the common datasets first"
        )


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ConfigurationError(f"alpha must be in (0, 1), got {alpha}")
