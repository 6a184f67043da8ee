"""What ``segkit complexity``, ``segkit summary`` and ``segkit tradeoff`` do, one function each: inputs checked (an
:class:`~segkit.analysis.errors.AnalysisError` with a one-line message), files written, and the text to print
returned.

    print(model_summary("voc_mnv2_os16", input_size=513))
    print(table7_report(513, json_path="t7.json").text)
    report = tradeoff_report(results=Path("results"), out=Path("work_dirs/tradeoff"))
    print(report.markdown)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segkit.analysis.complexity import (
    MF_SCALES,
    config_markdown,
    config_row,
    count_complexity,
    count_config,
    dataset_rows,
    dataset_rows_markdown,
    extra_rows,
    extra_rows_markdown,
    format_count,
    format_table,
    multi_scale_sizes,
    table7,
    table7_markdown,
)
from segkit.analysis.errors import AnalysisError
from segkit.analysis.plot import plot
from segkit.analysis.tradeoff import (
    LATENCY_FORMAT,
    MADDS_FORMAT,
    RUNTIMES_FORMAT,
    Result,
    load_latency,
    load_madds,
    load_results,
    load_runtime_latency,
    tradeoff_markdown,
)
from segkit.config import load_config
from segkit.utils.io import OutputPathError, atomic_write_text, check_output

__all__ = ["CommandOutput", "TradeoffReport", "config_complexity", "model_summary", "table7_report", "tradeoff_report"]

MIN_INPUT_SIZE = 16


@dataclass(frozen=True)
class CommandOutput:
    """What a command prints (``text``) and the files it wrote, in order."""

    text: str
    files: tuple[Path, ...] = ()


def _check_size(input_size: int) -> None:
    if input_size < MIN_INPUT_SIZE:
        raise AnalysisError(f"--input-size must be >= {MIN_INPUT_SIZE}, got {input_size}.")


def _check_outputs(
    json_path: str | os.PathLike | None, markdown_path: str | os.PathLike | None, config: Any = None
) -> None:
    """``--json`` and ``--markdown``, before any counting: writable files, not the config file read, not each other."""
    inputs = {"--config": config if config is not None and Path(config).is_file() else None}
    for path, flag in ((json_path, "--json"), (markdown_path, "--markdown")):
        if path is not None:
            check_output(path, inputs=inputs, flag=flag)
    if json_path is not None and markdown_path is not None:
        if Path(os.path.abspath(json_path)) == Path(os.path.abspath(markdown_path)):
            raise OutputPathError(f"--json and --markdown both name {json_path}; name two files.")


def _write(outputs: Sequence[tuple[str | os.PathLike | None, str]]) -> tuple[Path, ...]:
    """Write each ``(path, text)`` whose path is given; the paths written."""
    written = []
    for path, text in outputs:
        if path is not None:
            atomic_write_text(path, text)
            written.append(Path(path))
    return tuple(written)


def table7_report(
    input_size: int = 513,
    *,
    json_path: str | os.PathLike | None = None,
    markdown_path: str | os.PathLike | None = None,
) -> CommandOutput:
    """Measure the eight rows of Table 7 (and segkit's configurations outside it); write the rows as JSON
    (:func:`~segkit.analysis.complexity.table7`'s keys) and the table as markdown when asked."""
    _check_size(input_size)
    _check_outputs(json_path, markdown_path)
    rows = table7(input_size, progress=True)  # ~15 s: a bar on stderr
    markdown = table7_markdown(rows)
    sizes = ", ".join(str(s) for s in multi_scale_sizes(input_size, MF_SCALES))
    lines = [
        f"Table 7 at {input_size}x{input_size} (MF: 12 passes at {sizes} x flip); 'diff' = segkit / paper - 1",
        markdown,
    ]
    extras = extra_rows(input_size, progress=True)
    if extras:
        lines += ["\nNot in Table 7 (segkit configurations, single scale):", extra_rows_markdown(extras)]
    lines += [
        "\nOther data sets (TF DeepLab's MobileNetV2 models at their eval sizes; 'diff tf1' = segkit / official - 1):",
        dataset_rows_markdown(dataset_rows()),
    ]
    files = _write([(json_path, json.dumps(rows, indent=2) + "\n"), (markdown_path, markdown + "\n")])
    return CommandOutput("\n".join(lines), files)


def config_complexity(
    config: str | os.PathLike,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    *,
    input_size: int = 513,
    multi_scale: bool = False,
    json_path: str | os.PathLike | None = None,
    markdown_path: str | os.PathLike | None = None,
) -> CommandOutput:
    """Params and MAdds of one config's model (summed over its eval.scales and eval.flip with ``multi_scale``);
    the row written as JSON (:func:`~segkit.analysis.complexity.config_row`'s keys) and markdown when asked."""
    _check_size(input_size)
    _check_outputs(json_path, markdown_path, config if isinstance(config, (str, os.PathLike)) else None)
    cfg = load_config(config, overrides)
    scales, flip = (cfg.eval.scales, cfg.eval.flip) if multi_scale else ([1.0], False)
    report = count_config(cfg, input_size, scales=scales, flip=flip)
    row = config_row(cfg, report)
    m, passes = cfg.model, len(report.input_sizes)
    text = "\n".join(
        [
            f"{cfg.name}: backbone {m.backbone}, OS {m.output_stride}, ASPP {m.aspp}, decoder {m.decoder}; "
            f"{passes} pass{'es' if passes > 1 else ''} at {', '.join(map(str, row['input_sizes']))}",
            f"  params        {report.params:>18,}  ({format_count(report.params)})",
            f"  MAdds pytorch {report.madds_pytorch:>18,}  ({format_count(report.madds_pytorch)})",
            f"  MAdds tf1     {report.madds_tf1:>18,}  ({format_count(report.madds_tf1)})",
        ]
    )
    files = _write([(json_path, json.dumps(row, indent=2) + "\n"), (markdown_path, config_markdown(row) + "\n")])
    return CommandOutput(text, files)


def model_summary(
    config: str | os.PathLike | None = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    *,
    checkpoint: str | os.PathLike | None = None,
    input_size: int | Sequence[int] | None = None,
    device: str = "meta",
) -> str:
    """The model line and the per-layer table (:func:`~segkit.analysis.complexity.format_table`: layers, output
    shapes, params, MAdds) of the model ``config`` builds, or of the model stored in ``checkpoint`` (a trained or
    converted one, built from the checkpoint's own config as :func:`segkit.checkpoint.load.load_model` builds it).

    ``overrides`` apply to that config. ``input_size`` is H (square) or H W; default: 513 (the paper's eval crop) for
    ``config``, the checkpoint's input size (its ``eval.pad_to``, else ``data.crop_size``) for ``checkpoint``. The
    model runs on the ``meta`` device (shapes only, no weights read into it) unless ``device`` names another (cpu,
    cuda, cuda:N: a real forward pass).

    Raises:
        AnalysisError: neither or both of ``config`` and ``checkpoint``, or a bad ``input_size``.
        CheckpointError / ConfigError: an unreadable checkpoint, a bad config name or override.
    """
    import torch

    from segkit.utils.device import resolve_device

    if (config is None) == (checkpoint is None):
        raise AnalysisError(
            "segkit summary needs one model: --config NAME|PATH (a config) or --checkpoint CKPT (a saved model)."
        )
    sizes = None if input_size is None else [input_size] if isinstance(input_size, int) else list(input_size)
    if sizes is not None and (len(sizes) not in (1, 2) or min(sizes) < 1):
        raise AnalysisError(f"--input-size takes one or two positive integers (H or H W), got {sizes}.")
    size_note = ""
    if checkpoint is None:
        cfg, kind = load_config(config, overrides), "segmentor"
    else:
        cfg, kind = _checkpoint_config(checkpoint, overrides)
        if sizes is None:  # the size the checkpoint's model is evaluated (and exported) at
            sizes = [cfg.eval.pad_to or cfg.data.crop_size]
            size_note = f"; input size: its {'eval.pad_to' if cfg.eval.pad_to else 'data.crop_size'}"
    sizes = sizes or [513]
    with torch.device("meta") if device == "meta" else resolve_device(device):
        model = _build(cfg, kind)
    report = count_complexity(model, sizes[0] if len(sizes) == 1 else tuple(sizes))
    m = cfg.model
    if kind == "classifier":
        what = f"ImageNet classifier, backbone {m.backbone}, {m.num_classes} classes"
    else:
        what = (
            f"backbone {m.backbone}, OS {m.output_stride}, ASPP {m.aspp}, decoder {m.decoder}, {m.num_classes} classes"
        )
    header = f"Config: {cfg.name}  ({what})"
    if checkpoint is not None:
        header = f"Checkpoint: {checkpoint}  (config {cfg.name}: {what}{size_note})"
    return f"{header}\n{format_table(report)}"


def _checkpoint_config(path: str | os.PathLike, overrides: Sequence[str] | Mapping[str, Any]) -> tuple[Any, str]:
    """``(config, kind)`` stored in a segkit checkpoint, ``overrides`` applied (as ``load_model`` applies them)."""
    from segkit.checkpoint.format import checkpoint_config, load_checkpoint
    from segkit.checkpoint.load import KINDS
    from segkit.config import ConfigError, apply_overrides, config_from_dict

    ckpt = load_checkpoint(path)
    kind = ckpt.get("kind", "segmentor")
    if kind not in KINDS:
        raise AnalysisError(
            f"{path} holds a checkpoint of unknown kind {kind!r}; segkit summarises 'segmentor' and 'classifier' "
            "checkpoints."
        )
    cfg = checkpoint_config(ckpt)
    if overrides:
        items = dict(overrides) if isinstance(overrides, Mapping) else list(overrides)
        try:
            cfg = config_from_dict(apply_overrides(ckpt["config"], items))
        except ConfigError as exc:
            raise ConfigError(f"Overriding the config stored in {path}: {exc}") from None
    return cfg, kind


def _build(cfg: Any, kind: str) -> Any:
    """The untrained model of ``cfg``: a classifier for a ``classifier`` checkpoint, else a segmentor."""
    from segkit.models.build import build_classifier, build_model

    return build_classifier(cfg) if kind == "classifier" else build_model(cfg)


@dataclass
class TradeoffReport:
    """What :func:`tradeoff_report` wrote: the table (``markdown``, also in ``table``), the figure (``plot``), and
    one note per result file skipped or replaced."""

    markdown: str
    table: Path
    plot: Path
    results: list[Result]
    latency_rows: int
    runtime_latency_rows: int
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        """``wrote OUT/tradeoff.png and OUT/tradeoff.md (N mIoU result(s), ...)``."""
        quantized = sum(r.precision not in ("fp32", "bf16") for r in self.results)
        return (
            f"wrote {self.plot} and {self.table} "
            f"({len(self.results)} mIoU result(s), {quantized} of them int8/fake-int8; {self.latency_rows} latency "
            f"row(s), {self.runtime_latency_rows} runtime latency row(s))"
        )


def _existing(path: Path | None, flag: str, what: str) -> None:
    if path is not None and not path.is_file():
        raise AnalysisError(f"{flag} {path}: no such file. {what}")


def _read(loader: Any, path: Path | None, flag: str, expected: str) -> dict:
    """``loader(path)``; a file it cannot read becomes one line saying what the file should hold."""
    try:
        return loader(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError, TypeError, KeyError) as exc:
        raise AnalysisError(f"{flag} {path}: {exc}; {expected}.") from exc


def tradeoff_report(
    results: Path | None = None,
    *,
    latency: Path | None = None,
    runtimes_json: Path | None = None,
    complexity_json: Path | None = None,
    out: Path = Path("work_dirs/tradeoff"),
    input_size: int = 513,
) -> TradeoffReport:
    """Tabulate and plot mIoU against MAdds (and latency) for Table 7: ``out``/tradeoff.md and ``out``/tradeoff.png.

    Args:
        results: folder searched (recursively) for ``segkit test --json`` files
            (:func:`~segkit.analysis.tradeoff.load_results`).
        latency: latency file of the float rows (:data:`~segkit.analysis.tradeoff.LATENCY_FORMAT`); default:
            ``results``/inference.json when it exists.
        runtimes_json: runtime latency file of the int8 / other-runtime results
            (:data:`~segkit.analysis.tradeoff.RUNTIMES_FORMAT`); default: ``results``/runtimes.json when it exists.
        complexity_json: ``segkit complexity --table7 --json`` output to reuse; default: MAdds measured (seconds).
        out: output folder.
        input_size: eval crop of the measured MAdds.

    Raises:
        AnalysisError: a missing folder or file, a file that does not hold what it should, a size below 16.
    """
    results, latency, runtimes_json, complexity_json, out = (
        None if p is None else Path(p) for p in (results, latency, runtimes_json, complexity_json, out)
    )
    if results is not None and not results.is_dir():
        raise AnalysisError(f"--results {results}: not a folder. Pass the folder holding segkit test --json outputs.")
    _existing(complexity_json, "--complexity-json", f"Produce it with {MADDS_FORMAT}.")
    _existing(runtimes_json, "--runtimes-json", f"Pass a runtime latency JSON file: {RUNTIMES_FORMAT}.")
    _existing(latency, "--latency", f"Pass a latency JSON file: {LATENCY_FORMAT}.")
    _check_size(input_size)
    latency_path = latency or (results / "inference.json" if results else None)
    runtimes_path = runtimes_json or (results / "runtimes.json" if results else None)
    # before anything is read or measured: the folder and its two files writable, none of them a file read
    read = {"--latency": latency_path, "--runtimes-json": runtimes_path, "--complexity-json": complexity_json}
    check_output(out, inputs=read, kind="folder", flag="--out")
    for name in ("tradeoff.md", "tradeoff.png"):
        check_output(out / name, inputs=read, flag="--out")

    found, notes = load_results(results) if results else ([], [])
    latency_ms = _read(load_latency, latency_path, "--latency", f"expected {LATENCY_FORMAT}")
    runtime_ms = _read(load_runtime_latency, runtimes_path, "--runtimes-json", f"expected {RUNTIMES_FORMAT}")
    madds = load_madds(complexity_json, input_size)
    found = [r for r in found if r.config in madds]
    markdown = tradeoff_markdown(madds, found, latency_ms, runtime_ms)
    table, figure = out / "tradeoff.md", out / "tradeoff.png"
    atomic_write_text(table, markdown + "\n")
    plot(madds, found, latency_ms, figure, runtime_ms)
    return TradeoffReport(markdown, table, figure, found, len(latency_ms), len(runtime_ms), notes)
