"""utils/visualization.py and the visualize_*.py scripts, on models trained by the loop script.

The models are trained for a few epochs on bundled data by ``all_datasets_training.py`` run as
a user runs it; the numbers are checked against hand computations from the saved weights, and
the scripts are run as subprocesses.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_script(name: str, workdir: Path, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / name), *arguments], cwd=workdir,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Weights of lstmfcn, fcn, alstmfcn on GunPoint and malstmfcn on BasicMotions."""
    workdir = tmp_path_factory.mktemp("figures_run")
    for datasets, models in ((["GunPoint"], ["lstmfcn", "fcn", "alstmfcn"]),
                             (["BasicMotions"], ["malstmfcn"])):
        done = run_script("all_datasets_training.py", workdir, "--datasets", *datasets,
                          "--models", *models, "--cells", "8", "--epochs", "4",
                          "--weights-dir", str(workdir / "weights"),
                          "--logs-dir", str(workdir / "logs"), "--no-progress")
        assert done.returncode == 0, done.stdout + done.stderr
    return workdir


def load(trained: Path, model_name: str, dataset: str = "GunPoint"):
    from utils.checkpoints import load_trained_model, weights_path
    from utils.data import load_dataset

    model, config = load_trained_model(weights_path(trained / "weights", model_name, 8, dataset))
    return model, load_dataset(dataset, normalize=config["normalize"])


def relu3_by_hand(model, X: np.ndarray) -> np.ndarray:
    """relu(BN(conv3)) with BatchNorm's moving statistics, from the saved weights."""
    import keras

    conv3 = np.asarray(keras.Model(model.inputs, model.get_layer("conv3").output)([X]))
    gamma, beta, mean, variance = model.get_layer("bn3").get_weights()
    epsilon = model.get_layer("bn3").epsilon
    return np.maximum((conv3 - mean) / np.sqrt(variance + epsilon) * gamma + beta, 0.0)


def test_cam_equals_the_hand_computation_and_not_the_original_rows(trained):
    from utils.visualization import class_activation_map

    model, data = load(trained, "lstmfcn")
    X = data.X_test[:12]
    kernel, _ = model.get_layer("output").get_weights()
    m = kernel.shape[0] - 128
    assert m == 8  # the 8 LSTM features come first in the concatenation
    A = relu3_by_hand(model, X)  # (N, T, 128), inference-mode BatchNorm
    for k in range(data.n_classes):
        by_hand = A @ kernel[m:, k]  # CAM_k(t) = sum_c W[m + c, k] A[t, c]
        library = class_activation_map(model, X, class_id=k)
        np.testing.assert_allclose(library, by_hand, rtol=1e-4, atol=1e-4 * np.abs(by_hand).max())
        original_rows = A @ kernel[:128, k]  # the original read W[0:128]: misaligned by m rows
        assert np.abs(original_rows - library).max() > 0.05 * np.abs(library).max()
    every_class = class_activation_map(model, X)
    assert every_class.shape == (12, X.shape[2], data.n_classes)
    np.testing.assert_allclose(every_class[:, :, 1], class_activation_map(model, X, 1))


