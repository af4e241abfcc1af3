"""The compiled JAX training engine behind ``train_model(engine="xla")`` and ``train_packed``.

``model.fit`` returns to Python after every epoch: callbacks, the best-weights copy and the
learning-rate check each cost a round trip, which on small datasets takes longer than the
arithmetic. This engine runs the same Keras model through its stateless JAX functions
(``model.train_step`` / ``model.test_step``, the very functions ``fit`` compiles on the JAX
backend, so the loss, class weights, BatchNorm updates, dropout and Adam are Keras' own) and
keeps the protocol's bookkeeping inside one compiled program:

* a shuffle per epoch, full batches and then the final partial batch, both with static
  shapes; the order of the cases in epoch ``e`` is ``utils.resume.epoch_order(seed, e)``, the
  very order the ``fit`` engine uses, so that the two engines see the same batches;
* the epoch-mean training loss and accuracy exactly as Keras logs them (its metric variables);
* ``ReduceLROnPlateau`` (``min_delta`` 1e-4, no cooldown, the floor), ``EarlyStopping``, the
  strictly-better best checkpoint and ``TerminateOnNaN``, with the semantics of the Keras
  callbacks ``utils.training`` configures for ``fit``; the learning rates are a ladder computed
  in float64 on the host as the Keras callback computes them, so the trajectory is identical;
* the ``validation`` and ``test-checkpoint`` protocols' held-out metrics (inference mode).

Where the epochs run (``packing_strategy``): on a GPU, Python sees the run only every chunk of
epochs (``lax.while_loop`` inside), for the progress bar and the resume snapshot, and ``K``
runs of one architecture are *packed* into one program vectorised over the runs
(``jax.vmap``). On CPU, where XLA runs loop bodies about twice as slowly as the same work
called from Python, each epoch is a host call (a one-batch epoch is one compiled program; a
longer one calls Keras' ``train_step`` per batch, as ``fit`` does) and the runs of a pack share
the cores, one thread each. Every run keeps its own weights, optimiser state, case orders,
dropout stream, learning-rate schedule and best checkpoint.

Snapshots (``snapshot_dir``) use the layout of ``utils.resume``: data files named by epoch, a
``state.json`` written last as the commit point, SHA-256 checks and a settings fingerprint. The
whole loop state is saved (dropout seed states included) and the case orders depend on
(seed, epoch) alone, so a resumed run is bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from utils.errors import ConfigurationError

ENGINES = ("auto", "fit", "xla")
PRECISIONS = ("float32", "mixed_bfloat16")
MAX_CHUNK_EPOCHS = 256  # epochs per host call at most (the size of its order and log arrays)
TARGET_CHUNK_SECONDS = 2.0  # aim for a progress update about this often
STATE_FILE = "state.json"
MAX_CACHED_PROGRAMS = 4
_PROGRAMS: dict[str, Any] = {}  # signature -> PackedProgram (compiled on first use)


def resolve_engine(engine: str) -> str:
    """``"auto"`` -> ``"xla"`` on the JAX backend, ``"fit"`` elsewhere; checks the name."""
    import keras

    if engine not in ENGINES:
        raise ConfigurationError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    backend = keras.backend.backend()
    if engine == "auto":
        return "xla" if backend == "jax" else "fit"
    if engine == "xla" and backend != "jax":
        raise ConfigurationError(
            f"engine 'xla' needs the JAX backend (KERAS_BACKEND=jax); this process runs on "
            f"{backend}. Use --engine fit or auto."
        )
    return engine


def check_precision(precision: str, engine: str) -> None:
    """Refuse what was measured not to pay (benchmarks/README.md, "Mixed precision").

    On CPU, bfloat16 has no fast matrix units here: JAX gained nothing and TensorFlow was about
    12x slower than float32, so ``mixed_bfloat16`` is accepted only on a GPU/TPU and only by the
    ``xla`` engine.
    """
    if precision not in PRECISIONS:
        raise ConfigurationError(
            f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}"
        )
    if precision == "float32":
        return
    if engine != "xla":
        raise ConfigurationError("precision mixed_bfloat16 needs --engine xla (JAX backend)")
    import jax

    if jax.default_backend() == "cpu":
        raise ConfigurationError(
            "precision mixed_bfloat16 is refused on CPU: measured slower than float32 there "
            "(see benchmarks/README.md); use float32, or a GPU"
        )


def dtype_policy_scope(precision: str) -> Any:
    """A context in which models are built with ``precision``'s Keras dtype policy."""
    import contextlib

    import keras

    @contextlib.contextmanager
    def scope():
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(precision)
        try:
            yield
        finally:
            keras.config.set_dtype_policy(previous)

    return scope()


# --------------------------------------------------------------------------- the run's setup


@dataclass
class RunData:
    """What one run of a pack fits on and monitors (arrays already in model-input form)."""

    x_fit: Any
    y_fit: np.ndarray
    sample_weight: np.ndarray | None
    x_monitor: Any = None  # hold-out or test inputs for validation / test-checkpoint
    y_monitor: np.ndarray | None = None


