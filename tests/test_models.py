"""The model zoo: parameter counts, layer names, .keras round trips and variable length.

Runs on whichever Keras backend is selected; docs/backends.md gives the commands for JAX and
PyTorch. Datasets are the bundled real ones (GunPoint, BasicMotions, JapaneseVowels).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import utils
from utils import MODEL_BUILDERS, ConfigurationError, build_model, load_dataset
from utils.layers import AttentionLSTM, hard_sigmoid_k2
from utils.models import model_inputs

# original_spec.md 1.8: (T, classes, m) -> LSTM-FCN, ALSTM-FCN, GRU-FCN (Keras 2), RNN-FCN,
# Dense-FCN; None where the table has no entry. Counted by the original code (Keras 2).
PARAMETER_TABLE = {
    "CBF": [
        (128, 3, 8, (270_523, 275_723, 269_427, 267_235, 267_171)),
        (128, 3, 64, (315_715, 360_899, 303_363, 278_659, 274_563)),
        (128, 3, 128, (398_083, 496_643, 365_187, 299_395, 283_011)),
    ],
    "Adiac": [
        (176, 37, 8, (276_717, 283_837, 275_237, 272_277, 272_213)),
        (176, 37, 64, (334_565, 395_109, 319_141, 288_293, 284_197)),
        (176, 37, 128, (431_397, 560_677, 392_357, 314_277, 297_893)),
    ],
    "DiatomSizeReduction": [
        (345, 4, 8, (277_604, 291_484, 274_772, None, None)),
        (345, 4, 64, (371_460, 486_084, 345_220, None, None)),
        (345, 4, 128, (509_444, 746_884, 448_772, None, None)),
    ],
    "FordA": [
        (500, 2, 8, (282_290, 302_370, None, None, None)),
        (500, 2, 64, (410_754, 574_978, None, None, None)),
        (500, 2, 128, (588_290, 924_930, None, None, None)),
    ],
}
TABLE_MODELS = ("lstmfcn", "alstmfcn", "grufcn", "rnnfcn", "densefcn")
PARAMETER_CASES = [
    pytest.param(model, length, classes, cells, count, id=f"{dataset}-{model}-m{cells}")
    for dataset, rows in PARAMETER_TABLE.items()
    for length, classes, cells, counts in rows
    for model, count in zip(TABLE_MODELS, counts, strict=True)
    if count is not None
]
FCN_BRANCH = 265_728  # original_spec.md 1.8: the three conv blocks with their BN, V = 1


@pytest.mark.parametrize(("name", "length", "classes", "cells", "expected"), PARAMETER_CASES)
def test_parameter_counts_equal_the_original(name, length, classes, cells, expected):
    assert build_model(name, length, classes, cells).count_params() == expected


def test_fcn_and_multivariate_parameter_counts():
    # FCN: the shared branch + Dense(C) on the 128 GAP features.
    assert build_model("fcn", 128, 3).count_params() == FCN_BRANCH + 129 * 3
    # MLSTM-FCN on V variables: conv1 grows by 8*128 per extra variable, the LSTM reads
    # V steps of T features, and the two SE blocks add 2*128*8 + 2*256*16 (no biases).
    length, classes, cells, variables = 100, 4, 8, 6
    lstm = 4 * cells * (length + cells + 1)
    expected = (
        FCN_BRANCH + 8 * 128 * (variables - 1) + lstm + (cells + 129) * classes + 2_048 + 8_192
    )
    assert build_model("mlstmfcn", length, classes, cells, variables).count_params() == expected
    attention = 9 * cells * length + 5 * cells**2 + 6 * cells
    malstm = build_model("malstmfcn", length, classes, cells, variables)
    assert malstm.count_params() == expected - lstm + attention


def test_public_names_and_registry():
    for name in ("lstmfcn", "alstmfcn", "mlstmfcn", "malstmfcn", "grufcn", "rnnfcn", "densefcn"):
        assert getattr(utils, f"generate_{name}") is MODEL_BUILDERS[name]
    assert MODEL_BUILDERS["fcn"] is utils.generate_fcn
    assert utils.AttentionLSTM is AttentionLSTM
    with pytest.raises(ConfigurationError, match="unknown model 'lstm'.*lstmfcn, alstmfcn"):
        build_model("lstm", 100, 2)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"nb_class": 1}, "nb_class must be an integer >= 2"),
        ({"num_cells": 0}, "num_cells must be an integer >= 1"),
        ({"max_sequence_length": 2.5}, "max_sequence_length must be an integer"),
        ({"dropout_rate": 1.0}, "dropout_rate must be in"),
        ({"recurrent": "transformer"}, "recurrent must be one of lstm, alstm"),
        ({"filters": (128, 256)}, "filters and kernel_sizes"),
    ],
)
def test_bad_arguments_are_named(arguments, message):
    settings = {"max_sequence_length": 50, "nb_class": 3, **arguments}
    with pytest.raises(ConfigurationError, match=message):
        utils.models.build_lstmfcn_family(**settings)


@pytest.mark.parametrize("name", sorted(MODEL_BUILDERS))
def test_layer_names_and_order(name):
    model = build_model(name, 60, 3, 8, n_channels=2)
    names = {layer.name for layer in model.layers}
    blocks = {f"{kind}{block}" for kind in ("conv", "bn", "relu") for block in (1, 2, 3)}
    assert blocks | {"series", "gap", "output"} <= names
    assert model.get_layer("relu3").output.shape[1:] == (60, 128)  # CAM features (T, 128)
    assert model.get_layer("output").output.shape[1:] == (3,)
    assert ({"se1", "se2"} <= names) == name.startswith("m")
    output_input = model.get_layer("output").input
    if name == "fcn":
        assert not {"recurrent", "concatenate"} & names
        assert output_input is model.get_layer("gap").output
    else:
        # recurrent features first, then the 128 GAP features (CAM reads W[m:m+128])
        first, second = model.get_layer("concatenate").input
        assert first is model.get_layer("recurrent_dropout").output
        assert second is model.get_layer("gap").output
        assert output_input is model.get_layer("concatenate").output
        assert model.get_layer("recurrent_dropout").rate == 0.8


def test_faithful_defaults_and_switches():
    model = build_model("grufcn", 50, 2)
    gru = model.get_layer("recurrent")
    assert gru.cell.recurrent_activation is hard_sigmoid_k2 and not gru.cell.reset_after
    conv = model.get_layer("conv1")
    assert conv.kernel_size == (8,) and conv.padding == "same"
    assert type(conv.kernel_initializer).__name__ == "HeUniform"
    assert [model.get_layer(f"conv{k}").filters for k in (1, 2, 3)] == [128, 256, 128]
    bn = model.get_layer("bn2")
    assert (bn.momentum, bn.epsilon) == (0.99, 1e-3)
    lstm = build_model("lstmfcn", 50, 2).get_layer("recurrent")
    bias = keras.ops.convert_to_numpy(lstm.cell.bias)
    np.testing.assert_array_equal(bias[8:16], 1.0)  # unit forget bias
    modern = build_model(
        "grufcn", 50, 2, recurrent_activation="sigmoid", gru_reset_after=True, dropout_rate=0.5
    )
    assert modern.get_layer("recurrent").cell.reset_after
    assert modern.get_layer("recurrent_dropout").rate == 0.5
    assert modern.count_params() == build_model("grufcn", 50, 2).count_params() + 3 * 8


def test_model_inputs_checks_shapes_and_lengths():
    fixed = build_model("fcn", 40, 2, n_channels=3)
    varying = build_model("fcn", 40, 2, n_channels=3, variable_length=True)
    X = np.zeros((5, 3, 40), dtype="float32")
    assert model_inputs(fixed, X, lengths=np.full(5, 12)) is X
    fed = model_inputs(varying, X)
    assert fed["series"] is X and fed["lengths"].dtype == np.int32
    np.testing.assert_array_equal(fed["lengths"], 40)
    with pytest.raises(ConfigurationError, match=r"X has shape \(5, 40, 3\).*\(N, 3, 40\)"):
        model_inputs(fixed, np.transpose(X, (0, 2, 1)))
    with pytest.raises(ConfigurationError, match="lengths must lie in 1..40"):
        model_inputs(varying, X, lengths=np.array([1, 2, 3, 41, 5]))
    with pytest.raises(ConfigurationError, match="lengths has shape"):
        model_inputs(varying, X, lengths=np.ones(4))


# ---------------------------------------------------------------------------------------------
# Save / load: plain keras.models.load_model after `import utils.models`, identical predictions
# ---------------------------------------------------------------------------------------------


def _randomise(model: keras.Model, seed: int) -> None:
    """Move every weight (BN statistics too) away from its initial value, as training would."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        value = keras.ops.convert_to_numpy(variable)
        noise = rng.normal(0.0, 0.1, value.shape)
        if "moving_variance" in variable.path:
            noise = np.abs(noise)  # keep the variance positive
        variable.assign((value + noise).astype(value.dtype))


