"""Prediction protocols: pure functions on normalised image tensors.

Shared by validation during training, ``tools/test.py``, ``tools/infer.py`` and the benchmarks:

- whole image (the default): run the model on the image as it is, argmax.
- fixed-input deployment (``resize_longer`` / ``pad_to``): resize the longer side keeping the aspect
  ratio, pad bottom/right with the mean pixel (0 after normalisation), run, crop the logits back to the
  resized extent, and resize the label map to the mask with nearest neighbour.
- multi-scale + flip (the paper's MF): average the *softmax* over the scales and their horizontal flips,
  each resized bilinearly to a common size, then argmax.

Everything runs under ``torch.inference_mode()``; put the model in eval mode first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MF_SCALES", "denormalize", "normalize", "predict", "predict_logits", "resized_extent"]

MF_SCALES: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)  # the paper's multi-scale inputs


def _align_corners(model: nn.Module) -> bool:
    """The model's bilinear convention (segkit Segmentor attribute; PyTorch's default False otherwise)."""
    return bool(getattr(getattr(model, "module", model), "align_corners", False))


def _check_image(image: Tensor) -> None:
    if not torch.is_tensor(image) or image.ndim != 4 or image.shape[1] != 3 or not image.is_floating_point():
        shape = tuple(image.shape) if torch.is_tensor(image) else type(image).__name__
        raise ValueError(
            f"image must be a normalised float tensor [N, 3, H, W], got {shape}. "
            "Add a batch dimension with image[None] and normalise uint8 images first (see normalize())."
        )


def _check_size(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be None or a positive integer number of pixels, got {value!r}.")


def resized_extent(size: tuple[int, int], resize_longer: int | None) -> tuple[int, int]:
    """(H, W) after resizing the longer side of ``size`` to ``resize_longer`` (rounded, aspect kept).

    Returns ``size`` unchanged when ``resize_longer`` is None or already the longer side.
    """
    _check_size("resize_longer", resize_longer)
    h, w = int(size[0]), int(size[1])
    if resize_longer is None or max(h, w) == resize_longer:
        return h, w
    scale = resize_longer / max(h, w)
    return max(1, int(h * scale + 0.5)), max(1, int(w * scale + 0.5))


def _resize(x: Tensor, size: tuple[int, int], align_corners: bool) -> Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=align_corners)


def _forward(model: nn.Module, x: Tensor) -> Tensor:
    out = model(x)
    if isinstance(out, dict):
        out = out["out"]
    if not torch.is_tensor(out) or out.ndim != 4 or out.shape[-2:] != x.shape[-2:]:
        shape = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
        raise ValueError(
            f"the model must return logits [N, C, H, W] at its input size {tuple(x.shape[-2:])} (a tensor or "
            f"{{'out': logits}}), got {shape}."
        )
    return out


def predict_logits(
    model: nn.Module,
    image: Tensor,
    *,
    resize_longer: int | None = None,
    pad_to: int | None = None,
    pad_value: float = 0.0,
) -> Tensor:
    """Logits of one forward pass under the fixed-input protocol.

    Args:
        model: segmentation model in eval mode, returning ``{"out": logits}`` or logits at its input size.
        image: normalised images [N, 3, H, W].
        resize_longer: resize the longer side to this many pixels first (bilinear, aspect kept, the
            model's ``align_corners``).
        pad_to: pad bottom/right to ``max(pad_to, H)`` x ``max(pad_to, W)`` before the forward pass.
        pad_value: padding value in normalised units; 0 is the mean pixel.

    Returns:
        Float logits [N, C, h, w] at the resized extent (the padding cropped off).
    """
    _check_image(image)
    _check_size("pad_to", pad_to)
    align_corners = _align_corners(model)
    with torch.inference_mode():
        h, w = resized_extent((image.shape[-2], image.shape[-1]), resize_longer)
        x = _resize(image, (h, w), align_corners)
        if pad_to is not None and (h < pad_to or w < pad_to):
            x = F.pad(x, (0, max(pad_to - w, 0), 0, max(pad_to - h, 0)), value=pad_value)
        return _forward(model, x)[..., :h, :w]


def predict(
    model: nn.Module,
    image: Tensor,
    target_size: tuple[int, int] | Sequence[int] | None = None,
    *,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    resize_longer: int | None = None,
    pad_to: int | None = None,
    pad_value: float = 0.0,
) -> Tensor:
    """Label maps of a batch under the whole-image, fixed-input or multi-scale/flip protocol.

    Each scale ``s`` resizes the image to ``s`` times the base extent (the input size, or the
    ``resize_longer`` extent) and pads it to ``pad_to`` when given. One scale without flip: argmax of
    the logits (resized bilinearly to the base extent when ``s != 1``). Several scales or ``flip``: mean
    of the softmax over every scale and its horizontal flip, each resized bilinearly to the base extent,
    then argmax. The label map is resized to ``target_size`` with nearest neighbour (pixel centres, like
    PIL and ``cv2.INTER_NEAREST_EXACT``) when it differs.

    Args:
        model: segmentation model in eval mode.
        image: normalised images [N, 3, H, W].
        target_size: (H, W) of the returned label maps, normally the mask's; None = the input size.
        scales: input scales relative to the base extent.
        flip: add the horizontal flip of every scale.
        resize_longer: see :func:`predict_logits`.
        pad_to: see :func:`predict_logits`.
        pad_value: see :func:`predict_logits`.

    Returns:
        LongTensor [N, H, W] of class indices at ``target_size``.
    """
    _check_image(image)
    scales = tuple(float(s) for s in scales)
    if not scales or any(not s > 0 for s in scales):
        raise ValueError(f"scales must be a non-empty list of positive factors (e.g. [1.0]), got {list(scales)}.")
    target = (int(image.shape[-2]), int(image.shape[-1])) if target_size is None else tuple(int(s) for s in target_size)
    if len(target) != 2 or min(target) < 1:
        raise ValueError(f"target_size must be (H, W) with positive sizes, got {target_size!r}.")
    align_corners = _align_corners(model)
    with torch.inference_mode():
        base = resized_extent((image.shape[-2], image.shape[-1]), resize_longer)
        views = [(s, f) for s in scales for f in ((False, True) if flip else (False,))]
        acc: Tensor | None = None  # logits for one view, else the sum of softmax over the views
        for s, flipped in views:
            size = base if s == 1.0 else (max(1, int(base[0] * s + 0.5)), max(1, int(base[1] * s + 0.5)))
            x = _resize(image, size, align_corners)
            if flipped:
                x = x.flip(-1)
            logits = predict_logits(model, x, pad_to=pad_to, pad_value=pad_value)  # [N, C, h_s, w_s]
            if flipped:
                logits = logits.flip(-1)
            logits = _resize(logits.float(), base, align_corners)  # [N, C, *base]
            if len(views) == 1:
                acc = logits
            else:
                acc = logits.softmax(1) if acc is None else acc.add_(logits.softmax(1))
        label = acc.argmax(1)  # [N, *base]; the sum and the mean of the softmax have the same argmax
        if tuple(label.shape[-2:]) != target:
            label = F.interpolate(label[:, None].float(), size=target, mode="nearest-exact")[:, 0]
        return label.long()


def normalize(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """RGB uint8 [H, W, 3] -> normalised float tensor [3, H, W] (mean/std on the 0..255 scale)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be RGB [H, W, 3], got shape {image.shape}.")
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float()
    mean_t = torch.as_tensor(mean, dtype=torch.float32).view(3, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (x - mean_t) / std_t


def denormalize(image: Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Undo the normalisation for display: [3, H, W] (or [1, 3, H, W]) -> RGB uint8 [H, W, 3].

    Args:
        image: normalised image tensor.
        mean: RGB mean on the 0..255 scale (the model config's ``input_mean``).
        std: RGB std on the 0..255 scale (``input_std``).
    """
    if image.ndim == 4 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be [3, H, W] or [1, 3, H, W], got {tuple(image.shape)}.")
    x = image.detach().float().cpu()
    x = x * torch.as_tensor(std, dtype=torch.float32).view(3, 1, 1) + torch.as_tensor(mean, dtype=torch.float32).view(3, 1, 1)
    return x.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