def learning_rate_ladder(learning_rate: float, factor: float, min_lr: float) -> np.ndarray:
    """Every learning rate ReduceLROnPlateau can set, in order, as float32.

    The Keras callback reads the float32 variable, multiplies in float64, takes the max with
    ``min_lr`` and stores float32 again; it reduces only while ``lr > float32(min_lr)``. Doing
    the same here, on the host, makes the in-graph schedule an index into this table and the
    trajectory identical to ``fit``'s.
    """
    rates = [np.float32(learning_rate)]
    while float(rates[-1]) > np.float32(min_lr) and len(rates) < 10_000:
        rates.append(np.float32(max(float(rates[-1]) * factor, min_lr)))
    return np.asarray(rates, dtype=np.float32)


def packing_strategy(n_runs: int) -> str:
    """How the runs of a pack share the device.

    * ``"host"`` (CPU): one compiled epoch per host call and run, the runs of a pack spread
      over one thread per core. On XLA:CPU a loop inside the program (``while``/``scan``)
      costs about twice the same epochs called one by one (measured: Chinatown 11.0 vs
      6.0 ms, ItalyPowerDemand 34 vs 16 ms per epoch), and a vmapped pack runs slower per run
      than separate calls (12.6 vs 6.0 ms); the host call itself costs well under a
      millisecond, so on CPU the compiled epoch is called from Python.
    * ``"single"`` (accelerator, one run) and ``"vmap"`` (accelerator, K runs as one batched
      program): many epochs per host call, inside a ``while`` loop.
    """
    import jax

    forced = os.environ.get("LSTMFCN_PACKING")  # for benchmarks and tests
    if forced:
        if forced not in ("single", "vmap", "host"):
            raise ConfigurationError(f"LSTMFCN_PACKING must be single, vmap or host; got {forced}")
        return "single" if n_runs == 1 and forced == "vmap" else forced
    if jax.default_backend() == "cpu":
        return "host"
    return "single" if n_runs == 1 else "vmap"


def _same_architecture(models: list[Any]) -> None:
    shapes = [[tuple(v.shape) for v in m.variables] for m in models]
    if any(s != shapes[0] for s in shapes) or len({type(m) for m in models}) != 1:
        raise ConfigurationError(
            "packed runs must share one architecture and input shape; got models "
            + ", ".join(m.name for m in models)
        )


def _stack(trees: list[Any]) -> Any:
    import jax
    import jax.numpy as jnp

    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def _batched_take(tree: Any, index: Any) -> Any:
    import jax
    import jax.numpy as jnp

    return jax.tree.map(lambda a: jnp.take(a, index, axis=0), tree)


# --------------------------------------------------------------------------- the protocol

COUNTERS = ("best", "best_epoch", "best_loss", "plateau_best", "wait", "cooldown", "lr_step",
            "stop_best", "stop_wait", "stopped")


def _improved(current: Any, best: Any, min_delta: float, mode: str) -> Any:
    """Keras' ``MonitorCallback._is_improvement`` in float32 (``best`` = +-inf for None)."""
    import jax.numpy as jnp

    delta = jnp.float32(min_delta)
    return (current + delta) < best if mode == "min" else (current - delta) > best


def protocol_bookkeeping(counters: dict, current: Any, loss: Any, epoch: Any, *, mode: str,
                         min_delta: float, lr_patience: int, cooldown: int, n_rates: int,
                         early_stopping_patience: int | None) -> tuple[dict, Any]:
    """One epoch end of the callbacks ``train_model`` gives ``fit``, in their order, in jnp.

    1. keep the best weights: a finite ``current`` strictly better than the best so far;
    2. ReduceLROnPlateau: cooldown, ``min_delta`` improvement, patience, one step down the
       learning-rate ladder (``n_rates`` rates; the last is the floor);
    3. TerminateOnNaN on the epoch's training loss; 4. EarlyStopping (``min_delta`` 0).

    Returns the new counters (keys ``COUNTERS``) and whether this epoch's weights are kept.
    """
    import jax.numpy as jnp

    run, new = counters, dict(counters)
    better = current < run["best"] if mode == "min" else current > run["best"]
    keep = jnp.isfinite(current) & better
    new["best"] = jnp.where(keep, current, run["best"])
    new["best_epoch"] = jnp.where(keep, epoch + 1, run["best_epoch"])
    new["best_loss"] = jnp.where(keep, loss, run["best_loss"])

    in_cooldown = run["cooldown"] > 0
    cooling = jnp.where(in_cooldown, run["cooldown"] - 1, run["cooldown"])
    wait = jnp.where(in_cooldown, 0, run["wait"])
    improved = _improved(current, run["plateau_best"], min_delta, mode)
    still_cooling = cooling > 0
    wait = jnp.where(improved, 0, jnp.where(still_cooling, wait, wait + 1))
    reduce = ((~improved) & (~still_cooling) & (wait >= lr_patience)
              & (run["lr_step"] < n_rates - 1))
    new["plateau_best"] = jnp.where(improved, current, run["plateau_best"])
    new["lr_step"] = jnp.where(reduce, run["lr_step"] + 1, run["lr_step"])
    new["cooldown"] = jnp.where(reduce, cooldown, cooling)
    new["wait"] = jnp.where(reduce, 0, wait)

    stop = ~jnp.isfinite(loss)
    if early_stopping_patience:
        stop_wait = run["stop_wait"] + 1
        stop_improved = _improved(current, run["stop_best"], 0.0, mode)
        new["stop_best"] = jnp.where(stop_improved, current, run["stop_best"])
        new["stop_wait"] = jnp.where(stop_improved, 0, stop_wait)
        stop |= (~stop_improved) & (stop_wait >= early_stopping_patience) & (epoch > 0)
    new["stopped"] = run["stopped"] | stop
    return new, keep


