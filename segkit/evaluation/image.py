"""One image in, one label map out: ``model.predict(image)`` of the Python API.

:func:`predict_image` takes an image as a file path, a PIL image or an RGB uint8 array [H, W, 3], normalises it with
the model config's ``input_mean``/``input_std`` and predicts under the config's own evaluation protocol
(``eval.scales``, ``eval.flip``, ``eval.resize_longer``, ``eval.pad_to``, ``eval.slide``, ``eval.antialias``), exactly
as ``segkit infer`` does; a fixed-size model's protocol (pad to N) shrinks an image larger than N x N to fit first
(:func:`segkit.evaluation.protocol.fitted_protocol`). The label map has the image's size. :func:`segkit.load_model` attaches it to the
segmentation models it returns as ``model.predict``::

    model = segkit.load_model("work_dirs/demo_mnv2_os16/best.pth")
    labels = model.predict("photo.jpg")                   # [H, W] uint8 class indices
    labels, probs = model.predict(array, probs=True)      # and [C, H, W] float32 class probabilities
"""

from __future__ import annotations

import os
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from segkit.config import Config, EvalConfig
from segkit.data.io import _rgb8, read_image
from segkit.evaluation.predict import (
    MAX_PIXELS,
    InferenceError,
    _align_corners,
    _resize,
    _scaled,
    base_extent,
    check_budget,
    labels_of_pass,
    labels_pass_applies,
    normalize,
    predict,
    predict_logits,
    prepare_labels_pass,
    resize_label,
    run_model_pass,
)
from segkit.evaluation.protocol import fitted_protocol

__all__ = [
    "StagedImage",
    "as_rgb_array",
    "attach_predict",
    "finish_labels",
    "label_map",
    "labels_of_staged",
    "predict_image",
    "run_staged",
    "stage_image",
    "staged_labels",
]

ImageLike = str | os.PathLike | Image.Image | np.ndarray


def as_rgb_array(image: ImageLike) -> np.ndarray:
    """``image`` as RGB uint8 [H, W, 3]: a file is read as :func:`segkit.data.io.read_image` reads it (EXIF
    orientation applied), a PIL image is converted as it is (its own size; 16-bit grey scaled to 8 bits).

    Raises:
        InferenceError: an array that is not RGB uint8 [H, W, 3], or an object of another type.
        DatasetError: a file that is missing or cannot be decoded.
    """
    if isinstance(image, (str, os.PathLike)):
        return read_image(image)
    if isinstance(image, Image.Image):
        return _rgb8(image, Path("<PIL image>"))
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or min(image.shape[:2]) < 1:
            raise InferenceError(
                f"image must be an RGB uint8 array [H, W, 3], got {image.dtype} {list(image.shape)}; convert it "
                "(e.g. np.asarray(PIL.Image.open(path).convert('RGB'))) or pass the file path or PIL image."
            )
        return image
    raise InferenceError(
        f"image must be a file path, a PIL image or an RGB uint8 array [H, W, 3], got {type(image).__name__}."
    )


