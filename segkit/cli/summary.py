"""Print a model's layers, output shapes, trainable params and conv/linear MAdds.

    segkit summary --config voc_mnv2_os16 [--set model.output_stride=8] [--input-size 513]

The model is built from the config exactly as `segkit.build_model` builds it and counted on the `meta`
device (shapes only, instant); `--device cpu` runs a real forward pass instead. MAdds are shown in both
conventions of `segkit.analysis.complexity` (`pytorch` and TF1's atrous `tf1`).
"""

from __future__ import annotations

import argparse

from segkit.cli.common import add_config_arguments, add_device_argument, run_main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(
        parser,
        required=True,
        config_help="config name (voc_mnv2_os16, see configs/) or a YAML path",
        set_example="model.output_stride=8 model.aspp=true",
    )
    parser.add_argument(
        "--input-size",
        nargs="+",
        type=int,
        default=[513],
        metavar="N",
        help="input H (square) or H W; default 513, the paper's eval crop",
    )
    add_device_argument(parser, default="meta", extra=", or meta (shapes only)")
    return parser


def run(args: argparse.Namespace) -> int:
    from segkit.analysis.command import model_summary  # heavy (torch): not for --help

    print(model_summary(args.config, args.set, input_size=args.input_size, device=args.device))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    return run_main(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