def initial_counters(mode: str) -> dict:
    """The counters before the first epoch (Keras' ``best`` None is +-inf here)."""
    import jax.numpy as jnp

    worst = jnp.float32(math.inf if mode == "min" else -math.inf)
    return {"best": worst, "best_epoch": jnp.int32(0), "best_loss": jnp.float32(math.nan),
            "plateau_best": worst, "wait": jnp.int32(0), "cooldown": jnp.int32(0),
            "lr_step": jnp.int32(0), "stop_best": worst, "stop_wait": jnp.int32(0),
            "stopped": jnp.bool_(False)}


# --------------------------------------------------------------------------- CPU convolutions
#
# XLA:CPU leaves the kernel-gradient convolution of a Conv1D in a non-canonical dimension order
# when it sits inside a loop body (``while``/``scan``), and then runs it through a naive loop
# nest: measured ~350x slower than the same gradient outside a loop (2.9 ms -> 1 s for one
# 128->256 kernel on GunPoint-sized batches), which made an epoch inside the compiled program
# far slower than model.fit's. While the program is traced on CPU, 1-D stride-1 convolutions
# (all the Conv1D layers of the family) get a custom gradient that asks for the canonical
# (batch, spatial, feature) form directly. Forward values and gradients are the same
# convolutions, only written so that XLA keeps the fast path.

def _conv1d_fast_gradients():
    import functools

    import jax
    from jax import lax

    original = lax.conv_general_dilated
    layout = ("NWC", "WIO", "NWC")

    @functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
    def conv1d(x, kernel, pads):
        return original(x, kernel, (1,), [pads], dimension_numbers=layout)

    def forward(x, kernel, pads):
        return conv1d(x, kernel, pads), (x, kernel)

    def backward(pads, saved, grad):
        x, kernel = saved
        low, high = pads
        # the input gradient as JAX differentiates the convolution itself (fast in loops)
        _, input_vjp = jax.vjp(lambda inputs: original(inputs, kernel, (1,), [pads],
                                                       dimension_numbers=layout), x)
        (grad_x,) = input_vjp(grad)
        # dK[k, i, o] = sum over (b, t) of x_padded[b, t + k, i] grad[b, t, o]: a convolution
        # with the input channels as its batch, in the canonical order
        grad_kernel = original(x.transpose(2, 1, 0), grad.transpose(1, 0, 2), (1,),
                               [(low, high)], dimension_numbers=layout)
        return grad_x, grad_kernel.transpose(1, 0, 2)

    conv1d.defvjp(forward, backward)

    def plain_1d(lhs, window_strides, lhs_dilation, rhs_dilation, dimension_numbers,
                 feature_group_count, extra):
        if extra or lhs.ndim != 3 or feature_group_count != 1:
            return False
        if tuple(window_strides) != (1,) or tuple(rhs_dilation or (1,)) != (1,):
            return False
        if tuple(lhs_dilation or (1,)) != (1,):
            return False
        if isinstance(dimension_numbers, lax.ConvDimensionNumbers):
            return (tuple(dimension_numbers.lhs_spec), tuple(dimension_numbers.rhs_spec),
                    tuple(dimension_numbers.out_spec)) == ((0, 2, 1), (2, 1, 0), (0, 2, 1))
        return dimension_numbers is not None and tuple(dimension_numbers) == layout

    def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                             rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                             **extra):
        if plain_1d(lhs, window_strides, lhs_dilation, rhs_dilation, dimension_numbers,
                    feature_group_count, extra):
            if isinstance(padding, str):
                padding = lax.padtype_to_pads(lhs.shape[1:2], rhs.shape[0:1], (1,), padding)
            return conv1d(lhs, rhs, tuple(int(p) for p in padding[0]))
        return original(lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
                        rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
                        feature_group_count=feature_group_count, **extra)

    return original, conv_general_dilated


class _FastConvGradients:
    """While active, ``jax.lax.conv_general_dilated`` (which Keras' JAX backend calls) uses
    the canonical-order gradient above. Only for tracing our own program."""

    def __enter__(self):
        from jax import lax

        self.original, replacement = _conv1d_fast_gradients()
        lax.conv_general_dilated = replacement

    def __exit__(self, *exc):
        from jax import lax

        lax.conv_general_dilated = self.original


# --------------------------------------------------------------------------- the program


