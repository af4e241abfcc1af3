"""The compiled JAX engine (utils.engine_xla) against model.fit, packed against unpacked, its
protocol bookkeeping against Keras' own callbacks, and a packed grid run killed and resumed.

The suite runs on TensorFlow; the engine needs KERAS_BACKEND=jax, so the training checks run in
one subprocess each (real bundled data, a few dozen epochs).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
JAX_ENV = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}

pytest.importorskip("jax")


def _run_jax(script: str, *args: str, timeout: float = 1800) -> dict:
    done = subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, env=JAX_ENV,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- bookkeeping


def _keras_reference(values, losses, mode, learning_rate, patience, min_lr, stop_patience):
    """The callbacks train_model gives fit, driven by a scripted log sequence: returns the
    learning rate of every epoch, the kept epoch and the epoch after which training stops."""
    import keras

    from utils.training import LR_FACTOR, _KeepBest

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    monitor = "score"
    keep = _KeepBest(monitor, mode)
    callbacks = [
        keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode=mode, factor=LR_FACTOR,
                                          patience=patience, min_lr=min_lr, min_delta=1e-4),
        keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=stop_patience),
    ]
    for callback in callbacks:
        callback.set_model(model)
        callback.on_train_begin()
    rates, stopped_after = [], None
    for epoch, (value, loss) in enumerate(zip(values, losses, strict=True)):
        logs = {monitor: float(value), "loss": float(loss)}
        keep.update(model, epoch, logs)
        for callback in callbacks:
            callback.on_epoch_end(epoch, logs)
        rates.append(logs["learning_rate"])
        if model.stop_training or not np.isfinite(loss):  # + TerminateOnNaN
            stopped_after = epoch + 1
            break
    return rates, keep.best_epoch, stopped_after


@pytest.mark.parametrize("mode", ["min", "max"])
def test_bookkeeping_matches_the_keras_callbacks_on_a_scripted_sequence(mode):
    import jax
    import jax.numpy as jnp

    from utils.engine_xla import initial_counters, learning_rate_ladder, protocol_bookkeeping
    from utils.training import LR_FACTOR

    rng = np.random.default_rng(7 if mode == "min" else 8)
    # drifts, plateaus, steps smaller than min_delta, exact repeats, one non-finite value
    steps = rng.choice([-3e-3, -5e-5, 0.0, 2e-3, 5e-5], size=240, p=[0.3, 0.2, 0.2, 0.2, 0.1])
    values = (1.0 + np.cumsum(steps if mode == "min" else -steps)).astype(np.float32)
    values[37] = np.nan
    losses = values if mode == "min" else (2.0 - values).astype(np.float32)
    learning_rate, patience, min_lr, stop_patience = 1e-3, 4, 2e-4, 60

    ladder = learning_rate_ladder(learning_rate, LR_FACTOR, min_lr)

    def step(counters, inputs):
        epoch, value, loss = inputs
        rate = jnp.asarray(ladder)[counters["lr_step"]]
        new, _ = protocol_bookkeeping(counters, value, loss, epoch, mode=mode, min_delta=1e-4,
                                      lr_patience=patience, cooldown=0, n_rates=len(ladder),
                                      early_stopping_patience=stop_patience)
        return new, (rate, new["stopped"], new["best_epoch"])

    epochs = jnp.arange(len(values))
    _, (rates, stopped, best_epochs) = jax.jit(
        lambda: jax.lax.scan(step, initial_counters(mode),
                             (epochs, jnp.asarray(values), jnp.asarray(losses))))()
    stopped = np.asarray(stopped)
    engine_stop = int(np.argmax(stopped)) + 1 if stopped.any() else None
    n = engine_stop or len(values)

    reference_rates, reference_best, reference_stop = _keras_reference(
        values, losses, mode, learning_rate, patience, min_lr, stop_patience)
    assert engine_stop == reference_stop
    assert [float(r) for r in np.asarray(rates)[:n]] == reference_rates
    assert int(np.asarray(best_epochs)[n - 1]) == reference_best
    assert len(set(reference_rates)) > 3  # the schedule really moved (down to the floor)


# --------------------------------------------------------------------------- training

ENGINES_AGREE = r"""
import json
import os
import numpy as np
from utils import build_model, load_dataset
from utils.training import set_seed, train_model, train_packed

