"""COCO instances mapped to the 20 PASCAL VOC categories (as torchvision's segmentation references).

Layout under ``root``: ``annotations/instances_<split>.json`` and ``<split>/<file_name>`` (e.g.
``train2017``). Instance masks (polygons or RLE) of the VOC categories are merged into one class map:
pixels claimed by instances of different classes and crowd regions not covered by a regular instance
become the ignore label; images with fewer than 1000 labelled pixels are dropped. The masks and the
kept ids are cached as PNGs under ``<root>/voc_masks/<split>/`` on the first pass, each file written
atomically; later constructions read the cache (rebuilt if the annotation file or the settings change).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from tqdm import tqdm

from segkit.data.base import SegmentationDataset, SkipMode
from segkit.data.classes import VOC_CLASSES, VOC_PALETTE
from segkit.data.io import DatasetError, check_ignore_index, save_label_png
from segkit.utils.io import atomic_write_text

# COCO category id of each VOC class (index = VOC label; 0 = background), torchvision's mapping.
CAT_LIST: list[int] = [0, 5, 2, 16, 9, 44, 6, 3, 17, 62, 21, 67, 18, 19, 4, 1, 64, 20, 63, 7, 72]
MIN_LABELLED_PIXELS = 1000
CACHE_VERSION = 1


def segmentation_to_mask(segm: list | dict, height: int, width: int) -> np.ndarray:
    """Decode a COCO ``segmentation`` (polygons, uncompressed or compressed RLE) to a bool mask [H, W]."""
    if isinstance(segm, list):  # polygons
        polys = [p for p in segm if len(p) >= 6]  # a polygon needs 3 points
        if not polys:
            return np.zeros((height, width), dtype=bool)
        rle = mask_utils.merge(mask_utils.frPyObjects(polys, height, width))
    elif isinstance(segm.get("counts"), list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(segm, height, width)
    else:  # compressed RLE
        rle = segm
    with warnings.catch_warnings():  # pycocotools' NumPy 2 __array__ DeprecationWarning
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode([rle])[:, :, 0].astype(bool)


def coco_voc_mask(anns: list[dict[str, Any]], height: int, width: int, ignore_index: int = 255) -> np.ndarray:
    """Merge the annotations of one image into a VOC class map (uint8 [H, W]).

    Only the 20 VOC categories count. Pixels covered by instances of two different classes, and crowd
    regions that no regular instance covers, get ``ignore_index``.
    """
    cat_to_voc = {cat: i for i, cat in enumerate(CAT_LIST) if cat}
    per_class: dict[int, np.ndarray] = {}
    crowd = np.zeros((height, width), dtype=bool)
    for ann in anns:
        voc = cat_to_voc.get(ann["category_id"])
        if voc is None:
            continue
        m = segmentation_to_mask(ann["segmentation"], height, width)
        if ann.get("iscrowd", 0):
            crowd |= m
        elif voc in per_class:
            per_class[voc] |= m
        else:
            per_class[voc] = m
    label = np.zeros((height, width), dtype=np.uint8)
    claims = np.zeros((height, width), dtype=np.uint8)  # number of classes claiming each pixel
    for voc, m in per_class.items():
        label[m] = voc
        claims += m
    label[claims > 1] = ignore_index
    label[crowd & (claims == 0)] = ignore_index
    return label


class COCOSegmentation(SegmentationDataset):
    """COCO restricted to the 20 VOC classes (21 with background).

    Args:
        root: folder holding ``annotations/`` and the image folders.
        split: image folder / annotation suffix, e.g. ``train2017`` or ``val2017``.
        transform: joint image/mask transform.
        ignore_index: label of ignored pixels (overlaps, crowds).
        skip_bad_samples: warn and skip bad samples instead of failing.
        skip_mode: ``replace`` (training) or ``drop`` (evaluation) a skipped sample;
            see :class:`~segkit.data.base.SegmentationDataset`.
        cache_dir: where the VOC masks are cached (default ``root/voc_masks/<split>``).
        min_labelled_pixels: images with fewer non-background, non-ignore pixels are dropped.
        progress: show a progress bar while building the cache.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train2017",
        *,
        transform: Callable[..., dict[str, Any]] | None = None,
        ignore_index: int = 255,
        skip_bad_samples: bool = False,
        skip_mode: SkipMode = "replace",
        cache_dir: str | os.PathLike | None = None,
        min_labelled_pixels: int = MIN_LABELLED_PIXELS,
        progress: bool = False,
    ) -> None:
        self.root, self.split = Path(root), split
        self.ann_file = self.root / "annotations" / f"instances_{split}.json"
        self.image_dir = self.root / split
        self.cache_dir = Path(cache_dir) if cache_dir is not None else self.root / "voc_masks" / split
        if not self.ann_file.is_file():
            raise DatasetError(
                f"COCO annotations not found: {self.ann_file}. data.root ('{root}') must hold "
                f"annotations/instances_{split}.json and {split}/ (download both from https://cocodataset.org).",
                problem="missing data",
            )
        if not self.image_dir.is_dir():
            raise DatasetError(
                f"COCO image folder not found: {self.image_dir} (needed for split '{split}').", problem="missing data"
            )
        check_ignore_index(ignore_index, VOC_CLASSES, f"COCO split '{split}'")  # before building a cache with it
        manifest = self._manifest(ignore_index, min_labelled_pixels)
        entries = self._read_cache(manifest)
        if entries is None:
            entries = self.build_cache(manifest, ignore_index, min_labelled_pixels, progress)
        self._file_names = dict(entries)
        super().__init__(
            [sid for sid, _ in entries],
            class_names=VOC_CLASSES,
            palette=VOC_PALETTE[: len(VOC_CLASSES)],
            transform=transform,
            ignore_index=ignore_index,
            skip_bad_samples=skip_bad_samples,
            skip_mode=skip_mode,
            source=f"COCO split '{split}' ({self.ann_file}, masks in {self.cache_dir})",
        )

    def image_path(self, sample_id: str) -> Path:
        return self.image_dir / self._file_names[sample_id]

    def mask_path(self, sample_id: str) -> Path:
        return self.cache_dir / f"{sample_id}.png"

    # -- mask cache ---------------------------------------------------------------------------
    def _manifest(self, ignore_index: int, min_labelled_pixels: int) -> dict[str, Any]:
        stat = self.ann_file.stat()
        return {"version": CACHE_VERSION, "annotation_file": str(self.ann_file.resolve()), "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns, "ignore_index": ignore_index,
                "min_labelled_pixels": min_labelled_pixels}  # fmt: skip

    def _read_cache(self, manifest: dict[str, Any]) -> list[tuple[str, str]] | None:
        try:
            if json.loads((self.cache_dir / "manifest.json").read_text()) != manifest:
                return None
            lines = (self.cache_dir / "ids.txt").read_text().splitlines()
        except (OSError, ValueError):
            return None
        return [(parts[0], parts[1]) for parts in (line.split(maxsplit=1) for line in lines) if len(parts) == 2]

    def build_cache(
        self, manifest: dict[str, Any], ignore_index: int, min_labelled_pixels: int, progress: bool
    ) -> list[tuple[str, str]]:
        """Write a VOC mask PNG per kept image, then ``ids.txt`` and ``manifest.json`` (the completion mark).

        Every file is written atomically (temporary file + rename), so a process reading the cache while
        another builds it sees whole files only. Under DDP, still build the data set on rank 0 first and
        let the other ranks construct theirs after a barrier, so the work is done once.
        """
        from pycocotools.coco import COCO

        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints timing lines
            try:
                coco = COCO(str(self.ann_file))
            except (OSError, ValueError, KeyError) as exc:
                raise DatasetError(f"Cannot read COCO annotations {self.ann_file}: {exc}.") from exc
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        (self.cache_dir / "manifest.json").unlink(missing_ok=True)
        kept: list[tuple[str, str]] = []
        voc_cats = [c for c in CAT_LIST if c]
        for img_id in tqdm(sorted(coco.getImgIds()), desc=f"COCO {self.split} -> VOC masks", unit="img",
                           disable=not progress):  # fmt: skip
            info = coco.imgs[img_id]
            anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id, catIds=voc_cats, iscrowd=None))
            if not anns:
                continue
            label = coco_voc_mask(anns, info["height"], info["width"], ignore_index)
            if int(((label > 0) & (label != ignore_index)).sum()) < min_labelled_pixels:
                continue
            sample_id = Path(info["file_name"]).stem
            path = self.cache_dir / f"{sample_id}.png"
            try:  # atomic: another process (DDP rank) reading the cache never sees a half-written PNG
                save_label_png(path, label, VOC_PALETTE)
            except OSError as exc:
                raise DatasetError(
                    f"Cannot write the COCO mask cache file {path}: {exc}. The cache folder {self.cache_dir} "
                    "must be writable with free space (or pass another cache_dir)."
                ) from exc
            kept.append((sample_id, info["file_name"]))
        if not kept:
            raise DatasetError(
                f"{self.ann_file}: no image has >= {min_labelled_pixels} pixels of the 20 VOC classes; "
                "nothing to train on."
            )
        atomic_write_text(self.cache_dir / "ids.txt", "".join(f"{sid} {name}\n" for sid, name in kept))
        atomic_write_text(self.cache_dir / "manifest.json", json.dumps(manifest))
        return kept
