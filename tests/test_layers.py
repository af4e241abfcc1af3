"""AttentionLSTM and the masking layers, checked against a plain NumPy reading of the spec.

Runs on whichever Keras backend is selected (``KERAS_BACKEND``); see docs/backends.md.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from utils import load_dataset
from utils.layers import AttentionLSTM, SqueezeExcite, hard_sigmoid_k2


@pytest.fixture(scope="module")
def basic_motions():
    """Real multivariate series: 6 variables of 100 steps (the MALSTM case, S = 6 steps)."""
    return load_dataset("BasicMotions")


def _attention_layer(units: int, input_dim: int, seed: int, **options) -> AttentionLSTM:
    """A built AttentionLSTM with random weights (trained-like: attention is not uniform)."""
    layer = AttentionLSTM(units, **options)
    layer.build((None, None, input_dim))
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(0.0, 0.3, w.shape).astype("float32") for w in layer.weights])
    return layer


def _reference_attention_lstm(layer: AttentionLSTM, X: np.ndarray, valid: np.ndarray):
    """original_spec.md 2.2, one sample at a time, in float64 NumPy (masked steps held)."""
    w = {v.path.split("/")[-1]: np.asarray(v.numpy(), dtype=np.float64) for v in layer.weights}
    m = layer.units
    gate = lambda x: np.clip(0.2 * x + 0.5, 0.0, 1.0)  # noqa: E731  Keras-2 hard sigmoid
    outputs, attentions = [], []
    for x, ok in zip(X.astype(np.float64), valid, strict=True):
        h, c = np.zeros(m), np.zeros(m)
        alphas = []
        for t in range(len(x)):
            energy = np.tanh(h @ w["attention_U"] + x @ w["attention_W"] + w["attention_b"])
            energy = (energy @ w["attention_v"])[:, 0]
            alpha = np.where(ok, np.exp(energy - energy[ok].max()), 0.0)
            alpha /= alpha.sum()
            context = alpha @ x
            z = x[t] @ w["kernel"] + h @ w["recurrent_kernel"] + context @ w["attention_kernel"]
            z += w["bias"]
            i, f, g, o = np.split(z, 4)
            c_new = gate(f) * c + gate(i) * np.tanh(g)
            h_new = gate(o) * np.tanh(c_new)
            if ok[t]:
                h, c = h_new, c_new
            alphas.append(alpha)
        outputs.append(h)
        attentions.append(alphas)
    return np.array(outputs), np.array(attentions)


def _run(layer, X, mask=None):
    result = layer(keras.ops.convert_to_tensor(X), mask=mask)
    return [keras.ops.convert_to_numpy(r) for r in result]


@pytest.mark.parametrize("unroll", [True, False], ids=["unrolled", "scan"])
def test_attention_lstm_matches_the_spec_recurrence(basic_motions, unroll):
    X = basic_motions.X_train[:5]  # (5, 6 variables, 100 steps): attention over 6 steps
    layer = _attention_layer(4, X.shape[2], seed=1, return_attention=True, unroll=unroll)
    h, alpha = _run(layer, X)
    expected_h, expected_alpha = _reference_attention_lstm(layer, X, np.ones(X.shape[:2], bool))
    np.testing.assert_allclose(h, expected_h, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(alpha, expected_alpha, rtol=1e-4, atol=1e-6)
    assert alpha.shape == (5, 6, 6)
    assert np.all(alpha >= 0)
    np.testing.assert_allclose(alpha.sum(axis=-1), 1.0, rtol=1e-6)
    assert not np.allclose(alpha, 1 / 6)  # random weights: attention is not uniform


@pytest.mark.parametrize("unroll", [True, False], ids=["unrolled", "scan"])
def test_masked_steps_are_not_attended_and_hold_the_state(basic_motions, unroll):
    X = basic_motions.X_train[:4]
    valid = np.ones(X.shape[:2], bool)
    valid[0, 4:] = False  # a sequence that ends early
    valid[1, 2] = False  # a skipped variable in the middle
    layer = _attention_layer(3, X.shape[2], seed=2, return_attention=True, unroll=unroll)
    h, alpha = _run(layer, X, mask=keras.ops.convert_to_tensor(valid))
    expected_h, expected_alpha = _reference_attention_lstm(layer, X, valid)
    np.testing.assert_allclose(h, expected_h, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(alpha, expected_alpha, rtol=1e-4, atol=1e-6)
    assert np.all(alpha[0, :, 4:] == 0) and np.all(alpha[1, :, 2] == 0)
    # Masking a step is the same as deleting it from the sequence.
    h_short = _run(layer, X[1:2, [0, 1, 3, 4, 5]])[0]
    np.testing.assert_allclose(h[1:2], h_short, rtol=1e-5, atol=1e-6)


def test_one_step_attention_is_exactly_one():
    gun_point = load_dataset("GunPoint")
    X = gun_point.X_test[:32]  # (32, 1, 150): the univariate, dimension-shuffled case
    layer = _attention_layer(8, X.shape[2], seed=3, return_attention=True)
    _, alpha = _run(layer, X)
    assert alpha.shape == (32, 1, 1)
    assert np.all(alpha == 1.0)


def test_no_batch_mixing(basic_motions):
    """A sample's output must not depend on the rest of its batch (the 2019 cell-port bug)."""
    X = basic_motions.X_test
    for steps in (X, X[:, :1, :]):  # 6 attended steps, and the univariate single step
        layer = _attention_layer(5, steps.shape[2], seed=4)
        alone = keras.ops.convert_to_numpy(layer(steps[:1]))
        in_batch = keras.ops.convert_to_numpy(layer(steps[:16]))[:1]
        shuffled = keras.ops.convert_to_numpy(layer(steps[::-1]))[-1:]
        np.testing.assert_allclose(in_batch, alone, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(shuffled, alone, rtol=1e-5, atol=1e-6)


def test_attention_lstm_weights_and_parameter_count():
    m, d = 8, 128
    layer = AttentionLSTM(m)
    layer.build((None, 1, d))
    shapes = {v.path.split("/")[-1]: tuple(v.shape) for v in layer.weights}
    assert shapes == {
        "kernel": (d, 4 * m),
        "recurrent_kernel": (m, 4 * m),
        "attention_kernel": (d, 4 * m),
        "attention_W": (d, m),
        "attention_U": (m, m),
        "bias": (4 * m,),
        "attention_b": (m,),
        "attention_v": (m, 1),
    }
    assert layer.count_params() == 9 * m * d + 5 * m**2 + 6 * m
    bias = keras.ops.convert_to_numpy(layer.bias)
    np.testing.assert_array_equal(bias[m : 2 * m], 1.0)  # unit forget bias (the intent)
    np.testing.assert_array_equal(np.delete(bias, np.s_[m : 2 * m]), 0.0)
    no_forget_bias = AttentionLSTM(m, unit_forget_bias=False)
    no_forget_bias.build((None, 1, d))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(no_forget_bias.bias), 0.0)


