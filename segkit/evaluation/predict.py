"""Prediction protocols: pure functions on normalised image tensors.

Shared by validation during training, ``segkit test``, ``segkit infer`` and the benchmarks:

- whole image (the default): run the model on the image as it is, argmax.
- fixed-input deployment (``resize_longer`` / ``pad_to``): resize the longer side keeping the aspect
  ratio, pad bottom/right with the mean pixel (0 after normalisation), run, crop the logits back to the
  resized extent, and resize the label map to the mask with nearest neighbour. Resizes are bilinear with
  the model's ``align_corners``, on the host, in float; ``antialias=True`` low-passes those that shrink.
- multi-scale + flip (the paper's MF): average the *softmax* over the scales and their horizontal flips,
  each resized bilinearly to a common size, then argmax.
- sliding window (``slide=(crop, stride)``, mmseg's ``slide`` mode): overlapping ``crop`` x ``crop``
  windows every ``stride`` pixels (the last one flush with the border), the logits of each pixel summed
  over the windows that cover it and divided by their count. Where the image fits in one window this is
  the whole-image protocol exactly; combined with the others, it replaces each forward pass.

Every forward pass is checked against a pixel budget (``max_pixels``, default :data:`MAX_PIXELS`), and
scales must lie in [:data:`MIN_SCALE`, :data:`MAX_SCALE`]: an over-large request is refused with an
:class:`InferenceError` naming the fix instead of exhausting memory. :func:`check_budget` computes the extents
by arithmetic before anything is resized, padded or run (an image may be shrunk, but not enlarged past the budget). Label maps, not logits, are brought
to the target size (nearest neighbour).

Everything runs under ``torch.inference_mode()``; put the model in eval mode first.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segkit.errors import SegkitError
from segkit.evaluation.limits import MAX_PIXELS, MAX_SCALE, MAX_SIDE, MF_SCALES, MIN_SCALE, MIN_SIDE

__all__ = [
    "MAX_PIXELS",
    "MAX_SCALE",
    "MAX_SIDE",
    "MF_SCALES",
    "MIN_SCALE",
    "InferenceError",
    "check_budget",
    "check_input_size",
    "denormalize",
    "normalize",
    "predict",
    "base_extent",
    "labels_of_pass",
    "labels_pass_applies",
    "predict_logits",
    "prepare_labels_pass",
    "range_extent",
    "resize_label",
    "resized_extent",
    "run_labels_pass",
    "run_model_pass",
    "slide_windows",
]


class InferenceError(SegkitError, ValueError):
    """A prediction request that cannot run as asked (too large, bad scales); the message names the fix."""


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


def check_input_size(
    size: int | Sequence[int], flag: str = "--input-size", error: type[SegkitError] = InferenceError
) -> tuple[int, int]:
    """``(H, W)`` of a static input given as one N (N x N) or H W: each side in [MIN_SIDE, MAX_SIDE] and H x W
    within :data:`MAX_PIXELS`, checked before a tensor of that size exists.

    Raises:
        error: another number of values, a side out of range or too many pixels, with the fix (the caller's
            error class: export's ExportError, quantize's QuantizeError).
    """
    sizes = [size] if isinstance(size, int) else list(size)
    shown = " ".join(map(str, sizes))
    if len(sizes) not in (1, 2) or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in sizes):
        raise error(f"{flag} takes H W or one N, got {shown or 'nothing'}; e.g. {flag} 513 513 (whole pixels).")
    h, w = int(sizes[0]), int(sizes[-1])
    if not (MIN_SIDE <= h <= MAX_SIDE and MIN_SIDE <= w <= MAX_SIDE) or h * w > MAX_PIXELS:
        raise error(
            f"{flag} {shown} is out of range: each side must be {MIN_SIDE}..{MAX_SIDE} pixels and H x W at most "
            f"{MAX_PIXELS:,} (2048x2048), e.g. {flag} 513 513; larger images are resized to the file's size when it runs."
        )
    return h, w


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


def range_extent(
    size: tuple[int, int], resize_range: Sequence[int], resize_factor: int | None = None
) -> tuple[int, int]:
    """(H, W) of ``size`` resized into ``resize_range = (min_side, max_side)``, aspect kept: the shorter side to
    ``min_side`` unless the longer would then pass ``max_side``, else the longer side to ``max_side`` (scale
    ``min(min_side / short, max_side / long)``, sides rounded to the nearest pixel, as mmseg's keep-ratio ``Resize``
    and TF DeepLab's ``resize_to_range``). ``resize_factor``: each side is then rounded up to ``k * factor + 1``
    (TF's ``resize_factor``)."""
    min_side, max_side = (int(v) for v in resize_range)
    h, w = int(size[0]), int(size[1])
    scale = min(min_side / min(h, w), max_side / max(h, w))
    out = [max(1, int(h * scale + 0.5)), max(1, int(w * scale + 0.5))]
    if resize_factor:
        out = [n + (resize_factor - (n - 1) % resize_factor) % resize_factor for n in out]
    return out[0], out[1]


def base_extent(
    size: tuple[int, int],
    resize_longer: int | None = None,
    resize_range: Sequence[int] | None = None,
    resize_factor: int | None = None,
) -> tuple[int, int]:
    """The extent a protocol predicts at: :func:`range_extent` with ``resize_range``, else :func:`resized_extent`."""
    if resize_range is not None:
        return range_extent(size, resize_range, resize_factor)
    return resized_extent(size, resize_longer)


def _aligned_taps(n_in: int, n_out: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Source indices and weights [n_out, K] of an antialiased ``align_corners=True`` shrink of one axis: a
    triangle filter as wide as the sampling step (PIL's antialiased bilinear), centred on the align-corners
    positions ``i * (n_in - 1) / (n_out - 1)``; with a step <= 1 it is plain align-corners bilinear."""
    step = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    support = max(step, 1.0)
    centre = torch.arange(n_out, dtype=torch.float64, device=device) * step
    taps = (centre - support).ceil()[:, None] + torch.arange(2 * math.ceil(support) + 1, device=device)
    weight = (1 - (taps - centre[:, None]).abs() / support).clamp_(min=0) * ((taps >= 0) & (taps < n_in))
    return taps.clamp(0, n_in - 1).long(), weight / weight.sum(1, keepdim=True)


def _shrink_aligned(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Antialiased align-corners shrink, one axis at a time (torch's ``antialias=True`` with
    ``align_corners=True`` centres its filter half a pixel off the align-corners grid)."""
    for dim, n_out in ((-2, size[0]), (-1, size[1])):
        if x.shape[dim] == n_out:
            continue
        idx, weight = _aligned_taps(x.shape[dim], n_out, x.device)
        weight = weight.to(x.dtype)
        out = None
        for k in range(idx.shape[1]):
            tap = x.index_select(dim, idx[:, k]) * (weight[:, k, None] if dim == -2 else weight[:, k])
            out = tap if out is None else out.add_(tap)
        x = out
    return x


def _resize(x: Tensor, size: tuple[int, int], align_corners: bool, antialias: bool = False) -> Tensor:
    """Bilinear resize with the model's ``align_corners``; ``antialias`` low-passes a shrink (no axis grows)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if antialias and size[0] <= x.shape[-2] and size[1] <= x.shape[-1]:
        if align_corners:
            return _shrink_aligned(x, size)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=align_corners)


def _check_max_pixels(max_pixels: int | None) -> None:
    if max_pixels is not None and (isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1):
        raise InferenceError(
            f"max_pixels must be None (no limit) or a positive number of pixels, got {max_pixels!r}; "
            f"the default is {MAX_PIXELS:,} (--max-pixels 0 on the command line: no limit)."
        )


def _refuse_pass(n: int, h: int, w: int, max_pixels: int | None) -> None:
    pixels = n * h * w
    if max_pixels is not None and pixels > max_pixels:
        raise InferenceError(
            f"a forward pass of {n} x {h}x{w} = {pixels:,} pixels exceeds the budget of "
            f"{max_pixels:,} (max_pixels / --max-pixels); use a sliding window (--slide 513 341, or smaller windows "
            "with a smaller --pad-to), --resize-longer N or smaller --scales, or raise --max-pixels if the memory "
            "is there."
        )


def _check_budget(x: Tensor, max_pixels: int | None) -> None:
    _refuse_pass(x.shape[0], x.shape[-2], x.shape[-1], max_pixels)


def _scaled(base: tuple[int, int], s: float) -> tuple[int, int]:
    """The extent of scale ``s`` of ``base`` (as :func:`predict` resizes it)."""
    return base if s == 1.0 else (max(1, int(base[0] * s + 0.5)), max(1, int(base[1] * s + 0.5)))


def _refuse_before_work(image: Tensor, *, slide: Sequence[int] | None, **budget: Any) -> None:
    """A bad ``slide`` (crop, stride) or a protocol over the pixel budget, refused before any resize or pad."""
    if slide is not None:
        slide_windows((1, 1), *(int(v) for v in slide))
    check_budget(image.shape[0], image.shape[-2:], slide=slide, **budget)


def check_budget(
    batch: int,
    size: tuple[int, int] | Sequence[int],
    *,
    scales: Sequence[float] = (1.0,),
    resize_longer: int | None = None,
    pad_to: int | None = None,
    slide: tuple[int, int] | Sequence[int] | None = None,
    max_pixels: int | None = MAX_PIXELS,
    resize_range: Sequence[int] | None = None,
    resize_factor: int | None = None,
) -> None:
    """Refuse, by arithmetic and before anything is allocated, a protocol over the pixel budget.

    Every forward pass (N x H x W after the resize, the scale and the padding; each window's with ``slide``) must fit
    in ``max_pixels``, and every image the protocol resizes and holds whole (the ``resize_longer`` extent, each
    scale's) in ``max(max_pixels, the input's own N x H x W)``: a protocol may shrink a large image, not enlarge one
    past the budget. ``max_pixels`` None: no limit.

    Raises:
        InferenceError: what is over the budget, and the fix.
    """
    _check_max_pixels(max_pixels)
    _check_size("resize_longer", resize_longer)
    _check_size("pad_to", pad_to)
    if max_pixels is None:
        return
    h, w = (int(v) for v in size)
    held = max(max_pixels, batch * h * w)

    def check_held(extent: tuple[int, int]) -> None:
        if batch * extent[0] * extent[1] > held:
            raise InferenceError(
                f"the protocol resizes {batch} x {h}x{w} to {batch} x {extent[0]}x{extent[1]} = "
                f"{batch * extent[0] * extent[1]:,} pixels, over the budget of {max_pixels:,} (max_pixels / "
                "--max-pixels) and larger than the input; use a smaller --resize-longer or --scales, or raise "
                "--max-pixels if the memory is there."
            )

    base = base_extent((h, w), resize_longer, resize_range, resize_factor)
    check_held(base)  # the resize_longer extent: the logits (and label map) of every view are held at it
    side = pad_to or 0
    for s in scales:
        ext = _scaled(base, float(s))
        window = ext if slide is None else (min(int(slide[0]), ext[0]), min(int(slide[0]), ext[1]))
        _refuse_pass(batch, max(window[0], side), max(window[1], side), max_pixels)  # each window's, with slide
        check_held(ext)  # with slide, the scaled image is held whole while its windows run


def _forward(model: nn.Module, x: Tensor, max_pixels: int | None = MAX_PIXELS) -> Tensor:
    _check_budget(x, max_pixels)
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


def _argmax(logits: Tensor) -> Tensor:
    """``logits.argmax(1)`` (the first maximum on ties), by ``max(1).indices``: the same indices, about 3x faster on
    CPU over [N, C, H, W] (argmax reduces the strided class axis slowly)."""
    return logits.max(1).indices


def labels_pass_applies(model: Any, scales: Sequence[float], flip: bool, slide: Sequence[int] | None) -> bool:
    """True when ``model`` is a runtime's runner (it has ``predict_labels``) and the protocol is one view (scale 1, no
    flip, no sliding window): its labels then come out of the runtime (:func:`prepare_labels_pass`)."""
    one_view = [float(s) for s in scales] == [1.0] and not flip and not slide
    return one_view and callable(getattr(model, "predict_labels", None))


def prepare_labels_pass(
    model: Any,
    image: Tensor,
    base: tuple[int, int],
    *,
    pad_to: int | None = None,
    pad_value: float = 0.0,
    antialias: bool = False,
) -> tuple[Any, tuple[int, int]]:
    """The input of a runner's ``predict_labels`` for the one-view protocol: ``image`` resized to ``base``, padded to
    ``pad_to`` and, when the runner has ``prepare_input``, made the file's own input (dtype, layout); with the extent
    ``(h, w)`` to crop its labels to. Pure host work: ``segkit infer`` and ``segkit test`` run it on a reader thread
    while the runtime runs the previous image (:func:`run_labels_pass` runs it)."""
    with torch.inference_mode():
        x = _resize(image, base, _align_corners(model), antialias)
        h, w = x.shape[-2:]
        if pad_to is not None and (h < pad_to or w < pad_to):
            x = F.pad(x, (0, max(pad_to - w, 0), 0, max(pad_to - h, 0)), value=pad_value)
        prepare = getattr(model, "prepare_input", None)  # a runner: its own dtype and layout, ahead too
        return (prepare(x) if callable(prepare) else x), (int(h), int(w))


def run_labels_pass(model: Any, x: Any, extent: tuple[int, int], max_pixels: int | None = MAX_PIXELS) -> Tensor:
    """Label maps [N, h, w] of :func:`prepare_labels_pass`'s input from the runner's ``predict_labels`` (labels out of
    the runtime: no logits in torch; uint8 up to 256 classes), cropped to ``extent``: :func:`run_model_pass`, then
    :func:`labels_of_pass`."""
    return labels_of_pass(model, run_model_pass(model, x, max_pixels), x, extent)


def run_model_pass(model: Any, x: Any, max_pixels: int | None = MAX_PIXELS) -> Any:
    """The runtime's work on :func:`prepare_labels_pass`'s input: the runner's raw outputs when it can hand them over
    (``run_prepared``; the argmax of a logits file is then :func:`labels_of_pass`'s, on another thread), else its
    labels."""
    _check_budget(x, max_pixels)
    run = getattr(model, "run_prepared", None)
    if callable(run) and not torch.is_tensor(x):
        return run(x)
    return model.predict_labels(x)


def labels_of_pass(model: Any, out: Any, x: Any, extent: tuple[int, int]) -> Tensor:
    """The label maps [N, h, w] of :func:`run_model_pass`'s ``out`` for the input ``x``, cropped to ``extent``."""
    label = out if torch.is_tensor(out) else model.labels_of(out)
    if not torch.is_tensor(label) or label.ndim != 3 or tuple(label.shape[-2:]) != tuple(x.shape[-2:]):
        shape = tuple(label.shape) if torch.is_tensor(label) else type(label).__name__
        raise ValueError(f"predict_labels must return label maps [N, H, W] at its input size, got {shape}.")
    return label[..., : extent[0], : extent[1]]


def slide_windows(size: tuple[int, int], crop: int, stride: int) -> list[tuple[int, int, int, int]]:
    """``(y1, y2, x1, x2)`` of the sliding windows over an image of ``size`` (H, W), as mmseg's ``slide`` mode.

    Windows start every ``stride`` pixels; the last one of a row or column ends at the border; an image
    smaller than ``crop`` is one window, itself.
    """
    if not (isinstance(crop, int) and isinstance(stride, int) and crop >= 1 and 1 <= stride <= crop):
        raise InferenceError(f"slide must be (crop, stride) with 1 <= stride <= crop, got ({crop!r}, {stride!r}).")
    h, w = size
    rows, cols = (max(n - crop + stride - 1, 0) // stride + 1 for n in (h, w))
    windows = []
    for r in range(rows):
        y2 = min(r * stride + crop, h)
        for c in range(cols):
            x2 = min(c * stride + crop, w)
            windows.append((max(y2 - crop, 0), y2, max(x2 - crop, 0), x2))
    return windows


def _padded_forward(
    model: nn.Module, x: Tensor, pad_to: int | None, pad_value: float, max_pixels: int | None
) -> Tensor:
    h, w = x.shape[-2:]
    if pad_to is not None and (h < pad_to or w < pad_to):
        x = F.pad(x, (0, max(pad_to - w, 0), 0, max(pad_to - h, 0)), value=pad_value)
    return _forward(model, x, max_pixels)[..., :h, :w]


def predict_logits(
    model: nn.Module,
    image: Tensor,
    *,
    resize_longer: int | None = None,
    pad_to: int | None = None,
    pad_value: float = 0.0,
    slide: tuple[int, int] | Sequence[int] | None = None,
    max_pixels: int | None = MAX_PIXELS,
    antialias: bool = False,
) -> Tensor:
    """Logits of one forward pass (or one sliding-window pass) under the fixed-input protocol.

    Args:
        model: segmentation model in eval mode, returning ``{"out": logits}`` or logits at its input size.
        image: normalised images [N, 3, H, W].
        resize_longer: resize the longer side to this many pixels first (bilinear, aspect kept, the
            model's ``align_corners``).
        pad_to: pad bottom/right to ``max(pad_to, H)`` x ``max(pad_to, W)`` before the forward pass (each
            window's, with ``slide``).
        pad_value: padding value in normalised units; 0 is the mean pixel.
        slide: ``(crop, stride)``: run :func:`slide_windows` windows and average the logits where they overlap.
        max_pixels: budget of one forward pass (N x H x W after padding); None: no limit.
        antialias: low-pass the image when ``resize_longer`` shrinks it (triangle filter as wide as the
            step, as PIL); off: plain bilinear, which aliases when shrinking.

    Returns:
        Float logits [N, C, h, w] at the resized extent (the padding cropped off).

    Raises:
        InferenceError: a forward pass larger than ``max_pixels``, or a bad ``slide``.
    """
    _check_image(image)
    _refuse_before_work(image, resize_longer=resize_longer, pad_to=pad_to, slide=slide, max_pixels=max_pixels)
    align_corners = _align_corners(model)
    with torch.inference_mode():
        h, w = resized_extent((image.shape[-2], image.shape[-1]), resize_longer)
        x = _resize(image, (h, w), align_corners, antialias)
        if slide is None:
            return _padded_forward(model, x, pad_to, pad_value, max_pixels)
        crop, stride = (int(v) for v in slide)
        windows = slide_windows((h, w), crop, stride)
        if len(windows) == 1:
            return _padded_forward(model, x, pad_to, pad_value, max_pixels)
        return torch.cat([band for _, band in _slide_bands(model, x, windows, pad_to, pad_value, max_pixels)], -2)


def _slide_bands(
    model: nn.Module,
    x: Tensor,
    windows: list[tuple[int, int, int, int]],
    pad_to: int | None,
    pad_value: float,
    max_pixels: int | None,
) -> Iterator[tuple[int, Tensor]]:
    """``(y, logits [N, C, rows, W])`` of the sliding window, a band of finished rows at a time, top to bottom.

    A row of the image is finished once no later window covers it, so only about one window's height of
    logits is held, whatever the image's height.
    """
    h, w = x.shape[-2:]
    starts = sorted({y1 for y1, _, _, _ in windows}) + [h]
    acc: Tensor | None = None  # [N, C, rows, W]: the sums of the logits of rows lo.., and their window counts
    count = torch.zeros((1, 1, 0, w), device=x.device)
    lo = 0
    for i, top in enumerate(starts[:-1]):
        for y1, y2, x1, x2 in (win for win in windows if win[0] == top):
            logits = _padded_forward(model, x[..., y1:y2, x1:x2], pad_to, pad_value, max_pixels).float()
            if acc is None:
                acc = logits.new_zeros((x.shape[0], logits.shape[1], 0, w))
            if y2 - lo > acc.shape[-2]:  # grow the band down to this window's bottom
                grow = y2 - lo - acc.shape[-2]
                acc = torch.cat([acc, acc.new_zeros((*acc.shape[:2], grow, w))], -2)
                count = torch.cat([count, count.new_zeros((1, 1, grow, w))], -2)
            acc[..., y1 - lo : y2 - lo, x1:x2] += logits
            count[..., y1 - lo : y2 - lo, x1:x2] += 1
        done = starts[i + 1] - lo  # rows above the next window row are finished
        if done > 0:
            yield lo, acc[..., :done, :] / count[..., :done, :]
            acc, count, lo = acc[..., done:, :], count[..., done:, :], lo + done


def resize_label(label: Tensor, size: tuple[int, int]) -> Tensor:
    """Nearest-neighbour resize of label maps [N, h, w] to ``size`` (pixel centres, as ``nearest-exact``,
    PIL and ``cv2.INTER_NEAREST_EXACT``), keeping the dtype: no float copy at the target size."""
    h, w = label.shape[-2:]
    if (h, w) == tuple(size):
        return label
    rows = ((torch.arange(size[0], device=label.device) + 0.5) * (h / size[0])).floor().long().clamp_(max=h - 1)
    cols = ((torch.arange(size[1], device=label.device) + 0.5) * (w / size[1])).floor().long().clamp_(max=w - 1)
    return label.index_select(-2, rows).index_select(-1, cols)  # two gathers: 2x faster than label[..., r, c]


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
    slide: tuple[int, int] | Sequence[int] | None = None,
    max_pixels: int | None = MAX_PIXELS,
    antialias: bool = False,
    resize_range: Sequence[int] | None = None,
    resize_factor: int | None = None,
) -> Tensor:
    """Label maps of a batch under the whole-image, fixed-input, sliding-window or multi-scale/flip protocol.

    Each scale ``s`` resizes the image to ``s`` times the base extent (the input size, or the
    ``resize_longer`` extent) and pads it to ``pad_to`` when given. One scale without flip: argmax of
    the logits (resized bilinearly to the base extent when ``s != 1``). Several scales or ``flip``: mean
    of the softmax over every scale and its horizontal flip, each resized bilinearly to the base extent,
    then argmax. The label map (never the logits) is resized to ``target_size`` with nearest neighbour
    (:func:`resize_label`) when it differs.

    Args:
        model: segmentation model in eval mode (or any callable returning ``{"out": logits}`` or logits).
        image: normalised images [N, 3, H, W].
        target_size: (H, W) of the returned label maps, normally the mask's; None = the input size.
        scales: input scales relative to the base extent, in [MIN_SCALE, MAX_SCALE].
        flip: add the horizontal flip of every scale.
        resize_longer: see :func:`predict_logits`.
        pad_to: see :func:`predict_logits`.
        pad_value: see :func:`predict_logits`.
        slide: see :func:`predict_logits`.
        max_pixels: see :func:`predict_logits`.
        antialias: low-pass every input resize that shrinks (``resize_longer``, scales < 1); the logits'
            resize back to the base extent stays plain bilinear.
        resize_range: ``(min_side, max_side)``: the base extent is :func:`range_extent` (ADE20K's protocols: TF
            DeepLab's min/max resize, mmseg's shorter side 512) instead of the ``resize_longer`` extent.
        resize_factor: with ``resize_range``, sides rounded up to ``k * factor + 1``.

    Returns:
        LongTensor [N, H, W] of class indices at ``target_size``.

    Raises:
        InferenceError: scales outside the range, or a forward pass over the pixel budget.
    """
    _check_image(image)
    scales = tuple(float(s) for s in scales)
    if not scales or any(not (math.isfinite(s) and s > 0) for s in scales):
        raise InferenceError(f"scales must be a non-empty list of positive factors (e.g. [1.0]), got {list(scales)}.")
    if any(not MIN_SCALE <= s <= MAX_SCALE for s in scales):
        raise InferenceError(
            f"scales must lie in [{MIN_SCALE}, {MAX_SCALE}], got {list(scales)}; for large images use "
            "--slide CROP STRIDE or --resize-longer N rather than a large scale."
        )
    target = (int(image.shape[-2]), int(image.shape[-1])) if target_size is None else tuple(int(s) for s in target_size)
    if len(target) != 2 or min(target) < 1:
        raise ValueError(f"target_size must be (H, W) with positive sizes, got {target_size!r}.")
    _refuse_before_work(
        image, scales=scales, resize_longer=resize_longer, pad_to=pad_to, slide=slide, max_pixels=max_pixels,
        resize_range=resize_range, resize_factor=resize_factor,
    )  # fmt: skip
    align_corners = _align_corners(model)
    with torch.inference_mode():
        base = base_extent((image.shape[-2], image.shape[-1]), resize_longer, resize_range, resize_factor)
        views = [(s, f) for s in scales for f in ((False, True) if flip else (False,))]
        if labels_pass_applies(model, scales, flip, slide):
            # a runtime's runner: labels out of the file (argmax in the graph, or in the runtime's layout)
            x, extent = prepare_labels_pass(model, image, base, pad_to=pad_to, pad_value=pad_value, antialias=antialias)
            return resize_label(run_labels_pass(model, x, extent, max_pixels), target).long()
        if slide is not None and views == [(1.0, False)]:  # one view: argmax band by band, no full-size logits
            x = _resize(image, base, align_corners, antialias)
            crop, stride = (int(v) for v in slide)
            bands = _slide_bands(model, x, slide_windows(base, crop, stride), pad_to, pad_value, max_pixels)
            label = torch.cat([_argmax(band) for _, band in bands], -2)  # [N, *base]
            return resize_label(label, target)
        acc: Tensor | None = None  # logits for one view, else the sum of softmax over the views
        for s, flipped in views:
            x = _resize(image, _scaled(base, s), align_corners, antialias)
            if flipped:
                x = x.flip(-1)
            logits = predict_logits(
                model, x, pad_to=pad_to, pad_value=pad_value, slide=slide, max_pixels=max_pixels
            )  # [N, C, h_s, w_s]
            if flipped:
                logits = logits.flip(-1)
            logits = _resize(logits.float(), base, align_corners)  # [N, C, *base]
            if len(views) == 1:
                acc = logits
            else:
                acc = logits.softmax(1) if acc is None else acc.add_(logits.softmax(1))
        label = _argmax(acc)  # [N, *base]; the sum and the mean of the softmax have the same argmax
        return resize_label(label, target)


def normalize(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """RGB uint8 [H, W, 3] -> normalised float tensor [3, H, W] (mean/std on the 0..255 scale)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be RGB [H, W, 3], got shape {image.shape}.")
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float()
    mean_t = torch.as_tensor(mean, dtype=torch.float32).view(3, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32).view(3, 1, 1)
    return x.sub_(mean_t).div_(std_t)  # in place: one float copy of a large image, not three


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
    x = x * torch.as_tensor(std, dtype=torch.float32).view(3, 1, 1) + torch.as_tensor(mean, dtype=torch.float32).view(
        3, 1, 1
    )
    return x.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
