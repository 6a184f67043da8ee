"""Cityscapes: 19 train ids from the 34 label ids, fine (``gtFine``) or coarse (``gtCoarse``) annotations.

Layout under ``data.root`` (the unzipped ``leftImg8bit_trainvaltest.zip`` and ``gtFine_trainvaltest.zip``; the
data set needs a registration at https://www.cityscapes-dataset.com, so segkit never downloads it)::

    leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    gtFine/{train,val,test}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png
    gtFine/.../<city>_<seq>_<frame>_gtFine_labelTrainIds.png    # optional: written by `prepare-data cityscapes`
    leftImg8bit/train_extra/<city>/..., gtCoarse/train_extra/<city>/..._gtCoarse_labelIds.png   # the coarse set

A sample id is ``<city>/<city>_<seq>_<frame>``; the ids of a split are its image files, sorted. A mask is read
from ``*_labelTrainIds.png`` when it exists (values 0..18 and 255, read as they are), else from
``*_labelIds.png`` mapped through :data:`LABEL_TO_TRAIN_ID` (cityscapesScripts' ``labels.py`` table: 19 classes,
every other id -> the ignore index). The split ``train_extra`` reads ``gtCoarse``; the others ``gtFine``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from segkit.data.base import SegmentationDataset, SkipMode
from segkit.data.io import DatasetError, read_mask, save_label_png
from segkit.data.sources import CITYSCAPES_URL

__all__ = [
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_LABELS",
    "CITYSCAPES_PALETTE",
    "CITYSCAPES_SPLIT_SIZES",
    "CITYSCAPES_URL",
    "LABEL_TO_TRAIN_ID",
    "CityscapesSegmentation",
    "check_cityscapes_tree",
    "label_ids_to_train_ids",
    "write_train_ids",
]

CITYSCAPES_SPLITS = ("train", "val", "test", "train_extra")
CITYSCAPES_SPLIT_SIZES = {"train": 2975, "val": 500, "test": 1525, "train_extra": 19998}
ARCHIVES = {  # what to download for each folder
    ("leftImg8bit", "train"): "leftImg8bit_trainvaltest.zip",
    ("leftImg8bit", "val"): "leftImg8bit_trainvaltest.zip",
    ("leftImg8bit", "test"): "leftImg8bit_trainvaltest.zip",
    ("leftImg8bit", "train_extra"): "leftImg8bit_trainextra.zip",
    ("gtFine", "train"): "gtFine_trainvaltest.zip",
    ("gtFine", "val"): "gtFine_trainvaltest.zip",
    ("gtFine", "test"): "gtFine_trainvaltest.zip",
    ("gtCoarse", "train_extra"): "gtCoarse.zip",
}
IMAGE_SUFFIX = "_leftImg8bit.png"
IGNORE = 255

# cityscapesScripts helpers/labels.py: (label id, name, train id or None, colour). Train ids 0..18 are the 19
# evaluated classes; the rest (and license plate, id -1, never drawn into label-id images) are ignored.
CITYSCAPES_LABELS: tuple[tuple[int, str, int | None, tuple[int, int, int]], ...] = (
    (0, "unlabeled", None, (0, 0, 0)), (1, "ego vehicle", None, (0, 0, 0)),
    (2, "rectification border", None, (0, 0, 0)), (3, "out of roi", None, (0, 0, 0)),
    (4, "static", None, (0, 0, 0)), (5, "dynamic", None, (111, 74, 0)), (6, "ground", None, (81, 0, 81)),
    (7, "road", 0, (128, 64, 128)), (8, "sidewalk", 1, (244, 35, 232)), (9, "parking", None, (250, 170, 160)),
    (10, "rail track", None, (230, 150, 140)), (11, "building", 2, (70, 70, 70)), (12, "wall", 3, (102, 102, 156)),
    (13, "fence", 4, (190, 153, 153)), (14, "guard rail", None, (180, 165, 180)),
    (15, "bridge", None, (150, 100, 100)), (16, "tunnel", None, (150, 120, 90)), (17, "pole", 5, (153, 153, 153)),
    (18, "polegroup", None, (153, 153, 153)), (19, "traffic light", 6, (250, 170, 30)),
    (20, "traffic sign", 7, (220, 220, 0)), (21, "vegetation", 8, (107, 142, 35)), (22, "terrain", 9, (152, 251, 152)),
    (23, "sky", 10, (70, 130, 180)), (24, "person", 11, (220, 20, 60)), (25, "rider", 12, (255, 0, 0)),
    (26, "car", 13, (0, 0, 142)), (27, "truck", 14, (0, 0, 70)), (28, "bus", 15, (0, 60, 100)),
    (29, "caravan", None, (0, 0, 90)), (30, "trailer", None, (0, 0, 110)), (31, "train", 16, (0, 80, 100)),
    (32, "motorcycle", 17, (0, 0, 230)), (33, "bicycle", 18, (119, 11, 32)),
)  # fmt: skip
MAX_LABEL_ID = len(CITYSCAPES_LABELS) - 1  # 33

_TRAIN = sorted((t, name, colour) for _, name, t, colour in CITYSCAPES_LABELS if t is not None)
CITYSCAPES_CLASSES: tuple[str, ...] = tuple(name for _, name, _ in _TRAIN)
CITYSCAPES_PALETTE: np.ndarray = np.array([colour for _, _, colour in _TRAIN], dtype=np.uint8)
CITYSCAPES_PALETTE.setflags(write=False)
LABEL_TO_TRAIN_ID: np.ndarray = np.array([IGNORE if t is None else t for _, _, t, _ in CITYSCAPES_LABELS], np.uint8)
LABEL_TO_TRAIN_ID.setflags(write=False)


def annotation_folder(split: str) -> str:
    """``gtCoarse`` for ``train_extra`` (only coarse annotations exist for it), else ``gtFine``."""
    return "gtCoarse" if split == "train_extra" else "gtFine"


def label_ids_to_train_ids(label_ids: np.ndarray, path: str | os.PathLike, ignore_index: int = IGNORE) -> np.ndarray:
    """Cityscapes label ids (0..33) -> train ids (0..18, every other id -> ``ignore_index``).

    Raises:
        DatasetError: an id above 33 (no Cityscapes label), naming ``path`` and the values.
    """
    if label_ids.size and int(label_ids.max()) > MAX_LABEL_ID:
        values = np.unique(label_ids[label_ids > MAX_LABEL_ID])
        shown = ", ".join(str(v) for v in values[:10]) + (" ..." if len(values) > 10 else "")
        raise DatasetError(
            f"Mask {path} holds label ids [{shown}] above {MAX_LABEL_ID} in {int((label_ids > MAX_LABEL_ID).sum())} "
            f"pixels; Cityscapes *_labelIds.png hold 0..{MAX_LABEL_ID}. Re-extract it from its archive, or set "
            "data.skip_bad_samples=true to skip it.",
            problem="bad labels",
        )
    lut = LABEL_TO_TRAIN_ID.copy()
    lut[lut == IGNORE] = ignore_index
    return lut[label_ids]


class CityscapesSegmentation(SegmentationDataset):
    """A Cityscapes split: ``train``, ``val``, ``test`` (fine) or ``train_extra`` (coarse); see the module docstring.

    Args:
        root: folder holding ``leftImg8bit/`` and ``gtFine/`` (and ``gtCoarse/`` for ``train_extra``).
        split: the split folder's name.
        transform, ignore_index, skip_bad_samples, skip_mode: see :class:`~segkit.data.base.SegmentationDataset`.

    Raises:
        DatasetError: an unknown split, a missing folder, a split without images, or (without
            ``skip_bad_samples``) a city folder without images.
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
        if split not in CITYSCAPES_SPLITS:
            raise DatasetError(
                f"Cityscapes has the splits {', '.join(CITYSCAPES_SPLITS)}, got '{split}'; set data.train_split / "
                "data.val_split to one of them.",
                problem="missing split list",
            )
        self.root, self.split = Path(root), split
        self.image_dir = self.root / "leftImg8bit" / split
        self.gt = annotation_folder(split)
        self.mask_dir = self.root / self.gt / split
        for folder, kind in ((self.image_dir, "leftImg8bit"), (self.mask_dir, self.gt)):
            if not folder.is_dir():
                raise DatasetError(
                    f"Cityscapes folder {folder} not found; unzip {ARCHIVES[(kind, split)]} (from {CITYSCAPES_URL}, "
                    f"after registering) into {self.root}, then run `segkit prepare-data cityscapes --root "
                    f"{self.root}` to check the tree.",
                    problem="missing data",
                )
        ids: list[str] = []
        empty: list[DatasetError] = []
        for city in sorted(p for p in self.image_dir.iterdir() if p.is_dir()):
            found = sorted(p.name[: -len(IMAGE_SUFFIX)] for p in city.glob(f"*{IMAGE_SUFFIX}"))
            if not found:
                empty.append(
                    DatasetError(
                        f"Cityscapes city folder {city} holds no *{IMAGE_SUFFIX} images; re-extract "
                        f"{ARCHIVES[('leftImg8bit', split)]}, or delete the empty folder.",
                        problem="empty city folder",
                    )
                )
            ids += [f"{city.name}/{stem}" for stem in found]
        if empty and not skip_bad_samples:
            raise empty[0]
        if not ids:
            raise DatasetError(
                f"Cityscapes folder {self.image_dir} holds no <city>/*{IMAGE_SUFFIX} images; unzip "
                f"{ARCHIVES[('leftImg8bit', split)]} into {self.root}.",
                problem="missing data",
            )
        super().__init__(
            ids,
            class_names=CITYSCAPES_CLASSES,
            palette=CITYSCAPES_PALETTE,
            transform=transform,
            ignore_index=ignore_index,
            skip_bad_samples=skip_bad_samples,
            skip_mode=skip_mode,
            source=f"Cityscapes split '{split}' ({self.image_dir})",
        )
        self.build_problems += empty

    def image_path(self, sample_id: str) -> Path:
        return self.image_dir / f"{sample_id}{IMAGE_SUFFIX}"

    def label_ids_path(self, sample_id: str) -> Path:
        """The ``*_labelIds.png`` of ``sample_id`` (the annotation as released)."""
        return self.mask_dir / f"{sample_id}_{self.gt}_labelIds.png"

    def train_ids_path(self, sample_id: str) -> Path:
        """The ``*_labelTrainIds.png`` of ``sample_id`` (written by ``segkit prepare-data cityscapes``)."""
        return self.mask_dir / f"{sample_id}_{self.gt}_labelTrainIds.png"

    def mask_path(self, sample_id: str) -> Path:
        train_ids = self.train_ids_path(sample_id)
        return train_ids if train_ids.is_file() else self.label_ids_path(sample_id)

    def missing_file(self, sample_id: str) -> DatasetError | None:
        if not self.image_path(sample_id).is_file():
            return DatasetError(f"missing image file {self.image_path(sample_id)}", problem="missing image")
        if not self.mask_path(sample_id).is_file():
            return DatasetError(
                f"missing mask file {self.label_ids_path(sample_id)} for image {self.image_path(sample_id)}: "
                f"re-extract {ARCHIVES.get((self.gt, self.split), self.gt)} into {self.root}",
                problem="missing mask",
            )
        return None

    def load_mask(self, sample_id: str) -> np.ndarray:
        """Train ids [H, W] of ``sample_id``: the ``*_labelTrainIds.png`` as stored, else the mapped label ids."""
        path = self.mask_path(sample_id)
        mask = read_mask(path)
        if path.name.endswith("_labelTrainIds.png"):
            if self.ignore_index != IGNORE:
                mask[mask == IGNORE] = self.ignore_index
            return mask
        return label_ids_to_train_ids(mask, path, self.ignore_index)


