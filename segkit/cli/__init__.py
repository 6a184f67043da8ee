"""The ``segkit`` command: ``segkit <subcommand> [options]``, one module per subcommand.

Each ``segkit/cli/<name>.py`` has ``build_parser() -> argparse.ArgumentParser`` and
``main(argv: list[str] | None = None) -> int`` (the exit code). Modules are imported only when their
subcommand runs, so ``segkit --help`` is instant and one missing optional module cannot break the rest.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import sys

from segkit.errors import SegkitError

# subcommand -> (module, one-line description shown by ``segkit --help``)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("segkit.cli.train", "train a segmentor (or an ImageNet classifier) from a config"),
    "test": ("segkit.cli.test", "evaluate a checkpoint or an exported file: per-class IoU, mIoU, JSON report"),
    "infer": ("segkit.cli.infer", "segment images or a video (checkpoint or exported file): label maps, overlays"),
    "convert": (
        "segkit.cli.convert",
        "convert an official model (TFLite file, Hugging Face model, zoo:NAME) to a segkit checkpoint",
    ),
    "zoo": ("segkit.cli.zoo", "list the official models by name; fetch one into the cache"),
    "summary": ("segkit.cli.summary", "print a model's layers, output shapes, params and MAdds"),
    "complexity": ("segkit.cli.complexity", "params and MAdds of the paper's Table 7 or of any config"),
    "tradeoff": ("segkit.cli.tradeoff", "plot and tabulate mIoU against MAdds (and latency) for Table 7"),
    "prepare-data": ("segkit.cli.prepare_data", "download, convert and verify segmentation data sets"),
    "export": ("segkit.cli.export", "export a checkpoint to ONNX, OpenVINO, LiteRT, ExecuTorch or web, verified"),
    "quantize": ("segkit.cli.quantize", "int8 files for ONNX Runtime, OpenVINO, LiteRT or ExecuTorch, verified"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [
        "usage: segkit <subcommand> [options]   (segkit <subcommand> --help for its options)",
        "",
        "MobileNetV2 + DeepLabV3 semantic segmentation.",
        "",
        "subcommands:",
    ]
    lines += [f"  {name:<{width}}  {desc}" for name, (_, desc) in COMMANDS.items()]
    lines += ["", "options:", "  -h, --help     show this message and exit", "  -V, --version  print segkit's version"]
    return "\n".join(lines)


def _available() -> list[str]:
    return [n for n, (module, _) in COMMANDS.items() if importlib.util.find_spec(module) is not None]


def _load(name: str):
    """The subcommand's module, or ``None`` after printing a one-line error."""
    module_name = COMMANDS[name][0]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == module_name or module_name.startswith(exc.name + ".")):
            print(
                f"error: segkit {name} is not available in this install ({module_name} is missing); "
                f"available: {', '.join(_available()) or 'none'}.",
                file=sys.stderr,
            )
        else:
            extra = " (pip install 'segkit-deeplab[deploy]')" if name in ("export", "quantize") else ""
            print(
                f"error: segkit {name} needs the Python package {exc.name!r}, which is not installed; "
                f"install it{extra} and retry.",
                file=sys.stderr,
            )
        return None


BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a writer whose reader left (`segkit zoo | head`)


def main(argv: list[str] | None = None) -> int:
    """Run ``segkit <subcommand> ...``; returns the exit code (:data:`BROKEN_PIPE` when stdout's reader closed it)."""
    try:
        code = _run(argv)
        sys.stdout.flush()  # a closed pipe shows here, not as a traceback at interpreter exit
        return code
    except BrokenPipeError:
        _stdout_to_devnull()
        return BROKEN_PIPE


def _stdout_to_devnull() -> None:
    """Point stdout's file descriptor at /dev/null, so Python's final flush of what is still buffered cannot fail."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # a stdout without a descriptor (captured in tests)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def _run(argv: list[str] | None) -> int:
    """:func:`main` without the broken-pipe handling."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from segkit import __version__

        print(f"segkit {__version__}")
        return 0
    name = argv[0]
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        print(f"error: unknown subcommand {name!r}; choose one of {', '.join(COMMANDS)}.{hint}", file=sys.stderr)
        return 2
    module = _load(name)
    if module is None:
        return 2
    # argparse names the program after sys.argv[0]: make usage lines read "segkit <name> ...".
    saved, sys.argv = sys.argv, [f"segkit {name}", *argv[1:]]
    try:
        code = module.main(argv[1:])
    except SegkitError as exc:  # the one place a user's mistake becomes one line and exit 2 (see segkit.errors)
        from segkit.cli.common import error_message

        print(f"error: {error_message(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"segkit {name}: interrupted", file=sys.stderr)
        return 130
    finally:
        sys.argv = saved
    return int(code or 0)
