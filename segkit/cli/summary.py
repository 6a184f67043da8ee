"""Print a model's layers, output shapes, trainable params and conv/linear MAdds.

    segkit summary --config voc_mnv2_os16 [--set model.output_stride=8] [--input-size 513]

The model is built from the config exactly as `segkit.build_model` builds it and counted on the `meta`
device (shapes only, instant); `--device cpu` runs a real forward pass instead. MAdds are shown in both
conventions of `segkit.analysis.complexity` (`pytorch` and TF1's atrous `tf1`).
"""

from __future__ import annotations

import argparse

from segkit.cli.common import run_main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="config name (voc_mnv2_os16, see configs/) or a YAML path")
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        action="extend",
        metavar="KEY=VALUE",
        help="config overrides, e.g. --set model.output_stride=8 model.aspp=true",
    )
    parser.add_argument(
        "--input-size",
        nargs="+",
        type=int,
        default=[513],
        metavar="N",
        help="input H (square) or H W; default 513, the paper's eval crop",
    )
    parser.add_argument("--device", default="meta", help="'meta' (shapes only, default) or e.g. 'cpu'")
    return parser


def _run(args: argparse.Namespace) -> int:
    import torch

    from segkit.analysis.complexity import count_complexity, format_table
    from segkit.cli.common import resolve_device
    from segkit.config import load_config
    from segkit.models import build_model

    cfg = load_config(args.config, args.set)
    device = torch.device("meta") if args.device == "meta" else resolve_device(args.device)
    with device:
        model = build_model(cfg)
    size = args.input_size[0] if len(args.input_size) == 1 else tuple(args.input_size)
    report = count_complexity(model, size)
    m = cfg.model
    print(
        f"Config: {cfg.name}  (backbone {m.backbone}, OS {m.output_stride}, ASPP {m.aspp}, "
        f"decoder {m.decoder}, {m.num_classes} classes)"
    )
    print(format_table(report))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if len(args.input_size) not in (1, 2) or min(args.input_size) < 1:
        parser.error(f"--input-size takes one or two positive integers (H or H W), got {args.input_size}.")
    return run_main(_run, args)


if __name__ == "__main__":
    raise SystemExit(main())
