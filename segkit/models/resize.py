"""Bilinear resizing under the two conventions segkit's models know (``model.resize_mode``).

- ``"pytorch"``: ``F.interpolate(mode="bilinear", align_corners=...)``; with ``align_corners=False`` the
  half-pixel convention (TF2's ``half_pixel_centers=True``), with True TF's ``align_corners=True``.
- ``"tf_legacy"``: TF1's ``tf.image.resize_bilinear(align_corners=False)`` without half-pixel centers,
  the convention of files converted from TF DeepLab graphs such as the MLPerf ADE20K model: output pixel
  ``i`` samples the input at ``i * in / out``, clamped at the last row/column (ONNX Resize's
  ``coordinate_transformation_mode='asymmetric'``). No ``F.interpolate`` mode does this; it equals an
  ``align_corners=True`` resize of the input with its last row and column repeated, to one more pixel, cropped
  back, which exports to ONNX and LiteRT as a Pad, a Resize and a Slice.
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor

__all__ = ["RESIZE_MODES", "ResizeMode", "legacy_resize_bilinear", "resize_bilinear"]

ResizeMode = Literal["pytorch", "tf_legacy"]
RESIZE_MODES: tuple[str, ...] = ("pytorch", "tf_legacy")


def legacy_resize_bilinear(x: Tensor, size: tuple[int, int] | list[int]) -> Tensor:
    """TF's legacy bilinear resize (align_corners=False, half_pixel_centers=False) of an NCHW tensor."""
    h, w = int(size[0]), int(size[1])
    padded = F.pad(x, (0, 1, 0, 1), mode="replicate")
    return F.interpolate(padded, size=(h + 1, w + 1), mode="bilinear", align_corners=True)[..., :h, :w]


def resize_bilinear(
    x: Tensor, size: tuple[int, int] | list[int], *, align_corners: bool, mode: ResizeMode = "pytorch"
) -> Tensor:
    """Bilinear resize of an NCHW tensor to ``size`` under ``mode`` (``align_corners`` applies to 'pytorch')."""
    if mode == "tf_legacy":
        return legacy_resize_bilinear(x, size)
    if mode != "pytorch":
        raise ValueError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}.")
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=align_corners)
