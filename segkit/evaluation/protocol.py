"""Which prediction protocol an image gets, and its name: ``segkit infer``'s and ``model.predict``'s choice.

A *fixed-size* model's protocol pads every image to the model's input, ``eval.pad_to = N`` without
``resize_longer`` or ``slide``: a converted official TFLite checkpoint (513 x 513), a VOC config. Such a protocol was
made for images up to N x N, and a phone photo (4000 x 3000) would run whole, far over the pixel budget.
:func:`fitted_protocol` gives such an image the fixed-input deployment protocol instead: resize the longer side to N,
pad to N x N, predict, and resize the label map back to the photo (nearest neighbour). Images within N x N keep the
model's own protocol (what ``segkit test`` scores). An exported file with a static input already implies
``resize_longer = pad_to = N`` (:meth:`segkit.runtimes.runner.ExportedModel.implied_protocol`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from segkit.config import EvalConfig

__all__ = ["fitted_protocol", "fixed_input_size", "protocol_name", "protocol_record"]


def fixed_input_size(protocol: EvalConfig) -> int | None:
    """N when ``protocol`` pads to N x N and resizes nothing (no ``resize_longer``, ``resize_range`` or ``slide``):
    a fixed-size model; else None."""
    resizes = protocol.resize_longer is not None or getattr(protocol, "resize_range", None) is not None
    if protocol.pad_to and not resizes and protocol.slide is None:
        return int(protocol.pad_to)
    return None


def fitted_protocol(protocol: EvalConfig, size: tuple[int, int]) -> EvalConfig:
    """The protocol for an image of ``size`` (H, W): ``protocol`` itself, or, for a fixed-size model's protocol and
    an image larger than its N x N input, a copy with ``resize_longer = N`` (the longer side shrunk to N, then padded
    to N x N)."""
    side = fixed_input_size(protocol)
    if side is None or max(size) <= side:
        return protocol
    return dataclasses.replace(protocol, resize_longer=side)


def protocol_name(protocol: EvalConfig) -> str:
    """A short name: ``whole image``, ``pad to 513``, ``resize longer to 513 + pad to 513``, ``slide 513/341``,
    ``multi-scale [0.5, ..] + flip``; the parts joined with `` + ``."""
    parts = []
    if protocol.resize_longer:
        parts.append(f"resize longer to {protocol.resize_longer}")
    resize_range = getattr(protocol, "resize_range", None)
    if resize_range:
        parts.append(range_name(resize_range, getattr(protocol, "resize_factor", None)))
    if protocol.slide:
        parts.append(f"slide {protocol.slide[0]}/{protocol.slide[1]}")
    if protocol.pad_to:
        parts.append(f"pad to {protocol.pad_to}")
    scales = [float(s) for s in protocol.scales]
    if scales != [1.0]:
        parts.append("scales [" + ", ".join(f"{s:g}" for s in scales) + "]")
    if protocol.flip:
        parts.append("flip")
    if protocol.antialias:
        parts.append("antialias")
    return " + ".join(parts) or "whole image"


def range_name(resize_range: Any, resize_factor: int | None = None) -> str:
    """``resize_range``'s name: ``min/max resize to 513 (TF DeepLab)`` when both sides are equal, ``shorter side
    512, longer <= 2048 (mmseg)`` for mmseg's ADE20K test resize, else ``shorter side A, longer <= B``."""
    low, high = (int(v) for v in resize_range)
    factor = f", sides k*{resize_factor}+1" if resize_factor else ""
    if low == high:
        return f"min/max resize to {low} (TF DeepLab){factor}"
    mmseg = " (mmseg)" if (low, high) == (512, 2048) else ""
    return f"shorter side {low}, longer <= {high}{mmseg}{factor}"


def protocol_record(protocol: EvalConfig) -> dict[str, Any]:
    """The protocol for a JSON report: ``name`` (:func:`protocol_name`) and its parameters."""
    return {
        "name": protocol_name(protocol),
        "scales": [float(s) for s in protocol.scales],
        "flip": bool(protocol.flip),
        "resize_longer": protocol.resize_longer,
        "pad_to": protocol.pad_to,
        "slide": [int(v) for v in protocol.slide] if protocol.slide else None,
        "antialias": bool(protocol.antialias),
        "resize_range": [int(v) for v in protocol.resize_range] if getattr(protocol, "resize_range", None) else None,
        "resize_factor": getattr(protocol, "resize_factor", None),
    }
