"""Array preprocessing between the file readers and the models (no file access, no Keras).

Everything here works on ``(n_cases, n_channels, n_timepoints)`` float64 arrays in which NaN
marks either padding (after a series' true length) or a missing value (inside it), plus an int64
vector of true lengths. Statistics are fitted on the train split only and applied to the test
split, so nothing about the test data leaks into training.

The original LSTM-FCN code (Karim et al. 2018, "LSTM Fully Convolutional Networks for Time Series
Classification", IEEE Access 6) filled every NaN with 0, z-normalised each series over the padded
width and re-labelled classes by min-max scaling, which merges classes for some class counts
(``shared/reference/original_spec.md`` §3.4-3.6). Here padding is excluded from the statistics,
labels go through a LabelEncoder fitted on train, and the missing-value rule is a choice.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.preprocessing import LabelEncoder

from utils.errors import ConfigurationError, DatasetError

#: ``"auto"`` follows the original code of each family (see :func:`resolve_normalization`)
NORMALIZE_CHOICES = ("auto", "none", "sample", "dataset")
MISSING_CHOICES = ("zero", "interpolate")
LONGER_TEST_CHOICES = ("truncate", "resample")
#: added to the standard deviation, as in the original code, so constant series do not divide by 0
STD_EPSILON = 1e-8


def check_choice(value: object, choices: Sequence[str], argument: str) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ConfigurationError naming it."""
    if not isinstance(value, str) or value not in choices:
        raise ConfigurationError(
            f"{argument}={value!r} is not valid: use one of {', '.join(map(repr, choices))}"
        )
    return value


def resolve_normalization(mode: str, n_channels: int) -> str:
    """The normalisation actually applied for ``mode`` to data with ``n_channels`` channels.

    ``"auto"`` follows the original code of each model family:

    * univariate data (one channel) get ``"sample"``, the LSTM-FCN repository's default
      (``normalize_timeseries=True``, each series z-normalised on its own);
    * multivariate data get ``"none"``, as MLSTM-FCN did: its loader defaulted to no
      normalisation (its only other mode was dataset-wise), and z-normalising each channel of each
      series erases the channel levels that identify the class on sets such as JapaneseVowels
      (5 seeds, 1000 epochs: see README, "Normalisation").

    Any other value is returned unchanged (after checking it), so an explicit choice always wins.
    """
    check_choice(mode, NORMALIZE_CHOICES, "normalize")
    if mode != "auto":
        return mode
    return "sample" if int(n_channels) == 1 else "none"


def true_lengths(values: np.ndarray, trailing_nan_is_padding: bool) -> np.ndarray:
    """Length of each case: up to its last non-NaN value in any channel, or the full width.

    Parameters
    ----------
    values : ndarray, shape (n_cases, n_channels, n_timepoints)
    trailing_nan_is_padding : bool
        True for variable-length data (UCR 2018 pads short series with NaN at the end). False
        when the data are known to have equal lengths: trailing NaN are then missing values.

    Returns
    -------
    ndarray of int64, shape (n_cases,); 0 for a case with no value at all.
    """
    n_cases, _, width = values.shape
    if not trailing_nan_is_padding:
        return np.full(n_cases, width, dtype=np.int64)
    present = ~np.isnan(values).all(axis=1)  # (n_cases, width)
    last = width - np.argmax(present[:, ::-1], axis=1)
    return np.where(present.any(axis=1), last, 0).astype(np.int64)


def inside_mask(lengths: np.ndarray, width: int) -> np.ndarray:
    """Boolean mask of shape (n_cases, 1, width), True before each case's true length."""
    return (np.arange(width)[None, :] < lengths[:, None])[:, None, :]


def fill_missing(values: np.ndarray, lengths: np.ndarray, method: str = "zero") -> np.ndarray:
    """Fill NaN inside each series (before its true length); padding stays NaN.

    Parameters
    ----------
    values : ndarray, shape (n_cases, n_channels, n_timepoints)
    lengths : ndarray of int, shape (n_cases,)
    method : {"zero", "interpolate"}, default "zero"
        ``"zero"`` as in the original code; ``"interpolate"`` draws a straight line between the
        neighbouring values (the nearest value at either end; 0 for a channel with no value).

    Returns
    -------
    ndarray, a filled copy of ``values``.
    """
    check_choice(method, MISSING_CHOICES, "missing")
    filled = values.copy()
    gaps = np.isnan(filled) & inside_mask(lengths, filled.shape[-1])
    if not gaps.any():
        return filled
    if method == "zero":
        filled[gaps] = 0.0
        return filled
    for case, channel in zip(*np.nonzero(gaps.any(axis=2)), strict=True):
        length = lengths[case]
        series = filled[case, channel, :length]
        known = ~np.isnan(series)
        if not known.any():
            series[:] = 0.0
            continue
        positions = np.arange(length)
        series[~known] = np.interp(positions[~known], positions[known], series[known])
    return filled


