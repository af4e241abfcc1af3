"""The LSTM-FCN family of models (architectures only; training lives in ``utils.training``).

One parameterised builder, :func:`build_lstmfcn_family`, makes every model: a fully
convolutional (FCN) branch and, beside it, a recurrent branch whose features are concatenated
before the softmax. The historical names ``generate_lstmfcn``, ``generate_alstmfcn``, ... are thin
presets of it, and :data:`MODEL_BUILDERS` maps the command-line names to them.

Papers
------
* LSTM-FCN, ALSTM-FCN: F. Karim, S. Majumdar, H. Darabi, S. Chen, "LSTM Fully Convolutional
  Networks for Time Series Classification", IEEE Access 6, 2018 (arXiv:1709.05206).
* MLSTM-FCN, MALSTM-FCN: F. Karim, S. Majumdar, H. Darabi, S. Harford, "Multivariate LSTM-FCNs
  for Time Series Classification", Neural Networks 116, 2019 (arXiv:1801.04503).
* GRU-FCN, RNN-FCN, Dense-FCN, no dimension shuffle: F. Karim, S. Majumdar, H. Darabi, "Insights
  into LSTM Fully Convolutional Networks for Time Series Classification", IEEE Access 7, 2019
  (arXiv:1902.10756).
* FCN: Z. Wang, W. Yan, T. Oates, "Time Series Classification from Scratch with Deep Neural
  Networks: A Strong Baseline", IJCNN 2017.

Input contract (as the original): one input ``"series"`` of shape (batch, n_channels, T), i.e.
already "dimension-shuffled". The FCN branch permutes it to (batch, T, n_channels); the recurrent
branch reads it as is, so it takes n_channels steps of T features (one step for univariate
data). With ``dimension_shuffle=False`` the recurrent branch runs over the T time steps instead.

Stable layer names (the visualisations rely on them): ``conv1, bn1, relu1, [se1], conv2, bn2,
relu2, [se2], conv3, bn3, relu3, gap``; ``recurrent, recurrent_dropout, concatenate`` (recurrent
features first, then the 128 GAP features); ``output`` (Dense, softmax). The FCN model has no
recurrent branch and no concatenate: ``output`` follows ``gap`` directly. Variable-length models
add ``lengths`` (input), ``input_mask`` and ``mask1..mask3`` (the masked ReLU outputs).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
from keras import layers

from utils.errors import ConfigurationError
from utils.layers import (
    AttentionLSTM,
    LengthMask,
    MaskedGlobalAveragePooling1D,
    SqueezeExcite,
    StepMask,
    resolve_activation,
)

#: Recurrent-branch kinds understood by :func:`build_lstmfcn_family` (None: plain FCN).
RECURRENT_KINDS = ("lstm", "alstm", "gru", "rnn", "dense")


def _check_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ConfigurationError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _recurrent_layer(
    kind: str,
    units: int,
    recurrent_activation: Any,
    unit_forget_bias: bool,
    gru_reset_after: bool,
    attention_unroll: bool | None,
) -> keras.layers.Layer:
    """The layer named ``"recurrent"`` of the given kind (Keras-2 defaults, spec 1.2-1.4)."""
    if kind == "rnn":
        return layers.SimpleRNN(units, name="recurrent")
    if kind == "dense":
        return layers.Dense(units, activation="sigmoid", name="recurrent")
    gated_cells = {
        "lstm": (layers.LSTM, {"unit_forget_bias": unit_forget_bias}),
        "alstm": (
            AttentionLSTM,
            {"unit_forget_bias": unit_forget_bias, "unroll": attention_unroll},
        ),
        # Keras 2's GRU had one bias (reset_after=False): 3m(T + m + 1) parameters.
        "gru": (layers.GRU, {"reset_after": gru_reset_after}),
    }
    cell, options = gated_cells[kind]
    return cell(units, recurrent_activation=recurrent_activation, name="recurrent", **options)


def build_lstmfcn_family(
    max_sequence_length: int,
    nb_class: int,
    num_cells: int = 8,
    n_channels: int = 1,
    *,
    recurrent: str | None = "lstm",
    squeeze_excite: bool = False,
    mask_zero_variables: bool = False,
    dimension_shuffle: bool = True,
    variable_length: bool = False,
    filters: Sequence[int] = (128, 256, 128),
    kernel_sizes: Sequence[int] = (8, 5, 3),
    conv_initializer: Any = "he_uniform",
    bn_momentum: float = 0.99,
    bn_epsilon: float = 1e-3,
    se_ratio: int = 16,
    dropout_rate: float = 0.8,
    recurrent_activation: Any = "hard_sigmoid_k2",
    unit_forget_bias: bool = True,
    gru_reset_after: bool = False,
    attention_unroll: bool | None = None,
    name: str | None = None,
) -> keras.Model:
    """Build one member of the LSTM-FCN family (uncompiled).

    Graph (original_spec.md 1.1-1.4, 10.1)::

        series (B, C, T) -[input_mask]-> permute (B, T, C)
            -> [conv_k -> bn_k -> relu_k (-> mask_k) (-> se_k)] for k = 1..3 -> gap  (B, 128)
        series -> recurrent (B, m) -> recurrent_dropout
        concatenate([recurrent_dropout, gap]) -> output Dense(nb_class, softmax)

    Parameters
    ----------
    max_sequence_length : int
        T, the length of the (padded) time axis.
    nb_class : int
        Number of classes (>= 2).
    num_cells : int, default 8
        m, the units of the recurrent (or Dense) branch; ignored when ``recurrent`` is None.
    n_channels : int, default 1
        C, the number of variables (1 for univariate data).
    recurrent : {"lstm", "alstm", "gru", "rnn", "dense", None}, default "lstm"
        Kind of the second branch: LSTM, AttentionLSTM, GRU, SimpleRNN, Flatten -> Dense(m,
        sigmoid), or none (plain FCN).
    squeeze_excite : bool, default False
        Squeeze-and-excite after every conv block but the last (MLSTM-FCN: after blocks 1, 2).
    mask_zero_variables : bool, default False
        Mask recurrent steps that are all zeros (MLSTM-FCN's ``Masking()``: with the dimension
        shuffle these are variables whose whole series is 0).
    dimension_shuffle : bool, default True
        True: the recurrent branch reads (B, C, T), C steps of T features (the papers). False:
        it reads (B, T, C), T time steps (the ablation's "no dimension shuffle").
    variable_length : bool, default False
        Add an int32 input ``"lengths"`` (B,) with each series' true length. Padded steps are
        zeroed at the input and after every conv block, the GAP (and the SE squeeze) divide by
        the true length, and a recurrent branch running over time stops at the length. In
        inference mode a padded series then gives the same prediction whatever the padding
        holds. (In training mode BatchNormalization batch statistics still see the zeros.)
    filters, kernel_sizes : sequences of int, default (128, 256, 128) and (8, 5, 3)
        Conv blocks (same padding, stride 1).
    conv_initializer : default "he_uniform"
    bn_momentum, bn_epsilon : float, default 0.99 and 1e-3 (Keras defaults of the original)
    se_ratio : int, default 16
    dropout_rate : float, default 0.8
        Dropout after the recurrent branch (80 % of the units dropped while training).
    recurrent_activation : default "hard_sigmoid_k2"
        Gate activation of LSTM / AttentionLSTM / GRU; the Keras-2 ``clip(0.2 x + 0.5, 0, 1)``.
        Use "sigmoid" for Keras-3 / cuDNN-style gates.
    unit_forget_bias : bool, default True
    gru_reset_after : bool, default False
        False gives Keras-2 GRU parameter counts; True is the Keras-3 / cuDNN variant.
    attention_unroll : bool, optional
        ``unroll`` of the AttentionLSTM (default: unrolled up to 16 steps, else a scan).
    name : str, optional
        Model name (default: derived from the options).

    Returns
    -------
    keras.Model
        Uncompiled; input ``"series"`` (B, C, T) (plus ``"lengths"`` (B,) when
        ``variable_length``), output (B, nb_class) class probabilities.
    """
    steps = _check_int("max_sequence_length", max_sequence_length)
    nb_class = _check_int("nb_class", nb_class, minimum=2)
    n_channels = _check_int("n_channels", n_channels)
    if recurrent is not None and recurrent not in RECURRENT_KINDS:
        raise ConfigurationError(
            f"recurrent must be one of {', '.join(RECURRENT_KINDS)} or None, got {recurrent!r}"
        )
    num_cells = _check_int("num_cells", num_cells) if recurrent is not None else 0
    if len(filters) != len(kernel_sizes) or not filters:
        raise ConfigurationError(
            f"filters and kernel_sizes must be non-empty and of equal length, got {filters!r} "
            f"and {kernel_sizes!r}"
        )
    if not 0.0 <= dropout_rate < 1.0:
        raise ConfigurationError(f"dropout_rate must be in [0, 1), got {dropout_rate!r}")
    recurrent_activation = resolve_activation(recurrent_activation)

    series = keras.Input(shape=(n_channels, steps), name="series")
    inputs = [series]
    lengths = None
    if variable_length:
        lengths = keras.Input(shape=(), dtype="int32", name="lengths")
        inputs.append(lengths)
        series_in = LengthMask(time_axis=2, name="input_mask")([series, lengths])
    else:
        series_in = series

    # FCN branch on (B, T, C).
    features = layers.Permute((2, 1), name="permute")(series_in)
    n_blocks = len(filters)
    for block, (n_filters, kernel) in enumerate(zip(filters, kernel_sizes, strict=True), 1):
        features = layers.Conv1D(
            _check_int("filters", n_filters),
            _check_int("kernel_sizes", kernel),
            padding="same",
            kernel_initializer=conv_initializer,
            name=f"conv{block}",
        )(features)
        features = layers.BatchNormalization(
            momentum=bn_momentum, epsilon=bn_epsilon, name=f"bn{block}"
        )(features)
        features = layers.Activation("relu", name=f"relu{block}")(features)
        if variable_length:  # the next conv must see zeros where the padding is
            features = LengthMask(time_axis=1, name=f"mask{block}")([features, lengths])
        if squeeze_excite and block < n_blocks:
            se = SqueezeExcite(se_ratio, name=f"se{block}")
            features = se([features, lengths]) if variable_length else se(features)
    if variable_length:
        pooled = MaskedGlobalAveragePooling1D(name="gap")([features, lengths])
    else:
        pooled = layers.GlobalAveragePooling1D(name="gap")(features)

    if recurrent is None:
        head = pooled
    else:
        branch = _recurrent_branch(
            series_in,
            lengths,
            recurrent,
            num_cells,
            dimension_shuffle=dimension_shuffle,
            mask_zero_variables=mask_zero_variables,
            recurrent_activation=recurrent_activation,
            unit_forget_bias=unit_forget_bias,
            gru_reset_after=gru_reset_after,
            attention_unroll=attention_unroll,
        )
        branch = layers.Dropout(dropout_rate, name="recurrent_dropout")(branch)
        head = layers.Concatenate(name="concatenate")([branch, pooled])
    outputs = layers.Dense(nb_class, activation="softmax", name="output")(head)
    return keras.Model(inputs, outputs, name=name or f"{recurrent or ''}fcn")


def _recurrent_branch(
    series: Any,
    lengths: Any,
    kind: str,
    units: int,
    *,
    dimension_shuffle: bool,
    mask_zero_variables: bool,
    recurrent_activation: Any,
    unit_forget_bias: bool,
    gru_reset_after: bool,
    attention_unroll: bool | None,
) -> Any:
    """Recurrent features (B, m) from the (already length-masked) input (B, C, T)."""
    layer = _recurrent_layer(
        kind, units, recurrent_activation, unit_forget_bias, gru_reset_after, attention_unroll
    )
    if kind == "dense":  # not sequential: the flattened series, whatever the shuffle
        return layer(layers.Flatten(name="flatten")(series))
    if dimension_shuffle:
        sequence, step_lengths = series, None  # C steps of T features: lengths are features
    else:
        sequence = layers.Permute((2, 1), name="recurrent_permute")(series)
        step_lengths = lengths
    if not mask_zero_variables and step_lengths is None:
        return layer(sequence)
    step_mask = StepMask(mask_zero_steps=mask_zero_variables, name="step_mask")
    mask = step_mask(sequence if step_lengths is None else [sequence, step_lengths])
    return layer(sequence, mask=mask)


_DOC_TEMPLATE = """{title}: {summary}

    Thin preset of :func:`build_lstmfcn_family` ({presets}); the paper is {paper}.

    Parameters
    ----------
    max_sequence_length : int
        T, the length of the (padded) time axis.
    nb_class : int
        Number of classes.
    num_cells : int, default 8
        Units m of the recurrent branch (sweeps use 8, 64, 128).{cells_note}
    n_channels : int, default 1
        Number of variables C.
    variable_length : bool, default False
        Add the ``"lengths"`` input and mask padded steps (see :func:`build_lstmfcn_family`).
    dimension_shuffle : bool, default True
        False: the recurrent branch runs over the T time steps instead of the C variables.
    **options
        Any other keyword of :func:`build_lstmfcn_family` (they override the preset).

    Returns
    -------
    keras.Model
        Uncompiled; input ``"series"`` (batch, n_channels, max_sequence_length).
    """

_PAPERS = {
    "univariate": "Karim et al., IEEE Access 2018 (arXiv:1709.05206)",
    "multivariate": "Karim et al., Neural Networks 2019 (arXiv:1801.04503)",
    "ablation": "Karim et al., IEEE Access 2019 (arXiv:1902.10756)",
    "fcn": "Wang et al., IJCNN 2017 (arXiv:1611.06455)",
}


def _preset(name: str, title: str, summary: str, paper: str, **presets: Any) -> Callable:
    """Make ``generate_<name>``: build_lstmfcn_family with fixed defaults and its own doc."""

    def builder(
        max_sequence_length: int,
        nb_class: int,
        num_cells: int = 8,
        n_channels: int = 1,
        *,
        variable_length: bool = False,
        dimension_shuffle: bool = True,
        **options: Any,
    ) -> keras.Model:
        settings = {"name": name, **presets, **options}
        return build_lstmfcn_family(
            max_sequence_length,
            nb_class,
            num_cells,
            n_channels,
            variable_length=variable_length,
            dimension_shuffle=dimension_shuffle,
            **settings,
        )

    builder.__name__ = builder.__qualname__ = f"generate_{name}"
    builder.__doc__ = _DOC_TEMPLATE.format(
        title=title,
        summary=summary,
        presets=", ".join(f"{key}={value!r}" for key, value in presets.items()),
        paper=_PAPERS[paper],
        cells_note=" Ignored: this model has no recurrent branch."
        if presets.get("recurrent", "") is None
        else "",
    )
    return builder


generate_lstmfcn = _preset(
    "lstmfcn", "LSTM-FCN", "LSTM(m) beside the FCN.", "univariate", recurrent="lstm"
)
generate_alstmfcn = _preset(
    "alstmfcn", "ALSTM-FCN", "AttentionLSTM(m) beside the FCN.", "univariate", recurrent="alstm"
)
# MLSTM-FCN's additions: squeeze-excite after conv blocks 1 and 2, all-zero variables masked.
_MULTIVARIATE = {"squeeze_excite": True, "mask_zero_variables": True}
_ON_VARIABLES = "on the masked variables, FCN with squeeze-excite after blocks 1 and 2."
generate_mlstmfcn = _preset(
    "mlstmfcn", "MLSTM-FCN", f"LSTM(m) {_ON_VARIABLES}", "multivariate", recurrent="lstm",
    **_MULTIVARIATE,
)  # fmt: skip
generate_malstmfcn = _preset(
    "malstmfcn", "MALSTM-FCN", f"AttentionLSTM(m) {_ON_VARIABLES}", "multivariate",
    recurrent="alstm", **_MULTIVARIATE,
)  # fmt: skip
generate_grufcn = _preset(
    "grufcn", "GRU-FCN", "GRU(m) (Keras-2 form) beside the FCN.", "ablation", recurrent="gru"
)
generate_rnnfcn = _preset(
    "rnnfcn", "RNN-FCN", "SimpleRNN(m) beside the FCN.", "ablation", recurrent="rnn"
)
generate_densefcn = _preset(
    "densefcn",
    "Dense-FCN",
    "Flatten -> Dense(m, sigmoid) beside the FCN.",
    "ablation",
    recurrent="dense",
)
generate_fcn = _preset("fcn", "FCN", "the convolutional branch alone.", "fcn", recurrent=None)

#: CLI name -> builder. Adding a model is one entry here.
MODEL_BUILDERS: dict[str, Callable[..., keras.Model]] = {
    "lstmfcn": generate_lstmfcn,
    "alstmfcn": generate_alstmfcn,
    "mlstmfcn": generate_mlstmfcn,
    "malstmfcn": generate_malstmfcn,
    "grufcn": generate_grufcn,
    "rnnfcn": generate_rnnfcn,
    "densefcn": generate_densefcn,
    "fcn": generate_fcn,
    # the ablation paper's "no dimension shuffle": the recurrent branch runs over time
    "lstmfcn-noshuffle": functools.partial(
        generate_lstmfcn, dimension_shuffle=False, name="lstmfcn-noshuffle"
    ),
    "alstmfcn-noshuffle": functools.partial(
        generate_alstmfcn, dimension_shuffle=False, name="alstmfcn-noshuffle"
    ),
}


def build_model(
    name: str,
    max_sequence_length: int,
    nb_class: int,
    num_cells: int = 8,
    n_channels: int = 1,
    **kwargs: Any,
) -> keras.Model:
    """Build the model registered as ``name`` in :data:`MODEL_BUILDERS` (uncompiled).

    Raises
    ------
    ConfigurationError
        If ``name`` is not a registered model (the message lists the valid names) or an
        argument is out of range.
    """
    builder = MODEL_BUILDERS.get(name)
    if builder is None:
        raise ConfigurationError(
            f"unknown model {name!r}; valid models: {', '.join(MODEL_BUILDERS)}"
        )
    return builder(max_sequence_length, nb_class, num_cells, n_channels, **kwargs)


def model_inputs(model: keras.Model, X: np.ndarray, lengths: np.ndarray | None = None) -> Any:
    """What to feed ``model`` for the series ``X``: ``X`` itself or a dict with the lengths.

    Lets training and evaluation code stay the same for fixed- and variable-length models.

    Parameters
    ----------
    model : keras.Model
        A model of this module.
    X : array of shape (N, C, T)
        Series, zero-padded (or padded with anything) to the model's T.
    lengths : array of shape (N,), optional
        True lengths. Used only by variable-length models (``"lengths"`` input), where None
        means every series has the full length T; fixed-length models ignore it.

    Returns
    -------
    ndarray or dict
        ``X`` or ``{"series": X, "lengths": int32 lengths}``.

    Raises
    ------
    ConfigurationError
        If ``X`` does not have the model's (C, T), or the lengths are not in 1..T.
    """
    expected = tuple(model.get_layer("series").output.shape[1:])
    X = np.asarray(X)
    if X.ndim != 3 or tuple(X.shape[1:]) != expected:
        raise ConfigurationError(
            f"X has shape {X.shape}, but model {model.name!r} expects (N, {expected[0]}, "
            f"{expected[1]}) = (cases, channels, time steps)"
        )
    if "lengths" not in [tensor.name for tensor in model.inputs]:
        return X
    if lengths is None:
        lengths = np.full(len(X), expected[1], dtype="int32")
    lengths = np.asarray(lengths)
    if lengths.shape != (len(X),):
        raise ConfigurationError(
            f"lengths has shape {lengths.shape}, expected ({len(X)},) (one per series of X)"
        )
    if len(lengths) and (lengths.min() < 1 or lengths.max() > expected[1]):
        raise ConfigurationError(
            f"lengths must lie in 1..{expected[1]} (the model's time steps), got "
            f"{lengths.min()}..{lengths.max()}"
        )
    return {"series": X, "lengths": lengths.astype("int32")}