out = {}
# one batch per epoch (20 cases), and several batches with a partial last one (150 = 128 + 22);
# the issue's setting (no dropout, no shuffling), and the paper's (dropout 0.8, shuffled)
for name, dropout, shuffle in [("Chinatown", 0.0, False), ("SmoothSubspace", 0.0, False),
                               ("Chinatown", 0.8, True), ("SmoothSubspace", 0.8, True)]:
    data = load_dataset(name)
    runs = {}
    for engine in ("fit", "xla"):
        set_seed(0)
        model = build_model("lstmfcn", data.X_train.shape[2], data.n_classes, num_cells=8,
                            dropout_rate=dropout)
        result = train_model(model, data, 50, 128, seed=0, engine=engine, shuffle=shuffle,
                             lr_patience=2)
        runs[engine] = result
    out[f"{name} {dropout} {shuffle}"] = {
        engine: {"loss": r.history["loss"], "lr": r.history["learning_rate"],
                 "best_epoch": r.best_epoch, "engine": r.engine}
        for engine, r in runs.items()}

# packing: 4 seeds in one program against the same seeds alone (dropout and shuffling on)
data = load_dataset("Chinatown")
def models(seeds):
    built = []
    for seed in seeds:
        set_seed(seed)
        built.append(build_model("lstmfcn", data.X_train.shape[2], data.n_classes, num_cells=8))
    return built
seeds = [0, 1, 2, 3]
packed_models = models(seeds)
packed = train_packed(packed_models, data, seeds, 12, 128, engine="xla")  # CPU: host threads
os.environ["LSTMFCN_PACKING"] = "vmap"  # the accelerators' strategy: one batched program
vmapped_models = models(seeds)
vmapped = train_packed(vmapped_models, data, seeds, 12, 128, engine="xla")
del os.environ["LSTMFCN_PACKING"]
alone = []
for seed, model in zip(seeds, models(seeds)):
    result = train_packed([model], data, [seed], 12, 128, engine="xla")[0]
    alone.append((result, model))
def weights_gap(models):  # largest difference, relative to the array's scale when above 1
    return max(float(np.max(np.abs(a - b)) / max(1.0, np.max(np.abs(a))))
               for (_, m), p in zip(alone, models)
               for a, b in zip(m.get_weights(), p.get_weights()))
out["pack"] = {
    "sizes": [r.pack_size for r in packed] + [r.pack_size for r in vmapped],
    "loss_packed": [r.history["loss"] for r in packed],
    "loss_vmapped": [r.history["loss"] for r in vmapped],
    "loss_alone": [r.history["loss"] for r, _ in alone],
    "weights_gap": weights_gap(packed_models),
    "weights_gap_vmapped": weights_gap(vmapped_models),
    "seeds_differ": float(np.max(np.abs(packed_models[0].get_weights()[0]
                                        - packed_models[1].get_weights()[0]))),
}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def engines_agree():
    return _run_jax(ENGINES_AGREE)


@pytest.mark.parametrize("case", ["Chinatown 0.0 False", "SmoothSubspace 0.0 False",
                                  "Chinatown 0.8 True", "SmoothSubspace 0.8 True"])
