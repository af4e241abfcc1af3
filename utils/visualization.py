"""What a trained LSTM-FCN looks at: filter activations, class activation maps, attention.

Two layers of functions, in the order data flows (weights -> arrays -> figures):

Arrays (numbers only; plot them any way you like)
    :func:`filter_activations`   output of a conv block (after BN and ReLU), (N, T, filters)
    :func:`class_activation_map` CAM of Zhou et al. (2016) on the last conv block, (N, T[, C])
    :func:`grad_cam`             Grad-CAM of Selvaraju et al. (2017) on any conv/ReLU layer
    :func:`attention_weights`    the AttentionLSTM's weights alpha, (N, S, S)
    :func:`choose_samples`       reproducible choice of cases (random, one class, per class)

Figures (matplotlib; each returns a ``Figure`` and draws the arrays above)
    :func:`plot_filter_activations`, :func:`plot_filter_grid`, :func:`plot_class_activation_maps`,
    :func:`plot_attention`, :func:`plot_dataset`, :func:`save_figure`

Everything is computed in inference mode (``training=False``): BatchNorm uses its moving
statistics and dropout is off, so a figure shows the model that makes the predictions. The
original scripts probed the layers in training mode and read the class weights from the wrong
rows of the output layer (original_spec.md section 6); neither is reproduced here.

Indices follow Python: ``class_id`` is the 0-based index into ``Dataset.classes`` (the sorted
original labels), ``conv_id`` 0, 1, 2 selects conv blocks 1, 2, 3 (layers ``relu1..relu3``) and
``filter_id`` 0 is the first filter.

References
----------
* B. Zhou, A. Khosla, A. Lapedriza, A. Oliva, A. Torralba, "Learning Deep Features for
  Discriminative Localization", CVPR 2016 (class activation maps).
* R. R. Selvaraju, M. Cogswell, A. Das, R. Vedantam, D. Parikh, D. Batra, "Grad-CAM: Visual
  Explanations from Deep Networks via Gradient-based Localization", ICCV 2017.
* Z. Wang, W. Yan, T. Oates, "Time Series Classification from Scratch with Deep Neural Networks:
  A Strong Baseline", IJCNN 2017 (CAM for time series).
* F. Karim, S. Majumdar, H. Darabi, S. Chen, "LSTM Fully Convolutional Networks for Time Series
  Classification", IEEE Access 6, 2018 (the context/attention figure).
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from utils.atomic_files import replacing
from utils.errors import ConfigurationError

if TYPE_CHECKING:  # Keras is imported where it is used, so the scripts' --help stays instant
    import keras

#: Layer names the builders of ``utils.models`` guarantee (see its module docstring).
OUTPUT_LAYER = "output"
POOLING_LAYER = "gap"
RECURRENT_LAYER = "recurrent"
LAST_CONV_OUTPUT = "relu3"


# --------------------------------------------------------------------------- model anatomy


def _layer(model: keras.Model, name: str, argument: str = "layer_name") -> keras.layers.Layer:
    """``model.get_layer(name)`` with an error that names the argument and the choices."""
    try:
        return model.get_layer(name)
    except ValueError:
        choices = ", ".join(layer.name for layer in model.layers)
        raise ConfigurationError(
            f"{argument}: model {model.name!r} has no layer {name!r}; its layers are {choices}"
        ) from None


def conv_block_names(model: keras.Model) -> list[str]:
    """Names of the post-ReLU outputs of the conv blocks, in order (``relu1``, ``relu2``, ...)."""
    names = [layer.name for layer in model.layers]
    blocks = []
    while f"relu{len(blocks) + 1}" in names:
        blocks.append(f"relu{len(blocks) + 1}")
    return blocks


def check_index(argument: str, value: int, count: int, what: str) -> int:
    """Return ``value`` if it lies in ``0..count-1``; otherwise raise naming ``argument``.

    Parameters
    ----------
    argument : str
        Name shown to the user, e.g. ``"class_id"`` or ``"--class-id"``.
    value : int
        The 0-based index.
    count : int
        How many there are.
    what : str
        What is counted, for the message (e.g. ``"classes"``).
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ConfigurationError(f"{argument} must be an integer, got {value!r}")
    if not 0 <= value < count:
        raise ConfigurationError(
            f"{argument} {value} is out of range: the model has {count} {what}, "
            f"so valid values are 0..{count - 1} (0-based)"
        )
    return int(value)


def output_weights(model: keras.Model) -> tuple[np.ndarray, np.ndarray, int]:
    """Split the output layer's kernel into its recurrent rows and its GAP rows.

    The models concatenate ``[recurrent features (m), GAP features (F)]`` before the softmax
    layer, so the weight of GAP channel ``c`` for class ``k`` is ``W[m + c, k]`` (the original's
    CAM read ``W[c, k]``, off by ``m`` rows).

    Returns
    -------
    gap_kernel : ndarray of shape (F, n_classes)
        ``W[m:, :]``, the weights of the pooled conv features (F = 128 for the paper models).
    bias : ndarray of shape (n_classes,)
    n_recurrent : int
        m, the number of recurrent features ahead of them (0 for the FCN).
    """
    kernel, bias = (np.asarray(w) for w in _layer(model, OUTPUT_LAYER).get_weights())
    n_pooled = int(_layer(model, POOLING_LAYER).output.shape[-1])
    n_recurrent = kernel.shape[0] - n_pooled
    return kernel[n_recurrent:], bias, n_recurrent


def n_classes(model: keras.Model) -> int:
    """Number of classes the model predicts."""
    return int(_layer(model, OUTPUT_LAYER).output.shape[-1])


