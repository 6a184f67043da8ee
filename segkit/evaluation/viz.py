"""Label maps as images: palette PNGs, colour maps, overlays with a class legend, and legend images.

:func:`class_palette` and :func:`legend_names` pick the colours and names of a model's classes for every picture
segkit draws: its own, else VOC's colours, and VOC's names for 21 classes. Everything an overlay adds scales with the
image's shorter side (legend text and swatches, contour thickness), so a 4000 x 3000 photo reads like a 500 x 375 one
at the same viewing size. (Training curves are plotted elsewhere; this module only draws masks.)
"""

from __future__ import annotations

import math
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
from segkit.evaluation.style import CONTOURS, DEFAULT_ALPHA, DEFAULT_CONTOUR, LEGEND_FONT_SIZE
from segkit.utils.io import atomic_path

__all__ = [
    "CONTOURS",
    "DEFAULT_ALPHA",
    "DEFAULT_CONTOUR",
    "class_palette",
    "colorize",
    "contour_mask",
    "legend_font_size",
    "legend_image",
    "legend_names",
    "overlay",
    "save_legend",
    "save_overlay",
    "side_by_side",
]

_ROWS = 256  # rows blended at a time by overlay()


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


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)  # scalable with FreeType (Pillow >= 10.1)
    except (TypeError, OSError):
        return ImageFont.load_default()


def legend_font_size(height: int, width: int) -> int:
    """The legend's text height for an image of ``height`` x ``width``: 2.5% of the shorter side, at least 12 px
    (a 500 x 375 VOC photo: 12 px; a 4000 x 3000 photo: 75 px, as large relative to the picture)."""
    return max(12, round(0.025 * min(height, width)))


def contour_thickness(height: int, width: int) -> int:
    """Contour line width for an image of ``height`` x ``width``: 0.4% of the shorter side, at least 1 px."""
    return max(1, round(0.004 * min(height, width)))


def _grow(mask: np.ndarray, radius: int) -> np.ndarray:
    """``mask`` dilated by a (2 radius + 1) square, separably with running sums (linear time, any radius)."""
    if radius < 1:
        return mask
    out = mask
    for axis in (0, 1):
        n = out.shape[axis]
        csum = np.cumsum(out, axis=axis, dtype=np.int32)
        csum = np.concatenate([np.zeros_like(csum.take([0], axis=axis)), csum], axis=axis)
        hi = np.minimum(np.arange(n) + radius + 1, n)
        lo = np.maximum(np.arange(n) - radius, 0)
        out = (csum.take(hi, axis=axis) - csum.take(lo, axis=axis)) > 0
    return out


