"""Your own data: a folder of images and index masks.

Layout under ``root``::

    images/<name>.jpg|.jpeg|.png     # RGB (greyscale is converted)
    masks/<name>.png                 # single-channel PNG ('P' or 'L'): pixel value = class index,
                                     # ignore_index (default 255) = unlabelled
    classes.txt                      # optional: one class per line, 'name' or 'name r g b', class 0 first
    splits/train.txt, splits/val.txt # optional: one <name> (no extension) per line

Without ``splits/`` the split is deterministic: the images sorted by name, every 10th one
(the 1st, 11th, 21st, ...) goes to ``val`` and the rest to ``train``; ``all`` lists every image.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from segkit.data.base import SegmentationDataset, SkipMode
from segkit.data.classes import VOC_PALETTE, read_classes_file
from segkit.data.io import DatasetError, read_split_file

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
VAL_EVERY = 10  # without splits/: every VAL_EVERY-th image (by sorted name) is a val image


def default_split(names: list[str], split: str) -> list[str]:
    """The deterministic 90/10 split of ``names`` (sorted): every 10th name from the first is val."""
    ordered = sorted(names)
    if split == "all":
        return ordered
    if split == "val":
        return ordered[::VAL_EVERY]
    if split == "train":
        return [n for i, n in enumerate(ordered) if i % VAL_EVERY]
    raise DatasetError(f"Without a splits/ folder the splits are 'train', 'val' and 'all', got '{split}'.")


class FolderDataset(SegmentationDataset):
    """Images and masks in a folder (see the module docstring for the layout).

    Args:
        root: data folder.
        split: a name in ``splits/`` or, without that folder, ``train`` / ``val`` / ``all``.
        transform: joint image/mask transform.
        ignore_index: mask value of unlabelled pixels.
        skip_bad_samples: warn and skip bad samples instead of failing.
        skip_mode: ``replace`` (training) or ``drop`` (evaluation) a skipped sample;
            see :class:`~segkit.data.base.SegmentationDataset`.
        num_classes: number of classes when there is no ``classes.txt`` (must match it when there is).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        *,
        transform: Callable[..., dict[str, Any]] | None = None,
        ignore_index: int = 255,
        skip_bad_samples: bool = False,
        skip_mode: SkipMode = "replace",
        num_classes: int | None = None,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.image_dir, self.mask_dir = self.root / "images", self.root / "masks"
        for d in (self.image_dir, self.mask_dir):
            if not d.is_dir():
                raise DatasetError(
                    f"Folder data set: {d} not found. data.root ('{root}') must hold images/ (jpg/png) and "
                    "masks/ (<image name>.png holding class indices); see docs on own data.",
                    problem="missing data",
                )
        self._images: dict[str, Path] = {}
        for path in sorted(self.image_dir.iterdir()):
            if path.suffix.lower() not in IMAGE_EXTENSIONS or not path.is_file():
                continue
            if path.stem in self._images:
                raise DatasetError(
                    f"Two images share the name '{path.stem}': {self._images[path.stem]} and {path}; "
                    "names (without extension) must be unique since masks/<name>.png pairs with them."
                )
            self._images[path.stem] = path
        class_names, palette = self._classes(num_classes)
        splits_dir = self.root / "splits"
        if splits_dir.is_dir():
            list_path = splits_dir / f"{split}.txt"
            if not list_path.is_file():
                available = sorted(p.stem for p in splits_dir.glob("*.txt"))
                raise DatasetError(
                    f"Split list {list_path} not found. Available: {', '.join(available) or 'none'}.",
                    problem="missing split list",
                )
            ids, source = read_split_file(list_path), f"folder split '{split}' ({list_path})"
        else:
            if not self._images:
                raise DatasetError(
                    f"No images (*.jpg, *.jpeg, *.png) found in {self.image_dir}.", problem="missing data"
                )
            ids = default_split(list(self._images), split)
            source = f"folder split '{split}' (every {VAL_EVERY}th image of {self.image_dir} is val)"
        super().__init__(
            ids,
            class_names=class_names,
            palette=palette,
            transform=transform,
            ignore_index=ignore_index,
            skip_bad_samples=skip_bad_samples,
            skip_mode=skip_mode,
            source=source,
        )

    def _classes(self, num_classes: int | None) -> tuple[list[str], np.ndarray]:
        path = self.root / "classes.txt"
        if path.is_file():
            try:
                names, palette = read_classes_file(path)
            except ValueError as exc:
                raise DatasetError(str(exc), problem="bad classes.txt") from exc
            if num_classes is not None and num_classes != len(names):
                raise DatasetError(
                    f"{path} lists {len(names)} classes but the model is built for {num_classes}; "
                    f"set model.num_classes={len(names)}."
                )
        elif num_classes is not None:
            names, palette = [f"class_{i}" for i in range(num_classes)], None
        else:
            raise DatasetError(
                f"Folder data set: {path} not found and the number of classes is unknown. Write classes.txt "
                "(one class name per line, class 0 first) or set model.num_classes."
            )
        return names, palette if palette is not None else VOC_PALETTE[: len(names)]

    def image_path(self, sample_id: str) -> Path:
        return self._images.get(sample_id, self.image_dir / f"{sample_id}.jpg")

    def mask_path(self, sample_id: str) -> Path:
        return self.mask_dir / f"{sample_id}.png"