def _pooled_feature_map(model: keras.Model) -> Any:
    """The (B, T, F) tensor the GAP averages: ``relu3`` (masked beyond the length if needed)."""
    return _first(_layer(model, POOLING_LAYER).input)


def _first(tensors: Any) -> Any:
    """A layer's main input: the first of a list (``[x, lengths]``, ``[x, mask]``) or itself."""
    return tensors[0] if isinstance(tensors, list | tuple) else tensors


# --------------------------------------------------------------------------- inference probes


def _feeds(model: keras.Model, X: np.ndarray, lengths: np.ndarray | None) -> list[np.ndarray]:
    """The model's inputs for ``X`` as a list in ``model.inputs`` order."""
    from utils.models import model_inputs

    if len(X) == 0:
        raise ConfigurationError("X holds no series: pass at least one (N >= 1)")
    inputs = model_inputs(model, np.asarray(X, dtype="float32"), lengths)
    if isinstance(inputs, dict):
        return [inputs[tensor.name] for tensor in model.inputs]
    return [inputs]


def layer_outputs(
    model: keras.Model,
    X: np.ndarray,
    tensors: Sequence[Any],
    lengths: np.ndarray | None = None,
    batch_size: int = 128,
) -> list[np.ndarray]:
    """Values of intermediate tensors of ``model`` for the series ``X``, in inference mode.

    Parameters
    ----------
    model : keras.Model
        A model of ``utils.models`` (or any functional model fed by ``model_inputs``).
    X : array of shape (N, C, T)
    tensors : sequence of str or KerasTensor
        Layer names (their output is taken) or symbolic tensors of ``model``.
    lengths : array of shape (N,), optional
        True lengths for variable-length models.
    batch_size : int, default 128

    Returns
    -------
    list of ndarray
        One array per tensor, batch first.
    """
    import keras

    symbolic = [_layer(model, t).output if isinstance(t, str) else t for t in tensors]
    probe = keras.Model(model.inputs, symbolic)
    feeds = _feeds(model, X, lengths)
    batches = []
    for start in range(0, len(feeds[0]), batch_size):
        # a direct call in inference mode: no tf.function is traced for a one-off probe
        values = probe([feed[start:start + batch_size] for feed in feeds], training=False)
        values = values if isinstance(values, list | tuple) else [values]
        batches.append([keras.ops.convert_to_numpy(value) for value in values])
    return [np.concatenate(parts, axis=0) for parts in zip(*batches, strict=True)]


def predicted_classes(
    model: keras.Model, X: np.ndarray, lengths: np.ndarray | None = None, batch_size: int = 128
) -> np.ndarray:
    """0-based predicted class of every series of ``X`` (inference mode), shape (N,)."""
    (probabilities,) = layer_outputs(model, X, [OUTPUT_LAYER], lengths, batch_size)
    return probabilities.argmax(axis=1)


def filter_activations(
    model: keras.Model,
    X: np.ndarray,
    conv_id: int = 0,
    filter_ids: int | Sequence[int] | None = None,
    lengths: np.ndarray | None = None,
    batch_size: int = 128,
) -> np.ndarray:
    """Activation of conv-block filters over time, after BatchNorm and ReLU (inference mode).

    Parameters
    ----------
    model : keras.Model
    X : array of shape (N, C, T)
    conv_id : int, default 0
        0-based conv block: 0, 1, 2 read ``relu1``, ``relu2``, ``relu3`` (the paper models have
        128, 256 and 128 filters).
    filter_ids : int or sequence of int, optional
        0-based filters to keep; all when None.
    lengths : array of shape (N,), optional
        True lengths for variable-length models (steps beyond are zero).
    batch_size : int, default 128

    Returns
    -------
    ndarray of shape (N, T, n_kept_filters)
    """
    blocks = conv_block_names(model)
    layer_name = blocks[check_index("conv_id", conv_id, len(blocks), "conv blocks")]
    n_filters = int(_layer(model, layer_name).output.shape[-1])
    if filter_ids is None:
        kept = list(range(n_filters))
    else:
        ids = [filter_ids] if isinstance(filter_ids, int | np.integer) else list(filter_ids)
        kept = [check_index("filter_id", f, n_filters, f"filters in {layer_name}") for f in ids]
    (activations,) = layer_outputs(model, X, [layer_name], lengths, batch_size)
    return activations[:, :, kept]


def _class_index_per_sample(
    class_id: int | Sequence[int], n_samples: int, count: int
) -> np.ndarray:
    ids = np.broadcast_to(np.asarray(class_id), (n_samples,)).astype(int)
    for value in np.unique(ids):
        check_index("class_id", int(value), count, "classes")
    return ids


def class_activation_map(
    model: keras.Model,
    X: np.ndarray,
    class_id: int | Sequence[int] | None = None,
    lengths: np.ndarray | None = None,
    batch_size: int = 128,
) -> np.ndarray:
    """Class activation map of Zhou et al. (2016) over time, as in Wang et al. (2017).

    ``CAM_k(t) = sum_c W[m + c, k] * A[t, c]``, with ``A`` the post-ReLU output of the last conv
    block in inference mode (shape (T, F)) and ``W[m + c, k]`` the output-layer weight of GAP
    channel ``c`` for class ``k`` (the rows after the ``m`` recurrent features, see
    :func:`output_weights`). The class score's GAP part is the time mean of the map:
    ``mean_t CAM_k(t) = sum_c W[m + c, k] * GAP(A)_c``. No normalisation is applied; positive
    values argue for class ``k``, negative ones against it.

    Parameters
    ----------
    model : keras.Model
    X : array of shape (N, C, T)
    class_id : int, sequence of N ints, or None
        0-based class index (into ``Dataset.classes``), one per series, or None for every class.
    lengths : array of shape (N,), optional
        True lengths for variable-length models; the map is 0 beyond them.
    batch_size : int, default 128

    Returns
    -------
    ndarray of shape (N, T) (given ``class_id``) or (N, T, n_classes) (``class_id=None``)
    """
    gap_kernel, _, _ = output_weights(model)
    (feature_map,) = layer_outputs(model, X, [_pooled_feature_map(model)], lengths, batch_size)
    maps = feature_map @ gap_kernel  # (N, T, n_classes)
    if class_id is None:
        return maps
    ids = _class_index_per_sample(class_id, len(maps), maps.shape[-1])
    return np.take_along_axis(maps, ids[:, None, None], axis=2)[:, :, 0]


