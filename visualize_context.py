"""Draw the attention of an ALSTM-FCN / MALSTM-FCN: which input steps each LSTM step attends to.

The weights are the real ``alpha`` of the AttentionLSTM layer (Bahdanau-style attention of
Karim et al. 2018, 2019), computed in inference mode from the weights the loop script saved.
What a "step" is depends on the model: the dimension-shuffled models read one step per
*variable* (MALSTM-FCN on multivariate data attends over the variables), the ``-noshuffle``
models one step per *time step*.

For the univariate shuffled ALSTM-FCN the layer reads a single step, so ``alpha`` is exactly 1
and says nothing (original_spec.md 2.4; the original's "context" plot was the rescaled input,
not an attention map). The figure then says so and shows the class activation map of the
predicted class instead, which does show where in the series the evidence is.

    python visualize_context.py --dataset BasicMotions --model malstmfcn --cells 8 --limit 2
    python visualize_context.py --dataset GunPoint --model alstmfcn-noshuffle --classwise
    python visualize_context.py --dataset GunPoint --model alstmfcn      # alpha = 1: CAM shown

The figure goes to figures/ (or --out).
"""

from __future__ import annotations

import argparse

# ----------------------------------------------------------------------------- settings
DATASET = "BasicMotions"
MODEL = "malstmfcn"
CELLS = 8
SEED = 0  # the trained run (loop script --seeds) and the random draw of cases
LIMIT = 1  # cases drawn (per class with VISUALIZE_CLASSWISE)
VISUALIZE_CLASSWISE = False  # LIMIT cases of every class instead of LIMIT random cases
SPLIT = "train"  # where the cases come from: train | test
# -----------------------------------------------------------------------------


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    from utils.visualization import positive_int, script_parser

    parser = script_parser(__doc__, DATASET, SEED, MODEL, CELLS)
    parser.add_argument("--limit", type=positive_int, default=LIMIT, help="cases drawn (per class)")
    parser.add_argument("--classwise", action=argparse.BooleanOptionalAction,
                        default=VISUALIZE_CLASSWISE, help="cases of every class")
    parser.set_defaults(split=SPLIT)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)

    # Keras and matplotlib are imported only now, so that --help and flag errors are instant.
    from utils import visualization as viz
    from utils.errors import ConfigurationError

    # The trained model and the data, normalised as they were for training.
    display, model, data = viz.open_trained_run(arguments)
    if not viz.has_attention(model):
        raise ConfigurationError(
            f"--model {arguments.model}: this model has no attention layer; use alstmfcn, "
            "malstmfcn or alstmfcn-noshuffle (visualize_cam.py works for every model)"
        )

    # Which cases: LIMIT at random, or LIMIT of every class.
    X, y, lengths = viz.split_arrays(data, arguments.split)
    cases = viz.choose_samples(y, arguments.limit, classwise=arguments.classwise,
                               seed=arguments.seed)
    predicted = viz.predicted_classes(model, X[cases], lengths[cases])
    titles = [f"{arguments.split} case {i}\ntrue {viz.class_name(data, int(y[i]))}, "
              f"predicted class {int(p)}" for i, p in zip(cases, predicted, strict=True)]
    run = f"{data.name}, {viz.run_label(arguments)}"
    channels = getattr(data, "channel_names", None)
    n_steps = viz.recurrent_steps(model)

    if n_steps == 1:
        # One step attended: alpha == 1 by construction. Show where the evidence is instead.
        maps = viz.class_activation_map(model, X[cases], predicted, lengths[cases])
        figure = viz.plot_class_activation_maps(
            X[cases], maps, titles, "CAM, predicted class",
            f"Class activation map of the predicted class ({run})", lengths[cases], channels,
            note="Not an attention map: this model's attention runs over S = 1 step "
                 "(one variable), so its weight is exactly 1 and carries no information.",
        )
        kind = "context-is-trivial_cam-predicted"
    else:
        # The numbers: alpha[n, t, j], the weight step t gives to input step j.
        attention = viz.attention_weights(model, X[cases], lengths[cases])
        step_name = "variable" if n_steps == X.shape[1] else "time step"
        figure = viz.plot_attention(
            X[cases], attention, titles, step_name,
            f"Attention weights of the AttentionLSTM over the {n_steps} {step_name}s ({run})",
            lengths[cases], channels,
        )
        kind = "attention"
    which = "classwise" if arguments.classwise else ""
    path = viz.figure_path(arguments, *viz.run_parts(arguments, data), kind, which,
                           f"{arguments.split}{len(cases)}cases")
    viz.finish_figure(figure, path, arguments.show, display)
    return 0


if __name__ == "__main__":
    from utils.cli import run_main

    run_main(main)