@pytest.fixture(scope="module")
def basic_motions():
    return load_dataset("BasicMotions")


@pytest.fixture(scope="module")
def japanese_vowels():
    """Variable-length multivariate series (7..26 steps, zero-padded to 26)."""
    return load_dataset("JapaneseVowels")


@pytest.mark.parametrize("name", sorted(MODEL_BUILDERS))
def test_save_load_round_trip(name, basic_motions, tmp_path):
    data = basic_motions
    model = build_model(name, data.n_timepoints, data.n_classes, 8, data.n_channels)
    _randomise(model, seed=len(name))
    X = data.X_test[:16]
    before = model.predict(X, verbose=0)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(X, verbose=0), before)
    np.testing.assert_allclose(before.sum(axis=1), 1.0, rtol=1e-5)
    if name != "fcn" and name != "densefcn" and name != "rnnfcn":
        activation = loaded.get_layer("recurrent")
        activation = getattr(activation, "cell", activation).recurrent_activation
        assert activation is hard_sigmoid_k2


# ---------------------------------------------------------------------------------------------
# Variable length: padded steps make no difference (trained models, inference mode)
# ---------------------------------------------------------------------------------------------


def _variable_length_model(name, data, **options):
    return build_model(
        name, data.n_timepoints, data.n_classes, 8, data.n_channels, variable_length=True, **options
    )