def _gradient(function: Callable[[Any], Any], value: np.ndarray) -> np.ndarray:
    """Gradient of the scalar ``function(value)`` with respect to ``value``.

    Keras 3 has no backend-neutral gradient, so this is the one place that calls the active
    backend's automatic differentiation (TensorFlow, JAX or PyTorch).
    """
    import keras
    from keras import ops

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tensor = tf.convert_to_tensor(value)
        with tf.GradientTape() as tape:
            tape.watch(tensor)
            score = function(tensor)
        return np.asarray(tape.gradient(score, tensor))
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(function)(ops.convert_to_tensor(value)))
    if backend == "torch":
        tensor = ops.convert_to_tensor(value).detach().requires_grad_(True)
        function(tensor).backward()
        return tensor.grad.detach().cpu().numpy()
    raise ConfigurationError(
        f"grad_cam supports the tensorflow, jax and torch backends, not {backend!r}"
    )


def grad_cam(
    model: keras.Model,
    X: np.ndarray,
    class_id: int | Sequence[int],
    layer_name: str = LAST_CONV_OUTPUT,
    lengths: np.ndarray | None = None,
    rectify: bool = True,
    batch_size: int = 128,
) -> np.ndarray:
    """Grad-CAM (Selvaraju et al. 2017) over time for any (B, T, F) layer of any model.

    With ``A = layer output`` (inference mode) and ``y_k`` the class score *before* the softmax::

        alpha_c = mean_t  d y_k / d A[t, c]          (over the valid steps)
        map(t)  = ReLU( sum_c alpha_c * A[t, c] )     (ReLU only when ``rectify``)

    For the last conv block of these models (``relu3`` -> GAP -> Dense) the gradient is
    ``W[m + c, k] / T`` at every step, so the unrectified Grad-CAM equals
    :func:`class_activation_map` divided by T (by the length for variable-length models).

    Parameters
    ----------
    model : keras.Model
    X : array of shape (N, C, T)
    class_id : int or sequence of N ints
        0-based class index, one for all or one per series (e.g. the predicted classes).
    layer_name : str, default "relu3"
        Any layer with a (B, T, F) output on the path to the output: ``conv1``..``conv3``,
        ``bn*``, ``relu*``, ``se*``.
    lengths : array of shape (N,), optional
    rectify : bool, default True
        Apply the ReLU of the paper (keep only evidence for the class).
    batch_size : int, default 128

    Returns
    -------
    ndarray of shape (N, T)
    """
    import keras
    from keras import ops

    layer_output = _layer(model, layer_name).output
    if len(layer_output.shape) != 3:
        raise ConfigurationError(
            f"layer_name: layer {layer_name!r} has output shape {layer_output.shape}; Grad-CAM "
            "needs a (batch, time, features) layer such as conv3 or relu3"
        )
    (activations,) = layer_outputs(model, X, [layer_name], lengths, batch_size)
    # The rest of the network, fed the inputs and the layer's value, up to the softmax input.
    head = keras.Model([*model.inputs, layer_output], _layer(model, OUTPUT_LAYER).input)
    kernel, bias = (ops.convert_to_tensor(w) for w in _layer(model, OUTPUT_LAYER).get_weights())
    ids = _class_index_per_sample(class_id, len(activations), kernel.shape[1])
    feeds = _feeds(model, X, lengths)
    n_steps = activations.shape[1]
    valid_steps = (
        np.full(len(activations), n_steps)
        if lengths is None or len(feeds) == 1
        else np.asarray(lengths)
    )
    gradients = np.empty_like(activations)
    for start in range(0, len(activations), batch_size):
        batch = slice(start, start + batch_size)
        inputs = [ops.convert_to_tensor(feed[batch]) for feed in feeds]
        one_hot = ops.convert_to_tensor(np.eye(kernel.shape[1], dtype="float32")[ids[batch]])

        def class_score(value: Any, inputs: list = inputs, one_hot: Any = one_hot) -> Any:
            logits = ops.matmul(head([*inputs, value], training=False), kernel) + bias
            return ops.sum(logits * one_hot)  # samples are independent: one backward pass

        gradients[batch] = _gradient(class_score, activations[batch])
    steps = np.arange(n_steps)[None, :, None] < valid_steps[:, None, None]
    weights = (gradients * steps).sum(axis=1) / valid_steps[:, None]  # alpha: (N, F)
    maps = np.einsum("ntf,nf->nt", activations, weights) * steps[:, :, 0]
    return np.maximum(maps, 0.0) if rectify else maps


def recurrent_steps(model: keras.Model) -> int:
    """S, the number of steps the recurrent layer reads (1 for univariate shuffled models)."""
    return int(_first(_layer(model, RECURRENT_LAYER).input).shape[1])


def has_attention(model: keras.Model) -> bool:
    """Whether the model's recurrent layer is an AttentionLSTM (ALSTM-FCN, MALSTM-FCN)."""
    from utils.layers import AttentionLSTM

    return any(layer.name == RECURRENT_LAYER and isinstance(layer, AttentionLSTM)
               for layer in model.layers)


