"""``build_dataset``: the data set named by ``data.dataset``, for one split."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from segkit.config import DataConfig
from segkit.data.base import DatasetError, SegmentationDataset
from segkit.data.coco import COCOSegmentation
from segkit.data.folder import FolderDataset
from segkit.data.synthetic import SyntheticVOC
from segkit.data.voc import VOCSegmentation

Transform = Callable[..., dict[str, Any]]


def _voc(cfg: DataConfig, split: str, transform: Transform | None, num_classes: int | None) -> SegmentationDataset:
    return VOCSegmentation(cfg.root, split, transform=transform, ignore_index=cfg.ignore_index,
                           skip_bad_samples=cfg.skip_bad_samples)  # fmt: skip


def _coco(cfg: DataConfig, split: str, transform: Transform | None, num_classes: int | None) -> SegmentationDataset:
    return COCOSegmentation(cfg.root, split, transform=transform, ignore_index=cfg.ignore_index,
                            skip_bad_samples=cfg.skip_bad_samples, progress=True)  # fmt: skip


def _folder(cfg: DataConfig, split: str, transform: Transform | None, num_classes: int | None) -> SegmentationDataset:
    return FolderDataset(cfg.root, split, transform=transform, ignore_index=cfg.ignore_index,
                         skip_bad_samples=cfg.skip_bad_samples, num_classes=num_classes)  # fmt: skip


def _synthetic(
    cfg: DataConfig, split: str, transform: Transform | None, num_classes: int | None
) -> SegmentationDataset:
    return SyntheticVOC(
        cfg.root,
        split,
        num_train=cfg.synthetic_num_train,
        num_val=cfg.synthetic_num_val,
        image_size=cfg.synthetic_image_size,
        seed=cfg.synthetic_seed,
        transform=transform,
        ignore_index=cfg.ignore_index,
        skip_bad_samples=cfg.skip_bad_samples,
    )


DATASETS: dict[str, Callable[[DataConfig, str, Transform | None, int | None], SegmentationDataset]] = {
    "voc": _voc,
    "coco": _coco,
    "folder": _folder,
    "synthetic": _synthetic,
}


def build_dataset(
    data_cfg: DataConfig,
    split: str,
    transform: Transform | None,
    *,
    num_classes: int | None = None,
) -> SegmentationDataset:
    """Build the data set ``data_cfg.dataset`` for ``split`` (e.g. ``data_cfg.train_split``).

    Args:
        data_cfg: data section of the config.
        split: split name (VOC: train / val / trainval / train_aug; COCO: train2017 / val2017; ...).
        transform: joint transform from :func:`build_train_transform` / :func:`build_eval_transform`.
        num_classes: the model's class count; checked against the data set's (and used by folder data
            sets without ``classes.txt``).

    Raises:
        KeyError: unknown ``data_cfg.dataset`` (the message lists the valid names).
        DatasetError: missing or inconsistent data, or a class count different from ``num_classes``.
    """
    try:
        builder = DATASETS[data_cfg.dataset]
    except KeyError:
        raise KeyError(
            f"Unknown data set '{data_cfg.dataset}' (data.dataset); valid names: {', '.join(DATASETS)}."
        ) from None
    dataset = builder(data_cfg, split, transform, num_classes)
    if num_classes is not None and dataset.num_classes != num_classes:
        raise DatasetError(
            f"Data set '{data_cfg.dataset}' ({dataset.source}) has {dataset.num_classes} classes "
            f"({', '.join(dataset.class_names[:6])}{', ...' if dataset.num_classes > 6 else ''}) but the model "
            f"is built for {num_classes}; set model.num_classes={dataset.num_classes}."
        )
    return dataset
