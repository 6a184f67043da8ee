"""ADE20K (the SceneParsing benchmark, ``ADEChallengeData2016``): 150 classes, and MLPerf's 31 classes + "other".

Layout under ``data.root`` (the unzipped ``ADEChallengeData2016.zip``)::

    ADEChallengeData2016/images/{training,validation}/ADE_{train,val}_<8 digits>.jpg
    ADEChallengeData2016/annotations/{training,validation}/ADE_{train,val}_<8 digits>.png

(``data.root`` may also be the ``ADEChallengeData2016`` folder itself.) A mask pixel holds the ADE20K label:
0 = "other" (no class of the 150), 1..150 = the classes of ``objectInfo150`` in order. There are no split lists:
the ids are the image files of the split folder, sorted.

Two readings of the labels:

- ``ade20k`` (150 classes): mmseg's ``reduce_zero_label``: label ``k`` -> class ``k - 1``, label 0 -> the ignore
  index, so the model has 150 outputs and "other" is neither trained nor scored. TF DeepLab keeps the labels as
  they are instead (``num_classes=151, ignore_label=0`` in ``datasets/data_generator.py``): 151 outputs whose
  output 0 is never trained; its classes 1..150 are segkit's 0..149, so the mIoU is the same.
- ``ade20k_top31`` (32 classes, MLPerf Mobile): labels 1..31 kept, every other label (0 and 32..150) -> 0
  "other"; MLPerf reports the mIoU over classes 1..31 (:data:`TOP31_SCORED`), which ``segkit test`` reports as
  ``miou_mlperf`` beside the mIoU over every class.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from segkit.data.base import SegmentationDataset, SkipMode
from segkit.data.io import DatasetError, read_mask
from segkit.data.sources import ADE20K_URL

__all__ = [
    "ADE20K_CLASSES",
    "ADE20K_DIR",
    "ADE20K_PALETTE",
    "ADE20K_SPLIT_SIZES",
    "ADE20K_TOP31_CLASSES",
    "ADE20K_TOP31_PALETTE",
    "ADE20K_URL",
    "ADE20KSegmentation",
    "TOP31_SCORED",
    "ade20k_dir",
]

ADE20K_DIR = "ADEChallengeData2016"
ADE20K_SPLITS = ("training", "validation")
ADE20K_SPLIT_SIZES = {"training": 20210, "validation": 2000}  # TF DeepLab datasets/data_generator.py
MAX_LABEL = 150  # labels on disk: 0 ("other") .. 150

# The 150 classes of objectInfo150 (the first name of each entry), label k = class k - 1, and mmseg's ADE20K palette.
ADE20K_CLASSES: tuple[str, ...] = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path",
    "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge", "bookcase",
    "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm",
    "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel",
    "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver", "airplane",
    "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster",
    "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool",
    "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank",
    "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture",
    "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
    "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)  # fmt: skip

ADE20K_PALETTE: np.ndarray = np.array([
    [120, 120, 120], [180, 120, 120], [6, 230, 230], [80, 50, 50], [4, 200, 3], [120, 120, 80], [140, 140, 140],
    [204, 5, 255], [230, 230, 230], [4, 250, 7], [224, 5, 255], [235, 255, 7], [150, 5, 61], [120, 120, 70],
    [8, 255, 51], [255, 6, 82], [143, 255, 140], [204, 255, 4], [255, 51, 7], [204, 70, 3], [0, 102, 200],
    [61, 230, 250], [255, 6, 51], [11, 102, 255], [255, 7, 71], [255, 9, 224], [9, 7, 230], [220, 220, 220],
    [255, 9, 92], [112, 9, 255], [8, 255, 214], [7, 255, 224], [255, 184, 6], [10, 255, 71], [255, 41, 10],
    [7, 255, 255], [224, 255, 8], [102, 8, 255], [255, 61, 6], [255, 194, 7], [255, 122, 8], [0, 255, 20],
    [255, 8, 41], [255, 5, 153], [6, 51, 255], [235, 12, 255], [160, 150, 20], [0, 163, 255], [140, 140, 140],
    [250, 10, 15], [20, 255, 0], [31, 255, 0], [255, 31, 0], [255, 224, 0], [153, 255, 0], [0, 0, 255],
    [255, 71, 0], [0, 235, 255], [0, 173, 255], [31, 0, 255], [11, 200, 200], [255, 82, 0], [0, 255, 245],
    [0, 61, 255], [0, 255, 112], [0, 255, 133], [255, 0, 0], [255, 163, 0], [255, 102, 0], [194, 255, 0],
    [0, 143, 255], [51, 255, 0], [0, 82, 255], [0, 255, 41], [0, 255, 173], [10, 0, 255], [173, 255, 0],
    [0, 255, 153], [255, 92, 0], [255, 0, 255], [255, 0, 245], [255, 0, 102], [255, 173, 0], [255, 0, 20],
    [255, 184, 184], [0, 31, 255], [0, 255, 61], [0, 71, 255], [255, 0, 204], [0, 255, 194], [0, 255, 82],
    [0, 10, 255], [0, 112, 255], [51, 0, 255], [0, 194, 255], [0, 122, 255], [0, 255, 163], [255, 153, 0],
    [0, 255, 10], [255, 112, 0], [143, 255, 0], [82, 0, 255], [163, 255, 0], [255, 235, 0], [8, 184, 170],
    [133, 0, 255], [0, 255, 92], [184, 0, 255], [255, 0, 31], [0, 184, 255], [0, 214, 255], [255, 0, 112],
    [92, 255, 0], [0, 224, 255], [112, 224, 255], [70, 184, 160], [163, 0, 255], [153, 0, 255], [71, 255, 0],
    [255, 0, 163], [255, 204, 0], [255, 0, 143], [0, 255, 235], [133, 255, 0], [255, 0, 235], [245, 0, 255],
    [255, 0, 122], [255, 245, 0], [10, 190, 212], [214, 255, 0], [0, 204, 255], [20, 0, 255], [255, 255, 0],
    [0, 153, 255], [0, 41, 255], [0, 255, 204], [41, 0, 255], [41, 255, 0], [173, 0, 255], [0, 245, 255],
    [71, 0, 255], [122, 0, 255], [0, 255, 184], [0, 92, 255], [184, 255, 0], [0, 133, 255], [255, 214, 0],
    [25, 194, 194], [102, 255, 0], [92, 0, 255],
], dtype=np.uint8)  # fmt: skip
ADE20K_PALETTE.setflags(write=False)

TOP31 = 31  # MLPerf keeps ADE20K labels 1..31
ADE20K_TOP31_CLASSES: tuple[str, ...] = ("other", *ADE20K_CLASSES[:TOP31])
ADE20K_TOP31_PALETTE: np.ndarray = np.concatenate([np.zeros((1, 3), np.uint8), ADE20K_PALETTE[:TOP31]])
ADE20K_TOP31_PALETTE.setflags(write=False)
TOP31_SCORED: tuple[int, ...] = tuple(range(1, TOP31 + 1))  # the classes MLPerf's mIoU averages over


def ade20k_dir(root: str | os.PathLike) -> Path:
    """``root/ADEChallengeData2016``, or ``root`` itself when it is that folder (holds ``images/``)."""
    root = Path(root)
    return root if (root / "images").is_dir() and not (root / ADE20K_DIR).is_dir() else root / ADE20K_DIR


def reduce_zero_label(label: np.ndarray, ignore_index: int) -> np.ndarray:
    """ADE20K labels 0..150 -> classes 0..149, label 0 ("other") -> ``ignore_index`` (mmseg's reduce_zero_label)."""
    out = label.astype(np.int16) - 1
    out[label == 0] = ignore_index
    return out.astype(np.uint8)


def top31_labels(label: np.ndarray) -> np.ndarray:
    """ADE20K labels 0..150 -> MLPerf's 32 classes: 1..31 kept, 0 and 32..150 -> 0 ("other")."""
    return np.where(label <= TOP31, label, 0).astype(np.uint8)


class ADE20KSegmentation(SegmentationDataset):
    """ADE20K's ``training`` or ``validation`` split (see the module docstring for the layout and the labels).

    Args:
        root: folder holding ``ADEChallengeData2016`` (or that folder).
        split: ``training`` or ``validation`` (``train`` and ``val`` are accepted for them).
        variant: ``"150"`` (150 classes, label 0 ignored) or ``"top31"`` (MLPerf's 31 classes + "other").
        transform, ignore_index, skip_bad_samples, skip_mode: see :class:`~segkit.data.base.SegmentationDataset`.

    Raises:
        DatasetError: the tree is missing, the split is unknown or its folder holds no images.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "training",
        *,
        variant: str = "150",
        transform: Callable[..., dict[str, Any]] | None = None,
        ignore_index: int = 255,
        skip_bad_samples: bool = False,
        skip_mode: SkipMode = "replace",
    ) -> None:
        if variant not in ("150", "top31"):
            raise ValueError(f"variant must be '150' or 'top31', got {variant!r}.")
        split = {"train": "training", "val": "validation"}.get(split, split)
        if split not in ADE20K_SPLITS:
            raise DatasetError(
                f"ADE20K has the splits {', '.join(ADE20K_SPLITS)} (or train, val), got '{split}'; set "
                "data.train_split=training and data.val_split=validation.",
                problem="missing split list",
            )
        self.root, self.split, self.variant = Path(root), split, variant
        base = ade20k_dir(root)
        self.image_dir = base / "images" / split
        self.mask_dir = base / "annotations" / split
        if not self.image_dir.is_dir():
            raise DatasetError(
                f"ADE20K image folder {self.image_dir} not found; data.root ('{root}') must hold {ADE20K_DIR}/ "
                f"from {ADE20K_URL} (unzip it there, or run `segkit prepare-data ade20k --root {root}` to check).",
                problem="missing data",
            )
        ids = sorted(p.stem for p in self.image_dir.glob("*.jpg"))
        if not ids:
            raise DatasetError(
                f"ADE20K image folder {self.image_dir} holds no .jpg images; re-extract {Path(ADE20K_URL).name}.",
                problem="missing data",
            )
        top31 = variant == "top31"
        super().__init__(
            ids,
            class_names=ADE20K_TOP31_CLASSES if top31 else ADE20K_CLASSES,
            palette=ADE20K_TOP31_PALETTE if top31 else ADE20K_PALETTE,
            transform=transform,
            ignore_index=ignore_index,
            skip_bad_samples=skip_bad_samples,
            skip_mode=skip_mode,
            source=f"ADE20K {'top31' if top31 else '150-class'} split '{split}' ({self.image_dir})",
        )
        self.miou_classes: tuple[int, ...] | None = TOP31_SCORED if top31 else None

    def image_path(self, sample_id: str) -> Path:
        return self.image_dir / f"{sample_id}.jpg"

    def mask_path(self, sample_id: str) -> Path:
        return self.mask_dir / f"{sample_id}.png"

    def missing_file(self, sample_id: str) -> DatasetError | None:
        if not self.image_path(sample_id).is_file():
            return DatasetError(f"missing image file {self.image_path(sample_id)}", problem="missing image")
        if not self.mask_path(sample_id).is_file():
            return DatasetError(
                f"missing mask file {self.mask_path(sample_id)} for image {self.image_path(sample_id)}: re-extract "
                f"annotations/{self.split}/ from {Path(ADE20K_URL).name}",
                problem="missing mask",
            )
        return None

    def load_mask(self, sample_id: str) -> np.ndarray:
        """The ADE20K labels (0..150) of ``sample_id`` mapped to this variant's classes.

        Raises:
            DatasetError: a label above 150 (no ADE20K class), naming the file and the values.
        """
        path = self.mask_path(sample_id)
        raw = read_mask(path)
        if raw.size and int(raw.max()) > MAX_LABEL:
            values = np.unique(raw[raw > MAX_LABEL])
            shown = ", ".join(str(v) for v in values[:10]) + (" ..." if len(values) > 10 else "")
            raise DatasetError(
                f"Mask {path} holds label values [{shown}] above {MAX_LABEL} in {int((raw > MAX_LABEL).sum())} "
                f"pixels; ADE20K masks hold 0 (other) .. {MAX_LABEL}. Re-extract the annotation from "
                f"{Path(ADE20K_URL).name}, or set data.skip_bad_samples=true to skip it.",
                problem="bad labels",
            )
        if self.variant == "top31":
            return top31_labels(raw)
        return reduce_zero_label(raw, self.ignore_index)