def attention_weights(
    model: keras.Model,
    X: np.ndarray,
    lengths: np.ndarray | None = None,
    batch_size: int = 128,
) -> np.ndarray:
    """Attention weights of the model's AttentionLSTM (Karim et al. 2018; Bahdanau et al. 2015).

    ``alpha[n, t, j]`` is the weight step ``t`` of series ``n`` gives to input step ``j`` (rows
    sum to 1 over the valid steps). A step is what the recurrent layer reads: a *variable* for
    the dimension-shuffled models (S = C, so S = 1 and ``alpha == 1`` for univariate data,
    original_spec.md 2.4) and a *time step* for the ``-noshuffle`` models (S = T).

    Parameters
    ----------
    model : keras.Model
        An ALSTM-FCN / MALSTM-FCN model (layer ``recurrent`` is an AttentionLSTM).
    X : array of shape (N, C, T)
    lengths : array of shape (N,), optional
    batch_size : int, default 128

    Returns
    -------
    ndarray of shape (N, S, S)
    """
    from keras import ops

    from utils.layers import AttentionLSTM

    layer = _layer(model, RECURRENT_LAYER)
    if not has_attention(model):
        raise ConfigurationError(
            f"model {model.name!r} has no AttentionLSTM (its recurrent layer is "
            f"{type(layer).__name__}); attention exists only in alstmfcn and malstmfcn"
        )
    # The layer's inputs: the (B, S, D) sequence and, when the model masks steps (zero
    # variables, padding), the boolean step mask it was called with.
    inputs = layer.input
    tensors = list(inputs) if isinstance(inputs, list | tuple) else [inputs]
    values = layer_outputs(model, X, tensors, lengths, batch_size)
    # A twin of the trained layer that also returns alpha; the model itself is left untouched.
    twin = AttentionLSTM.from_config({**layer.get_config(), "return_attention": True})
    twin.build(tensors[0].shape)
    twin.set_weights(layer.get_weights())
    alphas = []
    for start in range(0, len(values[0]), batch_size):
        batch = [value[start:start + batch_size] for value in values]
        mask = ops.convert_to_tensor(batch[1]) if len(batch) > 1 else None
        _, alpha = twin(ops.convert_to_tensor(batch[0]), mask=mask)
        alphas.append(ops.convert_to_numpy(alpha))
    return np.concatenate(alphas, axis=0)


