"""Read UCR/UEA datasets from disk into arrays ready for the models (never imports Keras).

One entry point, :func:`load_dataset`, finds a dataset's train and test files and returns a
:class:`Dataset` of float32 arrays shaped ``(n_cases, n_channels, n_timepoints)`` (the original
MLSTM-FCN's "pre-shuffled" ``(N, V, T)`` input and aeon's convention) with integer labels.

Formats found automatically (``<Name>`` is the dataset's folder and file stem):

* ``tsv``  UCR 2018 archive: ``<Name>/<Name>_TRAIN.tsv``, tab-separated, label first, no header,
  variable-length series padded with NaN;
* ``csv``  the original LSTM-FCN / UCR 2015 layout: ``<Name>_TRAIN`` (no extension, ``.csv`` or
  ``.txt``), comma- or whitespace-separated, label first, no header, in ``<Name>/`` or flat;
* ``ts``   sktime/aeon ``.ts`` (uni- or multivariate, unequal length, missing ``?``), read by aeon;
* ``arff`` WEKA ``.arff`` (relational attributes for multivariate data), read by aeon;
* ``npy``  MLSTM-FCN folders holding ``X_train.npy``, ``y_train.npy``, ``X_test.npy`` and
  ``y_test.npy`` with X of shape (N, V, T), loaded with ``allow_pickle=False``.

Every problem with a file raises :class:`~utils.errors.DatasetError` naming the file (and the line
and column where there is one); a dataset that is not on disk raises
:class:`~utils.errors.DatasetNotFoundError` saying where we looked and how to get it.
"""

from __future__ import annotations

import io
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.preprocessing import LabelEncoder

from utils.constants import (
    UCR_ARCHIVE_URL,
    UEA_ARCHIVE_URL,
    DatasetRecord,
    find_dataset,
    resolve_dataset,
    suggest_names,
)
from utils.errors import ConfigurationError, DatasetError, DatasetNotFoundError
from utils.preprocessing import (
    LONGER_TEST_CHOICES,
    MISSING_CHOICES,
    NORMALIZE_CHOICES,
    check_choice,
    encode_labels,
    fill_missing,
    fit_to_length,
    inside_mask,
    normalize_splits,
    pad_with_zeros,
    resolve_normalization,
    true_lengths,
)

#: environment variable that overrides the default data folder
DATA_DIR_ENV = "LSTMFCN_DATA_DIR"
#: the repository's bundled data, found from this file so the working directory does not matter
BUNDLED_DATA_DIR = Path(__file__).resolve().parent.parent / "Data"
#: file formats in the order they are tried when a folder holds several
FILE_FORMATS = ("tsv", "ts", "arff", "csv", "npy")
_EXTENSIONS = {"tsv": (".tsv",), "ts": (".ts",), "arff": (".arff",), "csv": ("", ".csv", ".txt")}
_NPY_FILES = ("X_train.npy", "y_train.npy", "X_test.npy", "y_test.npy")
EXTRACT_COMMAND = "python utils/extract_all_datasets.py ARCHIVE"


