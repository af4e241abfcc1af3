"""Results in the field's formats: tsml-eval results files and reference-results summaries.

A *results file* holds one classifier's test predictions on one dataset for one resample, in the
layout tsml-eval writes and reads (``tsml_eval.evaluation.storage.load_classifier_results``):

* line 1: ``dataset,classifier,TEST,<index>,MILLISECONDS,<comment>``;
* line 2: free-form parameter information; ours is one JSON object with the run's settings, its
  training facts (training loss, kept epoch, ...) and the class names;
* line 3: ``accuracy,fit time,predict time,benchmark time,memory,n_classes,,-1,-1``;
* then one line per test case: ``true class index,predicted class index,,p_0,p_1,...``.

Class indices count from 0 in the order of ``classes`` (the sorted original labels, as the
training loop encodes them). The file is ``<root>/<kind>/<classifier>/Predictions/<dataset>/
testResample<index>.csv``, where ``kind`` keeps two different things apart:

``seeds``
    The published train/test split, trained with random seed ``index`` (model initialisation,
    shuffling, dropout). This is what the reproduction audit needs: the papers used this split.
``resamples``
    aeon's stratified resample ``index`` of train+test (``index`` 0 is the published split),
    trained with seed ``index``: how tsml-eval and the bake off made their 30-resample results.

Line 1's comment and the JSON both say which kind a file is. The per-classifier summaries follow
timeseriesclassification.com's reference results (``<Classifier>_accuracy.csv``: one row per
dataset, one column per resample, a first header cell ``Resamples:``); ours say ``Seeds:`` for
the published split so that the two are never mixed up.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from utils.atomic_files import write_text_atomic
from utils.errors import ConfigurationError, DatasetError

KINDS = ("seeds", "resamples")
SUMMARY_HEADER = {"seeds": "Seeds:", "resamples": "Resamples:"}
_COMMENT = {
    "seeds": "published train/test split; seed {index}",
    "resamples": "aeon stratified resample {index} of train+test (0 = published split); "
                 "seed {index}",
}


@dataclass
class RunResult:
    """One classifier's test predictions on one dataset for one seed or resample.

    Attributes
    ----------
    classifier, dataset : str
        Names written on line 1 (e.g. ``LSTM-FCN-8``, ``ItalyPowerDemand``).
    kind : {"seeds", "resamples"}
        The published split with seed ``index``, or stratified resample ``index``.
    index : int
        The seed (kind ``seeds``) or the resample id (kind ``resamples``).
    classes : list of str
        Original class labels; position k is class index k.
    true_index, predicted_index : ndarray of int, shape (n_cases,)
    probabilities : ndarray of float, shape (n_cases, n_classes)
    parameters : dict
        Settings and training facts, written as JSON on line 2.
    fit_milliseconds : int
        Training time, -1 when unknown.
    """

    classifier: str
    dataset: str
    kind: str
    index: int
    classes: list[str]
    true_index: np.ndarray
    predicted_index: np.ndarray
    probabilities: np.ndarray
    parameters: dict[str, Any] = field(default_factory=dict)
    fit_milliseconds: int = -1

    @property
    def accuracy(self) -> float:
        """Fraction of test cases predicted right (as sklearn's ``accuracy_score``)."""
        return float(np.mean(self.true_index == self.predicted_index))

    def check(self) -> None:
        """Raise ``DatasetError`` when the arrays disagree in shape or the kind is unknown."""
        if self.kind not in KINDS:
            raise DatasetError(f"results kind must be one of {KINDS}; got {self.kind!r}")
        n_cases, n_classes = len(self.true_index), len(self.classes)
        if len(self.predicted_index) != n_cases or self.probabilities.shape != (n_cases,
                                                                               n_classes):
            raise DatasetError(
                f"{self.classifier} on {self.dataset}: {n_cases} true labels, "
                f"{len(self.predicted_index)} predictions and probabilities of shape "
                f"{self.probabilities.shape} for {n_classes} classes do not match"
            )


def results_file_path(root: str | os.PathLike, kind: str, classifier: str, dataset: str,
                      index: int) -> Path:
    """``<root>/<kind>/<classifier>/Predictions/<dataset>/testResample<index>.csv``."""
    if kind not in KINDS:
        raise ConfigurationError(f"kind must be one of {KINDS}; got {kind!r}")
    return (Path(root) / kind / classifier / "Predictions" / dataset
            / f"testResample{int(index)}.csv")


def _number(value: float) -> str:
    """Probabilities with 10 significant digits: below every metric's resolution and the
    1.5e-8 sum check of scikit-learn's log loss, half the size of a full float."""
    return f"{value:.10g}"


def format_results_file(result: RunResult) -> str:
    """The text of ``result``'s results file (see the module docstring)."""
    result.check()
    parameters = {**result.parameters, "kind": result.kind, "classes": list(result.classes)}
    comment = _COMMENT[result.kind].format(index=result.index)
    lines = [
        f"{result.dataset},{result.classifier},TEST,{result.index},MILLISECONDS,{comment}",
        json.dumps(parameters, sort_keys=True, separators=(",", ":")),
        f"{result.accuracy!r},{int(result.fit_milliseconds)},-1,-1,-1,{len(result.classes)},"
        ",-1,-1",
    ]
    for true, predicted, row in zip(result.true_index, result.predicted_index,
                                    result.probabilities, strict=True):
        lines.append(f"{int(true)},{int(predicted)},," + ",".join(map(_number, row)))
    return "\n".join(lines) + "\n"


def write_results_file(root: str | os.PathLike, result: RunResult) -> Path:
    """Write ``result`` under ``root`` atomically and return its path.

    An existing file with other content is never replaced: that raises ``DatasetError`` (move it
    away to rewrite it). The same content again is a no-op, so re-running is harmless.
    """
    path = results_file_path(root, result.kind, result.classifier, result.dataset, result.index)
    text = format_results_file(result)
    if path.exists():
        if path.read_text(encoding="utf-8") == text:
            return path
        raise DatasetError(f"{path} already holds other results; move it away to replace it")
    write_text_atomic(path, text)
    return path


def read_results_file(path: str | os.PathLike) -> RunResult:
    """Read a results file written by ``write_results_file`` (or by tsml-eval).

    Files without our JSON parameter line get class names ``"0"``, ``"1"``, ... and the kind
    ``resamples`` (tsml-eval's meaning of the index).
    """
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    if len(lines) < 4:
        raise DatasetError(f"{path}: a results file needs 3 header lines and at least one case")
    first = lines[0].split(",")
    third = lines[2].split(",")
    try:
        parameters = json.loads(lines[1])
    except json.JSONDecodeError:
        parameters = {}
    if not isinstance(parameters, dict):
        parameters = {}
    try:
        n_classes = int(third[5])
        cases = [line.split(",") for line in lines[3:] if line.strip()]
        true_index = np.array([int(case[0]) for case in cases])
        predicted_index = np.array([int(case[1]) for case in cases])
        probabilities = np.array([[float(v) for v in case[3:3 + n_classes]] for case in cases])
        index = int(first[3])
    except (IndexError, ValueError) as error:
        raise DatasetError(f"{path}: not a classification results file ({error})") from error
    classes = [str(c) for c in parameters.pop("classes", range(n_classes))]
    kind = parameters.pop("kind", "resamples")
    fit_milliseconds = int(float(third[1]))
    return RunResult(first[1], first[0], kind, index, classes, true_index, predicted_index,
                     probabilities, parameters, fit_milliseconds)


def iter_results_files(root: str | os.PathLike, kind: str | None = None) -> Iterator[Path]:
    """Every ``testResample*.csv`` under ``root`` (one kind, or both), in sorted order."""
    kinds = KINDS if kind is None else (kind,)
    for each in kinds:
        yield from sorted((Path(root) / each).glob("*/Predictions/*/testResample*.csv"))


def from_predictions_csv(path: str | os.PathLike, classifier: str, dataset: str, kind: str,
                         index: int, parameters: dict[str, Any],
                         fit_milliseconds: int = -1) -> RunResult:
    """Turn the training loop's per-case predictions (``--save-predictions``: columns ``case,
    true_label, predicted_label, p_<label>...``) into a ``RunResult``."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DatasetError(f"{path}: cannot read predictions ({error})") from error
    probability_columns = [c for c in frame.columns if c.startswith("p_")]
    missing = {"true_label", "predicted_label"} - set(frame.columns)
    if missing or not probability_columns:
        raise DatasetError(f"{path}: expected columns true_label, predicted_label and p_<class>")
    classes = [c.removeprefix("p_") for c in probability_columns]
    position = {label: k for k, label in enumerate(classes)}
    unknown = sorted((set(frame["true_label"]) | set(frame["predicted_label"])) - set(position))
    if unknown:
        raise DatasetError(f"{path}: labels {unknown} have no probability column")
    return RunResult(
        classifier=classifier, dataset=dataset, kind=kind, index=int(index), classes=classes,
        true_index=frame["true_label"].map(position).to_numpy(dtype=int),
        predicted_index=frame["predicted_label"].map(position).to_numpy(dtype=int),
        # float32 softmax rows sum to 1 only within ~1e-7: rescale them in float64 (the order
        # of the classes, hence every prediction, is unchanged)
        probabilities=_rows_summing_to_one(frame[probability_columns].astype(float).to_numpy()),
        parameters=dict(parameters), fit_milliseconds=int(fit_milliseconds),
    )


def _rows_summing_to_one(probabilities: np.ndarray) -> np.ndarray:
    totals = probabilities.sum(axis=1, keepdims=True)
    if np.any(totals <= 0):
        raise DatasetError("a row of class probabilities sums to zero")
    return probabilities / totals


# --------------------------------------------------------------------------- summaries


def accuracy_summary(results: Iterable[RunResult]) -> pd.DataFrame:
    """Accuracies as a table: one row per dataset (sorted), one column per seed/resample index.

    Missing combinations are NaN (written as empty cells).
    """
    cells = {(r.dataset, r.index): r.accuracy for r in results}
    if not cells:
        return pd.DataFrame()
    datasets = sorted({d for d, _ in cells})
    indices = sorted({i for _, i in cells})
    return pd.DataFrame([[cells.get((d, i), math.nan) for i in indices] for d in datasets],
                        index=datasets, columns=indices)


def format_accuracy_summary(table: pd.DataFrame, kind: str) -> str:
    """timeseriesclassification.com's ``<Classifier>_accuracy.csv`` layout (see module doc)."""
    if kind not in KINDS:
        raise ConfigurationError(f"kind must be one of {KINDS}; got {kind!r}")
    lines = [",".join([SUMMARY_HEADER[kind], *map(str, table.columns)])]
    for dataset, row in table.iterrows():
        lines.append(",".join([str(dataset), *("" if pd.isna(v) else repr(float(v))
                                               for v in row)]))
    return "\n".join(lines) + "\n"


def read_accuracy_summary(path: str | os.PathLike) -> pd.DataFrame:
    """Read a ``<Classifier>_accuracy.csv`` (ours or a published one): rows = datasets,
    integer columns = seeds or resamples."""
    table = pd.read_csv(path, index_col=0)
    table.columns = [int(c) for c in table.columns]
    table.index.name = None
    return table


def write_accuracy_summaries(root: str | os.PathLike) -> list[Path]:
    """Write ``<root>/<kind>/<Classifier>_accuracy.csv`` for every classifier with results files
    under ``root``; returns the paths written (atomically; unchanged files are not rewritten)."""
    written = []
    for kind in KINDS:
        by_classifier: dict[str, list[RunResult]] = {}
        for path in iter_results_files(root, kind):
            result = read_results_file(path)
            by_classifier.setdefault(result.classifier, []).append(result)
        for classifier, results in sorted(by_classifier.items()):
            path = Path(root) / kind / f"{classifier}_accuracy.csv"
            text = format_accuracy_summary(accuracy_summary(results), kind)
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                write_text_atomic(path, text)
            written.append(path)
    return written


__all__ = [
    "KINDS", "RunResult", "results_file_path", "format_results_file", "write_results_file",
    "read_results_file", "iter_results_files", "from_predictions_csv", "accuracy_summary",
    "format_accuracy_summary", "read_accuracy_summary", "write_accuracy_summaries",
]