def choose_samples(
    y: np.ndarray,
    limit: int | None = 1,
    classwise: bool = False,
    class_id: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Indices of the cases to draw, reproducibly.

    Parameters
    ----------
    y : array of shape (N,)
        0-based labels.
    limit : int or None, default 1
        Cases to draw (per class when ``classwise``); None takes them all.
    classwise : bool, default False
        Draw ``limit`` cases from every class, classes in order.
    class_id : int, optional
        Draw only from this class.
    seed : int, default 0
        Seed of the draw (without replacement).

    Returns
    -------
    ndarray of int
    """
    y = np.asarray(y)
    if limit is not None and (isinstance(limit, bool) or int(limit) < 1):
        raise ConfigurationError(f"limit must be a positive integer or None, got {limit!r}")
    rng = np.random.default_rng(seed)

    def draw(pool: np.ndarray) -> np.ndarray:
        count = len(pool) if limit is None else min(int(limit), len(pool))
        return np.sort(rng.choice(pool, size=count, replace=False))

    if class_id is not None:
        pool = np.flatnonzero(y == class_id)
        if not len(pool):
            raise ConfigurationError(f"class_id {class_id}: no case of this class in the split")
        return draw(pool)
    if classwise:
        return np.concatenate([draw(np.flatnonzero(y == label)) for label in np.unique(y)])
    return draw(np.arange(len(y)))


# --------------------------------------------------------------------------- figures

#: Figure widths in inches: one journal column and the full page width.
COLUMN_WIDTH = 3.5
PAGE_WIDTH = 7.0
DPI = 200
STYLE = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "figure.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.dpi": DPI,
    "savefig.bbox": "tight",
}


def use_display(show: bool) -> bool:
    """Pick a matplotlib backend before pyplot is imported; True when a window can open.

    Without ``show`` (or without a display) the non-interactive Agg backend is used, so every
    script works on a headless server.
    """
    import matplotlib

    headless = os.name != "nt" and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ) and not matplotlib.get_backend().lower().startswith("macosx")
    if not show or headless:
        matplotlib.use("Agg")
        return False
    return True


def _pyplot() -> Any:
    import matplotlib.pyplot as plt

    plt.rcParams.update(STYLE)
    return plt


def _valid_length(series: np.ndarray, length: int | None) -> int:
    return series.shape[-1] if length is None else int(length)


def _plot_series(axis: Any, series: np.ndarray, length: int | None,
                 channel_names: Sequence[str] | None = None, **style: Any) -> None:
    """Draw the channels of one (C, T) series up to its length (labelled for a legend)."""
    steps = _valid_length(series, length)
    for channel, values in enumerate(series):
        label = channel_names[channel] if channel_names else f"variable {channel}"
        axis.plot(np.arange(steps), values[:steps], linewidth=1.0, label=label, **style)
    axis.set_xlim(0, max(steps - 1, 1))
    axis.set_ylabel("value")


def _channel_legend(figure: Any, axis: Any, n_channels: int) -> None:
    """One legend of the variables for the whole figure (none for a univariate series)."""
    if n_channels > 1:
        handles, labels = axis.get_legend_handles_labels()
        figure.legend(handles[:n_channels], labels[:n_channels], loc="outside lower center",
                      ncols=min(n_channels, 6), frameon=False)


def _pair_grid(plt: Any, n_panels: int, height_ratios: tuple[float, float],
               panel_height: float, max_columns: int = 2) -> tuple[Any, list[tuple[Any, Any]]]:
    """A figure with ``n_panels`` cells, each an (upper, lower) pair of axes sharing x."""
    columns = min(n_panels, max_columns)
    rows = -(-n_panels // columns)
    width = PAGE_WIDTH if columns > 1 else PAGE_WIDTH * 0.8
    figure = plt.figure(figsize=(width, panel_height * rows + 0.5), layout="constrained")
    grid = figure.add_gridspec(2 * rows, columns, height_ratios=list(height_ratios) * rows)
    pairs = []
    for index in range(n_panels):
        row, column = 2 * (index // columns), index % columns
        upper = figure.add_subplot(grid[row, column])
        lower = figure.add_subplot(grid[row + 1, column], sharex=upper)
        upper.tick_params(labelbottom=False)
        pairs.append((upper, lower))
    return figure, pairs


def plot_filter_activations(
    series: np.ndarray,
    activations: np.ndarray,
    sample_titles: Sequence[str],
    activation_label: str,
    title: str,
    lengths: Sequence[int] | None = None,
    channel_names: Sequence[str] | None = None,
) -> Any:
    """One filter's activation under each input series.

    Parameters
    ----------
    series : array of shape (K, C, T)
        The K input series.
    activations : array of shape (K, T)
        The filter's activation for each (from :func:`filter_activations`).
    sample_titles : K str
        Title of each panel (which case, which class).
    activation_label : str
        y label of the activation axes, e.g. ``"block 1, filter 0"``.
    title : str
        Figure title.
    lengths : K ints, optional
        True lengths (the plot stops there).
    channel_names : C str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _pyplot()
    figure, pairs = _pair_grid(plt, len(series), (1.0, 1.0), panel_height=2.6)
    for index, (upper, lower) in enumerate(pairs):
        length = None if lengths is None else lengths[index]
        _plot_series(upper, series[index], length, channel_names)
        upper.set_title(sample_titles[index])
        steps = _valid_length(series[index], length)
        lower.fill_between(np.arange(steps), activations[index][:steps], color="C3", alpha=0.25,
                           linewidth=0)
        lower.plot(np.arange(steps), activations[index][:steps], color="C3", linewidth=1.0)
        lower.set_ylabel(f"activation\n({activation_label})")
        lower.set_xlabel("time step")
        lower.set_ylim(bottom=0)
    _channel_legend(figure, pairs[0][0], series.shape[1])
    figure.suptitle(title)
    return figure


def plot_filter_grid(
    series: np.ndarray,
    activations: np.ndarray,
    filter_ids: Sequence[int],
    sample_title: str,
    title: str,
    length: int | None = None,
    channel_names: Sequence[str] | None = None,
) -> Any:
    """Several filters of one block for one series: the input on top, small multiples below.

    Parameters
    ----------
    series : array of shape (C, T)
    activations : array of shape (T, F)
        Activation of the F filters (from :func:`filter_activations`).
    filter_ids : F ints
        0-based ids of those filters (panel titles).
    sample_title, title : str
    length : int, optional
    channel_names : C str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    n_filters = len(filter_ids)
    columns = min(n_filters, 4)
    rows = -(-n_filters // columns)
    figure = plt.figure(figsize=(PAGE_WIDTH, 1.9 + 1.35 * rows), layout="constrained")
    grid = figure.add_gridspec(rows + 1, columns, height_ratios=[1.4] + [1.0] * rows)
    top = figure.add_subplot(grid[0, :])
    _plot_series(top, series, length, channel_names)
    top.set_title(sample_title)
    top.set_xlabel("time step")
    steps = _valid_length(series, length)
    peak = max(float(activations[:steps].max()), 1e-12)
    for index, filter_id in enumerate(filter_ids):
        axis = figure.add_subplot(grid[1 + index // columns, index % columns])
        axis.set_xlim(top.get_xlim())
        axis.xaxis.set_major_locator(MaxNLocator(nbins=3, integer=True))
        axis.fill_between(np.arange(steps), activations[:steps, index], color="C3", alpha=0.25,
                          linewidth=0)
        axis.plot(np.arange(steps), activations[:steps, index], color="C3", linewidth=0.8)
        axis.set_ylim(0, peak * 1.05)  # a shared scale, so filters compare by height
        axis.set_title(f"filter {filter_id}", pad=2)
        if index % columns:
            axis.tick_params(labelleft=False)
        if index // columns == rows - 1:
            axis.set_xlabel("time step")
        else:
            axis.tick_params(labelbottom=False)
        if index % columns == 0:
            axis.set_ylabel("activation")
    _channel_legend(figure, top, series.shape[0])
    figure.suptitle(title)
    return figure


def _colored_line(axis: Any, values: np.ndarray, colors: np.ndarray, norm: Any, cmap: Any,
                  linewidth: float = 2.2) -> Any:
    """A line whose colour at each segment is the mean of ``colors`` at its two ends."""
    from matplotlib.collections import LineCollection

    steps = np.arange(len(values))
    points = np.column_stack([steps, values]).reshape(-1, 1, 2)
    segments = np.concatenate([points[:-1], points[1:]], axis=1)
    line = LineCollection(segments, cmap=cmap, norm=norm, linewidth=linewidth,
                          capstyle="round", joinstyle="round")
    line.set_array((colors[:-1] + colors[1:]) / 2.0)
    axis.add_collection(line)
    return line


def plot_class_activation_maps(
    series: np.ndarray,
    maps: np.ndarray,
    sample_titles: Sequence[str],
    map_label: str,
    title: str,
    lengths: Sequence[int] | None = None,
    channel_names: Sequence[str] | None = None,
    note: str | None = None,
) -> Any:
    """Input series coloured by a class activation map, with the map itself below.

    A diverging colour scale centred at 0 is shared by all panels, so colours compare across
    cases: red steps raise the class score, blue ones lower it (a rectified Grad-CAM has no
    blue).

    Parameters
    ----------
    series : array of shape (K, C, T)
    maps : array of shape (K, T)
        From :func:`class_activation_map` or :func:`grad_cam`.
    sample_titles : K str
    map_label : str
        Colour-bar and y label, e.g. ``"CAM, class 0"``.
    title : str
    lengths : K ints, optional
    channel_names : C str, optional
    note : str, optional
        A line of text under the title (e.g. why this figure replaces another).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.colors import TwoSlopeNorm

    plt = _pyplot()
    cmap = plt.get_cmap("RdBu_r")
    valid = [maps[k][: _valid_length(series[k], None if lengths is None else lengths[k])]
             for k in range(len(maps))]
    extent = max(max(float(np.abs(v).max()) for v in valid), 1e-12)
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-extent, vmax=extent)
    figure, pairs = _pair_grid(plt, len(series), (2.0, 1.0), panel_height=2.5)
    line = None
    for index, (upper, lower) in enumerate(pairs):
        length = None if lengths is None else lengths[index]
        steps = _valid_length(series[index], length)
        cam = valid[index]
        if len(series[index]) == 1:  # one line: colour the line itself (Wang et al. 2017)
            values = series[index][0, :steps]
            upper.plot(np.arange(steps), values, color="0.75", linewidth=3.2, zorder=1)
            line = _colored_line(upper, values, cam, norm, cmap)
        else:  # several variables: colour the background, draw the variables on top
            _plot_series(upper, series[index], length, channel_names, alpha=0.9)
            low, high = upper.get_ylim()
            line = upper.imshow(cam[None, :], extent=(-0.5, steps - 0.5, low, high),
                                aspect="auto", cmap=cmap, norm=norm, alpha=0.55, zorder=0,
                                interpolation="nearest")
            upper.set_ylim(low, high)
        upper.autoscale_view()
        upper.set_xlim(0, max(steps - 1, 1))
        upper.set_ylabel("value")
        upper.set_title(sample_titles[index])
        lower.axhline(0.0, color="0.6", linewidth=0.6)
        lower.fill_between(np.arange(steps), cam, where=cam >= 0, color=cmap(0.85),
                           linewidth=0, interpolate=True)
        lower.fill_between(np.arange(steps), cam, where=cam < 0, color=cmap(0.15),
                           linewidth=0, interpolate=True)
        lower.set_ylim(-extent * 1.05 if min(float(cam.min()), 0.0) < 0 else 0, extent * 1.05)
        lower.set_ylabel(map_label.split(",")[0])
        lower.set_xlabel("time step")
    colorbar = figure.colorbar(line, ax=[axis for pair in pairs for axis in pair],
                               shrink=0.8, aspect=30, pad=0.02)
    colorbar.set_label(map_label)
    _channel_legend(figure, pairs[0][0], series.shape[1])
    figure.suptitle(title if note is None else f"{title}\n{textwrap.fill(note, 95)}")
    return figure


