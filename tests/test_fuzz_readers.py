"""Hostile input: every reader gets random bytes and mutated copies of real files.

Whatever a file holds, a reader returns data or raises one of the project's own errors
(``utils.errors``), within a time bound, without allocating what a header merely claims, and
without running code from the file (no unpickling, no ``eval``).

CI runs a bounded number of examples (profile ``ci``, 30 per test); a longer local run:
``HYPOTHESIS_PROFILE=long FUZZ_EXAMPLES=1000 python -m pytest tests/test_fuzz_readers.py``.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import tracemalloc
import warnings
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from utils.checkpoints import read_sidecar
from utils.data import load_dataset
from utils.errors import LSTMFCNError
from utils.experiments import read_log, upsert_row

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "Data"

settings.register_profile(
    "ci", max_examples=30, derandomize=True, database=None, deadline=timedelta(seconds=10),
    suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "long", max_examples=int(os.environ.get("FUZZ_EXAMPLES", 1000)), database=None,
    deadline=timedelta(seconds=10), suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# tokens that readers treat specially, inserted by the mutations
NASTY = [b"nan", b"NaN", b"inf", b"-inf", b"1e999", b"?", b"", b"\x00", b"\xff\xfe", b",", b"\t",
         b":", b"\n", b"\r\n", b"@data", b"@DATA", b"@attribute x relational", b"@end",
         b"@seriesLength 99999999999", b"@dimensions 100000000", b"@equalLength true",
         b"@classLabel true 1 2", b"@timestamps true", b"(1,2)", b"9" * 400, b'"', b"'", b"{",
         b"[" * 5000, b"NaN\tNaN\tNaN", b"-", b"1,2,3"]

MUTATION = st.one_of(
    st.tuples(st.just("cut"), st.floats(0, 1)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(max_size=30) | st.sampled_from(NASTY)),
    st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 300)),
    st.tuples(st.just("byte"), st.floats(0, 1), st.integers(0, 255)),
    st.tuples(st.just("repeat_line"), st.floats(0, 1), st.integers(1, 50)),
)


def mutate(original: bytes, mutations: list[tuple]) -> bytes:
    data = bytearray(original)
    for kind, where, *argument in mutations:
        at = int(where * len(data))
        if kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = argument[0]
        elif kind == "delete":
            del data[at : at + argument[0]]
        elif kind == "byte" and at < len(data):
            data[at] = argument[0]
        elif kind == "repeat_line":
            start = data.rfind(b"\n", 0, at) + 1
            end = data.find(b"\n", at)
            line = bytes(data[start : (end if end >= 0 else len(data))]) + b"\n"
            data[start:start] = line * argument[0]
    return bytes(data)


HOSTILE = st.one_of(
    st.binary(max_size=3000).map(lambda raw: ("random", raw)),
    st.lists(MUTATION, min_size=1, max_size=5).map(lambda m: ("mutated", m)),
)


def contents(original: bytes, drawn: tuple) -> bytes:
    kind, value = drawn
    return value if kind == "random" else mutate(original, value)


def expect_own_errors(read, *arguments):
    """Run a reader: it may succeed; any exception must be one of the project's."""
    try:
        read(*arguments)
    except LSTMFCNError as error:
        assert str(error)  # a message that says something


# --------------------------------------------------------------------------- seed files


def _chinatown_rows() -> list[list[str]]:
    return [line.split("\t") for line in
            (DATA / "Chinatown" / "Chinatown_TRAIN.tsv").read_text().splitlines()]


def _ts_subset(path: Path, n_cases: int) -> bytes:
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().lower() == "@data") + 1
    header = [line for line in lines[:start] if not line.startswith("#")]
    return ("\n".join(header + lines[start : start + n_cases]) + "\n").encode()