class PackedProgram:
    """The compiled epoch loop of one pack: state in, ``n`` epochs later state and logs out."""

    def __init__(self, template: Any, n_fit: int, batch_size: int, *, monitor: str, mode: str,
                 ladder: np.ndarray, lr_patience: int, cooldown: int, min_delta: float,
                 early_stopping_patience: int | None, has_weights: bool,
                 has_monitor_data: bool, n_monitor: int, per_run_data: bool,
                 strategy: str = "vmap"):
        self.model = template
        self.n_fit, self.batch_size = n_fit, batch_size
        self.monitor, self.mode = monitor, mode
        self.ladder = ladder
        self.lr_patience, self.cooldown, self.min_delta = lr_patience, cooldown, min_delta
        self.early_stopping_patience = early_stopping_patience
        self.has_weights = has_weights
        self.has_monitor_data, self.n_monitor = has_monitor_data, n_monitor
        self.per_run_data = per_run_data
        self.strategy = strategy
        optimizer_variables = template.optimizer.variables
        self.lr_position = next(i for i, v in enumerate(optimizer_variables)
                                if v is template.optimizer._learning_rate)
        self.n_metrics = len(template.metrics_variables)
        self.log_keys = ["loss", "accuracy", "learning_rate"]
        if has_monitor_data:
            self.log_keys += ["val_loss", "val_accuracy"]
        self._compiled = None

    # one run ---------------------------------------------------------------------------

    def _evaluate(self, variables: tuple, x: Any, y: Any) -> tuple[Any, Any]:
        """Inference-mode loss and accuracy over (x, y) as ``fit``'s validation logs them."""
        import jax
        import jax.numpy as jnp

        trainable, non_trainable = variables
        metrics = [jnp.zeros_like(v.value) for v in self.model.metrics_variables]
        bs, n = self.batch_size, self.n_monitor
        n_full, rest = divmod(n, bs)

        def step(metrics, index):
            batch = (_batched_take(x, index), jnp.take(y, index, axis=0), None)
            logs, (_, _, metrics) = self.model.test_step(
                (trainable, non_trainable, metrics), batch)
            return metrics, (logs["loss"], logs["accuracy"])

        logs = None
        if n_full:
            index = jnp.arange(n_full * bs).reshape(n_full, bs)
            metrics, logs = jax.lax.scan(step, metrics, index)
            logs = (logs[0][-1], logs[1][-1])
        if rest:
            metrics, logs = step(metrics, jnp.arange(n_full * bs, n))
        return logs

    def _epoch(self, run: dict, epoch: Any, data: tuple, order: Any) -> tuple[dict, dict]:
        """One epoch of one run, with the protocol's bookkeeping; returns (run, logs).

        A run that has stopped keeps its state and logs an inactive epoch.
        """
        import jax
        import jax.numpy as jnp

        new, logs = self._train_epoch(run, epoch, data, order)
        # a select, not a branch: XLA:CPU runs a conditional's body as a nested computation,
        # which was measured 1.6x slower than this copy (Chinatown, 13.7 vs 8.3 ms per epoch)
        active = ~run["stopped"]
        new = jax.tree.map(lambda a, b: jnp.where(active, a, b), new, run)
        return new, {**logs, "active": active}

    def _train_epoch(self, run: dict, epoch: Any, data: tuple,
                     order: Any) -> tuple[dict, dict]:
        """One epoch of one run inside the program (accelerator strategies)."""
        import jax
        import jax.numpy as jnp

        x, y, sample_weight, _, _ = data
        bs, n = self.batch_size, self.n_fit
        n_full, rest = divmod(n, bs)
        state, lr = self._begin_epoch(run)

        def step(state, index):
            weights = None if sample_weight is None else jnp.take(sample_weight, index)
            batch = (_batched_take(x, index), jnp.take(y, index, axis=0), weights)
            logs, state = self.model.train_step(state, batch)
            return state, logs

        if n_full == 1:  # no loop in the program for a single full batch
            state, logs = step(state, order[:bs])
        elif n_full:
            state, logs = jax.lax.scan(step, state, order[: n_full * bs].reshape(n_full, bs))
            logs = jax.tree.map(lambda a: a[-1], logs)
        if rest:
            state, logs = step(state, order[n_full * bs:])
        return self._end_epoch(_without_state(run), state, logs, lr, epoch, data)

    def _begin_epoch(self, run: dict) -> tuple[tuple, Any]:
        """The (trainable, non-trainable, optimizer, metrics) state Keras' ``train_step``
        takes, with this epoch's learning rate and the metrics reset as ``fit`` resets them."""
        import jax.numpy as jnp

        lr = jnp.asarray(self.ladder)[run["lr_step"]]
        optimizer_variables = list(run["optimizer"])
        optimizer_variables[self.lr_position] = lr
        metrics = [jnp.zeros_like(v) for v in run["metrics"]]
        return (run["trainable"], run["non_trainable"], optimizer_variables, metrics), lr

    def _end_epoch(self, run: dict, state: tuple, logs: dict, lr: Any, epoch: Any,
                   data: tuple) -> tuple[dict, dict]:
        """The epoch's end: held-out metrics, the protocol's bookkeeping, the best weights.
        ``run`` holds the counters and best weights; ``state`` the trained variables."""
        import jax
        import jax.numpy as jnp

        trainable, non_trainable, optimizer_variables, metrics = state
        epoch_logs = {"loss": logs["loss"], "accuracy": logs["accuracy"], "learning_rate": lr}
        if self.has_monitor_data:
            val_loss, val_accuracy = self._evaluate((trainable, non_trainable), data[3], data[4])
            epoch_logs.update(val_loss=val_loss, val_accuracy=val_accuracy)
        current = epoch_logs[self.monitor]

        counters, keep = protocol_bookkeeping(
            {key: run[key] for key in COUNTERS}, current, epoch_logs["loss"], epoch,
            mode=self.mode, min_delta=self.min_delta, lr_patience=self.lr_patience,
            cooldown=self.cooldown, n_rates=len(self.ladder),
            early_stopping_patience=self.early_stopping_patience)
        new = {**run, **counters}
        new["best_trainable"] = jax.tree.map(lambda a, b: jnp.where(keep, a, b), trainable,
                                             run["best_trainable"])
        new["best_non_trainable"] = jax.tree.map(lambda a, b: jnp.where(keep, a, b),
                                                 non_trainable, run["best_non_trainable"])
        new["trainable"], new["non_trainable"] = trainable, non_trainable
        new["optimizer"], new["metrics"] = optimizer_variables, metrics
        new["epochs_run"] = run["epochs_run"] + 1
        return new, epoch_logs

    # the pack ----------------------------------------------------------------------------

    def _chunk(self, runs: dict, data: tuple, orders: Any, start: Any,
               count: Any) -> tuple[dict, dict]:
        import jax
        import jax.numpy as jnp

        if self.strategy == "vmap":
            epoch_all = jax.vmap(self._epoch, in_axes=(0, None, self._data_axes(), 0))
        else:  # "single": one run, no batch dimension in the program at all
            def epoch_all(runs, epoch, data, orders):
                run, logs = self._epoch(jax.tree.map(lambda a: a[0], runs), epoch,
                                        self._own_data(data, 0), orders[0])
                return jax.tree.map(lambda a: a[None], (run, logs))
        k = jax.tree.leaves(runs)[0].shape[0]
        buffer = {key: jnp.zeros((MAX_CHUNK_EPOCHS, k), jnp.float32) for key in self.log_keys}
        buffer["active"] = jnp.zeros((MAX_CHUNK_EPOCHS, k), bool)

        def body(carry):
            i, runs, buffer = carry
            runs, logs = epoch_all(runs, start + i, data, orders[i])
            buffer = {key: buffer[key].at[i].set(logs[key].astype(buffer[key].dtype))
                      for key in buffer}
            return i + 1, runs, buffer

        def more(carry):
            i, runs, _ = carry
            return (i < count) & ~jnp.all(runs["stopped"])

        _, runs, buffer = jax.lax.while_loop(more, body, (jnp.int32(0), runs, buffer))
        return runs, buffer

    def _data_axes(self) -> tuple:
        """The run axis of each data array (None: shared by the pack). x, y and the monitored
        data are shared unless the runs' splits differ; class weights are per run."""
        run_axis = 0 if self.per_run_data else None
        return (run_axis, run_axis, 0 if self.has_weights else None, run_axis, run_axis)

    def _own_data(self, data: tuple, k: int) -> tuple:
        """Run ``k``'s data arrays out of the pack's."""
        import jax

        return tuple(d if axis is None or d is None else jax.tree.map(lambda a: a[k], d)
                     for d, axis in zip(data, self._data_axes(), strict=True))

    def run_chunk(self, runs: dict, data: tuple, orders: np.ndarray, start: int,
                  count: int) -> tuple[dict, dict]:
        """Run epochs ``start .. start + count - 1`` (fewer when every run has stopped);
        ``orders[e, k]`` is the order of the cases of run ``k`` in epoch ``start + e``."""
        import contextlib

        import jax
        import jax.numpy as jnp

        if self.strategy == "host":
            return self._run_chunk_on_host(runs, data, orders, start, count)
        padded = np.zeros((MAX_CHUNK_EPOCHS, *orders.shape[1:]), np.int32)  # static shape
        padded[:count] = orders[:count]
        arguments = (runs, data, jnp.asarray(padded), jnp.int32(start), jnp.int32(count))
        if self._compiled is None:
            on_cpu = jax.default_backend() == "cpu"
            with _FastConvGradients() if on_cpu else contextlib.nullcontext():
                self._compiled = jax.jit(self._chunk, donate_argnums=(0,)).lower(
                    *arguments).compile()
        return self._compiled(*arguments)

    def _run_chunk_on_host(self, runs: dict, data: tuple, orders: np.ndarray, start: int,
                           count: int) -> tuple[dict, dict]:
        """The host strategy. An epoch of one batch is one compiled call (the step, the
        protocol's bookkeeping and the best weights together). Longer epochs call Keras' own
        ``train_step`` once per batch, compiled as ``fit`` compiles it and fed the same
        batches, so that the arithmetic is exactly ``fit``'s (fused into one program, the
        steps round differently, and training amplifies that: 2e-3 apart after 50 epochs);
        the epoch's start and end are two more calls, instead of ``fit``'s Python callbacks.
        The runs of a pack are shared out over one thread per core (XLA releases the GIL
        while it computes)."""
        from concurrent.futures import ThreadPoolExecutor

        import jax

        k = jax.tree.leaves(runs)[0].shape[0]
        singles = [jax.tree.map(lambda a, i=i: a[i], runs) for i in range(k)]
        one_batch = self.n_fit <= self.batch_size
        train = self._host_epochs_of_one_batch if one_batch else self._host_epochs_batch_by_batch
        if self._compiled is None:  # compiled on first call, shared by the threads
            self._compiled = jax.jit(self._epoch, donate_argnums=(0,)) if one_batch else (
                jax.jit(self._begin_epoch), jax.jit(self.model.train_step, donate_argnums=0),
                jax.jit(self._end_epoch, donate_argnums=(0, 1)))
        workers = max(1, min(k, _usable_cpus()))
        with ThreadPoolExecutor(workers) as pool:
            trained = list(pool.map(
                lambda i: train(singles[i], self._own_data(data, i), orders[:, i], start,
                                count), range(k)))
        buffer = {key: np.zeros((MAX_CHUNK_EPOCHS, k), np.float32) for key in self.log_keys}
        buffer["active"] = np.zeros((MAX_CHUNK_EPOCHS, k), bool)
        for i, (_, logs) in enumerate(trained):
            for e, epoch_logs in enumerate(logs):
                for key in buffer:
                    buffer[key][e, i] = epoch_logs[key]
        return _stack([run for run, _ in trained]), buffer

    def _host_epochs_of_one_batch(self, run: dict, data: tuple, orders: np.ndarray,
                                  start: int, count: int) -> tuple[dict, list[dict]]:
        import jax
        import jax.numpy as jnp

        logs = []
        for epoch in range(start, start + count):
            if (epoch - start) % 10 == 0 and bool(run["stopped"]):
                break  # stopped runs keep their state; the rest of the chunk is inactive
            run, epoch_logs = self._compiled(run, jnp.int32(epoch), data, orders[epoch - start])
            logs.append(epoch_logs)
        return run, jax.device_get(logs)

    def _host_epochs_batch_by_batch(self, run: dict, data: tuple, orders: np.ndarray,
                                    start: int, count: int) -> tuple[dict, list[dict]]:
        import jax
        import jax.numpy as jnp

        begin, train_step, end = self._compiled
        bs = self.batch_size
        x, y, sample_weight = jax.device_get(data[:3])  # batches cut on the host, as fit does
        logs = []
        for epoch in range(start, start + count):
            if bool(run["stopped"]):
                break  # early-stopped (or NaN): the rest of the chunk is inactive
            state, lr = begin(run)
            order = orders[epoch - start]
            for first in range(0, self.n_fit, bs):
                rows = order[first:first + bs]
                batch = (jax.tree.map(lambda a, rows=rows: a[rows], x), y[rows],
                         None if sample_weight is None else sample_weight[rows])
                step_logs, state = train_step(state, batch)
            run, epoch_logs = end(_without_state(run), state, step_logs, lr,
                                  jnp.int32(epoch), data)
            logs.append({**epoch_logs, "active": True})
        return run, jax.device_get(logs)