def test_attention_lstm_config_round_trip():
    layer = AttentionLSTM(6, return_attention=True, return_sequences=True, unroll=False)
    clone = AttentionLSTM.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert clone.recurrent_activation is hard_sigmoid_k2


def test_hard_sigmoid_k2_is_the_keras2_function():
    x = np.array([-5.0, -2.5, -1.0, 0.0, 1.0, 2.5, 5.0], dtype="float32")
    got = keras.ops.convert_to_numpy(hard_sigmoid_k2(keras.ops.convert_to_tensor(x)))
    np.testing.assert_allclose(got, [0.0, 0.0, 0.3, 0.5, 0.7, 1.0, 1.0], atol=1e-7)
    keras3 = keras.ops.convert_to_numpy(keras.activations.hard_sigmoid(x))
    assert not np.allclose(got, keras3)  # why the custom activation exists


def test_squeeze_excite_parameters_and_length_masking(basic_motions):
    features = np.transpose(basic_motions.X_train[:3], (0, 2, 1))  # (3, 100, 6)
    features = np.concatenate([features] * 32, axis=-1)  # 192 channels -> bottleneck 12
    block = SqueezeExcite(16)
    full = keras.ops.convert_to_numpy(block(features))
    assert block.count_params() == 2 * 192 * 12
    # With lengths, the squeeze averages over the valid steps only: same as the cut series.
    padded = features.copy()
    padded[:, 60:] = 0.0
    lengths = np.array([60, 60, 60], dtype="int32")
    masked = keras.ops.convert_to_numpy(block([padded, lengths]))
    cut = keras.ops.convert_to_numpy(block(features[:, :60]))
    np.testing.assert_allclose(masked[:, :60], cut, rtol=1e-5, atol=1e-6)
    assert not np.allclose(full[:, :60], cut)


def test_return_sequences_ends_with_the_last_state(basic_motions):
    X = basic_motions.X_test[:3]
    valid = np.ones(X.shape[:2], bool)
    valid[0, 3:] = False
    mask = keras.ops.convert_to_tensor(valid)
    last = _attention_layer(4, X.shape[2], seed=5)
    sequences = AttentionLSTM.from_config({**last.get_config(), "return_sequences": True})
    sequences.build(X.shape)
    sequences.set_weights(last.get_weights())
    h_seq = keras.ops.convert_to_numpy(sequences(X, mask=mask))
    assert h_seq.shape == (3, 6, 4)
    np.testing.assert_allclose(h_seq[:, -1], keras.ops.convert_to_numpy(last(X, mask=mask)))
    np.testing.assert_array_equal(h_seq[0, 3:], np.repeat(h_seq[0, 2:3], 3, axis=0))  # held
