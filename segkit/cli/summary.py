"""Print a model's layers, output shapes, trainable params and conv/linear MAdds.

    segkit summary --config voc_mnv2_os16 [--set model.output_stride=8] [--input-size 513]
    segkit summary --checkpoint deeplab_official.pth            # a trained or converted model, at its input size

The model is built from the config (or from the config stored in the checkpoint, as `segkit.load_model`
builds it) and counted on the `meta` device (shapes only, instant); `--device cpu` runs a real forward
pass instead. MAdds are shown in both conventions of `segkit.analysis.complexity` (`pytorch` and TF1's
atrous `tf1`).
"""

from __future__ import annotations

import argparse

from segkit.cli.common import add_config_arguments, add_device_argument, run_main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(
        parser,
        config_help="config name (voc_mnv2_os16, see configs/) or a YAML path: the model it builds",
        set_example="model.output_stride=8 model.aspp=true",
    )
    parser.add_argument(
        "--checkpoint",
        metavar="CKPT",
        help="instead of --config: a segkit checkpoint (.pth, trained or converted by segkit convert), the model "
        "its own config describes (--set changes that config)",
    )
    parser.add_argument(
        "--input-size",
        nargs="+",
        type=int,
        metavar="N",
        help="input H (square) or H W; default: 513 (the paper's eval crop) for --config, the checkpoint's input "
        "size (eval.pad_to, else data.crop_size) for --checkpoint",
    )
    add_device_argument(parser, default="meta", extra=", or meta (shapes only)")
    return parser


def run(args: argparse.Namespace) -> int:
    from segkit.analysis.command import model_summary  # heavy (torch): not for --help

    summary = model_summary(
        args.config, args.set, checkpoint=args.checkpoint, input_size=args.input_size, device=args.device
    )
    print(summary)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    return run_main(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