def _usable_cpus() -> int:
    """CPUs this process may use: ``OMP_NUM_THREADS`` when set (Ray sets it to a task's CPUs),
    else the CPUs it may be scheduled on."""
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "")))
    except ValueError:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else os.cpu_count() or 1


STATE_KEYS = ("trainable", "non_trainable", "optimizer", "metrics")


def _without_state(run: dict) -> dict:
    """The run's counters and best weights, without the variables ``train_step`` updates."""
    return {key: value for key, value in run.items() if key not in STATE_KEYS}


def initial_run_state(model: Any, mode: str) -> dict:
    """The loop state of one run: the model's variables and the protocol's counters.
    Dropout draws from the model's own seed-generator states (non-trainable variables)."""
    import jax.numpy as jnp

    trainable = [jnp.asarray(v.value) for v in model.trainable_variables]
    non_trainable = [jnp.asarray(v.value) for v in model.non_trainable_variables]
    return {
        "trainable": trainable,
        "non_trainable": non_trainable,
        "optimizer": [jnp.asarray(v.value) for v in model.optimizer.variables],
        "metrics": [jnp.zeros_like(v.value) for v in model.metrics_variables],
        "best_trainable": [jnp.array(a) for a in trainable],
        "best_non_trainable": [jnp.array(a) for a in non_trainable],
        **initial_counters(mode),
        "epochs_run": jnp.int32(0),
    }