def _arff(rows: list[list[str]]) -> bytes:
    length = len(rows[0]) - 1
    labels = sorted({row[0] for row in rows})
    text = ["@relation Chinatown"]
    text += [f"@attribute t{i} numeric" for i in range(length)]
    text += ["@attribute target {" + ",".join(labels) + "}", "@data"]
    text += [",".join(row[1:] + [row[0]]) for row in rows]
    return ("\n".join(text) + "\n").encode()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """One folder per format with a real train/test pair; tests overwrite the train file."""
    root = tmp_path_factory.mktemp("fuzz")
    rows = _chinatown_rows()
    seeds = {}
    folder = root / "tsv" / "Chinatown"
    folder.mkdir(parents=True)
    for split in ("TRAIN", "TEST"):
        (folder / f"Chinatown_{split}.tsv").write_bytes(
            (DATA / "Chinatown" / f"Chinatown_{split}.tsv").read_bytes())
    seeds["tsv"] = (folder, folder / "Chinatown_TRAIN.tsv")

    folder = root / "csv" / "Chinatown"
    folder.mkdir(parents=True)
    comma = ("\n".join(",".join(row) for row in rows) + "\n").encode()
    for split in ("TRAIN", "TEST"):
        (folder / f"Chinatown_{split}").write_bytes(comma)
    seeds["csv"] = (folder, folder / "Chinatown_TRAIN")

    folder = root / "ts" / "GunPoint"
    folder.mkdir(parents=True)
    for split in ("TRAIN", "TEST"):
        (folder / f"GunPoint_{split}.ts").write_bytes(
            _ts_subset(DATA / "GunPoint" / f"GunPoint_{split}.ts", 6))
    seeds["ts"] = (folder, folder / "GunPoint_TRAIN.ts")

    folder = root / "arff" / "Chinatown"
    folder.mkdir(parents=True)
    for split in ("TRAIN", "TEST"):
        (folder / f"Chinatown_{split}.arff").write_bytes(_arff(rows))
    seeds["arff"] = (folder, folder / "Chinatown_TRAIN.arff")

    folder = root / "npy" / "Chinatown"
    folder.mkdir(parents=True)
    values = np.array([[float(v) for v in row[1:]] for row in rows])[:, None, :]
    labels = np.array([int(float(row[0])) for row in rows])
    for split in ("train", "test"):
        np.save(folder / f"X_{split}.npy", values)
        np.save(folder / f"y_{split}.npy", labels)
    seeds["npy"] = (folder, folder / "X_train.npy")

    folder = root / "weights"
    folder.mkdir()
    weights = folder / "Chinatown.weights.h5"
    weights.write_bytes(b"not read by read_sidecar")
    sidecar = {"model": "lstmfcn", "builder": {"max_sequence_length": 24, "nb_class": 2,
               "num_cells": 8, "n_channels": 1, "variable_length": False},
               "dataset": "Chinatown", "normalize": "sample", "seed": 0, "epochs": 2,
               "classes": ["1", "2"], "weights_sha256": "0" * 64,
               "row": {"test_accuracy": 0.5, "weights_file": "Chinatown.weights.h5"},
               "history": {"loss": [0.7, 0.6]}}
    (folder / "Chinatown.json").write_text(json.dumps(sidecar, indent=2))
    seeds["sidecar"] = (weights, folder / "Chinatown.json")

    log = root / "logs" / "lstmfcn_8_cells_results.csv"
    for seed in (0, 1):
        upsert_row(log, {"dataset": "Chinatown", "model": "lstmfcn", "cells": 8, "seed": seed,
                         "protocol": "train-loss", "test_accuracy": 0.5 + seed / 10,
                         "weights_file": "lstmfcn_8_cells_weights/Chinatown.weights.h5"})
    seeds["log"] = (log, log)
    originals = {name: target.read_bytes() for name, (_, target) in seeds.items()}
    return Workspace(seeds, originals)


class Workspace(tuple):
    """(seed file places, original bytes), with a short repr for hypothesis' reports."""

    def __new__(cls, seeds, originals):
        return super().__new__(cls, (seeds, originals))

    def __repr__(self) -> str:
        return "<fuzz workspace>"


FORMATS = ("tsv", "csv", "ts", "arff", "npy")


@pytest.mark.parametrize("file_format", FORMATS)
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(drawn=HOSTILE)
# found by the long run: a 400-digit integer (float overflow), an .npy header cut mid-dict
@example(drawn=("mutated", [("insert", 0.5, b"9" * 400)]))
@example(drawn=("mutated", [("delete", 0.015625, 9)]))
def test_dataset_readers_raise_only_their_own_errors(workspace, file_format, drawn):
    seeds, originals = workspace
    folder, target = seeds[file_format]
    target.write_bytes(contents(originals[file_format], drawn))
    expect_own_errors(load_dataset, folder, None, "sample")


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(drawn=HOSTILE)
def test_the_sidecar_reader_raises_only_its_own_errors(workspace, drawn):
    seeds, originals = workspace
    weights, sidecar = seeds["sidecar"]
    sidecar.write_bytes(contents(originals["sidecar"], drawn))
    expect_own_errors(read_sidecar, weights)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(drawn=HOSTILE)
def test_the_results_log_reader_never_misreads(workspace, drawn):
    seeds, originals = workspace
    log, _ = seeds["log"]
    raw = contents(originals["log"], drawn)
    log.write_bytes(raw)
    try:
        with warnings.catch_warnings():  # a cut last line is dropped with a warning
            warnings.simplefilter("ignore")
            rows = read_log(log)
    except LSTMFCNError:
        return
    # what is read back is made of whole lines of the file, never a line cut short
    text = raw.decode("utf-8")
    for row in rows:
        assert None not in row.values() and None not in row
        assert all(value in text for value in row.values())


# --------------------------------------------------------------------------- claims in headers


def refusal_peak_bytes(folder: Path, message: str) -> int:
    """Load ``folder``, expect an error matching ``message``; return the peak of the memory
    allocated meanwhile (NumPy arrays included)."""
    import aeon.datasets  # noqa: F401  (imported before: its import is not what is measured)

    tracemalloc.start()
    try:
        with pytest.raises(LSTMFCNError, match=message):
            load_dataset(folder)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


