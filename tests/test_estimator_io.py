"""Saving, loading and exporting a fitted LSTMFCNClassifier, on bundled data.

Each network is trained once (a few epochs: the round trips must reproduce whatever the network
computes, not a good accuracy) and shared by the tests of this module.
"""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from utils import ConfigurationError, DatasetError, LSTMFCNClassifier, load_dataset
from utils.estimator_io import MODEL_MEMBER, RECORD_MEMBER


def _raw(name):
    data = load_dataset(name, normalize="none")
    return data, data.decode_labels(data.y_train), data.decode_labels(data.y_test)


@pytest.fixture(scope="module")
def fitted():
    """Name -> (estimator, test series as predict_proba takes them, NaN-padded to the width)."""
    cases = {}
    gunpoint, y_gun, _ = _raw("GunPoint")
    for model in ("lstmfcn", "alstmfcn"):
        classifier = LSTMFCNClassifier(model=model, epochs=3, batch_size=16)
        cases[model] = (classifier.fit(gunpoint.X_train, y_gun), gunpoint.X_test[:40])
    # variable length with dataset statistics: the in-graph masking and constants are used
    pickup, y_pickup, _ = _raw("PickupGestureWiimoteZ")
    padded = pickup.X_train.astype(np.float64)
    for X, lengths in ((padded, pickup.lengths_train),):
        X[np.arange(X.shape[2])[None, None, :] >= lengths[:, None, None]] = np.nan
    test = pickup.X_test.astype(np.float64)
    test[np.arange(test.shape[2])[None, None, :] >= pickup.lengths_test[:, None, None]] = np.nan
    classifier = LSTMFCNClassifier(model="lstmfcn", epochs=3, batch_size=16,
                                   normalize="dataset", class_weight={1: 2.0, 10: 0.5})
    cases["variable-length"] = (classifier.fit(padded, y_pickup), test[:, :, :361])
    return cases


@pytest.mark.parametrize("name", ["lstmfcn", "alstmfcn", "variable-length"])
def test_save_load_gives_identical_predictions(fitted, name, tmp_path):
    classifier, X_test = fitted[name]
    path = tmp_path / "my classifier"  # exactly this path, no suffix added
    classifier.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my classifier"]
    loaded = LSTMFCNClassifier.load(path)
    assert loaded.get_params() == classifier.get_params()
    for attribute in ("classes_", "n_features_in_", "n_channels_", "n_timepoints_",
                      "normalize_", "channel_mean_", "channel_std_", "variable_length_"):
        np.testing.assert_array_equal(getattr(loaded, attribute), getattr(classifier, attribute))
    assert loaded.classes_.dtype.kind == classifier.classes_.dtype.kind
    assert loaded.training_result_ == classifier.training_result_
    np.testing.assert_array_equal(loaded.predict_proba(X_test), classifier.predict_proba(X_test))
    with pytest.raises(ConfigurationError, match="already exists"):
        classifier.save(path)
    classifier.save(path, overwrite=True)


def _rewrite(source, target, record_change=None, model_bytes=None, extra=None):
    with zipfile.ZipFile(source) as archive:
        record = json.loads(archive.read(RECORD_MEMBER))
        model = archive.read(MODEL_MEMBER)
    if record_change:
        record_change(record)
    with zipfile.ZipFile(target, "w") as archive:
        archive.writestr(RECORD_MEMBER, json.dumps(record))
        archive.writestr(MODEL_MEMBER, model if model_bytes is None else model_bytes)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return target


def test_load_refuses_what_it_cannot_trust(fitted, tmp_path):
    classifier, _ = fitted["lstmfcn"]
    good = tmp_path / "good.zip"
    classifier.save(good)
    with zipfile.ZipFile(good) as archive:
        model = archive.read(MODEL_MEMBER)

    def refused(path, match):
        with pytest.raises(DatasetError, match=match):
            LSTMFCNClassifier.load(path)

    (tmp_path / "text").write_text("hello")
    refused(tmp_path / "text", "not a zip archive")
    refused(_rewrite(good, tmp_path / "extra", extra={"payload.pkl": b"x"}), "expected exactly")
    refused(_rewrite(good, tmp_path / "sum", model_bytes=model[:-10] + b"0" * 10), "checksum")
    refused(_rewrite(good, tmp_path / "v", lambda r: r.update(format_version=99)), "newer")
    refused(_rewrite(good, tmp_path / "p", lambda r: r["params"].update(evil=1)),
            "unknown parameters")
    refused(_rewrite(good, tmp_path / "k", lambda r: r["versions"].update(keras="2.15.0")),
            "Keras 2.15.0")
    refused(_rewrite(good, tmp_path / "c",
                     lambda r: r["fitted"]["classes_"]["values"].append(3)), "3 classes")
    refused(_rewrite(good, tmp_path / "n", lambda r: r["fitted"].update(normalize_="exec")),
            "normalize_")
    # a Keras archive holding a Lambda layer (serialised Python code) is refused by safe mode
    import keras

    inputs = keras.Input((1, 150), name="series")
    lambda_model = keras.Model(inputs, keras.layers.Lambda(lambda x: x[:, 0, :2] * 0 + 0.5)(
        inputs))
    keras.saving.save_model(lambda_model, tmp_path / "lambda.keras")
    lambda_bytes = (tmp_path / "lambda.keras").read_bytes()
    import hashlib

    refused(_rewrite(good, tmp_path / "lambda", lambda r: r.update(
        model_sha256=hashlib.sha256(lambda_bytes).hexdigest()), model_bytes=lambda_bytes),
        "Keras refused")
    with pytest.raises(FileNotFoundError):
        LSTMFCNClassifier.load(tmp_path / "missing")


