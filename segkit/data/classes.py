"""Class names and colour palettes: PASCAL VOC's, and ``classes.txt`` files for other data sets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip


def voc_colormap(n: int = 256) -> np.ndarray:
    """The standard VOC colour map: bits of the label index interleaved into R, G, B.

    Returns:
        uint8 array [n, 3]; row ``i`` is the colour of label ``i`` (0 black, 255 cream).
    """
    palette = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette[i] = (r, g, b)
    return palette


VOC_PALETTE: np.ndarray = voc_colormap(256)
VOC_PALETTE.setflags(write=False)


def read_classes_file(path: str | os.PathLike) -> tuple[list[str], np.ndarray | None]:
    """Parse a ``classes.txt``: one class per line, ``name`` or ``name r g b``.

    Blank lines and lines starting with ``#`` are skipped. Colours must be given for all
    classes or for none.

    Returns:
        The class names and a uint8 palette [K, 3], or None when no colours are given.

    Raises:
        ValueError: a malformed line, naming the file and the line number.
    """
    path = Path(path)
    names: list[str] = []
    colours: list[tuple[int, int, int] | None] = []
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) == 1:
            names.append(parts[0])
            colours.append(None)
        elif len(parts) == 4 and all(p.isdigit() and int(p) <= 255 for p in parts[1:]):
            names.append(parts[0])
            colours.append((int(parts[1]), int(parts[2]), int(parts[3])))
        else:
            raise ValueError(
                f"{path}:{lineno}: expected 'name' or 'name r g b' (r, g, b in 0..255, no spaces in the "
                f"name), got {raw!r}."
            )
    if not names:
        raise ValueError(f"{path}: no class names found; write one class per line, class 0 first.")
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"{path}: duplicate class names {dupes}; every class needs a unique name.")
    given = [c is not None for c in colours]
    if any(given) and not all(given):
        missing = [names[i] for i, g in enumerate(given) if not g]
        raise ValueError(f"{path}: colours given for some classes but not for {missing}; give all or none.")
    palette = np.array(colours, dtype=np.uint8) if all(given) else None
    return names, palette


def format_classes_file(names: list[str] | tuple[str, ...], palette: np.ndarray | None = None) -> str:
    """Text of a ``classes.txt`` for ``names`` (with ``r g b`` columns when ``palette`` is given)."""
    lines = []
    for i, name in enumerate(names):
        if palette is None:
            lines.append(name)
        else:
            r, g, b = (int(v) for v in palette[i])
            lines.append(f"{name} {r} {g} {b}")
    return "\n".join(lines) + "\n"
