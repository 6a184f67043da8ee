"""A small synthetic data set in the VOC layout, to try segkit without downloading anything.

Every image holds 2-4 objects on a textured background; an object's class is its SHAPE (circle,
square, triangle, cross), never its colour: colours and textures are drawn independently of the class,
so a model has to learn shapes. Objects span 20-45 % of the image side, may overlap, and carry a
one-pixel ignore border like VOC's boundary annotation (255 on disk; :class:`SyntheticVOC` reads it
as its ``ignore_index``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from segkit.config import ConfigError
from segkit.data.base import SkipMode
from segkit.data.classes import VOC_PALETTE, format_classes_file
from segkit.data.io import DatasetError, label_image
from segkit.data.voc import VOC_SUBDIR, VOCSegmentation

SYNTHETIC_CLASSES: tuple[str, ...] = ("background", "circle", "square", "triangle", "cross")
SYNTHETIC_PALETTE: np.ndarray = VOC_PALETTE[: len(SYNTHETIC_CLASSES)].copy()
GENERATOR_VERSION = 1  # bump when the rendering changes, so caches regenerate
MANIFEST = "synthetic_manifest.json"  # inside root/VOCdevkit
IGNORE = 255


def _low_freq_noise(rng: np.random.Generator, size: int, cells: int, channels: int) -> np.ndarray:
    """Smooth random field [size, size, channels] in 0..1: a coarse random grid resized bicubically."""
    grid = (rng.random((cells, cells, channels)) * 255).astype(np.uint8)
    img = Image.fromarray(grid if channels == 3 else grid[..., 0]).resize((size, size), Image.BICUBIC)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return arr if channels == 3 else arr[..., None]


def _texture(rng: np.random.Generator, size: int, colour: np.ndarray) -> np.ndarray:
    """A [size, size, 3] float texture around ``colour``: flat, stripes or blotches (moderate contrast)."""
    kind = rng.integers(3)
    colour = colour.astype(np.float32)
    second = np.clip(colour + rng.uniform(-70, 70, 3), 0, 255).astype(np.float32)
    if kind == 0:
        return np.broadcast_to(colour, (size, size, 3))
    if kind == 1:
        theta, period = rng.uniform(0, math.pi), rng.uniform(5, 14)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        a = (np.sin(2 * math.pi * (xx * math.cos(theta) + yy * math.sin(theta)) / period) > 0)[..., None]
        return np.where(a, colour, second)
    a = _low_freq_noise(rng, size, int(rng.integers(4, 9)), 1)
    return colour * (1 - a) + second * a


def _polygon(cx: float, cy: float, points: np.ndarray, angle: float) -> list[tuple[float, float]]:
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in points]


def _shape_mask(rng: np.random.Generator, cls: int, size: int) -> np.ndarray:
    """Boolean mask [size, size] of one object of class ``cls`` (1 circle, 2 square, 3 triangle, 4 cross)."""
    d = rng.uniform(0.20, 0.45) * size  # object extent
    r = d / 2
    cx, cy = rng.uniform(r, size - r), rng.uniform(r, size - r)
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    if cls == 1:
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=1)
    elif cls == 2:
        h = r * 0.85  # a square of side 1.7 r, slightly rotated
        pts = np.array([(-h, -h), (h, -h), (h, h), (-h, h)])
        draw.polygon(_polygon(cx, cy, pts, rng.uniform(-0.3, 0.3)), fill=1)
    elif cls == 3:
        pts = np.array([(r * math.cos(a), r * math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)])
        draw.polygon(_polygon(cx, cy, pts, rng.uniform(0, 2 * math.pi)), fill=1)
    elif cls == 4:
        w = r / 3  # arm half-width
        pts = np.array([(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w), (w, r), (-w, r), (-w, w),
                        (-r, w), (-r, -w), (-w, -w)])  # fmt: skip
        draw.polygon(_polygon(cx, cy, pts, rng.uniform(-0.3, 0.3)), fill=1)
    else:  # internal invariant
        raise AssertionError(cls)
    return np.asarray(canvas, dtype=bool)


def render_sample(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic image (RGB uint8 [size, size, 3]) and its mask (uint8 [size, size], 0..4 and 255)."""
    base = rng.uniform(40, 215, 3)
    image = base.astype(np.float32) + (_low_freq_noise(rng, size, int(rng.integers(3, 7)), 3) - 0.5) * np.float32(
        rng.uniform(40, 110)
    )
    label = np.zeros((size, size), dtype=np.uint8)
    for _ in range(int(rng.integers(2, 5))):
        cls = int(rng.integers(1, len(SYNTHETIC_CLASSES)))
        mask = _shape_mask(rng, cls, size)
        colour = rng.uniform(0, 255, 3)
        for _ in range(10):  # keep a visible contrast to the background
            if np.abs(colour - base).sum() > 120:
                break
            colour = rng.uniform(0, 255, 3)
        image[mask] = _texture(rng, size, colour)[mask]
        label[mask] = cls
    # VOC-like ignore boundary: object pixels with a 4-neighbour of another label
    edge = np.zeros_like(label, dtype=bool)
    edge[1:, :] |= label[1:, :] != label[:-1, :]
    edge[:-1, :] |= label[:-1, :] != label[1:, :]
    edge[:, 1:] |= label[:, 1:] != label[:, :-1]
    edge[:, :-1] |= label[:, :-1] != label[:, 1:]
    label[edge & (label > 0)] = IGNORE
    image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(rng.uniform(3, 12))
    return np.clip(image + 0.5, 0, 255).astype(np.uint8), label


def _manifest(num_train: int, num_val: int, image_size: int, seed: int) -> dict[str, Any]:
    return {"version": GENERATOR_VERSION, "num_train": num_train, "num_val": num_val,
            "image_size": image_size, "seed": seed}  # fmt: skip


