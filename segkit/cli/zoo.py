"""List the official models segkit reads by name, show one, or fetch one into the cache.

    segkit zoo                                   # name, format, kind, published figure, agreement, cached
    segkit zoo deeplabv3_mnv2_voc_uint8          # its source URL, sha256 (or Hub revision), cache paths
    segkit zoo --long                            # every model that way
    segkit zoo --fetch mobilenet_v2_1.0_224      # download, check and convert it into the cache now

A zoo model is then `segkit convert zoo:NAME OUT.pth` or `--set train.init_weights=zoo:NAME`. The cache is
$SEGKIT_CACHE (default ~/.cache/segkit); a file put at the path `segkit zoo NAME` shows is used without a download.

Exit status: 0 on success, 2 on a usage or input error (the message says what to fix).
"""

from __future__ import annotations

import argparse

from segkit.cli.common import run_main

_SUMMARY, _, _DETAILS = __doc__.partition("\n\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``segkit zoo`` argument parser."""
    parser = argparse.ArgumentParser(
        description=_SUMMARY, epilog=_DETAILS, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("name", nargs="?", help="a zoo model: show its source, checksum and cache paths")
    parser.add_argument("--long", action="store_true", help="every model in full: source URL, sha256, architecture")
    parser.add_argument("--fetch", action="store_true", help="download, check and convert NAME into the cache")
    parser.add_argument(
        "--timeout", type=float, default=60.0, metavar="S", help="seconds a silent server is waited for (default 60)"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    from segkit.zoo import ZOO
    from segkit.zoo.command import describe_model, zoo_table
    from segkit.zoo.fetch import fetch_checkpoint

    if args.long:
        print("\n\n".join(describe_model(name) for name in ([args.name] if args.name else ZOO)))
    elif args.name is None:
        print(zoo_table())
    elif args.fetch:
        print(fetch_checkpoint(args.name, timeout=args.timeout))
    else:
        print(describe_model(args.name))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``segkit zoo``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.fetch and args.name is None:
        parser.error("--fetch needs NAME (segkit zoo lists the names)")
    return run_main(run, args)
