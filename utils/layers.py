"""Custom Keras 3 layers of the LSTM-FCN family.

Everything here is written with ``keras.ops`` only, so the layers run unchanged on the
TensorFlow, JAX and PyTorch backends, and every class is registered as serialisable under the
package name ``"lstmfcn"``: importing this module is enough for ``keras.models.load_model`` to
rebuild a saved model without ``custom_objects``.

Contents
--------
hard_sigmoid_k2
    The Keras-2 ``hard_sigmoid`` (``clip(0.2 x + 0.5, 0, 1)``) that the original LSTMs used as
    recurrent activation; Keras 3's ``hard_sigmoid`` has slope 1/6 instead.
AttentionLSTM
    The attention LSTM of ALSTM-FCN / MALSTM-FCN (Karim et al. 2017, 2019) with the legacy
    semantics: additive attention over the whole input sequence at every step.
SqueezeExcite
    The squeeze-and-excite block of MLSTM-FCN (Hu et al. 2018; Karim et al. 2019).
LengthMask, StepMask, MaskedGlobalAveragePooling1D
    Helpers for series shorter than the model's time axis (zero-padded batches): zero the
    padded steps, build the recurrent step mask, and average over the true length only.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

_PACKAGE = "lstmfcn"


@keras.saving.register_keras_serializable(package=_PACKAGE, name="hard_sigmoid_k2")
def hard_sigmoid_k2(x: Any) -> Any:
    """Keras-2 hard sigmoid ``clip(0.2 x + 0.5, 0, 1)``.

    Keras <= 2.2 used this as the default ``recurrent_activation`` of LSTM and GRU, so the
    published LSTM-FCN models were trained with it (original_spec.md 1.9). Keras 3's
    ``hard_sigmoid`` is ``relu6(x + 3) / 6`` (slope 1/6), a different function.
    """
    return ops.clip(0.2 * x + 0.5, 0.0, 1.0)


def resolve_activation(activation: Any) -> Any:
    """Return a callable activation; ``"hard_sigmoid_k2"`` names :func:`hard_sigmoid_k2`."""
    if activation == "hard_sigmoid_k2":
        return hard_sigmoid_k2
    return keras.activations.get(activation)


def length_mask(lengths: Any, n_steps: int) -> Any:
    """Boolean mask ``(batch, n_steps)`` that is True where ``step < length``.

    Parameters
    ----------
    lengths : tensor of shape (batch,)
        True number of time steps of every series (any integer or float dtype).
    n_steps : int
        Length of the padded time axis.
    """
    steps = ops.arange(n_steps, dtype="int32")
    lengths = ops.cast(ops.reshape(lengths, (-1, 1)), "int32")
    return ops.less(ops.expand_dims(steps, 0), lengths)


def _masked_softmax(energy: Any, valid: Any | None) -> Any:
    """Softmax over the last axis, restricted to ``valid`` entries (True/1 = attend).

    The maximum is subtracted first (the legacy layer did not), so large energies cannot
    overflow; with a single valid entry the result is exactly 1. A row with no valid entry gets
    all-zero weights instead of NaN.
    """
    if valid is None:
        shifted = energy - ops.max(energy, axis=-1, keepdims=True)
        weights = ops.exp(shifted)
        return weights / ops.sum(weights, axis=-1, keepdims=True)
    valid = ops.cast(valid, "bool")
    lowest = ops.full_like(energy, -1e30)
    largest = ops.max(ops.where(valid, energy, lowest), axis=-1, keepdims=True)
    weights = ops.where(valid, ops.exp(energy - largest), ops.zeros_like(energy))
    total = ops.sum(weights, axis=-1, keepdims=True)
    return weights / ops.where(total > 0, total, ops.ones_like(total))


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AttentionLSTM(keras.layers.Layer):
    """LSTM whose gates also see an attention context over the whole input sequence.

    Legacy semantics of the original ``AttentionLSTM`` (original_spec.md 2.2; Karim et al.,
    "LSTM Fully Convolutional Networks for Time Series Classification", IEEE Access 2017, and
    "Multivariate LSTM-FCNs for Time Series Classification", Neural Networks 2019). For every step
    ``t = 1..S`` of an input ``x_1..x_S`` (each of size D), with ``h_0 = c_0 = 0``::

        e_tj = v_a . tanh(h_{t-1} U_a + x_j W_a + b_a)          j = 1..S  (Bahdanau, 2015)
        a_tj = softmax_j(e_tj)                                  over the valid steps only
        z_t  = sum_j a_tj x_j                                   context vector, size D
        [i, f, g, o] = x_t W + h_{t-1} U + z_t W_ctx + b
        c_t = sig(f) c_{t-1} + sig(i) tanh(g);   h_t = sig(o) tanh(c_t)

    where ``sig`` is the recurrent activation (Keras-2 hard sigmoid by default). Each sample is
    processed on its own: nothing mixes samples of a batch (the 2019 cell port summed the context
    over the batch, original_spec.md 2.5; that bug is not reproduced).

    Weights (row-vector convention, parameter count ``9 m D + 5 m^2 + 6 m``): ``kernel`` (D, 4m)
    glorot_uniform; ``recurrent_kernel`` (m, 4m) orthogonal; ``attention_kernel`` (D, 4m),
    ``attention_W`` (D, m) orthogonal; ``attention_U`` (m, m) orthogonal; ``bias`` (4m,) zeros
    with the forget slice set to 1 when ``unit_forget_bias`` (the original intent; the legacy
    layer forgot to apply it); ``attention_b`` (m,) and ``attention_v`` (m, 1) zeros, so
    attention starts uniform.

    Parameters
    ----------
    units : int
        Size m of the hidden state (the "number of cells" of the papers).
    activation : str or callable, default "tanh"
        Cell-input and output activation.
    recurrent_activation : str or callable, default "hard_sigmoid_k2"
        Gate activation; ``"hard_sigmoid_k2"`` is the Keras-2 ``clip(0.2 x + 0.5, 0, 1)``.
    attention_activation : str or callable, default "tanh"
        Activation inside the additive attention energy.
    use_bias : bool, default True
        Whether the gates have the bias ``b``.
    kernel_initializer, recurrent_initializer, attention_initializer, bias_initializer
        Initialisers of ``kernel``; ``recurrent_kernel`` and ``attention_U``; ``attention_kernel``
        and ``attention_W``; ``bias`` and ``attention_b``. Defaults as above.
    attention_v_initializer : default "zeros"
        Initialiser of ``attention_v`` (the original reused ``bias_initializer``).
    unit_forget_bias : bool, default True
        Start the forget-gate bias at 1 (Jozefowicz et al. 2015).
    return_sequences : bool, default False
        Return every ``h_t`` as (batch, S, m) instead of the last one (batch, m).
    return_attention : bool, default False
        Also return the attention weights ``a`` of shape (batch, S, S): row t holds the weights
        of step t over the S attended steps. The output is then ``[h, a]``.
    unroll : bool or None, default None
        Unroll the loop over steps in Python or use ``keras.ops.scan``. Unrolled steps run
        faster (about 1.2x on TensorFlow, 1.7x on JAX for 12 steps) but compile slower, much
        slower for long sequences. None unrolls when S <= 16.

    Input shape: (batch, S, D). An optional boolean mask (batch, S) marks the valid steps:
    attention ignores masked steps and the state is held through them, so a right-padded
    sequence ends with the state of its last valid step.
    """

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        recurrent_activation: Any = "hard_sigmoid_k2",
        attention_activation: Any = "tanh",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        attention_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        attention_v_initializer: Any = "zeros",
        unit_forget_bias: bool = True,
        return_sequences: bool = False,
        return_attention: bool = False,
        unroll: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if int(units) < 1:
            raise ValueError(f"AttentionLSTM: units must be a positive integer, got {units!r}")
        self.units = int(units)
        self.activation = resolve_activation(activation)
        self.recurrent_activation = resolve_activation(recurrent_activation)
        self.attention_activation = resolve_activation(attention_activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.attention_initializer = keras.initializers.get(attention_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.attention_v_initializer = keras.initializers.get(attention_v_initializer)
        self.unit_forget_bias = unit_forget_bias
        self.return_sequences = return_sequences
        self.return_attention = return_attention
        self.unroll = unroll
        self.supports_masking = True

    def build(self, input_shape: tuple) -> None:
        input_dim = input_shape[-1]
        m = self.units

        def weight(name: str, shape: tuple, initializer: Any) -> Any:
            return self.add_weight(name=name, shape=shape, initializer=initializer)

        self.kernel = weight("kernel", (input_dim, 4 * m), self.kernel_initializer)
        self.recurrent_kernel = weight("recurrent_kernel", (m, 4 * m), self.recurrent_initializer)
        self.attention_kernel = weight(
            "attention_kernel", (input_dim, 4 * m), self.attention_initializer
        )
        self.attention_W = weight("attention_W", (input_dim, m), self.attention_initializer)
        self.attention_U = weight("attention_U", (m, m), self.recurrent_initializer)
        if self.use_bias:
            self.bias = weight("bias", (4 * m,), self._gate_bias_initializer)
        self.attention_b = weight("attention_b", (m,), self.bias_initializer)
        self.attention_v = weight("attention_v", (m, 1), self.attention_v_initializer)

    def _gate_bias_initializer(self, shape: tuple, dtype: Any = None) -> Any:
        """``bias_initializer`` for the i, c, o slices and ones for the forget slice f."""
        if not self.unit_forget_bias:
            return self.bias_initializer(shape, dtype=dtype)
        m = self.units
        return ops.concatenate(
            [
                self.bias_initializer((m,), dtype=dtype),
                ops.ones((m,), dtype=dtype),
                self.bias_initializer((2 * m,), dtype=dtype),
            ]
        )

    def call(self, inputs: Any, mask: Any = None) -> Any:
        n_steps = inputs.shape[1]
        if n_steps is None:
            raise ValueError("AttentionLSTM needs a static number of steps (input axis 1).")
        # Everything that depends only on the input is projected once, outside the loop.
        # Attention is linear in x, so sum_j a_j (x_j W_ctx) equals (sum_j a_j x_j) W_ctx.
        input_gates = ops.matmul(inputs, self.kernel)
        if self.use_bias:
            input_gates = input_gates + self.bias
        context_gates = ops.matmul(inputs, self.attention_kernel)  # (B, S, 4m)
        attention_keys = ops.matmul(inputs, self.attention_W) + self.attention_b  # (B, S, m)
        valid = None if mask is None else ops.cast(mask, "bool")

        # The loop carries (h, c) and, when it is returned, the step's attention; the scan
        # outputs are the stacked carries (TensorFlow's keras scan needs ys shaped like carry).
        keep_attention = self.return_attention

        def step(carry: tuple, step_inputs: tuple) -> tuple:
            h, c = carry[0], carry[1]
            gates_t, valid_t = step_inputs
            query = ops.expand_dims(ops.matmul(h, self.attention_U), 1)
            hidden = self.attention_activation(attention_keys + query)
            energy = ops.squeeze(ops.matmul(hidden, self.attention_v), -1)  # (B, S)
            alpha = _masked_softmax(energy, valid)
            gates = (
                gates_t
                + ops.matmul(h, self.recurrent_kernel)
                + ops.einsum("bs,bsk->bk", alpha, context_gates)
            )
            i, f, g, o = ops.split(gates, 4, axis=-1)
            gate = self.recurrent_activation
            c_new = gate(f) * c + gate(i) * self.activation(g)
            h_new = gate(o) * self.activation(c_new)
            if valid_t is not None:  # hold the state through masked (padded) steps
                keep = ops.expand_dims(valid_t, -1)
                h_new = ops.where(keep, h_new, h)
                c_new = ops.where(keep, c_new, c)
            return (h_new, c_new, alpha) if keep_attention else (h_new, c_new)

        zeros = ops.zeros_like(attention_keys[:, 0, :])
        init = (zeros, zeros)
        if keep_attention:
            init = (*init, ops.zeros_like(attention_keys[:, :, 0]))
        step_valid = None if valid is None else ops.transpose(valid, (1, 0))
        unroll = n_steps <= 16 if self.unroll is None else self.unroll
        if unroll:
            carries = []
            carry = init
            for t in range(n_steps):
                valid_t = None if step_valid is None else step_valid[t]
                carry = step(carry, (input_gates[:, t], valid_t))
                carries.append(carry)
            if self.return_sequences or keep_attention:  # else only the last carry is used
                stacked = [ops.stack(values, axis=1) for values in zip(*carries, strict=True)]
        else:
            time_major = ops.transpose(input_gates, (1, 0, 2))

            def scan_step(carry: tuple, step_inputs: Any) -> tuple:
                if step_valid is None:
                    step_inputs = (step_inputs, None)
                new_carry = step(carry, step_inputs)
                return new_carry, new_carry

            xs = time_major if step_valid is None else (time_major, step_valid)
            carry, outputs = ops.scan(scan_step, init, xs)
            stacked = [ops.transpose(values, (1, 0, 2)) for values in outputs]
        output = stacked[0] if self.return_sequences else carry[0]
        if keep_attention:
            return [output, stacked[2]]
        return output

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        out_mask = mask if self.return_sequences else None
        return [out_mask, None] if self.return_attention else out_mask

    def compute_output_shape(self, input_shape: tuple) -> Any:
        batch, n_steps = input_shape[0], input_shape[1]
        output_shape = (
            (batch, n_steps, self.units) if self.return_sequences else (batch, self.units)
        )
        if self.return_attention:
            return [output_shape, (batch, n_steps, n_steps)]
        return output_shape

    def get_config(self) -> dict:
        config = super().get_config()
        serialize_init = keras.initializers.serialize
        serialize_act = keras.activations.serialize
        config.update(
            {
                "units": self.units,
                "activation": serialize_act(self.activation),
                "recurrent_activation": serialize_act(self.recurrent_activation),
                "attention_activation": serialize_act(self.attention_activation),
                "use_bias": self.use_bias,
                "kernel_initializer": serialize_init(self.kernel_initializer),
                "recurrent_initializer": serialize_init(self.recurrent_initializer),
                "attention_initializer": serialize_init(self.attention_initializer),
                "bias_initializer": serialize_init(self.bias_initializer),
                "attention_v_initializer": serialize_init(self.attention_v_initializer),
                "unit_forget_bias": self.unit_forget_bias,
                "return_sequences": self.return_sequences,
                "return_attention": self.return_attention,
                "unroll": self.unroll,
            }
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SqueezeExcite(keras.layers.Layer):
    """Squeeze-and-excite block for (batch, T, C) feature maps (Hu et al., CVPR 2018).

    As used by MLSTM-FCN after conv blocks 1 and 2 (Karim et al., Neural Networks 2019;
    original_spec.md 10.1)::

        s = mean_t(U)                        (batch, C)    squeeze
        s = sigmoid(relu(s W1) W2)           W1: C x C//ratio, W2: C//ratio x C; he_normal, no bias
        out = U * s                          broadcast over time

    Parameter count ``2 C (C // ratio)``. Called on ``[U, lengths]`` the squeeze averages over the
    first ``lengths`` steps only (padded steps must already be zero, see :class:`LengthMask`).

    Parameters
    ----------
    ratio : int, default 16
        Reduction ratio r (the bottleneck has ``max(1, C // r)`` units).
    kernel_initializer : default "he_normal"
    """

    def __init__(self, ratio: int = 16, kernel_initializer: Any = "he_normal", **kwargs: Any):
        super().__init__(**kwargs)
        self.ratio = int(ratio)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape: Any) -> None:
        feature_shape = _feature_shape(input_shape)
        channels = feature_shape[-1]
        bottleneck = max(1, channels // self.ratio)
        self.squeeze_kernel = self.add_weight(
            name="squeeze_kernel", shape=(channels, bottleneck), initializer=self.kernel_initializer
        )
        self.excite_kernel = self.add_weight(
            name="excite_kernel", shape=(bottleneck, channels), initializer=self.kernel_initializer
        )

    def call(self, inputs: Any) -> Any:
        if isinstance(inputs, list | tuple):
            features, lengths = inputs
            squeezed = _time_mean(features, lengths)
        else:
            features = inputs
            squeezed = ops.mean(features, axis=1)
        hidden = ops.relu(ops.matmul(squeezed, self.squeeze_kernel))
        scale = ops.sigmoid(ops.matmul(hidden, self.excite_kernel))
        return features * ops.expand_dims(scale, 1)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return _feature_shape(input_shape)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "ratio": self.ratio,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config


def _feature_shape(input_shape: Any) -> Any:
    """Shape of the features from the shape of ``x`` or of ``[x, lengths]``.

    Shapes come back from a saved config as lists, so a list alone does not mean two inputs.
    """
    if input_shape and isinstance(input_shape[0], list | tuple):
        return input_shape[0]
    return input_shape


def _time_mean(features: Any, lengths: Any) -> Any:
    """Mean over axis 1 of zero-padded ``features`` (batch, T, C), dividing by the true length."""
    n_steps = ops.shape(features)[1]
    counts = ops.clip(ops.cast(ops.reshape(lengths, (-1, 1)), features.dtype), 1, n_steps)
    return ops.sum(features, axis=1) / counts


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LengthMask(keras.layers.Layer):
    """Set the time steps at and after each series' length to exactly zero.

    Called on ``[x, lengths]`` with ``lengths`` of shape (batch,). ``where`` is used rather than
    a product so that padding holding NaN or inf is cleared too.

    Parameters
    ----------
    time_axis : int, default 1
        Axis of ``x`` that is time: 1 for (batch, T, C) feature maps, 2 for the model input
        (batch, C, T).
    """

    def __init__(self, time_axis: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if time_axis not in (1, 2):
            raise ValueError(f"LengthMask: time_axis must be 1 or 2, got {time_axis!r}")
        self.time_axis = time_axis

    def call(self, inputs: Any) -> Any:
        features, lengths = inputs
        valid = length_mask(lengths, features.shape[self.time_axis])
        valid = ops.expand_dims(valid, 3 - self.time_axis)  # broadcast over the other axis
        return ops.where(valid, features, ops.zeros_like(features))

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape[0]

    def get_config(self) -> dict:
        return {**super().get_config(), "time_axis": self.time_axis}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class StepMask(keras.layers.Layer):
    """Boolean step mask (batch, S) for a recurrent layer reading (batch, S, D).

    Called on ``x`` or ``[x, lengths]``. A step is valid when it is within the length (if
    lengths are given) and, with ``mask_zero_steps``, when it is not all zeros. The latter is
    the ``Masking()`` of MLSTM-FCN (original_spec.md 10.1): with the dimension shuffle a step is
    a variable, so variables whose whole series is zero are skipped.

    Parameters
    ----------
    mask_zero_steps : bool, default False
        Also mask steps whose D values are all exactly 0.
    """

    def __init__(self, mask_zero_steps: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mask_zero_steps = mask_zero_steps

    def call(self, inputs: Any) -> Any:
        if isinstance(inputs, list | tuple):
            features, lengths = inputs
            valid = length_mask(lengths, features.shape[1])
        else:
            features, valid = inputs, None
        if self.mask_zero_steps:
            nonzero = ops.any(ops.not_equal(features, 0), axis=-1)
            valid = nonzero if valid is None else ops.logical_and(valid, nonzero)
        if valid is None:
            valid = ops.ones_like(features[:, :, 0], dtype="bool")
        return valid

    def compute_output_shape(self, input_shape: Any) -> Any:
        feature_shape = _feature_shape(input_shape)
        return tuple(feature_shape[:2])

    def compute_output_spec(self, inputs: Any) -> Any:
        features = inputs[0] if isinstance(inputs, list | tuple) else inputs
        return keras.KerasTensor(tuple(features.shape[:2]), dtype="bool")

    def get_config(self) -> dict:
        return {**super().get_config(), "mask_zero_steps": self.mask_zero_steps}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MaskedGlobalAveragePooling1D(keras.layers.Layer):
    """Global average over time of zero-padded (batch, T, C) features, divided by the length.

    Called on ``[x, lengths]``; steps at and after ``lengths`` must already be zero (the
    builders put a :class:`LengthMask` before it). Equals ``GlobalAveragePooling1D`` of the
    series cut to its true length.
    """

    def call(self, inputs: Any) -> Any:
        features, lengths = inputs
        return _time_mean(features, lengths)

    def compute_output_shape(self, input_shape: Any) -> Any:
        feature_shape = input_shape[0]
        return (feature_shape[0], feature_shape[2])
