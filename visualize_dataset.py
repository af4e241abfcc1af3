"""Draw cases of every class of a dataset, train and test side by side (the original's
``plot_dataset``).

No model is needed. Edit the settings below, or override them with flags:

    python visualize_dataset.py --dataset GunPoint --limit 3
    python visualize_dataset.py --dataset BasicMotions --normalize none

The figure goes to figures/ (or --out).
"""

from __future__ import annotations

import argparse

# ----------------------------------------------------------------------------- settings
DATASET = "GunPoint"
LIMIT = 1  # cases drawn per class and split
SEED = 0  # the random draw of cases
NORMALIZE = "auto"  # auto (what the models see by default) | none | sample | dataset
# -----------------------------------------------------------------------------


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    from utils.visualization import positive_int, script_parser

    parser = script_parser(__doc__, DATASET, SEED)
    parser.add_argument("--limit", type=positive_int, default=LIMIT,
                        help="cases per class and split")
    parser.add_argument("--normalize", default=NORMALIZE,
                        choices=["auto", "none", "sample", "dataset"])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)

    from utils import visualization as viz

    display = viz.use_display(arguments.show)

    # The data as the models see them (or raw with --normalize none).
    data = viz.load_split(arguments, normalize=arguments.normalize)
    splits = [("train", data.X_train, data.y_train, data.lengths_train),
              ("test", data.X_test, data.y_test, data.lengths_test)]
    scaling = {"none": "raw values", "sample": "each series z-normalised",
               "dataset": "z-normalised with train statistics"}[data.normalize]
    figure = viz.plot_dataset(
        splits, [str(c) for c in data.classes],
        f"{data.name}: {arguments.limit} random case(s) per class ({scaling})",
        arguments.limit, arguments.seed, getattr(data, "channel_names", None),
    )
    path = viz.figure_path(arguments, data.name, "dataset", f"{arguments.limit}perclass",
                           data.normalize, f"seed{arguments.seed}" if arguments.seed else "")
    viz.finish_figure(figure, path, arguments.show, display)
    return 0


if __name__ == "__main__":
    from utils.cli import run_main

    run_main(main)