def check_cityscapes_tree(root: str | os.PathLike, splits: Sequence[str] = ("train", "val")) -> list[str]:
    """What is missing under ``root`` for ``splits``: one entry per missing folder (with the archive to unzip) and
    one per split whose images lack their ``*_labelIds.png`` (counted, the first named); [] when complete."""
    root = Path(root)
    missing: list[str] = []
    for split in splits:
        if split not in CITYSCAPES_SPLITS:
            raise DatasetError(
                f"Cityscapes has the splits {', '.join(CITYSCAPES_SPLITS)}, got '{split}'.", problem="usage"
            )
        gt = annotation_folder(split)
        folders = [("leftImg8bit", root / "leftImg8bit" / split), (gt, root / gt / split)]
        absent = [(kind, f) for kind, f in folders if not f.is_dir()]
        missing += [f"{f} (unzip {ARCHIVES[(kind, split)]})" for kind, f in absent]
        if absent:
            continue
        images = sorted((root / "leftImg8bit" / split).glob(f"*/*{IMAGE_SUFFIX}"))
        if not images:
            missing.append(
                f"images in {root / 'leftImg8bit' / split}/<city>/ (unzip {ARCHIVES[('leftImg8bit', split)]})"
            )
        unlabelled = [
            p
            for p in images
            if not (root / gt / split / p.parent.name / p.name.replace(IMAGE_SUFFIX, f"_{gt}_labelIds.png")).is_file()
        ]
        if unlabelled and split != "test":
            first = (
                root
                / gt
                / split
                / unlabelled[0].parent.name
                / unlabelled[0].name.replace(IMAGE_SUFFIX, f"_{gt}_labelIds.png")
            )
            missing.append(
                f"{len(unlabelled)} of {len(images)} {split} masks, e.g. {first} (unzip {ARCHIVES[(gt, split)]})"
            )
    return missing


def write_train_ids(
    root: str | os.PathLike,
    splits: Sequence[str] = ("train", "val"),
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> int:
    """Write ``*_labelTrainIds.png`` beside every ``*_labelIds.png`` of ``splits`` (atomically; existing ones are
    kept unless ``overwrite``). Returns the number written.

    Raises:
        DatasetError: a label id above 33, naming the file.
    """
    root = Path(root)
    written = 0
    for split in splits:
        gt = annotation_folder(split)
        sources = sorted((root / gt / split).glob(f"*/*_{gt}_labelIds.png"))
        for src in tqdm(sources, desc=f"train ids {split}", unit="img", disable=not progress):
            dest = src.with_name(src.name.replace("_labelIds.png", "_labelTrainIds.png"))
            if dest.is_file() and not overwrite:
                continue
            save_label_png(dest, label_ids_to_train_ids(read_mask(src), src), CITYSCAPES_PALETTE)
            written += 1
    return written