# --------------------------------------------------------------------------------------------
# The result
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Dataset:
    """A dataset's two splits as model-ready arrays, with what is needed to read results back.

    Attributes
    ----------
    X_train, X_test : ndarray of float32, shape (n_cases, n_channels, n_timepoints)
        Normalised, then zero-padded after each series' true length up to the longest
        *training* length (test series longer than that were truncated or resampled).
    y_train, y_test : ndarray of int64, shape (n_cases,)
        Class indices 0..K-1 from ``label_encoder`` (fitted on the train labels).
    lengths_train, lengths_test : ndarray of int64, shape (n_cases,)
        True length of each series (before the zero padding), for masking.
    label_encoder : sklearn.preprocessing.LabelEncoder
        ``label_encoder.classes_[i]`` is the file's label of class i.
    name : str
        Registry name (2018 spelling) or the folder / file stem of an unregistered dataset.
    dataset_id : int or None
        Original LSTM-FCN id (0..127) when the dataset is one of the UCR registry's.
    source_files : tuple of Path
        The train and test files (folders for ``npy``).
    file_format : str
        One of ``FILE_FORMATS``.
    equal_length : bool
        True when every train and test series had the same length in the files.
    has_missing : bool
        True when some series had missing values inside them (filled by the ``missing`` rule).
    normalize : str
        The normalisation actually applied (``"auto"`` resolved: never ``"auto"``).
    missing, longer_test : str
        The options used.
    record : DatasetRecord or None
        The registry entry, when there is one.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    lengths_train: np.ndarray
    lengths_test: np.ndarray
    label_encoder: LabelEncoder
    name: str
    dataset_id: int | None
    source_files: tuple[Path, Path]
    file_format: str
    equal_length: bool
    has_missing: bool
    normalize: str
    missing: str = "zero"
    longer_test: str = "truncate"
    record: DatasetRecord | None = field(default=None, repr=False)

    @property
    def n_classes(self) -> int:
        return len(self.label_encoder.classes_)

    @property
    def classes(self) -> np.ndarray:
        """The original labels, in class-index order."""
        return self.label_encoder.classes_

    @property
    def n_channels(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def n_timepoints(self) -> int:
        return int(self.X_train.shape[2])

    @property
    def n_train(self) -> int:
        return int(self.X_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.X_test.shape[0])

    def decode_labels(self, y: np.ndarray) -> np.ndarray:
        """Map class indices (0..K-1) back to the labels of the files."""
        return self.label_encoder.inverse_transform(np.asarray(y, dtype=np.int64))

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={self.X_train.shape}, test={self.X_test.shape}, "
            f"classes={self.n_classes}, format={self.file_format!r}, "
            f"normalize={self.normalize!r})"
        )


@dataclass
class RawSplit:
    """One split as read from its file, before any preprocessing.

    ``values`` has shape (n_cases, n_channels, width), NaN for padding and missing values;
    ``lines[i]`` is the 1-based line of case i in the file (None for ``npy``);
    ``declared_equal_length`` is what a ``.ts`` header says, None when the file does not say.
    """

    values: np.ndarray
    labels: np.ndarray
    path: Path
    lines: np.ndarray | None = None
    declared_equal_length: bool | None = None

    def where(self, case: int) -> str:
        """``"<file>, line N"`` (or ``"<file>, case N"``) for error messages."""
        if self.lines is not None:
            return f"{self.path}, line {int(self.lines[case])}"
        return f"{self.path}, case {case + 1}"


# --------------------------------------------------------------------------------------------
# Readers: one per format, each returns a RawSplit or raises DatasetError naming the file
# --------------------------------------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DatasetError(f"{path}: cannot read the file ({error.strerror or error})") from error
    if not raw or raw.isspace():  # isspace stops at the first other byte: no copy of raw
        raise DatasetError(f"{path}: the file is empty")
    return raw


def _first_bad_cell(frame: pd.DataFrame, column: int) -> tuple[int, str] | None:
    """Row index and text of the first cell of ``column`` that is not a number, if any."""
    cells = frame[column]
    try:
        numbers = pd.to_numeric(cells, errors="coerce")
    except OverflowError:  # an integer too large for a float64
        for row, cell in enumerate(cells):
            try:
                float(cell)
            except (OverflowError, ValueError, TypeError):
                return row, str(cell)[:40]
        return None
    bad = np.nonzero((numbers.isna() & cells.notna()).to_numpy())[0]
    return (int(bad[0]), str(cells.iloc[bad[0]])) if len(bad) else None


def _field_count(line: bytes, separator: str) -> int:
    return len(line.split()) if separator == WHITESPACE else line.count(separator.encode()) + 1


def _check_field_counts(path: Path, raw: bytes, separator: str) -> np.ndarray:
    """Raise at the first line whose number of fields differs from the first line's.

    Returns the 1-based line numbers of the non-blank lines (the rows pandas will read).
    """
    rows = [(number, line) for number, line in enumerate(raw.splitlines(), 1) if line.strip()]
    first_number, expected = rows[0][0], _field_count(rows[0][1], separator)
    for number, line in rows:
        count = _field_count(line, separator)
        if count != expected:
            raise DatasetError(
                f"{path}, line {number}: {count} fields where line {first_number} has "
                f"{expected}; every row needs the label and the same number of values (pad "
                f"shorter series with NaN)"
            )
    return np.array([number for number, _ in rows])


def _first_line(raw: bytes) -> bytes:
    """The first non-blank line, without copying the rest of a large file."""
    start = re.match(rb"\s*", raw).end()
    end = raw.find(b"\n", start)
    return raw[start : end if end >= 0 else len(raw)]


def _row_line_numbers(path: Path, raw: bytes, separator: str) -> np.ndarray:
    """Line number of each row; checks that all rows have the same number of fields.

    The common case (no blank line, the same number of delimiters on every line) is recognised
    by counting newlines and delimiters in the whole file, a few milliseconds on the largest UCR
    files: a blank or short line makes the total fall short, and a line with too many fields is
    rejected by pandas. Only otherwise is the file scanned line by line.
    """
    if separator != WHITESPACE:
        n_lines = raw.count(b"\n") + (not raw.endswith(b"\n"))
        per_line = _field_count(_first_line(raw), separator) - 1
        if raw.count(separator.encode()) == n_lines * per_line:
            return np.arange(1, n_lines + 1)
    return _check_field_counts(path, raw, separator)


WHITESPACE = r"\s+"


def read_delimited(path: Path) -> RawSplit:
    """Read a UCR ``.tsv`` or a 2015-style comma/whitespace file: label, then the values.

    Blank lines are skipped; ``NaN`` and ``?`` are missing values; a trailing delimiter on every
    line (an empty last column) is ignored, as in the original loader.
    """
    raw = _read_bytes(path)
    first = _first_line(raw)
    if b"\t" in first or path.suffix == ".tsv":
        separator = "\t"
    elif b"," in first:
        separator = ","
    else:
        separator = WHITESPACE
    line_numbers = _row_line_numbers(path, raw, separator)
    try:
        frame = pd.read_csv(
            io.BytesIO(raw), sep=separator, header=None, na_values=["?"], encoding="latin-1"
        )
    except pd.errors.ParserError as error:
        _check_field_counts(path, raw, separator)  # names the ragged line, if that is the cause
        raise DatasetError(f"{path}: cannot parse the file ({error})") from error
    except (ValueError, OverflowError) as error:  # OverflowError: a 400-digit label
        raise DatasetError(f"{path}: cannot parse the file ({error})") from error
    if frame.shape[1] < 2:
        raise DatasetError(f"{path}: each row needs a class label followed by the series values")
    while frame.shape[1] > 2 and frame.iloc[:, -1].isna().all():
        frame = frame.iloc[:, :-1]  # trailing delimiters leave an empty last column
    kinds = [dtype.kind for dtype in frame.dtypes]
    for column in (c for c, kind in zip(frame.columns, kinds, strict=True) if kind not in "fiu"):
        found = _first_bad_cell(frame, column) if column != 0 else None
        if found is None:
            continue
        row, text = found
        header_hint = (
            " (a header row? these files have none: label first, then the values)"
            if row == 0
            else ""
        )
        raise DatasetError(
            f"{path}, line {line_numbers[row]}, column {column + 1}: {text!r} is not a "
            f"number{header_hint}"
        )
    try:
        values = frame.iloc[:, 1:].to_numpy(dtype=np.float64)[:, None, :]
    except (OverflowError, ValueError, TypeError) as error:  # e.g. a 400-digit integer
        raise DatasetError(f"{path}: a value is not a float64 number ({error})") from error
    labels = frame.iloc[:, 0].to_numpy()
    missing_label = np.nonzero(pd.isna(labels))[0]
    if len(missing_label):
        raise DatasetError(
            f"{path}, line {line_numbers[missing_label[0]]}, column 1: the class label is missing"
        )
    return RawSplit(values, labels, path, lines=line_numbers)


def _parse_ts_header(path: Path, text_lines: list[str]) -> tuple[dict[str, str], int]:
    """``@key value`` pairs before ``@data`` (keys lower-cased) and the index of the data start."""
    header: dict[str, str] = {}
    for index, line in enumerate(text_lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not stripped.startswith("@"):
            raise DatasetError(
                f"{path}, line {index + 1}: expected an @ header line or @data before the data, "
                f"found {stripped[:40]!r}"
            )
        key, _, value = stripped[1:].partition(" ")
        if key.lower() == "data":
            return header, index + 1
        header[key.lower()] = value.strip()
    raise DatasetError(f"{path}: no @data line: this is not a .ts file")


def _check_ts_cases(path: Path, header: dict[str, str], cases: list[tuple[int, str]]) -> None:
    """Check the header's promises (dimensions, lengths, labels) against the data lines."""
    declared_dims = header.get("dimensions")
    univariate = header.get("univariate", "").lower() == "true"
    equal_length = header.get("equallength", "").lower() == "true"
    series_length = header.get("serieslength")
    class_words = header.get("classlabel", "").split()
    allowed_labels = set(class_words[1:]) if class_words[:1] == ["true"] else set()
    timestamps = header.get("timestamps", "").lower() == "true"
    first_dims = first_length = None
    for line_number, body, label in cases:
        where = f"{path}, line {line_number}"
        dims = body.split(":")
        if first_dims is None:
            first_dims = len(dims)
        if declared_dims is not None and str(len(dims)) != declared_dims:
            raise DatasetError(
                f"{where}: {len(dims)} dimension(s) but the header says @dimensions {declared_dims}"
            )
        if univariate and len(dims) > 1:
            raise DatasetError(f"{where}: {len(dims)} dimensions but the header says univariate")
        if len(dims) != first_dims:
            raise DatasetError(
                f"{where}: {len(dims)} dimension(s) where the first case has {first_dims}"
            )
        if allowed_labels and label not in allowed_labels:
            raise DatasetError(
                f"{where}: class label {label!r} is not among those the header declares "
                f"(@classLabel true {' '.join(class_words[1:])})"
            )
        if timestamps:
            continue  # "(t, v)" pairs: leave the counting to aeon
        lengths = {dim.count(",") + 1 for dim in dims}
        if len(lengths) > 1:
            raise DatasetError(f"{where}: the dimensions of this case have different lengths")
        length = lengths.pop()
        first_length = length if first_length is None else first_length
        if equal_length and length != first_length:
            raise DatasetError(
                f"{where}: {length} values per dimension, but the header says @equalLength true "
                f"and the first case has {first_length}"
            )
        if series_length is not None and equal_length and str(length) != series_length:
            raise DatasetError(
                f"{where}: {length} values per dimension, but the header says "
                f"@seriesLength {series_length}"
            )


