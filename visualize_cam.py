"""Draw where in a series the model finds evidence for a class: the class activation map.

CAM (Zhou et al., CVPR 2016; Wang et al., IJCNN 2017 for time series):
``CAM_k(t) = sum_c W[m + c, k] * A[t, c]``, with ``A`` the output of the last conv block after BN
and ReLU (inference mode) and ``W[m + c, k]`` the output-layer weight of pooled channel ``c`` for
class ``k``, skipping the ``m`` recurrent features that come first. ``--method grad-cam`` draws
Grad-CAM (Selvaraju et al., ICCV 2017) of any conv layer instead (``--layer conv1`` ...).

    python visualize_cam.py --dataset GunPoint --model lstmfcn --cells 8 --class-id 0 --limit 3
    python visualize_cam.py --classwise            # one case of every class, each with its map
    python visualize_cam.py --method grad-cam --layer relu2

--class-id is 0-based (an index into the dataset's sorted labels, shown in the titles). The
figure goes to figures/ (or --out).
"""

from __future__ import annotations

import argparse

# ----------------------------------------------------------------------------- settings
DATASET = "GunPoint"
MODEL = "lstmfcn"
CELLS = 8
SEED = 0  # the trained run (loop script --seeds) and the random draw of cases
CLASS_ID = 0  # 0-based class whose map is drawn (its cases are drawn too)
LIMIT = 1  # cases drawn (of CLASS_ID, or of every class with VISUALIZE_CLASSWISE)
VISUALIZE_CLASSWISE = False  # LIMIT cases of every class, each with its own class's map
METHOD = "cam"  # cam | grad-cam
LAYER = "relu3"  # layer of the Grad-CAM (any conv/bn/relu layer); CAM always uses relu3
SPLIT = "train"  # where the cases come from: train | test
# -----------------------------------------------------------------------------


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    from utils.visualization import positive_int, script_parser

    parser = script_parser(__doc__, DATASET, SEED, MODEL, CELLS)
    parser.add_argument("--class-id", type=int, default=CLASS_ID, help="0-based class")
    parser.add_argument("--limit", type=positive_int, default=LIMIT, help="cases drawn (per class)")
    parser.add_argument("--classwise", action=argparse.BooleanOptionalAction,
                        default=VISUALIZE_CLASSWISE,
                        help="cases of every class, each with its own class's map")
    parser.add_argument("--method", default=METHOD, choices=["cam", "grad-cam"])
    parser.add_argument("--layer", default=LAYER, help="Grad-CAM layer, e.g. conv1, relu2")
    parser.set_defaults(split=SPLIT)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)

    # Keras and matplotlib are imported only now, so that --help and flag errors are instant.
    from utils import visualization as viz
    from utils.errors import ConfigurationError

    # The trained model and the data, normalised as they were for training.
    display, model, data = viz.open_trained_run(arguments)
    class_id = viz.check_index("--class-id", arguments.class_id, viz.n_classes(model), "classes")
    layer_names = [layer.name for layer in model.layers]
    if arguments.method == "grad-cam" and arguments.layer not in layer_names:
        raise ConfigurationError(f"--layer {arguments.layer}: the model has no such layer; "
                                 f"conv blocks are {', '.join(viz.conv_block_names(model))}")

    # Which cases: LIMIT of the chosen class, or LIMIT of every class.
    X, y, lengths = viz.split_arrays(data, arguments.split)
    if arguments.classwise:
        cases = viz.choose_samples(y, arguments.limit, classwise=True, seed=arguments.seed)
    else:
        cases = viz.choose_samples(y, arguments.limit, class_id=class_id, seed=arguments.seed)
    map_classes = y[cases] if arguments.classwise else class_id

    # The numbers: the map of every drawn case, and what the model predicts for it.
    if arguments.method == "cam":
        maps = viz.class_activation_map(model, X[cases], map_classes, lengths[cases])
        name, label = "Class activation map", "CAM"
    else:
        maps = viz.grad_cam(model, X[cases], map_classes, arguments.layer, lengths[cases])
        name, label = f"Grad-CAM of {arguments.layer}", "Grad-CAM"
    predicted = viz.predicted_classes(model, X[cases], lengths[cases])

    titles = [f"{arguments.split} case {i}\ntrue {viz.class_name(data, int(y[i]))}, "
              f"predicted class {int(p)}" for i, p in zip(cases, predicted, strict=True)]
    target = "of each case's true class" if arguments.classwise else \
        f"for {viz.class_name(data, class_id)}"
    figure = viz.plot_class_activation_maps(
        X[cases], maps, titles,
        f"{label}, true class" if arguments.classwise else f"{label}, class {class_id}",
        f"{name} {target} ({data.name}, {viz.run_label(arguments)})",
        lengths[cases], getattr(data, "channel_names", None),
    )
    method = "cam" if arguments.method == "cam" else f"gradcam-{arguments.layer}"
    which = "classwise" if arguments.classwise else f"class{class_id}"
    path = viz.figure_path(arguments, *viz.run_parts(arguments, data), method, which,
                           f"{arguments.split}{len(cases)}cases")
    viz.finish_figure(figure, path, arguments.show, display)
    return 0


if __name__ == "__main__":
    from utils.cli import run_main

    run_main(main)
