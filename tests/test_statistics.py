"""utils.statistics: the original's published statistics recomputed from the copied tables.

The expected numbers are the ones the original authors published (titu1994/LSTM-FCN README and
images, summarised in Results/README.md) or that the literature tabulates (Demsar 2006); the
values under test are computed from Results/ by the library.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from utils import statistics  # noqa: E402
from utils.errors import ConfigurationError, DatasetError  # noqa: E402

RESULTS = Path(__file__).resolve().parent.parent / "Results"
TRAIN_LOSS_CSV = RESULTS / "LSTM-FCN" / "train_loss_old_datasets.csv"

# Mean ranks of the 14 columns as printed in the original's CD-training_loss.jpeg and README.
PUBLISHED_MEAN_RANKS = {
    "LSTM-FCN": 4.3176, "CNN": 4.6353, "COTE (ensemble)": 5.0235, "ALSTM-FCN": 5.3882,
    "ResNet": 5.4824, "WEASEL": 5.5529, "ST": 6.9059, "BOSS": 7.2235, "EE (PROP)": 7.9882,
    "Learning Shapelet (LS)": 8.2000, "TSBF": 8.7647, "MLP": 9.6471, "1-NN DTW CV": 10.3529,
    "1-NN DTW": 11.2941,
}


@pytest.fixture(scope="module")
def train_loss_table() -> pd.DataFrame:
    """The original's training-loss table, indexed by dataset as written in the file."""
    return pd.read_csv(TRAIN_LOSS_CSV).set_index("Dataset")


def test_mean_ranks_reproduce_the_published_ones(train_loss_table):
    ranks = statistics.mean_ranks(train_loss_table, ties="min")
    assert len(ranks) == 14
    for column, published in PUBLISHED_MEAN_RANKS.items():
        assert ranks[column] == pytest.approx(published, abs=5e-5), column


def test_geometric_mean_ranks_and_count_reproduce_the_published_ones(train_loss_table):
    geometric = statistics.geometric_mean_ranks(train_loss_table)
    assert geometric["LSTM-FCN"] == pytest.approx(3.4275, abs=5e-5)
    assert geometric["ALSTM-FCN"] == pytest.approx(4.1799, abs=5e-5)
    baselines = train_loss_table.drop(columns=["LSTM-FCN", "ALSTM-FCN"])
    assert statistics.count_at_least_best(train_loss_table["LSTM-FCN"], baselines) == 19
    assert statistics.count_at_least_best(train_loss_table["ALSTM-FCN"], baselines) == 14


def test_nemenyi_critical_difference_for_14_classifiers_on_85_datasets():
    assert statistics.nemenyi_critical_difference(14, 85, alpha=0.05) == pytest.approx(
        2.152, abs=5e-4
    )


def test_nemenyi_q_matches_demsar_table():
    # Demsar (JMLR 2006), Table 5(a), q_0.05 for k = 2..10
    demsar = [1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164]
    computed = [statistics.nemenyi_q(k, 0.05) for k in range(2, 11)]
    np.testing.assert_allclose(computed, demsar, atol=1.5e-3)


def test_wilcoxon_alstmfcn_vs_lstmfcn_reproduces_published_p_value(train_loss_table):
    alstm, lstm = train_loss_table["ALSTM-FCN"], train_loss_table["LSTM-FCN"]
    corrected = statistics.wilcoxon_p_value(alstm, lstm)
    assert f"{corrected:.2e}" == "1.12e-02"  # as printed in P-Value-training_loss.jpeg
    assert corrected == pytest.approx(0.011169, abs=5e-7)
    uncorrected = statistics.wilcoxon_p_value(alstm, lstm, correction=False)
    assert uncorrected == pytest.approx(0.011085, abs=5e-7)


def test_wilcoxon_matrix_is_symmetric_and_holds_other_published_pairs(train_loss_table):
    matrix = statistics.wilcoxon_p_matrix(train_loss_table)
    assert matrix.shape == (14, 14)
    assert matrix.isna().to_numpy().diagonal().all()
    np.testing.assert_array_equal(matrix.to_numpy(), matrix.to_numpy().T)
    assert f"{matrix.loc['ALSTM-FCN', 'LSTM-FCN']:.2e}" == "1.12e-02"
    # Other cells printed in P-Value-training_loss.jpeg (original_spec.md section 7.2) match
    # the test without continuity correction; the image is not consistent on this point.
    uncorrected = statistics.wilcoxon_p_matrix(train_loss_table, correction=False)
    assert f"{uncorrected.loc['LSTM-FCN', 'WEASEL']:.2e}" == "6.54e-03"
    assert f"{uncorrected.loc['ALSTM-FCN', 'COTE (ensemble)']:.3f}" == "0.708"
    assert f"{uncorrected.loc['LSTM-FCN', 'COTE (ensemble)']:.2e}" == "2.25e-02"
    assert f"{uncorrected.loc['CNN', 'ResNet']:.3f}" == "0.199"
    assert uncorrected.loc["ALSTM-FCN", "WEASEL"] == pytest.approx(0.527, abs=2e-3)