#: padding may make an unequal-length split this much larger than its file (and 1 GiB) at most
MAX_PADDING_GROWTH = 50


def _stack_cases(cases: list[np.ndarray], path: Path, file_bytes: int) -> np.ndarray:
    """A list of (n_channels, length_i) arrays -> (n_cases, n_channels, max length), NaN padded.

    One very long series among many short ones would make the padded array far larger than the
    file (a crafted file could ask for terabytes): refused before it is allocated.
    """
    width = max(case.shape[-1] for case in cases)
    padded_bytes = len(cases) * cases[0].shape[0] * width * 8
    if padded_bytes > max(MAX_PADDING_GROWTH * file_bytes, 2**30):
        raise DatasetError(
            f"{path}: padding its {len(cases)} series to the longest ({width} values) would "
            f"take {padded_bytes / 2**30:.1f} GiB for a file of {file_bytes / 2**20:.1f} MiB; "
            f"split the long series or truncate them"
        )
    stacked = np.full((len(cases), cases[0].shape[0], width), np.nan)
    for index, case in enumerate(cases):
        stacked[index, :, : case.shape[-1]] = case
    return stacked


def read_ts(path: Path) -> RawSplit:
    """Read a ``.ts`` file with aeon after checking its header against its data lines.

    Class labels are taken from the file as written (aeon lower-cases them).
    """
    from aeon.datasets import load_from_ts_file  # imported here: aeon is slow to import

    raw = _read_bytes(path)
    try:
        text_lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: not UTF-8 text ({error})") from error
    header, data_start = _parse_ts_header(path, text_lines)
    class_label = header.get("classlabel", "").split()
    if class_label[:1] != ["true"]:
        raise DatasetError(
            f"{path}: the file has no class labels (@classLabel {' '.join(class_label) or '?'}); "
            f"classification needs them"
        )
    cases = []
    for index in range(data_start, len(text_lines)):
        stripped = text_lines[index].strip()
        if stripped and not stripped.startswith("#"):
            body, colon, label = stripped.rpartition(":")
            if not colon or not label.strip():
                raise DatasetError(
                    f"{path}, line {index + 1}: no class label (a case ends with :label)"
                )
            cases.append((index + 1, body, label.strip()))
    if not cases:
        raise DatasetError(f"{path}: no cases after @data")
    _check_ts_cases(path, header, cases)
    try:
        loaded, _ = load_from_ts_file(str(path))
    except Exception as error:  # aeon raises OSError/ValueError/IndexError on malformed data
        raise DatasetError(f"{path}: cannot read the .ts data ({error})") from error
    values = (
        np.asarray(loaded, dtype=np.float64)
        if isinstance(loaded, np.ndarray)
        else _stack_cases([np.asarray(case, dtype=np.float64) for case in loaded], path,
                          len(raw))
    )
    declared = header.get("equallength", "").lower()
    return RawSplit(
        values,
        np.array([label for _, _, label in cases], dtype=object),
        path,
        lines=np.array([line for line, _, _ in cases]),
        declared_equal_length={"true": True, "false": False}.get(declared),
    )


