"""Tiny synthetic ADE20K and Cityscapes trees, in the real layouts and file naming, for tests and trials.

The pictures are those of the synthetic VOC set (:func:`segkit.data.synthetic.render_sample`: a class is a shape),
cropped to odd, non-square sizes, with each shape written as a label id the data set must map:

- ADE20K (``ADEChallengeData2016/images|annotations/{training,validation}/ADE_{train,val}_<8 digits>``): background
  -> 1 wall, circle -> 13 person, square -> 21 car, triangle -> 37 lamp, cross -> 150 flag, the ignore border ->
  0 "other" (so the 31-class variant sees 1, 13, 21 kept and 0, 37, 150 as "other").
- Cityscapes (``leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png`` and
  ``gtFine/.../*_gtFine_labelIds.png``): background -> 7 road, circle -> 24 person, square -> 26 car, triangle ->
  11 building, cross -> 33 bicycle, the ignore border -> 0 unlabeled, the bottom rows -> 1 ego vehicle.

``broken=True`` adds one sample per error path to the training split (a missing mask, a mask of the wrong size,
a label out of range; for Cityscapes also a city folder without images) and returns their paths.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from segkit.data.ade20k import ADE20K_DIR
from segkit.data.io import DatasetError
from segkit.data.synthetic import render_sample

__all__ = [
    "ADE20K_SHAPE_LABELS",
    "CITYSCAPES_SHAPE_LABELS",
    "generate_synthetic_ade20k",
    "generate_synthetic_cityscapes",
]

# label id on disk of: background, circle, square, triangle, cross, the ignore border (render_sample's 0..4, 255)
ADE20K_SHAPE_LABELS = (1, 13, 21, 37, 150, 0)
CITYSCAPES_SHAPE_LABELS = (7, 24, 26, 11, 33, 0)
EGO_VEHICLE = 1
SIZES = ((75, 101), (63, 97), (81, 121))  # (H, W): odd, not square
CITYSCAPES_SIZES = ((65, 129), (57, 113))  # about Cityscapes' 1:2
CITIES = {"train": ("aachen", "bremen"), "val": ("frankfurt",)}


def _sample(seed: list[int], size: tuple[int, int], labels: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """An image [H, W, 3] and its label ids [H, W] (``labels`` in place of render_sample's 0..4 and 255)."""
    h, w = size
    image, label = render_sample(np.random.default_rng(seed), max(h, w))
    lut = np.zeros(256, np.uint8)
    lut[:5] = labels[:5]
    lut[255] = labels[5]
    return image[:h, :w].copy(), lut[label[:h, :w]]


def _refuse_existing(path: Path) -> None:
    if path.exists():
        raise DatasetError(f"{path} exists; refusing to write a synthetic set over it. Pass an empty --root.")


def generate_synthetic_ade20k(
    root: str | os.PathLike, num_train: int = 6, num_val: int = 3, seed: int = 0, *, broken: bool = False
) -> dict[str, Path]:
    """Write a tiny ADE20K tree under ``root/ADEChallengeData2016``; returns ``{error path: file}`` when ``broken``.

    Raises:
        DatasetError: ``root/ADEChallengeData2016`` exists already.
    """
    base = Path(root) / ADE20K_DIR
    _refuse_existing(base)
    for code, (split, prefix, count) in enumerate((("training", "train", num_train), ("validation", "val", num_val))):
        images, masks = base / "images" / split, base / "annotations" / split
        images.mkdir(parents=True)
        masks.mkdir(parents=True)
        for i in range(count):
            name = f"ADE_{prefix}_{i + 1:08d}"
            image, label = _sample([seed, code, i], SIZES[i % len(SIZES)], ADE20K_SHAPE_LABELS)
            Image.fromarray(image).save(images / f"{name}.jpg", quality=95)
            Image.fromarray(label, mode="L").save(masks / f"{name}.png")
    if not broken:
        return {}
    images, masks = base / "images" / "training", base / "annotations" / "training"
    return _write_broken(images, masks, "ADE_train_9000000{}", ".jpg", ".png", ADE20K_SHAPE_LABELS, 200, seed)


def _write_broken(
    images: Path, masks: Path, pattern: str, image_suffix: str, mask_suffix: str, labels: tuple[int, ...],
    bad_label: int, seed: int,
) -> dict[str, Path]:  # fmt: skip
    """The three broken samples: a missing mask, a mask of the wrong size, a label out of range."""
    out: dict[str, Path] = {}
    for i, kind in enumerate(("missing mask", "wrong size", "label out of range")):
        name = pattern.format(i + 1)
        image, label = _sample([seed, 9, i], SIZES[0], labels)
        Image.fromarray(image).save(
            images / f"{name}{image_suffix}", **({"quality": 95} if image_suffix == ".jpg" else {})
        )
        mask_path = masks / f"{name}{mask_suffix}"
        if kind == "missing mask":
            out[kind] = mask_path
            continue
        if kind == "wrong size":
            label = label[:-4, :-6]
        else:
            label[:3, :3] = bad_label
        Image.fromarray(label, mode="L").save(mask_path)
        out[kind] = mask_path
    return out


def generate_synthetic_cityscapes(
    root: str | os.PathLike, num_train: int = 4, num_val: int = 2, seed: int = 0, *, broken: bool = False
) -> dict[str, Path]:
    """Write a tiny Cityscapes tree (``leftImg8bit/`` and ``gtFine/``) under ``root``; returns ``{error path: file}``
    when ``broken``.

    Raises:
        DatasetError: ``root/leftImg8bit`` or ``root/gtFine`` exists already.
    """
    root = Path(root)
    for folder in ("leftImg8bit", "gtFine"):
        _refuse_existing(root / folder)
    for code, (split, count) in enumerate((("train", num_train), ("val", num_val))):
        cities = CITIES[split]
        for i in range(count):
            city = cities[i % len(cities)]
            stem = f"{city}_{i:06d}_{19 + i:06d}"
            images, masks = root / "leftImg8bit" / split / city, root / "gtFine" / split / city
            images.mkdir(parents=True, exist_ok=True)
            masks.mkdir(parents=True, exist_ok=True)
            image, label = _sample(
                [seed, code, i], CITYSCAPES_SIZES[i % len(CITYSCAPES_SIZES)], CITYSCAPES_SHAPE_LABELS
            )
            label[-3:, :] = EGO_VEHICLE
            Image.fromarray(image).save(images / f"{stem}_leftImg8bit.png")
            Image.fromarray(label, mode="L").save(masks / f"{stem}_gtFine_labelIds.png")
    if not broken:
        return {}
    images, masks = root / "leftImg8bit" / "train" / "broken", root / "gtFine" / "train" / "broken"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    out = _write_broken(
        images, masks, "broken_000000_00000{}", "_leftImg8bit.png", "_gtFine_labelIds.png", CITYSCAPES_SHAPE_LABELS,
        40, seed,
    )  # fmt: skip
    empty = root / "leftImg8bit" / "train" / "emptycity"
    empty.mkdir()
    out["empty city folder"] = empty
    return out