def plot_attention(
    series: np.ndarray,
    attention: np.ndarray,
    sample_titles: Sequence[str],
    step_name: str,
    title: str,
    lengths: Sequence[int] | None = None,
    channel_names: Sequence[str] | None = None,
) -> Any:
    """The AttentionLSTM's weights for each case: the full matrix and the last step's row.

    The model's recurrent feature is the state after the last step, whose context is
    ``sum_j alpha[S-1, j] x_j``; that row is drawn as bars under the matrix.

    Parameters
    ----------
    series : array of shape (K, C, T)
        The inputs (drawn above, one line per variable).
    attention : array of shape (K, S, S)
        From :func:`attention_weights` (S > 1).
    sample_titles : K str
    step_name : str
        What a step is: ``"variable"`` (shuffled models) or ``"time step"`` (``-noshuffle``).
    title : str
    lengths : K ints, optional
    channel_names : C str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _pyplot()
    n_samples, n_steps = attention.shape[0], attention.shape[1]
    figure = plt.figure(figsize=(PAGE_WIDTH, 3.6 * n_samples + 0.5), layout="constrained")
    grid = figure.add_gridspec(2 * n_samples, 2, width_ratios=[1.3, 1.0])
    labels = (list(channel_names) if channel_names and step_name == "variable"
              else [str(j) for j in range(n_steps)])
    positions = np.arange(n_steps)
    # Colours span the weights actually reached: after training they are often close to
    # uniform (1/S), and a 0..1 scale would hide every difference.
    low, high = float(attention.min()), float(attention.max())
    high = max(high, low + 1e-9)
    uniform = 1.0 / n_steps
    for k in range(n_samples):
        length = None if lengths is None else lengths[k]
        series_axis = figure.add_subplot(grid[2 * k, 0])
        _plot_series(series_axis, series[k], length, channel_names)
        series_axis.set_title(sample_titles[k])
        series_axis.set_xlabel("time step")
        last = figure.add_subplot(grid[2 * k + 1, 0])
        if n_steps <= 40:
            last.bar(positions, attention[k, -1], color="C2", label=r"$\alpha_{S,j}$")
            if n_steps <= 12:
                last.set_xticks(positions, labels)
        else:
            last.plot(positions, attention[k, -1], color="C2", linewidth=1.0)
            last.set_xlim(0, n_steps - 1)
        last.axhline(uniform, color="0.3", linestyle="--", linewidth=0.8)
        last.annotate(f"uniform 1/S = {uniform:.3g}", (1.0, uniform), xycoords=("axes fraction",
                      "data"), xytext=(0, 3), textcoords="offset points", ha="right",
                      va="bottom", fontsize=7, color="0.3")
        last.set_xlabel(f"attended {step_name} j")
        last.set_ylabel(r"$\alpha_{S,j}$ (last step)")
        matrix_axis = figure.add_subplot(grid[2 * k:2 * k + 2, 1])
        image = matrix_axis.imshow(attention[k], cmap="viridis", vmin=low, vmax=high,
                                   aspect="auto", interpolation="nearest", origin="upper")
        matrix_axis.set_xlabel(f"attended {step_name} j")
        matrix_axis.set_ylabel(f"step t ({step_name})")
        matrix_axis.set_title(r"attention weights $\alpha_{t,j}$")
        if n_steps <= 12:
            matrix_axis.set_xticks(positions, labels)
            matrix_axis.set_yticks(positions, labels)
        matrix_axis.spines[:].set_visible(False)
        colorbar = figure.colorbar(image, ax=matrix_axis, shrink=0.9, aspect=25)
        colorbar.set_label(rf"$\alpha_{{t,j}}$ (rows sum to 1; uniform = {uniform:.3g})")
    _channel_legend(figure, figure.axes[0], series.shape[1])
    figure.suptitle(title)
    return figure


def plot_dataset(
    splits: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]],
    classes: Sequence[str],
    title: str,
    limit: int | None = 1,
    seed: int = 0,
    channel_names: Sequence[str] | None = None,
    max_channels: int = 6,
) -> Any:
    """Cases of every class, one column per split (train, test), one row per variable.

    Parameters
    ----------
    splits : sequence of (name, X (N, C, T), y (N,), lengths (N,) or None)
        E.g. ``[("train", X_train, y_train, lengths_train), ("test", ...)]``.
    classes : sequence of str
        Original label of every 0-based class (``Dataset.classes``).
    title : str
    limit : int or None, default 1
        Cases drawn per class (None: all).
    seed : int, default 0
        Seed of the draw (see :func:`choose_samples`).
    channel_names : C str, optional
    max_channels : int, default 6
        Variables drawn at most (rows); the title says when more exist.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _pyplot()
    n_channels = splits[0][1].shape[1]
    rows = min(n_channels, max_channels)
    row_height = 1.9 if rows <= 2 else 1.45
    figure, axes = plt.subplots(rows, len(splits), figsize=(PAGE_WIDTH, 1.0 + row_height * rows),
                                sharex=True, squeeze=False, layout="constrained")
    colors = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for column, (split_name, X, y, lengths) in enumerate(splits):
        chosen = choose_samples(y, limit, classwise=True, seed=seed)
        for row in range(rows):
            axis = axes[row, column]
            for index in chosen:
                steps = X.shape[2] if lengths is None else int(lengths[index])
                axis.plot(np.arange(steps), X[index, row, :steps], linewidth=0.9, alpha=0.85,
                          color=colors(int(y[index]) % colors.N))
            if row == 0:
                axis.set_title(f"{split_name}: {len(chosen)} of {len(y)} cases")
            axis.set_xlim(0, X.shape[2] - 1)
            if n_channels > 1:
                name = channel_names[row] if channel_names else f"variable {row}"
                axis.set_ylabel(f"{name}\nvalue")
            else:
                axis.set_ylabel("value")
            if row == rows - 1:
                axis.set_xlabel("time step")
    handles = [plt.Line2D([], [], color=colors(k % colors.N), linewidth=1.5,
                          label=f"class {k} (label {classes[k]!s})")
               for k in range(len(classes))]
    figure.legend(handles=handles, loc="outside lower center",
                  ncols=min(len(classes), 4), frameon=False)
    more = f" (first {rows} of {n_channels} variables)" if n_channels > rows else ""
    figure.suptitle(f"{title}{more}")
    return figure