def read_arff(path: Path) -> RawSplit:
    """Read a WEKA ``.arff`` file (relational attribute for multivariate data) with aeon."""
    from aeon.datasets import load_from_arff_file

    raw = _read_bytes(path)
    if b"@data" not in raw.lower():
        raise DatasetError(f"{path}: no @data line: this is not an .arff file")
    try:
        values, labels = load_from_arff_file(str(path))
    except Exception as error:  # aeon raises ValueError/IndexError on malformed data
        raise DatasetError(f"{path}: cannot read the .arff data ({error})") from error
    if len(values) == 0:
        raise DatasetError(f"{path}: no cases after @data")
    labels = np.array([str(label).strip().strip("'\"") for label in labels], dtype=object)
    return RawSplit(np.asarray(values, dtype=np.float64), labels, path)


def _check_npy_header(path: Path) -> None:
    """Refuse a ``.npy`` file whose header claims more data than the file holds, before NumPy
    allocates what the header claims."""
    try:
        with path.open("rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
            else:
                return  # other versions: left to np.load, which names the problem
            data_bytes = path.stat().st_size - handle.tell()
    except Exception as error:  # NumPy's header parser raises many kinds (tokenize, syntax...)
        raise DatasetError(f"{path}: not a readable .npy file ({error})") from error
    if dtype.hasobject:
        return  # refused by np.load(allow_pickle=False) below, with its own message
    claimed = math.prod(shape) * dtype.itemsize
    if claimed > data_bytes:
        raise DatasetError(
            f"{path}: the header claims an array of shape {shape} ({claimed} bytes) but the "
            f"file holds {data_bytes} bytes of data (cut short or damaged)"
        )


def _load_npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: missing; an npy dataset folder needs {_NPY_FILES}")
    _check_npy_header(path)
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise DatasetError(
                f"{path}: holds Python objects (dtype=object), which are not loaded for safety; "
                f"save a numeric array (e.g. np.save(path, X.astype(np.float32)))"
            ) from error
        raise DatasetError(f"{path}: not a readable .npy file ({error})") from error
    except (OSError, SyntaxError, TypeError, EOFError) as error:
        raise DatasetError(f"{path}: not a readable .npy file ({error})") from error


def read_npy_split(folder: Path, split: str) -> RawSplit:
    """Read ``X_<split>.npy`` (N, V, T) or (N, T) and ``y_<split>.npy`` (N,) or (N, 1)."""
    x_path, y_path = folder / f"X_{split}.npy", folder / f"y_{split}.npy"
    values, labels = _load_npy(x_path), _load_npy(y_path)
    if values.dtype.kind not in "biuf":
        raise DatasetError(f"{x_path}: values must be numbers, found dtype {values.dtype}")
    if values.ndim == 2:
        values = values[:, None, :]
    if values.ndim != 3 or values.shape[0] == 0:
        raise DatasetError(
            f"{x_path}: expected shape (n_cases, n_channels, n_timepoints), found {values.shape}"
        )
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or len(labels) != len(values):
        raise DatasetError(
            f"{y_path}: expected {len(values)} labels (shape (N,) or (N, 1)) to match {x_path}, "
            f"found shape {labels.shape}"
        )
    return RawSplit(values.astype(np.float64), labels, x_path)


def read_split_file(path: Path, file_format: str) -> RawSplit:
    """Read one split file in the given format (see ``FILE_FORMATS``)."""
    readers = {"tsv": read_delimited, "csv": read_delimited, "ts": read_ts, "arff": read_arff}
    return readers[file_format](path)


# --------------------------------------------------------------------------------------------
# Finding the files
# --------------------------------------------------------------------------------------------


def default_data_dir() -> Path:
    """``$LSTMFCN_DATA_DIR`` if set, else the repository's ``Data/`` folder."""
    from_env = os.environ.get(DATA_DIR_ENV)
    return Path(from_env).expanduser() if from_env else BUNDLED_DATA_DIR


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """The folder to search: the argument, then ``$LSTMFCN_DATA_DIR``, then ``Data/``."""
    directory = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    if not directory.is_dir():
        origin = (
            "data_dir" if data_dir is not None
            else DATA_DIR_ENV if os.environ.get(DATA_DIR_ENV) else "the bundled data folder"
        )
        raise DatasetNotFoundError(f"data folder {directory} ({origin}) does not exist")
    return directory


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".ts", ".arff"):
        return suffix[1:]
    return "csv"


