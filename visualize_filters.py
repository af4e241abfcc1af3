"""Draw what one convolution filter responds to: its activation over time under the input.

The activation is read after BatchNorm and ReLU of the chosen conv block, in inference mode, from
the weights the loop script saved. Edit the settings below, or override them with flags:

    python visualize_filters.py --dataset GunPoint --model lstmfcn --cells 8 --filter-id 0
    python visualize_filters.py --classwise                   # one case of every class
    python visualize_filters.py --filter-id 0 1 2 3 4 5 6 7   # a grid of filters for one case

Indices are 0-based: --conv-id 0, 1, 2 are conv blocks 1, 2, 3 (128, 256 and 128 filters in the
paper models) and --filter-id 0 is the first filter. The figure goes to figures/ (or --out).
"""

from __future__ import annotations

import argparse

# ----------------------------------------------------------------------------- settings
DATASET = "GunPoint"
MODEL = "lstmfcn"
CELLS = 8
SEED = 0  # the trained run (loop script --seeds) and the random draw of cases
CONV_ID = 0  # 0-based conv block: 0, 1, 2 = blocks 1, 2, 3
FILTER_ID = [0]  # one filter, or several for a grid of filters on one case
VISUALIZE_CLASSWISE = False  # one case of every class instead of one random case
SPLIT = "train"  # where the cases come from: train | test
# -----------------------------------------------------------------------------


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    from utils.visualization import script_parser

    parser = script_parser(__doc__, DATASET, SEED, MODEL, CELLS)
    parser.add_argument("--conv-id", type=int, default=CONV_ID,
                        help="0-based conv block (0, 1, 2 = blocks 1, 2, 3)")
    parser.add_argument("--filter-id", type=int, nargs="+", default=FILTER_ID,
                        help="0-based filter(s); several draw a grid for one case")
    parser.add_argument("--classwise", action=argparse.BooleanOptionalAction,
                        default=VISUALIZE_CLASSWISE, help="one case of every class")
    parser.set_defaults(split=SPLIT)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)

    # Keras and matplotlib are imported only now, so that --help and flag errors are instant.
    from utils import visualization as viz
    from utils.errors import ConfigurationError

    # The trained model and the data, normalised as they were for training.
    display, model, data = viz.open_trained_run(arguments)
    blocks = viz.conv_block_names(model)
    conv_id = viz.check_index("--conv-id", arguments.conv_id, len(blocks), "conv blocks")
    n_filters = int(model.get_layer(blocks[conv_id]).output.shape[-1])
    filter_ids = [viz.check_index("--filter-id", f, n_filters, f"filters in block {conv_id + 1}")
                  for f in arguments.filter_id]
    if len(filter_ids) > 1 and arguments.classwise:
        raise ConfigurationError("--filter-id: give one filter with --classwise "
                                     "(several filters draw a grid for one case)")

    # Which cases: one at random, or one of every class.
    X, y, lengths = viz.split_arrays(data, arguments.split)
    cases = viz.choose_samples(y, 1, classwise=arguments.classwise, seed=arguments.seed)

    # The numbers: activations after BN and ReLU, inference mode.
    activations = viz.filter_activations(model, X[cases], conv_id, filter_ids, lengths[cases])

    block = f"conv block {conv_id + 1} ({blocks[conv_id]})"
    titles = [f"{arguments.split} case {i}, {viz.class_name(data, int(y[i]))}" for i in cases]
    run = f"{data.name}, {viz.run_label(arguments)}"
    channels = getattr(data, "channel_names", None)
    if len(filter_ids) == 1:
        figure = viz.plot_filter_activations(
            X[cases], activations[:, :, 0], titles, f"filter {filter_ids[0]}",
            f"Activation of filter {filter_ids[0]} of {block} after BN + ReLU ({run})",
            lengths[cases], channels,
        )
        what = "classwise" if arguments.classwise else f"{arguments.split}{cases[0]}"
        ids = f"filter{filter_ids[0]}"
    else:
        figure = viz.plot_filter_grid(
            X[cases[0]], activations[0], filter_ids, titles[0],
            f"Filters of {block} after BN + ReLU, shared scale ({run})",
            int(lengths[cases[0]]), channels,
        )
        what = f"{arguments.split}{cases[0]}"
        shown = "-".join(map(str, filter_ids[:6])) + ("-etc" if len(filter_ids) > 6 else "")
        ids = f"filters{shown}"

    path = viz.figure_path(arguments, *viz.run_parts(arguments, data), "filters",
                           f"block{conv_id + 1}", ids, what)
    viz.finish_figure(figure, path, arguments.show, display)
    return 0


if __name__ == "__main__":
    from utils.cli import run_main

    run_main(main)