def test_an_npy_header_claiming_a_huge_array_allocates_nothing_huge(tmp_path):
    folder = tmp_path / "Huge"
    folder.mkdir()
    for split in ("train", "test"):
        np.save(folder / f"X_{split}.npy", np.zeros((2, 1, 8)))
        np.save(folder / f"y_{split}.npy", np.array([0, 1]))
    path = folder / "X_train.npy"
    raw = path.read_bytes()
    # the same 128 bytes of data under a header that claims 10^12 x 10^3 doubles
    header = np.lib.format.header_data_from_array_1_0(np.zeros((2, 1, 8)))
    header["shape"] = (10**12, 1, 1000)
    with path.open("wb") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
        handle.write(raw[-128:])
    assert refusal_peak_bytes(folder, "X_train.npy") < 64 * 2**20


def test_a_ts_header_claiming_a_huge_series_allocates_nothing_huge(tmp_path):
    folder = tmp_path / "GunPoint"
    folder.mkdir()
    for split in ("TRAIN", "TEST"):
        text = _ts_subset(DATA / "GunPoint" / f"GunPoint_{split}.ts", 4).decode()
        text = text.replace("@seriesLength 150", "@seriesLength 100000000000")
        (folder / f"GunPoint_{split}.ts").write_text(text)
    assert refusal_peak_bytes(folder, "seriesLength") < 64 * 2**20


def test_one_long_series_among_many_short_ones_allocates_nothing_huge(tmp_path):
    folder = tmp_path / "Lopsided"
    folder.mkdir()
    header = "@problemName Lopsided\n@univariate true\n@equalLength false\n" \
             "@classLabel true a b\n@data\n"
    long_case = ",".join(["1"] * 100_000) + ":a\n"  # padded to 100 000 x 5001 cases: 4 GB
    text = header + long_case + "1:b\n" * 5_000
    for split in ("TRAIN", "TEST"):
        (folder / f"Lopsided_{split}.ts").write_text(text)
    assert refusal_peak_bytes(folder, "padding its 5001 series") < 256 * 2**20


# --------------------------------------------------------------------------- no code from files


class _Canary:
    """Unpickling this object creates ``path``: proof that a file's code ran."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


def test_an_npy_file_with_a_pickle_inside_is_refused_and_never_unpickled(tmp_path):
    canary = tmp_path / "code-ran"
    folder = tmp_path / "Pickled"
    folder.mkdir()
    objects = np.empty((2, 1, 3), dtype=object)
    objects[...] = _Canary(str(canary))
    for split in ("train", "test"):
        np.save(folder / f"X_{split}.npy", objects, allow_pickle=True)
        np.save(folder / f"y_{split}.npy", np.array([0, 1]))
    with pytest.raises(LSTMFCNError, match="Python objects"):
        load_dataset(folder)
    assert not canary.exists()
    pickle.loads(pickle.dumps(_Canary(str(canary))))  # the canary itself works
    assert canary.exists()


UNSAFE_CALLS = {"eval", "exec"}
UNSAFE_ATTRIBUTES = {("pickle", "load"), ("pickle", "loads"), ("marshal", "loads"),
                     ("joblib", "load"), ("dill", "load"), ("cloudpickle", "load")}


def _project_sources() -> list[Path]:
    skip = {".venv", "tests", ".git", "Data", "Results"}
    return [path for path in ROOT.rglob("*.py")
            if not skip & set(path.relative_to(ROOT).parts)]


def test_no_code_path_unpickles_or_evaluates_a_file():
    problems = []
    for path in _project_sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            function = node.func
            keywords = {k.arg: k.value for k in node.keywords}
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if isinstance(function, ast.Name) and function.id in UNSAFE_CALLS:
                problems.append(f"{where}: {function.id}()")
            if not isinstance(function, ast.Attribute):
                continue
            owner = function.value.id if isinstance(function.value, ast.Name) else ""
            if (owner, function.attr) in UNSAFE_ATTRIBUTES:
                problems.append(f"{where}: {owner}.{function.attr}()")
            if function.attr == "load" and owner in ("np", "numpy"):
                flag = keywords.get("allow_pickle")
                if not (isinstance(flag, ast.Constant) and flag.value is False):
                    problems.append(f"{where}: np.load without allow_pickle=False")
            if function.attr == "load_model":
                flag = keywords.get("safe_mode")
                if flag is not None and not (isinstance(flag, ast.Constant) and flag.value):
                    problems.append(f"{where}: load_model with safe_mode off")
            if function.attr == "load" and owner == "torch":
                flag = keywords.get("weights_only")
                if not (isinstance(flag, ast.Constant) and flag.value is True):
                    problems.append(f"{where}: torch.load without weights_only=True")
    assert not problems, problems