def _test_file_for(train: Path) -> Path:
    stem, matched, rest = train.name.rpartition("_TRAIN")
    if not matched:
        raise DatasetError(
            f"{train}: a train file's name must contain _TRAIN (e.g. GunPoint_TRAIN.tsv) so "
            f"that its test file (_TEST) can be found"
        )
    return train.with_name(f"{stem}_TEST{rest}")


def _split_pair(train: Path, file_format: str) -> tuple[Path, Path, str]:
    test = _test_file_for(train)
    if not test.exists():
        raise DatasetNotFoundError(f"found {train} but not its test split {test}")
    return train, test, file_format


def _find_in_folder(
    folder: Path, names: list[str], formats: tuple[str, ...]
) -> tuple[Path, Path, str] | None:
    """First ``<name>_TRAIN<ext>`` (by format preference) or npy set in ``folder``."""
    for file_format in formats:
        if file_format == "npy":
            if (folder / _NPY_FILES[0]).is_file():
                return folder, folder, "npy"
            continue
        for name in names:
            for extension in _EXTENSIONS[file_format]:
                train = folder / f"{name}_TRAIN{extension}"
                if train.is_file():
                    return _split_pair(train, file_format)
    return None


def _formats_for(file_format: str | None) -> tuple[str, ...]:
    if file_format is None:
        return FILE_FORMATS
    return (check_choice(file_format, FILE_FORMATS, "file_format"),)


