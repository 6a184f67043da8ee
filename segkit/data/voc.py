"""PASCAL VOC 2012 segmentation, including the SBD-augmented ``train_aug`` split.

Layout under ``root``::

    VOCdevkit/VOC2012/JPEGImages/<id>.jpg
    VOCdevkit/VOC2012/SegmentationClass/<id>.png         # train / val / trainval masks
    VOCdevkit/VOC2012/SegmentationClassAug/<id>.png      # train_aug masks (segkit prepare-data sbd)
    VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val,trainval,train_aug}.txt
    VOCdevkit/VOC2012/classes.txt                        # optional: other class names / colours
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from segkit.data.base import SegmentationDataset, SkipMode
from segkit.data.classes import VOC_CLASSES, VOC_PALETTE, read_classes_file
from segkit.data.io import DatasetError, read_split_file
from segkit.data.sources import VOC_URL

VOC_SUBDIR = Path("VOCdevkit") / "VOC2012"
TRAIN_AUG = "train_aug"
# Sizes of the official lists (train_aug = VOC train + SBD train/val - VOC val).
VOC_SPLIT_SIZES: dict[str, int] = {"train": 1464, "val": 1449, "trainval": 2913, TRAIN_AUG: 10582}

_NO_DOWNLOAD_HINT = "To try segkit without any download: `segkit train --config demo_mnv2_os16` (synthetic data)."


def voc_dir(root: str | os.PathLike) -> Path:
    """``root/VOCdevkit/VOC2012``."""
    return Path(root) / VOC_SUBDIR


def mask_dirname(split: str) -> str:
    """Folder holding the masks of ``split``: ``SegmentationClassAug`` for train_aug, else ``SegmentationClass``."""
    return "SegmentationClassAug" if split == TRAIN_AUG else "SegmentationClass"


def split_file(root: str | os.PathLike, split: str) -> Path:
    """Path of the id list of ``split``."""
    return voc_dir(root) / "ImageSets" / "Segmentation" / f"{split}.txt"


def voc_not_found_error(root: str | os.PathLike) -> DatasetError:
    """The error for a missing VOC tree: where it was expected and how to get it."""
    return DatasetError(
        f"PASCAL VOC 2012 not found: expected {voc_dir(root)} holding JPEGImages/, SegmentationClass/ and "
        f"ImageSets/Segmentation/ (data.root is '{root}'). Get it with "
        f"`segkit prepare-data voc --download --root {root}` (about 2 GB), or by hand: download "
        f"{VOC_URL} and extract it into {root}. {_NO_DOWNLOAD_HINT}",
        problem="missing data",
    )


class VOCSegmentation(SegmentationDataset):
    """PASCAL VOC 2012 (or any tree with its layout, e.g. the synthetic set).

    Args:
        root: folder holding ``VOCdevkit/VOC2012``.
        split: ``train``, ``val``, ``trainval``, ``train_aug`` or any list in ImageSets/Segmentation.
        transform: joint image/mask transform (see :mod:`segkit.data.transforms`).
        ignore_index: label of pixels to ignore (VOC marks object boundaries with 255).
        skip_bad_samples: warn and skip bad samples instead of failing.
        skip_mode: ``replace`` (training) or ``drop`` (evaluation) a skipped sample;
            see :class:`~segkit.data.base.SegmentationDataset`.

    Class names and colours come from ``VOC2012/classes.txt`` when present, else the 21 VOC classes.
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
    ) -> None:
        self.root = Path(root)
        self.split = split
        base = voc_dir(root)
        if not (base / "JPEGImages").is_dir() or not (base / "ImageSets" / "Segmentation").is_dir():
            raise voc_not_found_error(root)
        list_path = split_file(root, split)
        if not list_path.is_file():
            raise self._missing_split_error(list_path)
        self.image_dir = base / "JPEGImages"
        self.mask_dir = base / mask_dirname(split)
        if not self.mask_dir.is_dir():
            hint = (
                f"run `segkit prepare-data sbd --download --root {root}` to build it"
                if split == TRAIN_AUG
                else "re-extract the VOC archive"
            )
            raise DatasetError(
                f"VOC mask folder for split '{split}' not found: {self.mask_dir}; {hint}.", problem="missing data"
            )
        class_names: tuple[str, ...] | list[str] = VOC_CLASSES
        palette: np.ndarray | None = VOC_PALETTE[: len(VOC_CLASSES)]
        classes_txt = base / "classes.txt"
        if classes_txt.is_file():
            try:
                class_names, palette = read_classes_file(classes_txt)
            except ValueError as exc:
                raise DatasetError(str(exc), problem="bad classes.txt") from exc
        super().__init__(
            read_split_file(list_path),
            class_names=class_names,
            palette=palette,
            transform=transform,
            ignore_index=ignore_index,
            skip_bad_samples=skip_bad_samples,
            skip_mode=skip_mode,
            source=f"VOC split '{split}' ({list_path})",
        )

    def image_path(self, sample_id: str) -> Path:
        return self.image_dir / f"{sample_id}.jpg"

    def mask_path(self, sample_id: str) -> Path:
        return self.mask_dir / f"{sample_id}.png"

    def _missing_split_error(self, list_path: Path) -> DatasetError:
        if self.split == TRAIN_AUG:
            return DatasetError(
                f"Split list {list_path} not found: the train_aug split (10,582 images) needs the SBD "
                f"annotations. Build it with the 'sbd' subcommand: `segkit prepare-data sbd --download "
                f"--root {self.root}` (or --sbd-dir PATH for an extracted SBD), or train on data.train_split=train. "
                f"{_NO_DOWNLOAD_HINT}",
                problem="missing split list",
            )
        available = sorted(p.stem for p in list_path.parent.glob("*.txt"))
        return DatasetError(
            f"Split list {list_path} not found for split '{self.split}'. Available splits: "
            f"{', '.join(available) or 'none'}.",
            problem="missing split list",
        )
