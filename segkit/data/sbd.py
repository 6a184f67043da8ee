"""Semantic Boundaries Dataset (SBD): ``.mat`` masks and the VOC ``train_aug`` split built from them.

SBD (Hariharan et al., ICCV 2011) ships ``benchmark_RELEASE/dataset/{cls/<id>.mat, train.txt, val.txt}``;
``cls/<id>.mat`` holds a struct ``GTcls`` whose field ``Segmentation`` is the class mask (0..20).
``train_aug`` = VOC train + SBD (train + val) - VOC val: 10,582 images on the real data.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import scipy.io
from tqdm import tqdm

from segkit.data.classes import VOC_PALETTE
from segkit.data.io import DatasetError, read_split_file, save_label_png
from segkit.data.sources import SBD_URL as SBD_URL  # where prepare_sbd downloads it from
from segkit.data.voc import TRAIN_AUG, mask_dirname, split_file, voc_dir, voc_not_found_error
from segkit.utils.io import atomic_path, atomic_write_text


def load_sbd_mask(path: str | os.PathLike) -> np.ndarray:
    """Read ``GTcls.Segmentation`` of an SBD ``cls/<id>.mat`` as a uint8 mask [H, W].

    Raises:
        DatasetError: the file is missing, unreadable, or lacks ``GTcls.Segmentation``.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"SBD mask not found: {path}.")
    try:
        mat = scipy.io.loadmat(str(path), struct_as_record=False, squeeze_me=True)
    except (OSError, ValueError, TypeError, NotImplementedError) as exc:
        raise DatasetError(f"Cannot read SBD mask {path}: {exc}.") from exc
    gt = mat.get("GTcls")
    seg = getattr(gt, "Segmentation", None)
    if seg is None:
        raise DatasetError(
            f"{path} has no GTcls.Segmentation field (found: {sorted(k for k in mat if not k.startswith('__'))}); "
            "expected an SBD cls/<id>.mat file (instance masks in inst/ are not class masks)."
        )
    seg = np.asarray(seg)
    if seg.ndim != 2 or seg.min() < 0 or seg.max() > 255:
        raise DatasetError(
            f"{path}: GTcls.Segmentation must be a 2-D array of labels 0..255, got shape "
            f"{seg.shape}, values {seg.min()}..{seg.max()}."
        )
    return seg.astype(np.uint8)


def train_aug_ids(voc_train: list[str], voc_val: list[str], sbd_ids: list[str]) -> list[str]:
    """The train_aug ids: VOC train + SBD (train + val) - VOC val, sorted."""
    return sorted((set(voc_train) | set(sbd_ids)) - set(voc_val))


def build_train_aug(
    root: str | os.PathLike,
    sbd_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> list[str]:
    """Write ``SegmentationClassAug/<id>.png`` for every train_aug id and ``train_aug.txt``.

    VOC train ids keep their VOC masks (copied; finer, with the 255 boundary); the others come from
    SBD ``cls/<id>.mat``. Existing PNGs are kept unless ``overwrite`` (so an interrupted run resumes).
    The list file is written last, so its presence means the masks are complete.

    Args:
        root: folder holding ``VOCdevkit/VOC2012``.
        sbd_dir: extracted SBD ``benchmark_RELEASE/dataset`` (``cls/``, ``train.txt``, ``val.txt``).

    Returns:
        The train_aug ids.
    """
    base, sbd = voc_dir(root), Path(sbd_dir)
    if not base.is_dir():
        raise voc_not_found_error(root)
    for needed in (sbd / "cls", sbd / "train.txt", sbd / "val.txt"):
        if not needed.exists():
            raise DatasetError(
                f"SBD file {needed} not found; --sbd-dir must point at the extracted "
                "benchmark_RELEASE/dataset folder (holding cls/, train.txt, val.txt), or use --download."
            )
    voc_train = read_split_file(split_file(root, "train"))
    voc_val = read_split_file(split_file(root, "val"))
    sbd_ids = read_split_file(sbd / "train.txt") + read_split_file(sbd / "val.txt")
    ids = train_aug_ids(voc_train, voc_val, sbd_ids)
    voc_train_set = set(voc_train)
    voc_masks = base / mask_dirname("train")
    out_dir = base / mask_dirname(TRAIN_AUG)
    out_dir.mkdir(parents=True, exist_ok=True)
    missing: list[str] = []
    for sample_id in tqdm(ids, desc="SBD -> SegmentationClassAug", unit="mask", disable=not progress):
        out = out_dir / f"{sample_id}.png"
        if out.exists() and not overwrite:
            continue
        voc_mask = voc_masks / f"{sample_id}.png"
        if sample_id in voc_train_set and voc_mask.is_file():
            with atomic_path(out) as tmp:
                shutil.copyfile(voc_mask, tmp)
            continue
        mat = sbd / "cls" / f"{sample_id}.mat"
        if not mat.is_file():
            missing.append(str(mat))
            continue
        save_label_png(out, load_sbd_mask(mat), VOC_PALETTE)
        image = base / "JPEGImages" / f"{sample_id}.jpg"
        sbd_image = sbd / "img" / f"{sample_id}.jpg"
        if not image.exists() and sbd_image.is_file():  # SBD images are VOC images; copy if absent
            with atomic_path(image) as tmp:
                shutil.copyfile(sbd_image, tmp)
    if missing:
        raise DatasetError(
            f"{len(missing)} train_aug masks have neither a VOC train mask nor an SBD .mat file, e.g. "
            f"{missing[0]}. Re-extract SBD (benchmark.tgz) and run again; train_aug.txt was not written."
        )
    atomic_write_text(split_file(root, TRAIN_AUG), "\n".join(ids) + "\n")
    return ids