def _missing_dataset_message(name: str, searched: list[Path], directory_origin: str) -> str:
    places = ", ".join(str(folder) for folder in searched)
    return (
        f"dataset {name!r} not found: looked for {name}_TRAIN(.tsv|.ts|.arff|.csv|.txt|no "
        f"extension) and X_train.npy in {places} ({directory_origin}). Download the archive from "
        f"{UCR_ARCHIVE_URL} (UCR, univariate) or {UEA_ARCHIVE_URL} (UEA, multivariate) and "
        f"unpack it with `{EXTRACT_COMMAND}`, or pass data_dir= / set ${DATA_DIR_ENV}"
    )


@dataclass
class _Location:
    name: str
    record: DatasetRecord | None
    train: Path
    test: Path
    file_format: str


def _looks_like_path(text: str) -> bool:
    return "/" in text or os.sep in text or bool(re.search(r"\.(tsv|ts|arff|csv|txt|npy)$", text))


def _locate_path(path: Path, file_format: str | None) -> _Location:
    """A folder (``<Name>/`` or an npy folder) or a ``*_TRAIN*`` file given by the user."""
    formats = _formats_for(file_format)
    if path.is_file():
        found = _split_pair(path, file_format or _format_of(path))
        name = path.name.rpartition("_TRAIN")[0]
    elif path.is_dir():
        name = path.name
        found = _find_in_folder(path, [name], formats)
        if found is None:  # a folder named differently from its files: take its only *_TRAIN*
            candidates = sorted(
                p for p in path.iterdir() if p.is_file() and "_TRAIN" in p.name
                and (file_format is None or _format_of(p) == file_format)
            )
            if len(candidates) > 1:
                raise DatasetError(
                    f"{path}: several train files ({', '.join(p.name for p in candidates)}); "
                    f"pass one of them instead of the folder"
                )
            if not candidates:
                raise DatasetNotFoundError(
                    f"{path}: no *_TRAIN file (.tsv, .ts, .arff, .csv, .txt or no extension) and "
                    f"no X_train.npy in this folder"
                )
            found = _split_pair(candidates[0], file_format or _format_of(candidates[0]))
            name = candidates[0].name.rpartition("_TRAIN")[0]
    else:
        raise DatasetNotFoundError(f"{path}: no such file or folder")
    record = find_dataset(name)
    return _Location(record.name if record else name, record, *found)