def save_figure(figure: Any, path: str | os.PathLike) -> tuple[Path, bool]:
    """Write ``figure`` to ``path`` (format from the suffix) atomically.

    The file is written under a temporary name in the same folder and then renamed, so a
    crash never leaves a half-written figure.

    Returns
    -------
    path : Path
    replaced : bool
        True when a file of that name existed and was replaced (callers say so).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    replaced = path.exists()
    with replacing(path) as temporary:
        figure.savefig(temporary, format=path.suffix.lstrip(".") or "png")
    return path, replaced


# --------------------------------------------------------------------------- script support
# The visualize_*.py scripts share their flags, the loading of a trained run and the naming of
# figure files; these helpers keep each script to its own settings and plotting calls.

FIGURES_DIR = "figures"
FIGURE_FORMATS = ("png", "pdf", "svg")


def script_parser(doc: str, dataset: str, seed: int, model: str | None = None,
                  cells: int | None = None) -> Any:
    """The argument parser of a figure script with the flags they all share.

    Data (``--dataset``, ``--data-dir``, ``--seed``), the trained run when ``model`` is given
    (``--model``, ``--cells``, ``--protocol``, ``--weights-dir``, ``--split``) and the output
    (``--out``, ``--format``, ``--show``); defaults come from the script's settings.
    """
    import argparse

    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--dataset", default=dataset,
                        help="dataset name (2018 or 2015 spelling), original id, or folder")
    if model is not None:
        parser.add_argument("--model", default=model, help="model name, e.g. lstmfcn, alstmfcn")
        parser.add_argument("--cells", type=int, default=cells, help="recurrent units")
        parser.add_argument("--protocol", default="train-loss",
                            help="training protocol the weights were saved under")
        parser.add_argument("--weights-dir", default="weights")
        parser.add_argument("--split", default="train", choices=["train", "test"],
                            help="which split the drawn cases come from")
    parser.add_argument("--seed", type=int, default=seed,
                        help="seed of the trained run (loop script --seeds) and of the draw")
    parser.add_argument("--data-dir", default=None, help="default: Data/ or $LSTMFCN_DATA_DIR")
    parser.add_argument("--out", default=None,
                        help=f"figure file (default: {FIGURES_DIR}/<name saying what it shows>)")
    parser.add_argument("--format", default="png", choices=FIGURE_FORMATS,
                        help="file format when --out has no suffix")
    parser.add_argument("--show", action="store_true",
                        help="also open the figure in a window (when a display exists)")
    return parser


def positive_int(text: str) -> int:
    """argparse type of ``--limit``: an integer of at least 1."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def load_split(arguments: Any, normalize: str = "auto") -> Any:
    """``load_dataset`` for ``--dataset``/``--data-dir``; errors name the flag."""
    from utils.data import load_dataset
    from utils.errors import LSTMFCNError

    try:
        return load_dataset(arguments.dataset, data_dir=arguments.data_dir, normalize=normalize)
    except LSTMFCNError as error:
        raise ConfigurationError(f"--dataset {arguments.dataset}: {error}") from None