def fit_to_length(
    values: np.ndarray, lengths: np.ndarray, target: int, rule: str = "truncate"
) -> tuple[np.ndarray, np.ndarray]:
    """Make every series at most ``target`` steps long and the array exactly ``target`` wide.

    Used for test series longer than the longest training series, which the models (built for
    the training length) cannot take.

    Parameters
    ----------
    values : ndarray, shape (n_cases, n_channels, width); NaN after each true length
    lengths : ndarray of int, shape (n_cases,)
    target : int
        The longest training length.
    rule : {"truncate", "resample"}, default "truncate"
        ``"truncate"`` keeps the first ``target`` steps; ``"resample"`` linearly interpolates the
        whole series onto ``target`` evenly spaced points.

    Returns
    -------
    values : ndarray, shape (n_cases, n_channels, target)
    lengths : ndarray of int64, shape (n_cases,)
    """
    check_choice(rule, LONGER_TEST_CHOICES, "longer_test")
    n_cases, n_channels, width = values.shape
    fitted = np.full((n_cases, n_channels, target), np.nan)
    keep = min(width, target)
    fitted[:, :, :keep] = values[:, :, :keep]
    new_lengths = np.minimum(lengths, target).astype(np.int64)
    if rule == "resample":
        for case in np.nonzero(lengths > target)[0]:
            old_grid = np.linspace(0.0, 1.0, lengths[case])
            new_grid = np.linspace(0.0, 1.0, target)
            for channel in range(n_channels):
                fitted[case, channel] = np.interp(
                    new_grid, old_grid, values[case, channel, : lengths[case]]
                )
    return fitted, new_lengths


def zscore_each_series(values: np.ndarray) -> np.ndarray:
    """Z-normalise every (case, channel) series over its true length (NaN padding ignored).

    ``(x - mean) / (std + 1e-8)`` with the population std, as the original's sample-wise mode,
    except that padding is left out of the mean and std.
    """
    if not np.isnan(values).any():  # equal-length fast path
        mean = values.mean(axis=2, keepdims=True)
        std = values.std(axis=2, keepdims=True)
    else:
        mean = np.nanmean(values, axis=2, keepdims=True)
        std = np.nanstd(values, axis=2, keepdims=True)
    return (values - mean) / (std + STD_EPSILON)