# --------------------------------------------------------------------------- snapshots


class PackSnapshot:
    """The whole loop state of a pack on disk, written as ``utils.resume`` writes a run's:
    ``state-<epoch>.npz`` first, then ``state.json`` (the commit point) with its SHA-256, the
    epoch, the history and the settings fingerprint; the superseded file is removed last."""

    def __init__(self, folder: str | os.PathLike, fingerprint: dict[str, Any]):
        self.folder = Path(folder)
        self.fingerprint = json.loads(json.dumps(fingerprint, default=str))
        self.saved_at = time.monotonic()  # the snapshot interval counts from here

    def load(self, template: dict) -> tuple[int, dict, list[dict]] | None:
        """(epoch, loop state shaped like ``template``, histories) or None (files removed)."""
        import jax
        import jax.numpy as jnp

        from utils.checkpoints import file_sha256

        try:
            state = json.loads((self.folder / STATE_FILE).read_text(encoding="utf-8"))
            (name, digest), = state["files"].items()
            if state["fingerprint"] != self.fingerprint or file_sha256(
                    self.folder / name) != digest:
                raise ValueError("stale snapshot")
            leaves, structure = jax.tree.flatten(template)
            with np.load(self.folder / name, allow_pickle=False) as saved:
                restored = [jnp.asarray(saved[f"arr_{i}"], dtype=leaf.dtype)
                            for i, leaf in enumerate(leaves)]
                if len(saved.files) != len(leaves):
                    raise ValueError("other structure")
        except (OSError, ValueError, KeyError, TypeError):
            self.discard()
            return None
        return int(state["epoch"]), jax.tree.unflatten(structure, restored), state["history"]

    def save(self, epoch: int, runs: dict, histories: list[dict]) -> None:
        import jax

        from utils.atomic_files import replacing, write_text_atomic
        from utils.checkpoints import file_sha256

        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"state-{epoch}.npz"
        with replacing(self.folder / name, ".npz") as temporary:
            with open(temporary, "wb") as handle:
                np.savez(handle, *[np.asarray(leaf) for leaf in jax.tree.leaves(runs)])
        state = {"fingerprint": self.fingerprint, "epoch": epoch, "history": histories,
                 "files": {name: file_sha256(self.folder / name)}}
        write_text_atomic(self.folder / STATE_FILE, json.dumps(state))
        self.saved_at = time.monotonic()
        for old in self.folder.iterdir():
            if old.name.startswith("state-") and old.name != name:
                old.unlink(missing_ok=True)

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