def locate_dataset(
    name_or_id_or_path: str | int | os.PathLike[str],
    data_dir: str | os.PathLike[str] | None = None,
    file_format: str | None = None,
) -> _Location:
    """Find a dataset's train and test files (see :func:`load_dataset` for the search order)."""
    if isinstance(name_or_id_or_path, bool) or not isinstance(
        name_or_id_or_path, str | int | os.PathLike
    ):
        raise ConfigurationError(
            f"name_or_id_or_path={name_or_id_or_path!r}: give a dataset name, an id or a path"
        )
    if isinstance(name_or_id_or_path, os.PathLike):
        return _locate_path(Path(name_or_id_or_path), file_format)
    text = str(name_or_id_or_path).strip()
    if isinstance(name_or_id_or_path, str) and _looks_like_path(text):
        return _locate_path(Path(text).expanduser(), file_format)
    record = find_dataset(text) if not isinstance(name_or_id_or_path, int) else None
    if isinstance(name_or_id_or_path, int) or text.isdigit():
        record = resolve_dataset(name_or_id_or_path)  # raises for ids outside 0..127
    directory = resolve_data_dir(data_dir)
    origin = (
        "data_dir argument" if data_dir is not None
        else f"${DATA_DIR_ENV}" if os.environ.get(DATA_DIR_ENV) else "default data folder"
    )
    names = [record.name, *record.aliases] if record else [text]
    formats = _formats_for(file_format)
    searched: list[Path] = []  # every candidate folder, for the message
    for name in names:
        for folder in (directory / name, directory):
            if folder in searched:
                continue
            searched.append(folder)
            if not folder.is_dir():
                continue
            found = _find_in_folder(folder, names, formats)
            if found is not None:
                return _Location(record.name if record else text, record, *found)
    if record is None and Path(text).exists():  # a bare folder name relative to the cwd
        return _locate_path(Path(text), file_format)
    if record is None:
        close = suggest_names(text)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise DatasetNotFoundError(
            f"{text!r} is neither a dataset of the registry nor a folder in {directory} "
            f"({origin}).{hint} For your own data, put {text}_TRAIN and {text}_TEST files in "
            f"{directory / text} or pass the path of the folder or of the _TRAIN file"
        )
    raise DatasetNotFoundError(_missing_dataset_message(names[0], searched, origin))


# --------------------------------------------------------------------------------------------
# From raw splits to a Dataset
# --------------------------------------------------------------------------------------------


def _check_values(split: RawSplit) -> None:
    """Infinite values and cases with no value at all are errors, reported with their place."""
    infinite = np.argwhere(np.isinf(split.values))
    if len(infinite):
        case, channel, step = (int(i) for i in infinite[0])
        column = f", column {step + 2}" if split.lines is not None else ""
        channel_text = f", channel {channel + 1}" if split.values.shape[1] > 1 else ""
        raise DatasetError(
            f"{split.where(case)}{column}{channel_text}: infinite value at time step {step + 1}"
        )
    empty = np.nonzero(np.isnan(split.values).all(axis=(1, 2)))[0]
    if len(empty):
        raise DatasetError(f"{split.where(int(empty[0]))}: the series has no values (all NaN)")


def _read_location(location: _Location) -> tuple[RawSplit, RawSplit]:
    if location.file_format == "npy":
        return read_npy_split(location.train, "train"), read_npy_split(location.test, "test")
    return (
        read_split_file(location.train, location.file_format),
        read_split_file(location.test, location.file_format),
    )


