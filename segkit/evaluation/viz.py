"""Label maps as images: palette PNGs, colour maps and overlays with a class legend.

:func:`class_palette` and :func:`legend_names` pick the colours and names of a model's classes for every picture
segkit draws: its own, else VOC's colours, and VOC's names for 21 classes.
(Training curves are plotted elsewhere; this module only draws masks.)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from segkit.data.classes import VOC_CLASSES, VOC_PALETTE

# Label PNGs are data I/O (segkit.data.io); re-exported here for code that imported them from viz.
from segkit.data.io import as_label_array as _check_label
from segkit.data.io import label_image, save_label_png  # noqa: F401
from segkit.data.io import palette256 as _palette256
from segkit.utils.io import atomic_path


def class_palette(num_classes: int, *candidates: Any) -> np.ndarray:
    """The class colours [K, 3] (uint8): the first of ``candidates`` that is not None (e.g. a data set's, then a
    model's palette), else the VOC colour map's first ``num_classes`` colours."""
    for palette in candidates:
        if palette is not None:
            return np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    return np.asarray(VOC_PALETTE[:num_classes], dtype=np.uint8)


def legend_names(num_classes: int, *candidates: Sequence[str] | None) -> list[str]:
    """The legend names: the first non-empty of ``candidates``, else VOC's names for 21 classes, else ``class <i>``."""
    for names in candidates:
        if names:
            return list(names)
    return list(VOC_CLASSES) if num_classes == len(VOC_CLASSES) else [f"class {i}" for i in range(num_classes)]


def colorize(label: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """RGB uint8 [H, W, 3] image of ``label`` [H, W] coloured with ``palette`` [K, 3]."""
    return _palette256(palette)[_check_label(label)]


_ROWS = 256  # rows blended at a time by overlay()


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)  # scalable with FreeType (Pillow >= 10.1)
    except (TypeError, OSError):
        return ImageFont.load_default()


def overlay(
    image_rgb_uint8: np.ndarray,
    label: np.ndarray,
    palette: np.ndarray,
    class_names: Sequence[str],
    alpha: float = 0.5,
    ignore_index: int = 255,
    *,
    background: int | None = 0,
) -> Image.Image:
    """Blend class colours over an image and add a legend of the classes present, on the right.

    Args:
        image_rgb_uint8: [H, W, 3] uint8 image.
        label: [H, W] class indices (prediction or ground truth).
        palette: [K, 3] class colours.
        class_names: one name per class.
        alpha: weight of the class colour.
        ignore_index: pixels with this label are left as they are and listed as "ignore".
        background: class left unblended (VOC background is black); None blends every class.

    Returns:
        RGB image of width W + legend width and height max(H, legend height).
    """
    image = np.asarray(image_rgb_uint8)
    label = _check_label(label)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be RGB uint8 [H, W, 3], got {image.dtype} {image.shape}.")
    if image.shape[:2] != label.shape:
        raise ValueError(f"image is {image.shape[:2]} but label is {label.shape}; they must match.")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}.")
    colours256 = _palette256(palette)
    blended_rgb = np.empty_like(image)
    for top in range(0, label.shape[0], _ROWS):  # a band of rows at a time: no float copies of a large image
        rows = slice(top, top + _ROWS)
        lab = label[rows]
        colours = colours256[lab].astype(np.float32)
        blend = lab != ignore_index
        if background is not None:
            blend &= lab != background
        out = image[rows].astype(np.float32)
        out[blend] = (1 - alpha) * out[blend] + alpha * colours[blend]
        blended_rgb[rows] = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    blended = Image.fromarray(blended_rgb)
    del blended_rgb

    present = [int(v) for v in np.unique(label)]
    entries = []
    for v in present:
        name = "ignore" if v == ignore_index else (class_names[v] if v < len(class_names) else f"class {v}")
        entries.append((f"{v}: {name}", tuple(int(c) for c in _palette256(palette)[v])))
    h, w = label.shape
    font_size = max(11, min(24, h // 20))
    font = _font(font_size)
    pad, swatch, row = font_size // 2, font_size, font_size + font_size // 2
    measure = ImageDraw.Draw(blended)
    text_w = max((measure.textlength(text, font=font) for text, _ in entries), default=0)
    legend_w = int(pad * 3 + swatch + text_w + 0.5)
    legend_h = pad * 2 + row * len(entries)
    canvas = Image.new("RGB", (w + legend_w, max(h, legend_h)), (255, 255, 255))
    canvas.paste(blended, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, (text, colour) in enumerate(entries):
        y = pad + i * row
        box = (w + pad, y, w + pad + swatch - 1, y + swatch - 1)
        draw.rectangle(box, fill=colour, outline=(0, 0, 0))
        top, bottom = draw.textbbox((0, 0), text, font=font)[1::2]
        draw.text((w + 2 * pad + swatch, y + (swatch - top - bottom) // 2), text, fill=(0, 0, 0), font=font)
    return canvas


def save_overlay(
    path: str | os.PathLike,
    image_rgb_uint8: np.ndarray,
    label: np.ndarray,
    palette: np.ndarray,
    class_names: Sequence[str],
    alpha: float = 0.5,
    ignore_index: int = 255,
    *,
    background: int | None = 0,
    quality: int = 90,
) -> None:
    """Write :func:`overlay` as a JPEG atomically."""
    img = overlay(image_rgb_uint8, label, palette, class_names, alpha, ignore_index, background=background)
    with atomic_path(path) as tmp:
        img.save(tmp, format="JPEG", quality=quality)


def side_by_side(panels: Sequence[Image.Image], titles: Sequence[str], *, gap: int = 8) -> Image.Image:
    """The ``panels`` left to right on a white canvas, each under its title (e.g. ground truth | prediction)."""
    if len(panels) != len(titles) or not panels:
        raise ValueError(f"side_by_side needs one title per panel, got {len(panels)} panels and {len(titles)} titles.")
    font, title_h = _font(14), 20
    width = sum(p.width for p in panels) + gap * (len(panels) - 1)
    canvas = Image.new("RGB", (width, title_h + max(p.height for p in panels)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    x = 0
    for title, panel in zip(titles, panels):
        draw.text((x + 2, 2), title, fill=(0, 0, 0), font=font)
        canvas.paste(panel, (x, title_h))
        x += panel.width + gap
    return canvas