def contour_mask(label: np.ndarray, thickness: int = 1) -> np.ndarray:
    """Boolean [H, W]: the pixels within ``thickness`` of a boundary between two labels (both sides)."""
    label = _check_label(label)
    edge = np.zeros(label.shape, bool)
    dy = label[1:] != label[:-1]
    dx = label[:, 1:] != label[:, :-1]
    edge[1:] |= dy
    edge[:-1] |= dy
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    return _grow(edge, (thickness - 1) // 2)


def _legend_layout(
    entries: Sequence[tuple[str, tuple[int, int, int]]], font_size: int, max_height: int | None, columns: int | None
) -> tuple[ImageFont.ImageFont | ImageFont.FreeTypeFont, int, int, int, int, int]:
    """(font, pad, row, column width, columns, rows per column) of a legend whose columns fit ``max_height``."""
    font = _font(font_size)
    pad, row = max(2, font_size // 2), font_size + max(2, font_size // 2)
    if columns is None:
        fit = max(1, ((max_height or 0) - 2 * pad) // row) if max_height else len(entries) or 1
        columns = max(1, math.ceil(len(entries) / fit))
    per_column = max(1, math.ceil(len(entries) / columns))
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_w = max((measure.textlength(text, font=font) for text, _ in entries), default=0)
    column_w = int(pad * 2 + font_size + text_w + 0.5)
    return font, pad, row, column_w, columns, per_column


def _draw_legend(
    entries: Sequence[tuple[str, tuple[int, int, int]]],
    font_size: int,
    *,
    max_height: int | None = None,
    columns: int | None = None,
) -> Image.Image:
    """White panel with a swatch and a name per entry, in columns of at most ``max_height`` pixels."""
    font, pad, row, column_w, columns, per_column = _legend_layout(entries, font_size, max_height, columns)
    width = pad + columns * column_w
    height = 2 * pad + row * per_column - (row - font_size)
    panel = Image.new("RGB", (max(width, 1), max(height, 1)), (255, 255, 255))
    draw = ImageDraw.Draw(panel)
    outline = max(1, font_size // 16)
    for i, (text, colour) in enumerate(entries):
        x, y = pad + (i // per_column) * column_w, pad + (i % per_column) * row
        draw.rectangle((x, y, x + font_size - 1, y + font_size - 1), fill=colour, outline=(0, 0, 0), width=outline)
        top, bottom = draw.textbbox((0, 0), text, font=font)[1::2]
        draw.text((x + font_size + pad, y + (font_size - top - bottom) // 2), text, fill=(0, 0, 0), font=font)
    return panel


def _entries(
    values: Sequence[int], palette: np.ndarray, class_names: Sequence[str], ignore_index: int
) -> list[tuple[str, tuple[int, int, int]]]:
    colours = _palette256(palette)
    out = []
    for v in values:
        name = "ignore" if v == ignore_index else (class_names[v] if v < len(class_names) else f"class {v}")
        out.append((f"{v}: {name}", tuple(int(c) for c in colours[v])))
    return out


def overlay(
    image_rgb_uint8: np.ndarray,
    label: np.ndarray,
    palette: np.ndarray,
    class_names: Sequence[str],
    alpha: float = DEFAULT_ALPHA,
    ignore_index: int = 255,
    *,
    background: int | None = 0,
    contour: str = "none",
) -> Image.Image:
    """Blend class colours over an image, draw the class boundaries, and add a legend of the classes present.

    The legend sits on the right, its text and swatches :func:`legend_font_size` (proportional to the image's
    shorter side), in as many columns as the image's height needs.

    Args:
        image_rgb_uint8: [H, W, 3] uint8 image.
        label: [H, W] class indices (prediction or ground truth).
        palette: [K, 3] class colours.
        class_names: one name per class.
        alpha: weight of the class colour (:data:`DEFAULT_ALPHA`).
        ignore_index: pixels with this label are left as they are and listed as "ignore".
        background: class left unblended (VOC background is black); None blends every class.
        contour: ``"class"``: boundaries between labels drawn opaque in the colour of the class on each side
            (background and ignore sides left as they are), ``"white"``: in white on both sides, ``"none"``;
            :func:`contour_thickness` wide.

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
    if contour not in CONTOURS:
        raise ValueError(f"contour must be one of {', '.join(CONTOURS)}, got {contour!r}.")
    h, w = label.shape
    colours256 = _palette256(palette)
    edges = contour_mask(label, contour_thickness(h, w)) if contour != "none" else None
    blended_rgb = np.empty_like(image)
    for top in range(0, h, _ROWS):  # a band of rows at a time: no float copies of a large image
        rows = slice(top, top + _ROWS)
        lab = label[rows]
        colours = colours256[lab].astype(np.float32)
        blend = lab != ignore_index
        if background is not None:
            blend &= lab != background
        out = image[rows].astype(np.float32)
        out[blend] = (1 - alpha) * out[blend] + alpha * colours[blend]
        if edges is not None:
            edge = edges[rows]
            if contour == "white":
                out[edge] = 255.0
            else:
                edge &= blend  # the class side of each boundary, in its own colour
                out[edge] = colours[edge]
        blended_rgb[rows] = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    del edges
    blended = Image.fromarray(blended_rgb)
    del blended_rgb

    entries = _entries([int(v) for v in np.unique(label)], palette, class_names, ignore_index)
    legend = _draw_legend(entries, legend_font_size(h, w), max_height=h)
    canvas = Image.new("RGB", (w + legend.width, max(h, legend.height)), (255, 255, 255))
    canvas.paste(blended, (0, 0))
    canvas.paste(legend, (w, 0))
    return canvas


def save_overlay(
    path: str | os.PathLike,
    image_rgb_uint8: np.ndarray,
    label: np.ndarray,
    palette: np.ndarray,
    class_names: Sequence[str],
    alpha: float = DEFAULT_ALPHA,
    ignore_index: int = 255,
    *,
    background: int | None = 0,
    contour: str = "none",
    quality: int = 90,
) -> None:
    """Write :func:`overlay` as a JPEG atomically."""
    img = overlay(
        image_rgb_uint8, label, palette, class_names, alpha, ignore_index, background=background, contour=contour
    )
    with atomic_path(path) as tmp:
        img.save(tmp, format="JPEG", quality=quality)


def legend_image(
    palette: np.ndarray, class_names: Sequence[str], *, font_size: int = LEGEND_FONT_SIZE, columns: int | None = None
) -> Image.Image:
    """A legend of every class (index, swatch, name), e.g. a model's, with ``font_size`` text: one column up to 12
    classes, else as many columns as make the picture about 4:3 (VOC's 21: 2, ADE20K's 150: about 5)."""
    n = len(class_names)
    if n == 0:
        raise ValueError("legend_image needs at least one class name.")
    palette = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    entries = _entries(range(n), palette, class_names, -1)
    if columns is None:
        _, _, row, column_w, _, _ = _legend_layout(entries, font_size, None, 1)
        columns = 1 if n <= 12 else max(1, round(math.sqrt(n * row / (0.75 * column_w))))
    return _draw_legend(entries, font_size, columns=columns)


def save_legend(path: str | os.PathLike, palette: np.ndarray, class_names: Sequence[str], **options: Any) -> None:
    """Write :func:`legend_image` as a PNG atomically (``options``: its ``font_size``, ``columns``)."""
    img = legend_image(palette, class_names, **options)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


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