def _trained_variable_length(name, data, **options):
    keras.utils.set_random_seed(0)
    model = _variable_length_model(name, data, **options)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    fed = model_inputs(model, data.X_train, data.lengths_train)
    history = model.fit(fed, data.y_train, batch_size=64, epochs=3, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    return model


def _with_garbage_padding(X, lengths, seed):
    rng = np.random.default_rng(seed)
    padded = rng.normal(0.0, 50.0, X.shape).astype(X.dtype)
    steps = np.arange(X.shape[2])
    keep = steps[None, None, :] < lengths[:, None, None]
    return np.where(keep, X, padded)


@pytest.mark.parametrize("name", sorted(MODEL_BUILDERS))
def test_garbage_padding_gives_the_zero_padding_prediction(name, japanese_vowels, tmp_path):
    data = japanese_vowels
    model = _variable_length_model(name, data)
    _randomise(model, seed=7)  # non-zero biases and BN shifts: padding would leak without masks
    X, lengths = data.X_test[:64], data.lengths_test[:64]
    assert lengths.min() < data.n_timepoints  # the test needs padded cases
    zero_padded = model.predict(model_inputs(model, X, lengths), verbose=0)
    garbage = _with_garbage_padding(X, lengths, seed=1)
    np.testing.assert_allclose(
        model.predict(model_inputs(model, garbage, lengths), verbose=0),
        zero_padded,
        rtol=1e-5,
        atol=1e-6,
    )
    # Without the lengths input the garbage would matter: the test can fail.
    full_length = model.predict(model_inputs(model, garbage), verbose=0)
    assert not np.allclose(full_length, zero_padded, atol=1e-4)
    if name in ("malstmfcn", "lstmfcn-noshuffle"):  # variable-length models save and load too
        path = tmp_path / "model.keras"
        model.save(path)
        reloaded = keras.models.load_model(path).predict(model_inputs(model, X, lengths), verbose=0)
        np.testing.assert_array_equal(reloaded, zero_padded)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("fcn", {}),
        ("lstmfcn", {"dimension_shuffle": False}),
        ("alstmfcn", {"dimension_shuffle": False, "attention_unroll": False}),
        ("mlstmfcn", {"dimension_shuffle": False}),
    ],
    ids=["fcn", "lstmfcn-noshuffle", "alstmfcn-noshuffle", "mlstmfcn-noshuffle"],
)
def test_padded_prediction_equals_the_exact_length_model(name, options, japanese_vowels):
    """Weights that do not depend on T: a model built for the true length gives the same."""
    data = japanese_vowels
    padded_model = _trained_variable_length(name, data, **options)
    length = int(np.bincount(data.lengths_test).argmax())  # the most common test length
    cases = np.flatnonzero(data.lengths_test == length)[:32]
    assert length < data.n_timepoints and len(cases) >= 8
    exact_model = build_model(name, length, data.n_classes, 8, data.n_channels, **options)
    exact_model.set_weights(padded_model.get_weights())
    exact = exact_model.predict(data.X_test[cases, :, :length], verbose=0)
    padded = padded_model.predict(
        model_inputs(padded_model, data.X_test[cases], data.lengths_test[cases]), verbose=0
    )
    np.testing.assert_allclose(padded, exact, rtol=1e-4, atol=1e-5)