# --------------------------------------------------------------------------- the driver


def fit_packed(
    models: list[Any],
    runs_data: list[RunData],
    shuffle_seeds: list[int],
    *,
    epochs: int,
    batch_size: int,
    monitor: str,
    mode: str,
    learning_rate: float,
    lr_factor: float,
    lr_patience: int,
    min_learning_rate: float,
    early_stopping_patience: int | None,
    shuffle: bool = True,
    progress: bool | str = False,
    snapshot_dir: str | os.PathLike | None = None,
    snapshot_seconds: float = 300.0,
    snapshot_fingerprint: dict[str, Any] | None = None,
    chunk_epochs: int | None = None,
) -> tuple[list[dict], list[dict[str, Any]], float]:
    """Train ``models`` (compiled, built, one architecture) together (``packing_strategy``).

    ``shuffle_seeds`` (one int per run) give the case orders, ``utils.resume.epoch_order``.

    Returns, per run, its history and a summary (``best_epoch``, ``best``, ``best_loss``,
    ``epochs_run``), and the compile time in seconds. On return every model holds its best
    epoch's weights (BatchNorm statistics of that epoch; recalibration is the caller's).
    """
    import jax

    from utils.interrupts import raise_if_stop_requested, save_then_stop_if_requested
    from utils.resume import epoch_order

    _same_architecture(models)
    template = models[0]
    first = runs_data[0]
    n_fit = len(first.y_fit)
    if any(len(r.y_fit) != n_fit for r in runs_data):
        raise ConfigurationError("packed runs must fit on the same number of cases")
    shared = all(r.y_fit is first.y_fit and r.x_fit is first.x_fit for r in runs_data)
    has_weights = first.sample_weight is not None
    has_monitor = first.x_monitor is not None
    per_run = not shared

    def column(values: list[Any]) -> Any:
        return values[0] if shared else _stack(values)

    import jax.numpy as jnp

    data = (
        column([r.x_fit for r in runs_data]),
        column([jnp.asarray(r.y_fit) for r in runs_data]),
        _stack([jnp.asarray(r.sample_weight, jnp.float32) for r in runs_data])
        if has_weights else None,
        column([r.x_monitor for r in runs_data]) if has_monitor else None,
        column([jnp.asarray(r.y_monitor) for r in runs_data]) if has_monitor else None,
    )
    data = jax.tree.map(jnp.asarray, data)
    settings = dict(
        n_fit=n_fit, batch_size=batch_size, monitor=monitor, mode=mode,
        ladder=learning_rate_ladder(learning_rate, lr_factor, min_learning_rate),
        lr_patience=lr_patience, cooldown=0, min_delta=1e-4,
        early_stopping_patience=early_stopping_patience,
        has_weights=has_weights, has_monitor_data=has_monitor,
        n_monitor=len(first.y_monitor) if has_monitor else 0, per_run_data=per_run,
        strategy=packing_strategy(len(models)),
    )
    # a compiled program serves every pack of the same architecture, shapes and settings
    # (e.g. the seeds of one (dataset, model, cells) trained one at a time)
    signature = json.dumps([template.to_json(), len(models), {
        key: value.tolist() if isinstance(value, np.ndarray) else value
        for key, value in settings.items()},
        [(tuple(a.shape), str(a.dtype)) for a in jax.tree.leaves(data)]], default=str)
    program = _PROGRAMS.pop(signature, None) or PackedProgram(template, **settings)
    _PROGRAMS[signature] = program
    while len(_PROGRAMS) > MAX_CACHED_PROGRAMS:
        _PROGRAMS.pop(next(iter(_PROGRAMS)))
    runs = _stack([initial_run_state(m, mode) for m in models])

    def orders_for(first: int, count: int) -> np.ndarray:
        """(count, K, n_fit) case orders of epochs first .. first + count - 1, as ``fit``'s."""
        return np.asarray([[epoch_order(s, e, n_fit, shuffle) for s in shuffle_seeds]
                           for e in range(first, first + count)], dtype=np.int32)

    histories: list[dict[str, list[float]]] = [{key: [] for key in program.log_keys}
                                               for _ in models]
    epoch = 0
    snapshot = None
    if snapshot_dir is not None:
        snapshot = PackSnapshot(snapshot_dir, {**(snapshot_fingerprint or {}),
                                               "seeds": list(shuffle_seeds), "epochs": epochs,
                                               "engine": "xla", "shuffle": shuffle})
        restored = snapshot.load(runs)
        if restored is not None:
            epoch, runs, histories = restored
            print(f"resumed from the snapshot in {snapshot.folder} at epoch {epoch}",
                  file=sys.stderr, flush=True)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        description = progress if isinstance(progress, str) else "training"
        if epoch:
            description += f" (resumed at epoch {epoch})"
        interactive = sys.stderr.isatty()
        bar = tqdm(total=epochs, initial=epoch, desc=description, unit="ep", file=sys.stderr,
                   mininterval=0.5 if interactive else 30.0, dynamic_ncols=interactive)

    compile_seconds, calls = 0.0, 0
    automatic = chunk_epochs is None
    chunk = 1 if automatic else max(1, min(chunk_epochs, MAX_CHUNK_EPOCHS))
    while epoch < epochs and not bool(np.all(np.asarray(runs["stopped"]))):
        count = min(chunk, epochs - epoch)
        started = time.perf_counter()
        runs, logs = program.run_chunk(runs, data, orders_for(epoch, count), epoch, count)
        logs = jax.device_get(logs)
        seconds = time.perf_counter() - started
        calls += 1
        if calls == 1:
            compile_seconds = seconds  # compiling, and one epoch
            chunk = 4 if automatic else chunk
        elif automatic:  # aim at a progress update every ~TARGET_CHUNK_SECONDS
            chunk = int(min(MAX_CHUNK_EPOCHS, max(1, count * TARGET_CHUNK_SECONDS / seconds)))
        for k, history in enumerate(histories):
            active = logs["active"][:count, k]
            for key in program.log_keys:
                history[key] += [float(v) for v in logs[key][:count, k][active]]
        epoch += count
        if bar is not None:
            last = [(h["loss"][-1], h["learning_rate"][-1]) for h in histories if h["loss"]]
            if last:
                bar.set_postfix(loss=f"{min(last)[0]:.4f}", lr=f"{min(last)[1]:.1e}",
                                refresh=False)
            bar.update(count)
        if epoch >= epochs:
            break  # trained: a Ctrl-C now stops at the caller's next safe point, once logged
        if snapshot is not None:
            save_then_stop_if_requested(functools.partial(snapshot.save, epoch, runs, histories),
                                        time.monotonic() - snapshot.saved_at >= snapshot_seconds)
        else:
            raise_if_stop_requested()  # Ctrl-C: nothing to save, stop here (utils.interrupts)
    if bar is not None:
        bar.close()

    runs = jax.device_get(runs)
    summaries = []
    for k, model in enumerate(models):
        for variable, value in zip(model.trainable_variables, runs["best_trainable"],
                                   strict=True):
            variable.assign(value[k])
        for variable, value, best in zip(model.non_trainable_variables,
                                         runs["non_trainable"], runs["best_non_trainable"],
                                         strict=True):
            # BatchNorm statistics of the best epoch; seed-generator states stay at the end,
            # as model.set_weights leaves them after fit
            variable.assign(best[k] if "seed_generator" not in variable.path else value[k])
        for variable, value in zip(model.optimizer.variables, runs["optimizer"], strict=True):
            variable.assign(value[k])
        summaries.append({
            "best_epoch": int(runs["best_epoch"][k]), "best": float(runs["best"][k]),
            "best_loss": float(runs["best_loss"][k]), "epochs_run": int(runs["epochs_run"][k]),
        })
    if snapshot is not None:
        snapshot.discard()
    return histories, summaries, compile_seconds
