"""What ``segkit zoo`` and ``segkit convert`` do: list the zoo, and convert any source segkit reads.

``convert_source`` reads a ``.tflite`` file, a Hugging Face model folder, ``hf:ORG/NAME[@REV]`` or ``zoo:NAME``
and writes a segkit checkpoint; it returns the lines to print.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from segkit.errors import SegkitError
from segkit.utils.cache import ZOO_PREFIX, zoo_checkpoint_path
from segkit.utils.download import DOWNLOAD_TIMEOUT
from segkit.zoo.fetch import fetch_checkpoint, source_path
from segkit.zoo.registry import ZOO, get_model

__all__ = [
    "HF_PREFIX",
    "SOURCES",
    "SourceError",
    "convert_source",
    "describe_model",
    "fetch_init_weights",
    "zoo_table",
]

HF_PREFIX = "hf:"
# what `segkit convert` reads, for its --help
SOURCES = (
    "a .tflite file (official DeepLab / ImageNet MobileNetV2, uint8, int8 or float)",
    "a Hugging Face model folder (config.json + model.safetensors or pytorch_model.bin)",
    "hf:ORG/NAME[@REVISION] (downloaded from the Hugging Face Hub with huggingface_hub)",
    "zoo:NAME (an official model by name, downloaded, checked and cached: `segkit zoo` lists them)",
)


class SourceError(SegkitError, ValueError):
    """An option that does not apply to the kind of source given."""


def zoo_table() -> str:
    """The zoo as a text table: name, format, kind, published figure, agreement, cached or not."""
    rows = [("name", "format", "kind", "published", "segkit vs source runtime", "cached")]
    rows += [
        (m.name, m.format, m.kind, m.published, m.agreement, "yes" if zoo_checkpoint_path(m.name).is_file() else "-")
        for m in ZOO.values()
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows]
    return "\n".join(
        lines + ["", "segkit zoo NAME shows the source URL and sha256; segkit convert zoo:NAME OUT converts."]
    )


def describe_model(name: str) -> str:
    """One zoo model in full: source, pin, architecture, figures, cache paths."""
    m = get_model(name)
    cached = zoo_checkpoint_path(name)
    lines = [
        f"name:         {m.name}",
        f"format:       {m.format} ({m.kind})",
        f"source:       {m.source}" + (f" (revision {m.revision})" if m.format == "hf" else ""),
    ]
    if m.format == "tflite":
        lines.append(f"sha256:       {m.sha256}")
        if m.labels_url:
            lines.append(f"labels:       {m.labels_url} (sha256 {m.labels_sha256})")
    lines += [
        f"architecture: {m.architecture}",
        f"published:    {m.published}",
        f"agreement:    {m.agreement}",
        f"download to:  {source_path(m)}" + (" (present)" if source_path(m).exists() else ""),
        f"checkpoint:   {cached}" + (" (cached)" if cached.is_file() else " (not yet converted)"),
        f"use:          segkit convert zoo:{m.name} OUT.pth   |   --set train.init_weights=zoo:{m.name}",
    ]
    return "\n".join(lines)


def convert_source(
    source: str,
    out: str | os.PathLike,
    *,
    labels_file: str | os.PathLike | None = None,
    output_stride: int | None = None,
    timeout: float = DOWNLOAD_TIMEOUT,
    progress: bool = True,
    log: Callable[[str], object] = print,
) -> str:
    """Convert ``source`` (see :data:`SOURCES`) to the segkit checkpoint ``out``; returns its kind.

    Raises:
        SegkitError: an unreadable source, an offline download (the message says how to fetch by hand), a model
            segkit cannot build, or an ``out`` that cannot be written.
    """
    from segkit.utils.io import atomic_path, check_output

    is_folder = not source.startswith((ZOO_PREFIX, HF_PREFIX)) and Path(source).is_dir()
    if source.startswith((ZOO_PREFIX, HF_PREFIX)) or is_folder:
        if labels_file is not None:
            raise SourceError(
                "--labels applies to .tflite files; a Hugging Face model names its classes in config.json."
            )
    if output_stride is not None and not (source.startswith(HF_PREFIX) or is_folder):
        raise SourceError("--output-stride applies to Hugging Face models (folder or hf:ID).")
    if source.startswith(ZOO_PREFIX):
        name = source[len(ZOO_PREFIX) :]
        get_model(name)
        check_output(out, inputs={source: zoo_checkpoint_path(name)}, flag="OUT")
        cached = fetch_checkpoint(name, timeout=timeout, progress=progress, log=log)
        with atomic_path(out) as tmp:
            shutil.copyfile(cached, tmp)
        return get_model(name).kind
    if source.startswith(HF_PREFIX) or is_folder:
        from segkit.convert.hf import convert_hf

        conversion = convert_hf(source, out, output_stride=output_stride)
        log(conversion.summary())
        return conversion.kind
    from segkit.convert.tflite import convert_tflite

    result = convert_tflite(source, out, labels_file=labels_file)
    log(result.architecture.summary())
    return result.architecture.kind


def fetch_init_weights(init_weights: str | None, *, log: Callable[[str], object] = print) -> None:
    """``train.init_weights: zoo:NAME``: fetch and convert the model into the cache before training starts.

    The training loop then reads the cached checkpoint (:func:`segkit.checkpoint.load.load_state_into` resolves
    ``zoo:NAME`` with :func:`segkit.utils.cache.zoo_checkpoint_path`). Under ``torchrun`` every process would
    download at once, so there the model must be fetched first (``segkit zoo --fetch NAME``).

    Raises:
        SegkitError: an unknown name, an offline download, or several processes and nothing cached.
    """
    if not init_weights or not init_weights.startswith(ZOO_PREFIX):
        return
    name = init_weights[len(ZOO_PREFIX) :]
    get_model(name)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not zoo_checkpoint_path(name).is_file():
        raise SourceError(
            f"train.init_weights={init_weights} is not in segkit's cache and {os.environ['WORLD_SIZE']} processes "
            f"would download it at once: run `segkit zoo --fetch {name}` first, then torchrun again."
        )
    fetch_checkpoint(name, log=log)