def _write_tree(out: Path, num_train: int, num_val: int, image_size: int, seed: int, progress: bool = True) -> None:
    from tqdm import tqdm

    base = out / VOC_SUBDIR
    jpg, png, lists = base / "JPEGImages", base / "SegmentationClass", base / "ImageSets" / "Segmentation"
    for d in (jpg, png, lists):
        d.mkdir(parents=True)
    bar = tqdm(total=num_train + num_val, desc="synthetic images", unit="img", leave=False, disable=not progress)
    for split_code, (split, count) in enumerate((("train", num_train), ("val", num_val))):
        ids = []
        for i in range(count):
            bar.update()
            sample_id = f"{split}_{i:05d}"
            image, label = render_sample(np.random.default_rng([seed, split_code, i]), image_size)
            Image.fromarray(image).save(jpg / f"{sample_id}.jpg", quality=95)
            label_image(label, SYNTHETIC_PALETTE).save(png / f"{sample_id}.png")
            ids.append(sample_id)
        (lists / f"{split}.txt").write_text("\n".join(ids) + "\n")
    bar.close()
    (base / "classes.txt").write_text(format_classes_file(SYNTHETIC_CLASSES, SYNTHETIC_PALETTE))
    (out / "VOCdevkit" / MANIFEST).write_text(json.dumps(_manifest(num_train, num_val, image_size, seed)))


def read_manifest(root: str | os.PathLike) -> dict[str, Any] | None:
    """The parameters of the synthetic set under ``root`` (None when there is none)."""
    path = Path(root) / "VOCdevkit" / MANIFEST
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def generate_synthetic_voc(
    root: str | os.PathLike,
    num_train: int = 300,
    num_val: int = 60,
    image_size: int = 160,
    seed: int = 0,
    *,
    progress: bool = True,
) -> Path:
    """Write the synthetic set as ``root/VOCdevkit/VOC2012`` (train and val splits, 5 classes).

    Idempotent: a manifest records the parameters; an existing set with the same parameters is kept,
    a different one replaced. Generating says so on stderr, with a bar (~20 s for the default 360 images on a
    2-core CPU), unless not ``progress``. The tree is generated in a temporary folder and renamed into place, so
    an interrupted run never leaves a partial set (and concurrent processes agree).

    Returns:
        ``root``, ready for :class:`~segkit.data.voc.VOCSegmentation`.

    Raises:
        ConfigError: a count below 1 or an image side below 32.
        DatasetError: ``root/VOCdevkit`` exists and is not a synthetic set.
    """
    for name, value, low in (("num_train", num_train, 1), ("num_val", num_val, 1), ("image_size", image_size, 32)):
        if value < low:
            raise ConfigError(
                f"synthetic {name} must be >= {low}, got {value} (data.synthetic_{name}, or prepare-data synthetic "
                f"--{name.replace('_', '-')})."
            )
    root = Path(root)
    wanted = _manifest(num_train, num_val, image_size, seed)
    if read_manifest(root) == wanted:
        return root
    target = root / "VOCdevkit"
    if target.exists() and read_manifest(root) is None:
        raise DatasetError(
            f"{target} exists and is not a synthetic set (no {MANIFEST}); refusing to overwrite it. "
            "Point data.root for the synthetic data set at another folder."
        )
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".synthetic-", dir=root))
    if progress:
        print(f"generating the synthetic set at {root} (once)...", file=sys.stderr, flush=True)
    try:
        _write_tree(tmp, num_train, num_val, image_size, seed, progress)
        if target.exists():  # a set with other parameters: move it aside, then delete it
            old = Path(tempfile.mkdtemp(prefix=".synthetic-old-", dir=root))
            try:
                os.replace(target, old / "VOCdevkit")
            except FileNotFoundError:  # another process moved it first
                pass
        try:
            os.replace(tmp / "VOCdevkit", target)
        except OSError:  # another process renamed its copy first
            if read_manifest(root) != wanted:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        for old in root.glob(".synthetic-old-*"):
            shutil.rmtree(old, ignore_errors=True)
    return root


class SyntheticVOC(VOCSegmentation):
    """The synthetic set, generated into ``root`` on first use and read as VOC.

    Args:
        root: cache folder (gets ``VOCdevkit/``).
        split: ``train`` or ``val``.
        num_train, num_val, image_size, seed: generation parameters (a change regenerates the set).
        transform: joint image/mask transform.
        ignore_index: label of the objects' ignore border when read (stored as 255, like VOC); any
            value >= 5.
        skip_bad_samples: warn and skip bad samples instead of failing.
        skip_mode: ``replace`` (training) or ``drop`` (evaluation) a skipped sample.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        *,
        num_train: int = 300,
        num_val: int = 60,
        image_size: int = 160,
        seed: int = 0,
        transform: Callable[..., dict[str, Any]] | None = None,
        ignore_index: int = 255,
        skip_bad_samples: bool = False,
        skip_mode: SkipMode = "replace",
    ) -> None:
        if split not in ("train", "val"):
            raise DatasetError(f"The synthetic data set has splits 'train' and 'val', got '{split}'.")
        generate_synthetic_voc(root, num_train, num_val, image_size, seed)
        super().__init__(root, split, transform=transform, ignore_index=ignore_index,
                         skip_bad_samples=skip_bad_samples, skip_mode=skip_mode)  # fmt: skip

    def load_mask(self, sample_id: str) -> np.ndarray:
        """The stored mask, its ignore border (255 on disk, as in VOC) relabelled to ``ignore_index``."""
        mask = super().load_mask(sample_id)
        if self.ignore_index != IGNORE:
            mask[mask == IGNORE] = self.ignore_index
        return mask