def test_mpce_reproduces_the_published_values_with_both_class_count_sources(train_loss_table):
    accuracies = train_loss_table[["LSTM-FCN", "ALSTM-FCN"]].copy()
    accuracies.index = [statistics.dataset_key(name) for name in accuracies.index]
    published_counts = statistics.published_class_counts(RESULTS)
    names = {key: key for key in accuracies.index}
    registry_counts = statistics.class_counts(accuracies.index, names, RESULTS)
    for counts in (published_counts, registry_counts):
        mpce = statistics.mean_per_class_error(accuracies, counts)
        assert mpce["LSTM-FCN"] == pytest.approx(0.0408, abs=5e-5)
        assert mpce["ALSTM-FCN"] == pytest.approx(0.0427, abs=5e-5)


def test_mpce_of_the_leaky_paper_table_matches_its_printed_row():
    columns = statistics.load_references(RESULTS, ["leaky"])
    table = statistics.common_datasets(statistics.accuracy_table(columns))
    names = {key: name for column in columns for key, name in column.names.items()}
    counts = statistics.class_counts(table.index, names, RESULTS)
    mpce = statistics.mean_per_class_error(table, counts)
    printed = [0.0318, 0.0283, 0.0301, 0.0294]  # LSTM / refined LSTM / ALSTM / refined ALSTM
    assert [column.leaky for column in columns[:4]] == [True] * 4
    np.testing.assert_allclose(mpce.iloc[:4].to_numpy(), printed, atol=5e-5)
    assert all(label.endswith(statistics.LEAKY_SUFFIX) for label in table.columns[:4])


def test_dunn_sidak_alpha_gives_the_original_readme_threshold():
    assert statistics.dunn_sidak_alpha(0.05, 11) == pytest.approx(0.00465, abs=5e-6)
    assert statistics.dunn_sidak_alpha(0.05, 1) == pytest.approx(0.05)
    with pytest.raises(ConfigurationError, match="alpha"):
        statistics.dunn_sidak_alpha(1.5, 3)
    with pytest.raises(ConfigurationError, match="n_comparisons"):
        statistics.dunn_sidak_alpha(0.05, 0)


def test_2015_names_join_the_2018_tables_on_all_85_datasets():
    old = statistics.load_references(RESULTS, ["lstmfcn-2019"])[0].accuracies
    new = statistics.load_references(RESULTS, ["lite-fcn"])[0].accuracies
    assert len(old) == 85 and len(new) == 128
    assert len(old.index.intersection(new.index)) == 85
    assert statistics.dataset_key("50words") == statistics.dataset_key("FiftyWords")
    assert statistics.canonical_dataset_name("SonyAIBORobot Surface") == "SonyAIBORobotSurface1"
    assert statistics.canonical_dataset_name("Cricket_X") == "CricketX"
    # an unknown name is kept (normalised for the join), not an error
    assert statistics.dataset_key("Not A Dataset!") == "notadataset"


def test_wins_ties_losses_reproduce_the_peer_study_counts():
    # peers.md (b2): LSTM-FCN vs Wang's FCN 40/4/41; vs dl-4-tsc FCN (2015 names) 62/3/20
    columns = statistics.load_references(RESULTS, ["lstmfcn-2019", "fcn-wang", "dl4tsc85-fcn"])
    lstm, wang, dl4tsc = (column.accuracies for column in columns)
    assert statistics.wins_ties_losses(lstm, wang) == (40, 4, 41)
    assert statistics.wins_ties_losses(lstm, dl4tsc) == (62, 3, 20)
    assert len(dl4tsc) == 85  # the file's "Average Rank" and "Wins" rows are not datasets


def test_ranks_give_ties_the_minimum_or_the_average():
    accuracies = pd.DataFrame({"a": [0.9, 0.5], "b": [0.9, 0.7], "c": [0.8, 0.7]})
    by_min = statistics.rank_table(accuracies, ties="min")
    by_average = statistics.rank_table(accuracies, ties="average")
    assert by_min.to_numpy().tolist() == [[1, 1, 3], [3, 1, 1]]
    assert by_average.to_numpy().tolist() == [[1.5, 1.5, 3], [3, 1.5, 1.5]]
    with pytest.raises(ConfigurationError, match="ties"):
        statistics.rank_table(accuracies, ties="max")
    with pytest.raises(DatasetError, match="missing values"):
        statistics.mean_ranks(accuracies.where(accuracies > 0.6))