def build_dataset(
    train: RawSplit,
    test: RawSplit,
    *,
    name: str,
    record: DatasetRecord | None = None,
    file_format: str = "tsv",
    normalize: str = "auto",
    missing: str = "zero",
    longer_test: str = "truncate",
) -> Dataset:
    """Turn two raw splits into a :class:`Dataset` (checks, lengths, labels, preprocessing)."""
    if train.values.shape[1] != test.values.shape[1]:
        raise DatasetError(
            f"{test.path}: {test.values.shape[1]} channel(s) but the training file "
            f"{train.path} has {train.values.shape[1]}"
        )
    # Trailing NaN are padding unless the registry or the file header says lengths are equal
    # (MelbournePedestrian, equal length 24, has missing values at the end of some series).
    declared_equal = record.equal_length if record is not None else train.declared_equal_length
    padding = declared_equal is not True
    lengths = []
    for split in (train, test):
        _check_values(split)
        lengths.append(true_lengths(split.values, padding))
    lengths_train, lengths_test = lengths
    has_missing = any(
        bool((np.isnan(split.values) & inside_mask(n, split.values.shape[-1])).any())
        for split, n in ((train, lengths_train), (test, lengths_test))
    )
    encoder, y_train, y_test = encode_labels(
        train.labels, test.labels, str(train.path), str(test.path)
    )
    width = int(lengths_train.max())
    values_train = fill_missing(train.values[:, :, :width], lengths_train, missing)
    values_test = fill_missing(test.values, lengths_test, missing)
    fitted_lengths_test = lengths_test
    if values_test.shape[-1] != width:
        values_test, fitted_lengths_test = fit_to_length(
            values_test, lengths_test, width, longer_test
        )
    normalize = resolve_normalization(normalize, values_train.shape[1])  # record what is applied
    values_train, values_test = normalize_splits(values_train, values_test, normalize)
    return Dataset(
        X_train=pad_with_zeros(values_train, width),
        y_train=y_train,
        X_test=pad_with_zeros(values_test, width),
        y_test=y_test,
        lengths_train=lengths_train,
        lengths_test=fitted_lengths_test,
        label_encoder=encoder,
        name=name,
        dataset_id=record.id if record is not None else None,
        source_files=(train.path, test.path),
        file_format=file_format,
        equal_length=bool(np.unique(np.concatenate(lengths)).size == 1),
        has_missing=has_missing,
        normalize=normalize,
        missing=missing,
        longer_test=longer_test,
        record=record,
    )


def load_dataset(
    name_or_id_or_path: str | int | os.PathLike[str],
    data_dir: str | os.PathLike[str] | None = None,
    normalize: str = "auto",
    *,
    missing: str = "zero",
    longer_test: str = "truncate",
    file_format: str | None = None,
) -> Dataset:
    """Load a dataset's train and test splits as model-ready arrays.

    Parameters
    ----------
    name_or_id_or_path : str, int or path
        A registry name (2018 name or UCR 2015 alias, any case: ``"GunPoint"``, ``"Gun_Point"``),
        an original id 0..127 (``51`` or ``"51"``), or a path to a dataset folder or a
        ``*_TRAIN`` file (its ``_TEST`` sibling is found by name). A name not in the registry is
        looked up as a folder of the data directory.
    data_dir : str or path, optional
        Where to look for ``<Name>/`` folders (or flat ``<Name>_TRAIN`` files). Default:
        ``$LSTMFCN_DATA_DIR`` if set, else the repository's ``Data/`` (found from this package,
        not from the working directory).
    normalize : {"auto", "none", "sample", "dataset"}, default "auto"
        ``"sample"``: z-normalise each series and channel over its true length (population std,
        ``+1e-8``), the LSTM-FCN code's default; ``"dataset"``: per-channel mean and std of the
        train split applied to both splits; ``"none"``: values as in the file (the MLSTM-FCN
        code's default); ``"auto"``: ``"sample"`` for univariate data, ``"none"`` for
        multivariate data, following the original of each family. ``Dataset.normalize`` records
        the mode actually applied.
    missing : {"zero", "interpolate"}, default "zero"
        How NaN inside a series are filled (``"zero"`` as in the original code).
    longer_test : {"truncate", "resample"}, default "truncate"
        What to do with test series longer than the longest training series.
    file_format : {"tsv", "ts", "arff", "csv", "npy"}, optional
        Read this format when a folder has several (default: the first found in that order).

    Returns
    -------
    Dataset
        ``X_train``/``X_test`` float32 of shape (n_cases, n_channels, longest train length),
        zero-padded; ``y_train``/``y_test`` int64 in 0..K-1; lengths and metadata.

    Raises
    ------
    DatasetNotFoundError
        The dataset is not on disk (the message says where we looked and how to get it), or the
        name is unknown (with close names suggested).
    DatasetError
        A file is malformed or the splits disagree (the message names the file and the problem).
    ConfigurationError
        An option has an invalid value.

    Examples
    --------
    >>> data = load_dataset("GunPoint")
    >>> data.X_train.shape, data.n_classes
    ((50, 1, 150), 2)
    """
    check_choice(normalize, NORMALIZE_CHOICES, "normalize")
    check_choice(missing, MISSING_CHOICES, "missing")
    check_choice(longer_test, LONGER_TEST_CHOICES, "longer_test")
    location = locate_dataset(name_or_id_or_path, data_dir, file_format)
    train, test = _read_location(location)
    return build_dataset(
        train,
        test,
        name=location.name,
        record=location.record,
        file_format=location.file_format,
        normalize=normalize,
        missing=missing,
        longer_test=longer_test,
    )