def _device(model: nn.Module) -> torch.device:
    tensor = next(model.parameters(), None)
    if tensor is None:
        tensor = next(model.buffers(), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def _probabilities(
    model: nn.Module, x: Tensor, proto: EvalConfig, base: tuple[int, int], max_pixels: int | None
) -> Tensor:
    """Softmax [1, C, *base] of the protocol ``proto`` for the normalised image ``x`` [1, 3, H, W]: the mean over
    every scale and its flip (what :func:`predict` argmaxes)."""
    align_corners = _align_corners(model)
    views = [(s, f) for s in proto.scales for f in ((False, True) if proto.flip else (False,))]
    acc: Tensor | None = None
    with torch.inference_mode():
        for s, flipped in views:
            view = _resize(x, _scaled(base, float(s)), align_corners, bool(proto.antialias))  # as predict() does
            if flipped:
                view = view.flip(-1)
            logits = predict_logits(model, view, pad_to=proto.pad_to, slide=proto.slide, max_pixels=max_pixels)
            if flipped:
                logits = logits.flip(-1)
            soft = _resize(logits.float(), base, align_corners).softmax(1)
            acc = soft if acc is None else acc.add_(soft)
        return acc.div_(len(views))


def _label_dtype(cfg: Config) -> torch.dtype:
    return torch.uint8 if cfg.model.num_classes <= 256 else torch.int64


def _checked_base(size: tuple[int, int], proto: EvalConfig, max_pixels: int | None) -> tuple[int, int]:
    """The protocol's base extent of an image of ``size``, after the pixel budget is checked (before any copy)."""
    check_budget(
        1,
        size,
        scales=proto.scales,
        resize_longer=proto.resize_longer,
        pad_to=proto.pad_to,
        slide=proto.slide,
        max_pixels=max_pixels,
        resize_range=proto.resize_range,
        resize_factor=proto.resize_factor,
    )
    return base_extent(size, proto.resize_longer, proto.resize_range, proto.resize_factor)


# A single-view image whose model input (resized, padded, float) is at most this many pixels is prepared on the reader
# thread (:func:`stage_image`); a larger one (a 12 MP photo without --resize-longer: 144 MB as floats) in the main
# thread, so that the images read ahead stay a few MB each.
STAGE_MAX_PIXELS = 1 << 22


@dataclass
class StagedImage:
    """An RGB image made ready for the model by :func:`stage_image`: its ``size`` (H, W), the ``protocol`` and its
    ``base`` extent, and, for a runtime's one-view protocol, ``x``: the model's input (normalised, resized to ``base``,
    padded) with the ``extent`` its labels are cropped to; ``x`` is None where the input is prepared when it runs."""

    rgb: np.ndarray
    size: tuple[int, int]
    base: tuple[int, int]
    protocol: EvalConfig
    x: Any = None  # a Tensor, or the runner's PreparedInput
    extent: tuple[int, int] = (0, 0)


def stage_image(
    model: Any,
    rgb: np.ndarray,
    cfg: Config,
    device: str | torch.device,
    max_pixels: int | None = MAX_PIXELS,
    protocol: EvalConfig | None = None,
) -> StagedImage:
    """Check ``rgb`` against the pixel budget under ``protocol`` (default ``cfg.eval``) and, when a runner's labels
    pass applies (:func:`segkit.evaluation.predict.labels_pass_applies`), prepare the model's input: the host work
    ``segkit infer`` does on a reader thread while the model runs the previous image.

    Raises:
        InferenceError: the image is over the pixel budget under ``protocol``.
    """
    size = (int(rgb.shape[0]), int(rgb.shape[1]))
    proto = cfg.eval if protocol is None else protocol
    base = _checked_base(size, proto, max_pixels)
    staged = StagedImage(rgb, size, base, proto)
    side = max(base[0], int(proto.pad_to or 0)) * max(base[1], int(proto.pad_to or 0))
    if labels_pass_applies(model, proto.scales, proto.flip, proto.slide) and side <= STAGE_MAX_PIXELS:
        x = normalize(rgb, cfg.model.input_mean, cfg.model.input_std)[None].to(device)  # [1, 3, H, W]
        staged.x, staged.extent = prepare_labels_pass(
            model, x, base, pad_to=proto.pad_to, antialias=bool(proto.antialias)
        )
    return staged


def staged_labels(
    model: Any, staged: StagedImage, cfg: Config, device: str | torch.device, max_pixels: int | None = MAX_PIXELS
) -> Tensor:
    """The labels [1, *base] of a :func:`stage_image` image: :func:`run_staged` then :func:`labels_of_staged`."""
    return labels_of_staged(model, staged, run_staged(model, staged, cfg, device, max_pixels))


def labels_of_staged(model: Any, staged: StagedImage, out: Any) -> Tensor:
    """The labels [1, *base] of :func:`run_staged`'s output (a logits file's argmax: host work, for another thread)."""
    if staged.x is None:
        return out
    with torch.inference_mode():
        return labels_of_pass(model, out, staged.x, staged.extent)


def run_staged(
    model: Any, staged: StagedImage, cfg: Config, device: str | torch.device, max_pixels: int | None = MAX_PIXELS
) -> Any:
    """The model's work on a :func:`stage_image` image: a runtime's raw output for its labels pass
    (:func:`segkit.evaluation.predict.run_model_pass`), else the labels [1, *base] of the protocol."""
    if staged.x is not None:
        with torch.inference_mode():
            return run_model_pass(model, staged.x, max_pixels)
    proto = staged.protocol
    x = normalize(staged.rgb, cfg.model.input_mean, cfg.model.input_std)[None].to(device)  # [1, 3, H, W]
    return predict(
        model,
        x,
        staged.base,
        scales=proto.scales,
        flip=proto.flip,
        resize_longer=proto.resize_longer,
        pad_to=proto.pad_to,
        slide=proto.slide,
        max_pixels=max_pixels,
        antialias=proto.antialias,
        resize_range=proto.resize_range,
        resize_factor=proto.resize_factor,
    )  # [1, *base]


def finish_labels(label: Tensor, size: tuple[int, int], cfg: Config) -> np.ndarray:
    """Labels [1, h, w] at the protocol's extent -> the label map [H, W] of the image (nearest neighbour; uint8, int64
    beyond 256 classes)."""
    return resize_label(label.to(_label_dtype(cfg)), size)[0].cpu().numpy()


def label_map(
    model: Any,
    rgb: np.ndarray,
    cfg: Config,
    device: str | torch.device,
    max_pixels: int | None = MAX_PIXELS,
    protocol: EvalConfig | None = None,
) -> np.ndarray:
    """The label map [H, W] of an RGB uint8 array under ``protocol`` (default ``cfg.eval`` as it is; uint8, int64
    beyond 256 classes).

    The labels are predicted at the protocol's base extent (the image, or its ``resize_longer`` extent) and only
    then resized to the image with nearest neighbour: no full-size logits or int64 copies. ``model`` is a segkit
    model or an exported file's runner; ``device`` is where its inputs go. The three steps, :func:`stage_image`,
    :func:`staged_labels` and :func:`finish_labels`, can run on three threads (``segkit infer`` does).
    """
    staged = stage_image(model, rgb, cfg, device, max_pixels, protocol)
    return finish_labels(staged_labels(model, staged, cfg, device, max_pixels), staged.size, cfg)


def predict_image(
    model: nn.Module,
    image: ImageLike,
    *,
    probs: bool = False,
    cfg: Config | None = None,
    max_pixels: int | None = MAX_PIXELS,
    fit: bool = True,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """The label map of one image at its size, under the model config's protocol and normalisation.

    Args:
        model: a segmentation model in eval mode (:func:`segkit.load_model`'s), on any device.
        image: a file path, a PIL image or an RGB uint8 array [H, W, 3].
        probs: also return the class probabilities.
        cfg: the config whose ``eval`` protocol and ``model.input_mean/std`` apply; default ``model.segkit_config``.
        max_pixels: the pixel budget of one forward pass (None: no limit); see :func:`segkit.evaluation.predict.predict`.
        fit: a fixed-size model's protocol (pad to N) shrinks an image larger than N x N to fit
            (:func:`segkit.evaluation.protocol.fitted_protocol`); False: the config's protocol as it is.

    Returns:
        ``labels``: [H, W] class indices (uint8, int64 beyond 256 classes); with ``probs=True``
        ``(labels, probabilities)``, the probabilities [C, H, W] float32 (the softmax averaged over the protocol's
        views, resized bilinearly to the image; ``labels`` is their argmax at the protocol's extent, then resized
        with nearest neighbour as ``segkit infer`` does). At 21 classes a 12 MP photo's probabilities take 1 GB.

    Raises:
        InferenceError: an unsupported image, a model without a config, or a prediction over the pixel budget.
        DatasetError: an image file that is missing or unreadable.
    """
    cfg = cfg if cfg is not None else getattr(model, "segkit_config", None)
    if not isinstance(cfg, Config):
        raise InferenceError(
            "predict_image needs the model's config (its eval protocol and normalisation): load the model with "
            "segkit.load_model(path), or pass cfg=segkit.load_config(...)."
        )
    rgb = as_rgb_array(image)
    size = (int(rgb.shape[0]), int(rgb.shape[1]))
    proto = fitted_protocol(cfg.eval, size) if fit else cfg.eval
    if not probs:
        return label_map(model, rgb, cfg, _device(model), max_pixels, proto)
    dtype = _label_dtype(cfg)
    base = _checked_base(size, proto, max_pixels)
    x = normalize(rgb, cfg.model.input_mean, cfg.model.input_std)[None].to(_device(model))  # [1, 3, H, W]
    with torch.inference_mode():
        soft = _probabilities(model, x, proto, base, max_pixels)  # [1, C, *base]
        del x
        label = resize_label(soft.argmax(1).to(dtype), size)[0].cpu().numpy()
        soft = _resize(soft, size, _align_corners(model))[0].cpu().numpy().astype(np.float32, copy=False)
    return label, soft


def attach_predict(model: Any) -> Any:
    """``model.predict(image, probs=False)``: :func:`predict_image` bound to ``model`` (an instance attribute,
    kept by ``copy.deepcopy`` and pickling). Returns ``model``."""
    model.predict = types.MethodType(predict_image, model)
    return model