def test_wilcoxon_p_value_edge_cases():
    assert statistics.wilcoxon_p_value([0.5, 0.6, 0.7], [0.5, 0.6, 0.7]) == 1.0
    assert np.isnan(statistics.wilcoxon_p_value([0.5], [0.6]))
    with pytest.raises(ConfigurationError, match="length"):
        statistics.wilcoxon_p_value([0.5, 0.6], [0.5, 0.6, 0.7])


def test_mpce_needs_a_class_count_for_every_dataset():
    accuracies = pd.DataFrame({"a": [0.9, 0.8]}, index=["gunpoint", "mystery"])
    with pytest.raises(DatasetError, match="mystery"):
        statistics.mean_per_class_error(accuracies, pd.Series({"gunpoint": 2.0}))


def test_unknown_reference_names_are_refused_with_the_valid_ones():
    with pytest.raises(ConfigurationError, match="train-loss-table") as error:
        statistics.load_references(RESULTS, ["lstmfcn-2019", "no-such-method"])
    assert "no-such-method" in str(error.value)


@pytest.mark.parametrize("test", ["nemenyi", "wilcoxon-holm"])
def test_critical_difference_diagrams_are_drawn_by_aeon(train_loss_table, test):
    figure = statistics.critical_difference_diagram(train_loss_table, test, 0.05, title="t")
    try:
        labels = {text.get_text() for text in figure.axes[0].texts}
        assert {"LSTM-FCN", "ALSTM-FCN", "CNN"} <= labels
    finally:
        plt.close(figure)
    with pytest.raises(ConfigurationError, match="at least 3"):
        statistics.critical_difference_diagram(train_loss_table.iloc[:, :2], test, 0.05)


def _write_log(path: Path, rows: list[dict]) -> None:
    table = pd.DataFrame(rows).reindex(columns=list(statistics.LOG_COLUMNS))
    table.to_csv(path, index=False)


def _row(dataset: str, seed: int, accuracy: float, **overrides) -> dict:
    row = {"dataset": dataset, "model": "lstmfcn", "cells": 8, "seed": seed,
           "protocol": "train-loss", "leaky": False, "test_accuracy": accuracy, "error": ""}
    row.update(overrides)
    return row


def test_our_logs_are_averaged_over_seeds_and_failures_and_leaks_kept_apart(tmp_path):
    _write_log(tmp_path / "lstmfcn_8_cells_results.csv", [
        _row("GunPoint", 0, 0.90), _row("GunPoint", 1, 0.94),
        _row("Coffee", 0, 1.00),
        _row("Coffee", 1, float("nan"), error="ValueError: out of memory"),
        _row("GunPoint", 0, 0.99, protocol="test-checkpoint", leaky=True),
    ])
    _write_log(tmp_path / "lstmfcn_selected_cells_results.csv", [
        _row("Gun_Point", 0, 0.96, cells=64), _row("Coffee", 0, 0.98, cells=128),
    ])
    ours = statistics.load_our_results(tmp_path)
    by_label = {column.label: column for column in ours.columns}
    assert set(by_label) == {"lstmfcn (8 cells)", "lstmfcn (selected cells)",
                             "lstmfcn (8 cells)" + statistics.LEAKY_SUFFIX}
    honest = by_label["lstmfcn (8 cells)"]
    gunpoint = statistics.dataset_key("GunPoint")
    assert honest.accuracies[gunpoint] == pytest.approx(0.92)
    assert honest.std[gunpoint] == pytest.approx(np.std([0.90, 0.94], ddof=1))
    assert honest.runs.to_dict() == {gunpoint: 2, statistics.dataset_key("Coffee"): 1}
    assert by_label["lstmfcn (8 cells)" + statistics.LEAKY_SUFFIX].leaky
    assert by_label["lstmfcn (selected cells)"].accuracies[gunpoint] == pytest.approx(0.96)
    assert len(ours.failed_runs) == 1 and ours.failed_runs["dataset"].iloc[0] == "Coffee"


def test_bad_logs_are_refused_with_the_file_named(tmp_path):
    with pytest.raises(ConfigurationError, match="no <model>_<cells>_cells_results.csv"):
        statistics.load_our_results(tmp_path)
    pd.DataFrame({"dataset": ["GunPoint"], "test_accuracy": [0.9]}).to_csv(
        tmp_path / "fcn_8_cells_results.csv", index=False
    )
    with pytest.raises(DatasetError, match="fcn_8_cells_results.csv: missing column"):
        statistics.load_our_results(tmp_path)
    _write_log(tmp_path / "fcn_8_cells_results.csv", [_row("GunPoint", 0, 92.5)])
    with pytest.raises(DatasetError, match="not a fraction"):
        statistics.load_our_results(tmp_path)