def test_xla_engine_follows_model_fit(engines_agree, case):
    """The same batches (utils.resume.epoch_order) and the same dropout streams (the model's
    seed generators): the engines differ only by float32 rounding, held tight over the first
    epochs, where a different batch order or dropout stream would show. Training amplifies the
    rounding later (measured with dropout 0.8 on Chinatown, jax 0.10 / Keras 3.15: below 1e-6
    relative up to epoch 24, 1e-4 at epoch 36, 6e-4 at epoch 42, on losses near 0.002)."""
    fit, xla = engines_agree[case]["fit"], engines_agree[case]["xla"]
    assert xla["engine"] == "xla" and fit["engine"] == "fit"
    assert len(xla["loss"]) == len(fit["loss"]) == 50
    np.testing.assert_allclose(xla["loss"][:20], fit["loss"][:20], rtol=1e-5)
    np.testing.assert_allclose(xla["loss"], fit["loss"], rtol=1e-2)
    assert xla["lr"] == fit["lr"]  # identical learning-rate trajectory
    assert xla["best_epoch"] == fit["best_epoch"]


def test_packed_runs_equal_the_same_runs_alone(engines_agree):
    pack = engines_agree["pack"]
    assert pack["sizes"] == [4] * 8
    for packed, vmapped, alone in zip(pack["loss_packed"], pack["loss_vmapped"],
                                      pack["loss_alone"], strict=True):
        np.testing.assert_allclose(packed, alone, rtol=1e-5, atol=1e-7)
        # One batched program (the accelerators' strategy) sums the batched convolutions in
        # another order: equal for the first epochs, then float32 rounding is amplified by
        # training (measured on CPU: 5e-3 relative by epoch 12, from epoch 4).
        np.testing.assert_allclose(vmapped[:3], alone[:3], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(vmapped, alone, rtol=3e-2)
    assert pack["weights_gap"] < 1e-5
    assert pack["weights_gap_vmapped"] < 0.1, pack["weights_gap_vmapped"]  # measured 0.03
    assert pack["seeds_differ"] > 1e-3  # each run really has its own weights
    assert pack["loss_packed"][0] != pack["loss_packed"][1]


# --------------------------------------------------------------------------- resume


def test_a_killed_then_interrupted_packed_run_resumes_without_losing_or_duplicating_rows(tmp_path):
    from utils.engine_xla import MAX_CHUNK_EPOCHS
    from utils.experiments import read_log

    # Enough epochs that the Ctrl-C never lands in the last chunk however fast the machine. A
    # run's first chunks are 1 and 4 epochs, later ones at most MAX_CHUNK_EPOCHS, and a chunk
    # may finish between seeing a snapshot and sending the signal: the kill comes by epoch
    # 5 + 2 * MAX, the Ctrl-C's chunk ends by 10 + 4 * MAX. (With 300 epochs a fast CPU trained
    # the rest in one chunk, and a Ctrl-C there rightly finishes the runs instead of saving.)
    epochs = 1200
    assert epochs > 10 + 4 * MAX_CHUNK_EPOCHS, "raise epochs with the engine's chunk cap"
    command = [sys.executable, "all_datasets_training.py", "--datasets", "Chinatown",
               "--models", "lstmfcn", "--cells", "8", "--seeds", "0", "1", "--epochs", str(epochs),
               "--engine", "xla", "--pack", "2", "--snapshot-minutes", "0", "--no-progress",
               "--weights-dir", str(tmp_path / "weights"), "--logs-dir", str(tmp_path / "logs")]
    folder = tmp_path / "weights" / "lstmfcn_8_cells_weights"
    log = tmp_path / "logs" / "lstmfcn_8_cells_results.csv"

    def start_and_wait_for_snapshot_past(epoch: int) -> tuple[subprocess.Popen, Path]:
        started = subprocess.Popen(command, cwd=ROOT, env=JAX_ENV, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline and started.poll() is None:
            found = list(folder.glob(".*.pack-0-1.resume/state.json")) if folder.exists() else []
            if found and json.loads(found[0].read_text())["epoch"] >= epoch:
                return started, found[0]
            time.sleep(0.2)
        started.kill()
        raise AssertionError(f"no snapshot of the pack past epoch {epoch} appeared: "
                             f"{started.communicate()[1][-2000:]}")

    first, snapshot = start_and_wait_for_snapshot_past(20)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = json.loads(snapshot.read_text())["epoch"]
    assert killed_at < epochs and not read_log(log)

    # Ctrl-C: the pack stops after its chunk under way, saves it and exits 130 with nothing logged
    second, snapshot = start_and_wait_for_snapshot_past(killed_at + 10)
    second.send_signal(signal.SIGINT)
    _, stderr = second.communicate(timeout=300)
    assert second.returncode == 130, stderr[-3000:]
    assert "resumed from the snapshot" in stderr and "stopped after Ctrl-C" in stderr
    interrupted_at = json.loads(snapshot.read_text())["epoch"]
    assert killed_at + 10 <= interrupted_at < epochs and not read_log(log)

    third = subprocess.run(command, cwd=ROOT, env=JAX_ENV, capture_output=True, text=True,
                           timeout=600)
    assert third.returncode == 0, third.stderr[-3000:]
    assert "resumed from the snapshot" in third.stderr
    rows = read_log(log)
    assert sorted(row["seed"] for row in rows) == ["0", "1"]  # none lost, none duplicated
    for row in rows:
        assert row["status"] == "trained" and row["engine"] == "xla"
        assert row["epochs_run"] == str(epochs) and row["pack_size"] == "2"
        sidecar = json.loads((folder / f"Chinatown{'' if row['seed'] == '0' else '_seed1'}"
                              ".json").read_text())
        assert len(sidecar["history"]["loss"]) == epochs  # epochs before the kill included
    assert not list(folder.glob(".*.resume"))  # the snapshot is removed when done


CTRL_C_DURING_A_CHUNK = r"""
import json
import signal
import sys
from pathlib import Path
from utils import build_model, load_dataset
from utils.interrupts import raise_if_stop_requested, stop_at_safe_points
from utils.training import set_seed, train_packed

data = load_dataset("Chinatown")
folder = Path(sys.argv[1])
out = {}
for name, chunk in [("last chunk", 20), ("earlier chunk", 10)]:
    models = []
    for seed in (0, 1):
        set_seed(seed)
        models.append(build_model("lstmfcn", data.X_train.shape[2], data.n_classes, num_cells=8))
    snapshots = folder / name.replace(" ", "_")
    with stop_at_safe_points():
        signal.raise_signal(signal.SIGINT)  # Ctrl-C while the pack's first chunk computes
        try:
            results = train_packed(models, data, [0, 1], 20, 128, engine="xla",
                                   chunk_epochs=chunk, snapshot_dir=snapshots,
                                   snapshot_seconds=3600)
            out[name] = {"epochs": [len(r.history["loss"]) for r in results]}
            try:
                raise_if_stop_requested()  # the grid's next safe point, after the rows
            except KeyboardInterrupt:
                out[name]["grid_stops"] = True
        except KeyboardInterrupt as stop:
            out[name] = {"stopped": str(stop)}
    state = snapshots / "state.json"
    out[name]["snapshot_epoch"] = json.loads(state.read_text())["epoch"] if state.exists() else None
print(json.dumps(out))
"""


def test_ctrl_c_during_the_last_chunk_finishes_the_pack_and_stops_after_it(tmp_path):
    """A Ctrl-C while the last chunk computes: the training is done, so the pack returns its
    runs (the grid logs them, then stops at its safe point) instead of throwing them away; one
    during an earlier chunk saves the snapshot and stops."""
    out = _run_jax(CTRL_C_DURING_A_CHUNK, str(tmp_path), timeout=600)
    assert out["last chunk"] == {"epochs": [20, 20], "grid_stops": True, "snapshot_epoch": None}
    assert "stopped after Ctrl-C" in out["earlier chunk"]["stopped"]
    assert out["earlier chunk"]["snapshot_epoch"] == 10
