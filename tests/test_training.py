"""train_model / evaluate_model on real bundled data, really trained for a few epochs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from utils import ConfigurationError, build_model, evaluate_model, load_dataset, train_model
from utils.training import class_weights, recalibrate_batchnorm, validation_split


@pytest.fixture(scope="module")
def italy():
    return load_dataset("ItalyPowerDemand")


def _weights_after_training(dataset, protocol="train-loss", seed=3, epochs=6):
    from utils.training import set_seed

    set_seed(seed)
    model = build_model("lstmfcn", dataset.X_train.shape[2], dataset.n_classes, num_cells=8)
    result = train_model(model, dataset, epochs=epochs, batch_size=32, protocol=protocol,
                         seed=seed)
    return model.get_weights(), result


def _with_scrambled_test(dataset):
    rng = np.random.default_rng(0)
    return dataclasses.replace(
        dataset,
        X_test=rng.normal(size=dataset.X_test.shape).astype(np.float32),
        y_test=rng.integers(0, dataset.n_classes, size=dataset.y_test.shape),
    )


@pytest.mark.parametrize("protocol", ["train-loss", "validation"])
def test_same_seed_same_weights_and_test_set_never_used(italy, protocol):
    first, result = _weights_after_training(italy, protocol)
    again, _ = _weights_after_training(italy, protocol)
    scrambled, _ = _weights_after_training(_with_scrambled_test(italy), protocol)
    for a, b, c in zip(first, again, scrambled, strict=True):
        np.testing.assert_array_equal(a, b)  # reproducible on CPU
        np.testing.assert_array_equal(a, c)  # test labels/values play no part in fitting
    assert not result.leaky
    assert 1 <= result.best_epoch <= result.epochs_run <= 6
    if protocol == "validation":
        assert "val_loss" in result.history and result.monitor == "val_loss"
    else:
        assert not any(key.startswith("val_") for key in result.history)


def test_test_checkpoint_protocol_is_labelled_leaky(italy):
    _, result = _weights_after_training(italy, "test-checkpoint", epochs=4)
    assert result.leaky and result.monitor == "val_accuracy"
    best = max(result.history["val_accuracy"])
    assert result.best_monitor == pytest.approx(best)


def test_kept_weights_are_the_lowest_training_loss_epoch(italy):
    from utils.training import set_seed

    set_seed(1)
    model = build_model("fcn", italy.X_train.shape[2], italy.n_classes)
    result = train_model(model, italy, epochs=12, batch_size=16, seed=1,
                         recalibrate_batchnorm_stats=False)
    losses = result.history["loss"]
    assert result.best_epoch == int(np.argmin(losses)) + 1
    assert result.best_train_loss == pytest.approx(min(losses))


def test_short_training_learns_italy_power_demand(italy):
    """A 60-epoch run is far above chance (0.5) in inference mode: BN statistics recalibrated."""
    from utils.training import set_seed

    set_seed(0)
    model = build_model("lstmfcn", italy.X_train.shape[2], italy.n_classes, num_cells=8)
    train_model(model, italy, epochs=60, batch_size=128, seed=0)
    metrics = evaluate_model(model, italy)
    assert metrics.accuracy >= 0.85
    assert 0.0 <= metrics.macro_f1 <= 1.0 and metrics.loss > 0
    assert metrics.probabilities.shape == (len(italy.y_test), italy.n_classes)
    np.testing.assert_allclose(metrics.probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_recalibrated_batchnorm_holds_the_training_batch_statistics(italy):
    import keras

    model = build_model("fcn", italy.X_train.shape[2], italy.n_classes)
    recalibrate_batchnorm(model, italy.X_train, batch_size=len(italy.X_train))
    conv1 = keras.Model(model.inputs, model.get_layer("conv1").output)
    activations = np.asarray(conv1([italy.X_train], training=False))
    bn1 = model.get_layer("bn1")
    np.testing.assert_allclose(np.asarray(bn1.moving_mean), activations.mean(axis=(0, 1)),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(bn1.moving_variance), activations.var(axis=(0, 1)),
                               rtol=1e-3, atol=1e-5)


def test_predictions_file_uses_original_labels(italy, tmp_path):
    model = build_model("fcn", italy.X_train.shape[2], italy.n_classes)
    path = tmp_path / "predictions.csv"
    metrics = evaluate_model(model, italy, predictions_path=path)
    import pandas as pd

    frame = pd.read_csv(path, dtype={"true_label": str})
    assert len(frame) == metrics.n_cases
    assert set(frame["true_label"]) == {str(c) for c in italy.classes}
    assert (frame["true_label"] == [str(italy.classes[k]) for k in italy.y_test]).all()


def test_balanced_class_weights_and_validation_split():
    y = np.array([0] * 8 + [1] * 2)
    weights = class_weights(y, 2, "balanced")
    assert weights == pytest.approx({0: 10 / (2 * 8), 1: 10 / (2 * 2)})
    assert class_weights(y, 2, None) is None
    y = np.repeat([0, 1, 2], [10, 10, 5])
    fit, held_out = validation_split(y, 0.2, seed=0)
    assert set(fit).isdisjoint(held_out) and len(fit) + len(held_out) == len(y)
    assert np.bincount(y[held_out]).tolist() == [2, 2, 1]  # stratified: class proportions kept
    y = np.array([0] * 10 + [1] * 9 + [2])  # class 2 has a single case: it always stays to fit
    for seed in range(20):
        fit, held_out = validation_split(y, 0.2, seed=seed)
        assert 19 in fit and set(y[fit]) == {0, 1, 2}


def test_bad_arguments_name_the_argument(italy):
    model = build_model("fcn", italy.X_train.shape[2], italy.n_classes)
    with pytest.raises(ConfigurationError, match="protocol"):
        train_model(model, italy, epochs=1, protocol="best-test")
    with pytest.raises(ConfigurationError, match="class_weight"):
        train_model(model, italy, epochs=1, class_weight="inverse")