def channel_statistics(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and population std over every real (non-NaN) value of a split.

    Returns
    -------
    mean, std : ndarray, shape (n_channels,)
    """
    return np.nanmean(values, axis=(0, 2)), np.nanstd(values, axis=(0, 2))


def normalize_splits(
    train: np.ndarray, test: np.ndarray, mode: str = "sample"
) -> tuple[np.ndarray, np.ndarray]:
    """Normalise train and test arrays (NaN padding is kept and ignored).

    Parameters
    ----------
    train, test : ndarray, shape (n_cases, n_channels, n_timepoints)
    mode : {"auto", "none", "sample", "dataset"}, default "sample"
        ``"sample"``: each series and channel on its own (the original's current default);
        ``"dataset"``: per-channel mean and std of the train split, applied to both splits;
        ``"auto"``: see :func:`resolve_normalization`.
    """
    mode = resolve_normalization(mode, train.shape[1])
    statistics = channel_statistics(train) if mode == "dataset" else (None, None)
    return (apply_normalization(train, mode, *statistics),
            apply_normalization(test, mode, *statistics))


def apply_normalization(
    values: np.ndarray,
    mode: str,
    channel_mean: np.ndarray | None = None,
    channel_std: np.ndarray | None = None,
) -> np.ndarray:
    """Normalise one array of shape (n_cases, n_channels, n_timepoints); NaN stay NaN.

    ``"dataset"`` applies the given per-channel training statistics (``channel_statistics``).
    """
    if mode == "sample":
        return zscore_each_series(values)
    if mode == "dataset":
        if channel_mean is None or channel_std is None:
            raise ConfigurationError("normalize='dataset' needs the training channel statistics")
        return (values - channel_mean[None, :, None]) / (channel_std[None, :, None] + STD_EPSILON)
    return values


def pad_with_zeros(values: np.ndarray, width: int) -> np.ndarray:
    """Replace NaN padding by 0 and return float32 of shape (n_cases, n_channels, width).

    Call after :func:`fill_missing`, when the only NaN left are padding.
    """
    padded = np.zeros((*values.shape[:2], width), dtype=np.float32)
    keep = min(width, values.shape[-1])
    padded[:, :, :keep] = values[:, :, :keep]
    np.nan_to_num(padded, copy=False, nan=0.0)
    return padded


def coerce_labels(*label_arrays: np.ndarray) -> list[np.ndarray]:
    """Give labels one type across splits: numbers when all are numeric, else stripped strings.

    Files store labels as text (``"1"``, ``"-1"``, ``"1.0000000e+00"``) or numbers; reading them as
    numbers where possible makes ``.tsv`` and ``.ts`` copies of one dataset encode identically
    and keeps the numeric order (2 before 10).
    """
    texts = [np.asarray([str(label).strip() for label in labels], dtype=object) for labels in
             label_arrays]
    try:
        numbers = [np.asarray(text, dtype=np.float64) for text in texts]
    except ValueError:
        return [text.astype(str) for text in texts]
    if all(np.isfinite(n).all() and (n == np.round(n)).all() for n in numbers):
        return [n.astype(np.int64) for n in numbers]
    return numbers


def encode_labels(
    train_labels: np.ndarray,
    test_labels: np.ndarray,
    train_source: str = "train split",
    test_source: str = "test split",
) -> tuple[LabelEncoder, np.ndarray, np.ndarray]:
    """Fit a LabelEncoder on the train labels and apply it to both splits.

    Parameters
    ----------
    train_labels, test_labels : ndarray, shape (n_cases,)
        Raw labels (any type; see :func:`coerce_labels`).
    train_source, test_source : str
        Names used in error messages (the files).

    Returns
    -------
    encoder : LabelEncoder
        ``encoder.classes_`` are the original labels in sorted order; index i is class i.
    y_train, y_test : ndarray of int64, values in 0..K-1

    Raises
    ------
    DatasetError
        If the train split has a single class, or the test split has labels never seen in training.
    """
    train_labels, test_labels = coerce_labels(train_labels, test_labels)
    encoder = LabelEncoder().fit(train_labels)
    if len(encoder.classes_) < 2:
        raise DatasetError(
            f"{train_source}: the training set has a single class "
            f"({encoder.classes_[0]!r}); a classifier needs at least two"
        )
    unseen = sorted(set(test_labels.tolist()) - set(encoder.classes_.tolist()), key=str)
    if unseen:
        raise DatasetError(
            f"{test_source}: test label(s) {', '.join(map(repr, unseen))} never appear in the "
            f"training set {train_source} (training labels: "
            f"{', '.join(map(repr, encoder.classes_.tolist()))})"
        )
    return (
        encoder,
        encoder.transform(train_labels).astype(np.int64),
        encoder.transform(test_labels).astype(np.int64),
    )


def prepare_new_series(
    values: np.ndarray,
    width: int,
    normalize: str = "sample",
    channel_mean: np.ndarray | None = None,
    channel_std: np.ndarray | None = None,
    missing: str = "zero",
    longer: str = "truncate",
    trailing_nan_is_padding: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Series outside a loaded dataset (new data to predict, a user's arrays) -> model input.

    The same steps as the loader: true lengths from trailing NaN, interior gaps filled, series
    longer than ``width`` cut or resampled, normalisation, zero padding.

    Parameters
    ----------
    values : ndarray, shape (n_cases, n_channels, n_timepoints); NaN for padding/missing
    width : int
        The model's number of time steps.
    normalize : {"auto", "none", "sample", "dataset"}, default "sample"
        ``"dataset"`` needs the training split's ``channel_mean`` and ``channel_std``; ``"auto"``
        resolves from the number of channels (:func:`resolve_normalization`).
    missing, longer : str
        As ``missing`` and ``longer_test`` of ``load_dataset``.
    trailing_nan_is_padding : bool, default True
        False for models of equal-length data: trailing NaN are then missing values, as the
        loader treats them for such datasets.

    Returns
    -------
    X : ndarray of float32, shape (n_cases, n_channels, width)
    lengths : ndarray of int64, shape (n_cases,)
    """
    normalize = resolve_normalization(normalize, values.shape[1])
    if np.isinf(values).any():
        case = int(np.argwhere(np.isinf(values))[0][0])
        raise DatasetError(f"case {case + 1} has infinite values")
    lengths = true_lengths(values, trailing_nan_is_padding)
    empty = np.nonzero(lengths == 0)[0]
    if len(empty):
        raise DatasetError(f"case {empty[0] + 1} has no values at all (every value is NaN)")
    values, lengths = fit_to_length(fill_missing(values, lengths, missing), lengths, width,
                                    longer)
    values = apply_normalization(values, normalize, channel_mean, channel_std)
    return pad_with_zeros(values, width), lengths