def load_trained_run(arguments: Any) -> tuple[keras.Model, dict[str, Any], Any]:
    """The model the loop script saved for ``--dataset/--model/--cells/--seed`` and its data.

    The data are normalised as the sidecar says they were for training.

    Returns
    -------
    model : keras.Model
    config : dict
        The weights' JSON sidecar.
    data : utils.data.Dataset
    """
    from utils.checkpoints import load_trained_model, weights_path
    from utils.experiments import run_dataset_name
    from utils.models import MODEL_BUILDERS

    if arguments.model not in MODEL_BUILDERS:
        raise ConfigurationError(
            f"--model {arguments.model}: unknown model; valid models: {', '.join(MODEL_BUILDERS)}"
        )
    dataset_name = run_dataset_name(arguments.dataset, arguments.data_dir)
    path = weights_path(arguments.weights_dir, arguments.model, arguments.cells, dataset_name,
                        arguments.seed, arguments.protocol)
    if not path.exists():
        raise ConfigurationError(
            f"--weights-dir {arguments.weights_dir}: no trained weights at {path}; train them "
            f"with: python all_datasets_training.py --datasets {dataset_name} --models "
            f"{arguments.model} --cells {arguments.cells} --seeds {arguments.seed} "
            f"--weights-dir {arguments.weights_dir}"
        )
    model, config = load_trained_model(path)
    data = load_split(arguments, normalize=config.get("normalize", "sample"))
    saved_classes = config.get("classes")
    if saved_classes is not None and list(saved_classes) != [str(c) for c in data.classes]:
        raise ConfigurationError(
            f"--dataset {arguments.dataset}: its classes {list(data.classes)} differ from the "
            f"ones the weights {path} were trained on ({saved_classes})"
        )
    return model, config, data


def open_trained_run(arguments: Any) -> tuple[bool, keras.Model, Any]:
    """Start a figure script: pick the matplotlib backend, load the trained model and data.

    Returns ``(display, model, data)``; ``display`` says whether ``--show`` can open a window.
    """
    display = use_display(arguments.show)
    model, _, data = load_trained_run(arguments)
    return display, model, data


def split_arrays(data: Any, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X, y, lengths)`` of the ``"train"`` or ``"test"`` split of a Dataset."""
    if split == "train":
        return data.X_train, data.y_train, data.lengths_train
    return data.X_test, data.y_test, data.lengths_test


def class_name(data: Any, class_id: int) -> str:
    """``"class 0 (label 1)"``: the 0-based index and the label in the files."""
    return f"class {class_id} (label {data.classes[class_id]!s})"


def run_label(arguments: Any) -> str:
    """``"lstmfcn, 8 cells"`` (plus the seed when it is not 0), for titles."""
    seed = f", seed {arguments.seed}" if arguments.seed else ""
    return f"{arguments.model}, {arguments.cells} cells{seed}"


def figure_path(arguments: Any, *parts: Any) -> Path:
    """``--out`` (format from its suffix, else ``--format``) or ``figures/<parts joined>.<fmt>``."""
    if arguments.out is not None:
        out = Path(arguments.out)
        if out.suffix.lstrip(".").lower() in FIGURE_FORMATS:
            return out
        if out.suffix:
            raise ConfigurationError(
                f"--out {out}: unknown figure format {out.suffix!r}; use "
                f"{', '.join('.' + f for f in FIGURE_FORMATS)}"
            )
        return out.with_suffix(f".{arguments.format}")
    stem = "_".join(str(part) for part in parts if part not in (None, ""))
    return Path(FIGURES_DIR) / f"{stem}.{arguments.format}"


def run_parts(arguments: Any, data: Any) -> list[str]:
    """File-name parts naming the trained run: dataset, model, cells (and seed)."""
    seed = f"seed{arguments.seed}" if arguments.seed else ""
    return [data.name, arguments.model, f"{arguments.cells}cells", seed]


def finish_figure(figure: Any, path: Path, show: bool, display: bool) -> None:
    """Save ``figure`` to ``path``, say where, and open a window when asked and possible."""
    import sys

    path, replaced = save_figure(figure, path)
    print(f"wrote {path}{' (replaced the previous file)' if replaced else ''}")
    if show and not display:
        print("note: no display found, so --show only saved the figure", file=sys.stderr)
    if show and display:
        _pyplot().show()