def test_predict_script_takes_a_saved_estimator(fitted, tmp_path, capsys):
    import predict

    classifier, _ = fitted["lstmfcn"]
    saved = tmp_path / "gunpoint.lstmfcn"
    classifier.save(saved)
    series = tmp_path / "GunPoint_TEST.tsv"
    series.write_bytes(load_dataset("GunPoint").source_files[1].read_bytes())
    assert predict.main([str(series), "--estimator", str(saved)]) == 0
    import pandas as pd

    written = pd.read_csv(tmp_path / "GunPoint_TEST_predictions.csv")
    data, _, y_test = _raw("GunPoint")
    np.testing.assert_array_equal(written["predicted_label"], classifier.predict(data.X_test))
    np.testing.assert_allclose(written[[f"p_{c}" for c in classifier.classes_]],
                               classifier.predict_proba(data.X_test), atol=1e-6)
    accuracy = np.mean(classifier.predict(data.X_test) == y_test)
    assert f"accuracy against the labels in the file: {accuracy:.4f}" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["lstmfcn", "alstmfcn", "variable-length"])
def test_export_round_trip_with_tensorflow_and_onnxruntime(fitted, name, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    import tensorflow as tf

    classifier, X_test = fitted[name]
    expected = classifier.predict_proba(X_test)
    series = X_test.astype(np.float32)  # raw values, NaN after each series' end

    classifier.export(tmp_path / "saved_model", format="tf_saved_model")
    served = tf.saved_model.load(str(tmp_path / "saved_model"))
    np.testing.assert_allclose(served.serve(tf.constant(series)).numpy(), expected, atol=1e-5)

    classifier.export(tmp_path / "model.onnx", format="onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"))
    (onnx_input,) = session.get_inputs()
    (probabilities,) = session.run(None, {onnx_input.name: series})
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    if classifier.normalize_ == "sample":
        # the per-series z-normalisation is in the graph: scaling and shifting a series changes
        # nothing (fed to the bare network, the same values would)
        shifted = series * 10 + 5
        (again,) = session.run(None, {onnx_input.name: shifted})
        np.testing.assert_allclose(again, expected, atol=1e-5)
    with pytest.raises(ConfigurationError, match="already exists"):
        classifier.export(tmp_path / "model.onnx", format="onnx")


def test_readme_in_python_lines_run_as_written(tmp_path, monkeypatch, capsys):
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    (code,) = [block for block in blocks if "LSTMFCNClassifier.load" in block]
    assert len([line for line in code.splitlines() if line.strip()]) == 10
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    score, predictions = capsys.readouterr().out.splitlines()[-2:]
    assert float(score) >= 0.85  # ItalyPowerDemand after 100 epochs
    assert set(predictions.strip("[]").split()) <= {"1", "2"}
    assert (tmp_path / "italy.lstmfcn").is_file()
    assert (tmp_path / "italy_saved_model" / "saved_model.pb").is_file()


def test_export_says_clearly_what_cannot_be_exported(tmp_path):
    data, y_train, _ = _raw("ItalyPowerDemand")
    classifier = LSTMFCNClassifier(model="alstmfcn-noshuffle", epochs=1).fit(data.X_train,
                                                                            y_train)
    with pytest.raises(ConfigurationError, match="AttentionLSTM runs over 24 steps as a scan"):
        classifier.export(tmp_path / "model.onnx", format="onnx")
    assert not (tmp_path / "model.onnx").exists()
    with pytest.raises(ConfigurationError, match="format='keras' is not valid"):
        classifier.export(tmp_path / "model", format="keras")
