"""What ``segkit test`` and ``segkit infer`` run, as one function each, on what ``--checkpoint``, ``--model`` and
``--runtime`` name::

    result = evaluate_checkpoint(ModelSource("best.pth"), json_path="val.json")   # segkit test
    result = infer_images(ModelSource(model="m.onnx"), "photos/", "out/")          # segkit infer
    result = infer_video(ModelSource("best.pth"), "clip.mp4", "out/", labels=True)  # segkit infer on a video

:class:`ModelSource` loads the model (a checkpoint in PyTorch, an exported file in its runtime, or a checkpoint
exported on demand for a runtime, :mod:`segkit.export.cache`); the work on the loaded model is
:mod:`segkit.evaluation.command`'s. :func:`report_identity` names a foreign ``.tflite`` file as ``segkit convert``
names its checkpoint.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from segkit.checkpoint.load import load_eval_model
from segkit.config import Config
from segkit.evaluation.command import (
    EvalResult,
    InferResult,
    check_eval_outputs,
    evaluate_model,
    list_images,
    segment_images,
)
from segkit.evaluation.report import REPORT_MODEL_FIELDS, model_identity
from segkit.evaluation.video import VideoResult, open_video, segment_video
from segkit.export.cache import load_for_tools
from segkit.export.fast import load_fast
from segkit.utils.device import resolve_device
from segkit.utils.io import check_output

__all__ = ["ModelSource", "evaluate_checkpoint", "infer_images", "infer_video", "report_identity"]


@dataclass(frozen=True)
class ModelSource:
    """The model a command runs: ``checkpoint`` (a segkit .pth, or a bare state dict with ``config``), or ``model``
    (an exported .onnx / .tflite / OpenVINO .xml file); ``runtime`` runs the file there, or a checkpoint exported
    once (cached) for it; ``runtime="pytorch"`` runs the checkpoint in PyTorch. ``overrides`` (``{"key": value}``)
    apply to the config. ``fast`` runs a checkpoint without ``runtime`` in the fastest installed runtime
    (:mod:`segkit.export.fast`: ONNX Runtime on a CPU, else PyTorch ``optimize_for_inference``) and says which; with
    ``model`` or ``runtime`` it does nothing (``runtime="pytorch", fast=True``: ``optimize_for_inference``).
    """

    checkpoint: str | os.PathLike | None = None
    model: str | os.PathLike | None = None
    runtime: str | None = None
    config: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    fast: bool = False

    @property
    def name(self) -> str:
        """The file the model comes from."""
        return str(self.model if self.model is not None else self.checkpoint)

    def inputs(self) -> dict[str, Any]:
        """The files the model is read from, by flag (:func:`segkit.utils.io.check_output`'s ``inputs``): the
        checkpoint, the exported file (an OpenVINO .xml with its .bin) and a config file."""
        model = None
        if self.model is not None:
            model = [self.model]
            if Path(self.model).suffix.lower() == ".xml":
                model.append(Path(self.model).with_suffix(".bin"))
        config = self.config if self.config is not None and Path(self.config).is_file() else None
        return {"--checkpoint": self.checkpoint, "--model": model, "--config": config}

    def load(
        self, device: str | torch.device | None = None, *, log: Callable[[str], Any] | None = None
    ) -> tuple[Any, Config]:
        """``(model, cfg)``: the model (any callable returning ``{"out": logits}``) and its effective config.
        ``log``: where ``fast``'s one line goes (default: stderr)."""
        overrides = dict(self.overrides)
        if self.fast and self.model is None and self.runtime is None:
            return load_fast(self.checkpoint, device, config=self.config, overrides=overrides, log=log)
        if self.model is not None or (self.runtime is not None and self.runtime != "pytorch"):  # segkit.runtimes
            checkpoint = None if self.checkpoint is None else str(self.checkpoint)
            return load_for_tools(
                self.model, self.runtime, checkpoint=checkpoint, config=self.config, overrides=overrides
            )
        return load_eval_model(self.checkpoint, config=self.config, overrides=overrides, device=device, fast=self.fast)


def _source(source: ModelSource | str | os.PathLike) -> ModelSource:
    return source if isinstance(source, ModelSource) else ModelSource(checkpoint=source)


def report_identity(model: Any, cfg: Config) -> dict[str, Any]:
    """What a report records about the model (:func:`segkit.evaluation.report.model_identity`).

    A foreign .tflite file (no segkit metadata, e.g. the official uint8 DeepLab file) is named
    ``tflite_<stem>`` as ``segkit convert`` names its checkpoint, with the architecture read from its graph,
    so ``segkit tradeoff`` puts it beside the converted official weights.
    """
    ident = model_identity(model, cfg)
    path = getattr(model, "path", None)
    if getattr(model, "metadata", None) is None and isinstance(path, Path) and path.suffix.lower() == ".tflite":
        ident["config"] = "tflite_" + re.sub(r"[^A-Za-z0-9_]+", "_", path.stem)
        try:
            from segkit.convert.tflite import infer_architecture, load_tflite

            found = infer_architecture(load_tflite(path))
            arch = found.model_config()
            ident["model"] = {k: getattr(arch, k) for k in REPORT_MODEL_FIELDS}
            if found.quantization == "uint8":  # the report's precision enum says int8; the log line says uint8
                ident["scheme"] = "uint8"
        except Exception:  # noqa: BLE001 - no tflite package or a graph convert cannot read: keep the defaults
            pass
    return ident


def evaluate_checkpoint(
    source: ModelSource | str | os.PathLike, *, device: str | torch.device | None = None, **options: Any
) -> EvalResult:
    """``segkit test``: load ``source`` (a :class:`ModelSource`, or a checkpoint's path) on ``device`` and evaluate it
    with :func:`segkit.evaluation.command.evaluate_model`; ``options`` are its ``split``, ``json_path``, ``save_pred``,
    ``progress``, ``max_pixels`` and ``log``. The report records :func:`report_identity` and the file ``source`` names."""
    source = _source(source)
    check_eval_outputs(options.get("json_path"), options.get("save_pred"), source.inputs())  # before the model
    device = resolve_device(device)
    model, cfg = source.load(device)
    options.setdefault("model_file", source.model if source.model is not None else source.checkpoint)
    return evaluate_model(model, cfg, device=device, identity=report_identity(model, cfg), name=source.name, **options)


def infer_images(
    source: ModelSource | str | os.PathLike,
    input: str | os.PathLike,  # noqa: A002 - --input
    output: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    **options: Any,
) -> InferResult:
    """``segkit infer``: segment the image ``input`` (or the images directly inside that folder) with ``source``
    into ``output`` with :func:`segkit.evaluation.command.segment_images`; ``options`` are its ``alpha``,
    ``contour``, ``fit``, ``progress``, ``max_pixels``, ``json_path``, ``legend_path``, ``log``, ``overlay`` and
    ``readers`` (``model_file`` defaults to the file ``source`` names).

    Raises:
        DatasetError: ``input`` does not exist or holds no images (checked before the model is loaded).
        OutputPathError: ``output`` is an input, the folder of an input image, a file, or cannot be written (checked
            before the model is loaded).
    """
    source = _source(source)
    device = resolve_device(device)
    paths = list_images(input)
    # the output folder is neither an input nor the folder of the images (a re-run would read the label maps)
    inputs = {**source.inputs(), "--input": paths}
    check_output(output, inputs=inputs, kind="folder", flag="--output", beside_inputs=False)
    model, cfg = source.load(device)
    options.setdefault("model_file", source.model if source.model is not None else source.checkpoint)
    return segment_images(model, cfg, paths, output, device=device, **options)


def infer_video(
    source: ModelSource | str | os.PathLike,
    input: str | os.PathLike,  # noqa: A002 - --input
    output: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    **options: Any,
) -> VideoResult:
    """``segkit infer`` on a video: ``<stem>_overlay.mp4`` (and with ``labels=True`` each frame's label map) into
    ``output`` with :func:`segkit.evaluation.video.segment_video`; ``options`` are its keywords (``model_file``
    defaults to the file ``source`` names).

    Raises:
        VideoError: ``input`` is missing, not a readable video, or holds no video stream (before the model is loaded).
        OutputPathError: ``output`` is an input, the video's folder, a file, or cannot be written (likewise).
    """
    source = _source(source)
    device = resolve_device(device)
    open_video(input)
    inputs = {**source.inputs(), "--input": [input]}
    check_output(output, inputs=inputs, kind="folder", flag="--output", beside_inputs=False)
    model, cfg = source.load(device)
    options.setdefault("model_file", source.model if source.model is not None else source.checkpoint)
    return segment_video(model, cfg, input, output, device=device, **options)