def test_cam_time_mean_gives_the_class_score_of_the_gap_branch(trained):
    """mean_t CAM_k(t) + recurrent part + bias is the logit: ties the map to the prediction."""
    import keras

    from utils.visualization import class_activation_map

    model, data = load(trained, "lstmfcn")
    X = data.X_test[:8]
    kernel, bias = model.get_layer("output").get_weights()
    concatenate = keras.Model(model.inputs, model.get_layer("concatenate").output)
    features = np.asarray(concatenate([X]))
    logits = features @ kernel + bias
    recurrent_part = features[:, :8] @ kernel[:8]
    cam_mean = class_activation_map(model, X).mean(axis=1)
    np.testing.assert_allclose(cam_mean + recurrent_part + bias, logits, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("model_name", ["fcn", "lstmfcn"])
def test_grad_cam_of_the_last_block_is_the_cam_divided_by_T(trained, model_name):
    """relu3 -> GAP -> Dense: d y_k / d A[t, c] = W[m + c, k] / T at every t, so the Grad-CAM
    weights are alpha_c = W[m + c, k] / T and the unrectified Grad-CAM is exactly CAM_k / T."""
    from utils.visualization import class_activation_map, grad_cam

    model, data = load(trained, model_name)
    X = data.X_test[:10]
    n_steps = X.shape[2]
    for k in range(data.n_classes):
        cam = class_activation_map(model, X, k)
        raw = grad_cam(model, X, k, "relu3", rectify=False)
        np.testing.assert_allclose(raw * n_steps, cam, rtol=1e-4, atol=1e-4 * np.abs(cam).max())
        rectified = grad_cam(model, X, k, "relu3")
        np.testing.assert_allclose(rectified, np.maximum(raw, 0.0), atol=1e-7)


BACKEND_CHECK = """
import sys
import numpy as np
from utils.checkpoints import load_trained_model, weights_path
from utils.data import load_dataset
from utils.visualization import class_activation_map, grad_cam
model, config = load_trained_model(weights_path(sys.argv[1], "lstmfcn", 8, "GunPoint"))
X = load_dataset("GunPoint", normalize=config["normalize"]).X_test[:5]
cam = class_activation_map(model, X, 1)
raw = grad_cam(model, X, 1, "relu3", rectify=False)
np.testing.assert_allclose(raw * X.shape[2], cam, rtol=1e-4, atol=1e-4 * np.abs(cam).max())
print("grad-cam ok", np.abs(cam).max())
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_grad_cam_runs_on_the_other_backends(trained, backend):
    """The one backend-specific function (the gradient) works on JAX and PyTorch too."""
    pytest.importorskip(backend)
    done = subprocess.run([sys.executable, "-c", BACKEND_CHECK, str(trained / "weights")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "KERAS_BACKEND": backend})
    assert done.returncode == 0 and "grad-cam ok" in done.stdout, done.stderr[-3000:]


def test_grad_cam_of_an_early_layer_differs_from_the_cam(trained):
    from utils.visualization import class_activation_map, grad_cam

    model, data = load(trained, "fcn")
    X = data.X_test[:6]
    early = grad_cam(model, X, 0, "conv1", rectify=False)
    assert early.shape == X[:, 0].shape and np.isfinite(early).all()
    assert np.abs(early).max() > 0
    late = class_activation_map(model, X, 0) / X.shape[2]
    correlation = np.corrcoef(early.ravel(), late.ravel())[0, 1]
    assert correlation < 0.999  # a different layer gives a different map


def test_filter_activations_are_inference_mode_bn_relu_and_ids_are_checked(trained):
    from utils.errors import ConfigurationError
    from utils.visualization import filter_activations

    model, data = load(trained, "lstmfcn")
    X = data.X_train[:5]
    block3 = filter_activations(model, X, conv_id=2, filter_ids=[0, 127])
    np.testing.assert_allclose(block3, relu3_by_hand(model, X)[:, :, [0, 127]], atol=1e-4)
    assert filter_activations(model, X, conv_id=1).shape == (5, X.shape[2], 256)
    with pytest.raises(ConfigurationError, match="conv_id 3"):
        filter_activations(model, X, conv_id=3)
    with pytest.raises(ConfigurationError, match="filter_id 128"):
        filter_activations(model, X, conv_id=0, filter_ids=128)


def test_attention_of_univariate_alstmfcn_is_exactly_one(trained):
    from utils.errors import ConfigurationError
    from utils.visualization import attention_weights, recurrent_steps

    model, data = load(trained, "alstmfcn")
    alpha = attention_weights(model, data.X_test[:7])
    assert recurrent_steps(model) == 1 and alpha.shape == (7, 1, 1)
    np.testing.assert_array_equal(alpha, 1.0)
    plain, _ = load(trained, "lstmfcn")
    with pytest.raises(ConfigurationError, match="no AttentionLSTM"):
        attention_weights(plain, data.X_test[:2])


def test_attention_over_variables_sums_to_one_and_skips_masked_variables(trained):
    from utils.visualization import attention_weights

    model, data = load(trained, "malstmfcn", "BasicMotions")
    X = data.X_test[:6].copy()
    alpha = attention_weights(model, X, batch_size=4)  # two batches
    assert alpha.shape == (6, 6, 6)
    np.testing.assert_allclose(alpha.sum(axis=2), 1.0, atol=1e-5)
    X[:, 2, :] = 0.0  # MALSTM-FCN masks variables that are all zero
    masked = attention_weights(model, X)
    np.testing.assert_array_equal(masked[:, :, 2], 0.0)
    np.testing.assert_allclose(masked.sum(axis=2), 1.0, atol=1e-5)


def test_choose_samples_is_reproducible_and_respects_classes():
    from utils.errors import ConfigurationError
    from utils.visualization import choose_samples

    y = np.array([0, 1, 1, 2, 2, 2, 0, 1])
    assert list(y[choose_samples(y, 1, classwise=True)]) == [0, 1, 2]
    assert list(y[choose_samples(y, 2, classwise=True)]) == [0, 0, 1, 1, 2, 2]
    picked = choose_samples(y, 2, class_id=2, seed=3)
    assert len(picked) == 2 and set(y[picked]) == {2}
    np.testing.assert_array_equal(picked, choose_samples(y, 2, class_id=2, seed=3))
    assert len(choose_samples(y, None)) == len(y)
    with pytest.raises(ConfigurationError, match="class_id 5"):
        choose_samples(y, 1, class_id=5)


def assert_png(path: Path) -> None:
    assert path.exists(), f"{path} was not written"
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000


@pytest.mark.parametrize(
    ("script", "arguments", "expected"),
    [
        ("visualize_filters.py", ["--model", "lstmfcn", "--filter-id", "0", "--classwise"],
         "GunPoint_lstmfcn_8cells_filters_block1_filter0_classwise.png"),
        ("visualize_filters.py", ["--model", "fcn", "--conv-id", "2", "--filter-id", "0", "1",
                                  "2", "3"], None),
        ("visualize_cam.py", ["--model", "lstmfcn", "--class-id", "1", "--limit", "2"],
         "GunPoint_lstmfcn_8cells_cam_class1_train2cases.png"),
        ("visualize_cam.py", ["--model", "fcn", "--method", "grad-cam", "--layer", "conv2",
                              "--classwise"], None),
        ("visualize_context.py", ["--model", "alstmfcn"],
         "GunPoint_alstmfcn_8cells_context-is-trivial_cam-predicted_train1cases.png"),
        ("visualize_context.py", ["--dataset", "BasicMotions", "--model", "malstmfcn",
                                  "--classwise"],
         "BasicMotions_malstmfcn_8cells_attention_classwise_train4cases.png"),
    ],
)
def test_each_script_writes_a_png_from_the_loop_scripts_weights(trained, script, arguments,
                                                                expected):
    common = ["--weights-dir", str(trained / "weights")]
    if "--dataset" not in arguments:
        common += ["--dataset", "GunPoint"]
    done = run_script(script, trained, *common, *arguments)
    assert done.returncode == 0, done.stderr
    (path,) = [Path(line.split()[1]) for line in done.stdout.splitlines()
               if line.startswith("wrote ")]
    if expected is not None:  # the name says what the figure shows
        assert path == Path("figures") / expected
    assert_png(trained / path)


def test_dataset_script_and_out_flag(tmp_path):
    done = run_script("visualize_dataset.py", tmp_path, "--dataset", "Coffee", "--limit", "2")
    assert done.returncode == 0, done.stderr
    assert_png(tmp_path / "figures" / "Coffee_dataset_2perclass_sample.png")
    out = tmp_path / "paper" / "coffee.pdf"
    done = run_script("visualize_dataset.py", tmp_path, "--dataset", "Coffee", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_bytes().startswith(b"%PDF")


@pytest.mark.parametrize(
    ("script", "arguments", "flag"),
    [
        ("visualize_cam.py", ["--dataset", "NoSuchDataset"], "--dataset"),
        ("visualize_filters.py", ["--dataset", "Coffee"], "--weights-dir"),
        ("visualize_filters.py", ["--filter-id", "128"], "--filter-id"),
        ("visualize_filters.py", ["--conv-id", "3"], "--conv-id"),
        ("visualize_cam.py", ["--class-id", "2"], "--class-id"),
        ("visualize_context.py", ["--dataset", "GunPoint", "--model", "lstmfcn"], "--model"),
    ],
)
def test_bad_flags_exit_2_with_one_line_naming_the_flag(trained, script, arguments, flag):
    done = run_script(script, trained, "--weights-dir", str(trained / "weights"), *arguments)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and flag in lines[0], done.stderr
