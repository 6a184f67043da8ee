"""``build_dataset``: the data set named by ``data.dataset``, for one split; ``resolve_data_root``: the folder it
is read from."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from segkit.config import DATASET_NAMES, Config, DataConfig
from segkit.data.ade20k import ADE20KSegmentation
from segkit.data.base import DatasetError, SegmentationDataset, SkipMode
from segkit.data.cityscapes import CityscapesSegmentation
from segkit.data.coco import COCOSegmentation
from segkit.data.folder import FolderDataset
from segkit.data.synthetic import SyntheticVOC
from segkit.data.voc import VOCSegmentation

Transform = Callable[..., dict[str, Any]]
Builder = Callable[[DataConfig, str, Transform | None, int | None, SkipMode], SegmentationDataset]


def _voc(cfg: DataConfig, split: str, transform: Transform | None, num_classes: int | None,
         skip_mode: SkipMode) -> SegmentationDataset:  # fmt: skip
    return VOCSegmentation(cfg.root, split, transform=transform, ignore_index=cfg.ignore_index,
                           skip_bad_samples=cfg.skip_bad_samples, skip_mode=skip_mode)  # fmt: skip


def _coco(cfg: DataConfig, split: str, transform: Transform | None, num_classes: int | None,
          skip_mode: SkipMode) -> SegmentationDataset:  # fmt: skip
    return COCOSegmentation(cfg.root, split, transform=transform, ignore_index=cfg.ignore_index,
                            skip_bad_samples=cfg.skip_bad_samples, skip_mode=skip_mode, progress=True)  # fmt: skip


def _folder(cfg: DataConfig, split: str, transform: Transform | None, num_classes: int | None,
            skip_mode: SkipMode) -> SegmentationDataset:  # fmt: skip
    return FolderDataset(cfg.root, split, transform=transform, ignore_index=cfg.ignore_index,
                         skip_bad_samples=cfg.skip_bad_samples, skip_mode=skip_mode,
                         num_classes=num_classes)  # fmt: skip


def _synthetic(cfg: DataConfig, split: str, transform: Transform | None, num_classes: int | None,
               skip_mode: SkipMode) -> SegmentationDataset:  # fmt: skip
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
        skip_mode=skip_mode,
    )


def _ade20k(cfg: DataConfig, split: str, transform: Transform | None, num_classes: int | None,
            skip_mode: SkipMode) -> SegmentationDataset:  # fmt: skip
    return ADE20KSegmentation(cfg.root, split, variant="150", transform=transform, ignore_index=cfg.ignore_index,
                              skip_bad_samples=cfg.skip_bad_samples, skip_mode=skip_mode)  # fmt: skip


def _ade20k_top31(cfg: DataConfig, split: str, transform: Transform | None, num_classes: int | None,
                  skip_mode: SkipMode) -> SegmentationDataset:  # fmt: skip
    return ADE20KSegmentation(cfg.root, split, variant="top31", transform=transform, ignore_index=cfg.ignore_index,
                              skip_bad_samples=cfg.skip_bad_samples, skip_mode=skip_mode)  # fmt: skip


def _cityscapes(cfg: DataConfig, split: str, transform: Transform | None, num_classes: int | None,
                skip_mode: SkipMode) -> SegmentationDataset:  # fmt: skip
    return CityscapesSegmentation(cfg.root, split, transform=transform, ignore_index=cfg.ignore_index,
                                  skip_bad_samples=cfg.skip_bad_samples, skip_mode=skip_mode)  # fmt: skip


# One builder per name of segkit.config.DATASET_NAMES (data.dataset's values), in that order.
DATASETS: dict[str, Builder] = {
    "voc": _voc,
    "coco": _coco,
    "folder": _folder,
    "synthetic": _synthetic,
    "ade20k": _ade20k,
    "ade20k_top31": _ade20k_top31,
    "cityscapes": _cityscapes,
}
if tuple(DATASETS) != DATASET_NAMES:  # pragma: no cover - a data set added in one place only
    raise RuntimeError(f"segkit.data.build.DATASETS {tuple(DATASETS)} != segkit.config.DATASET_NAMES {DATASET_NAMES}")


def resolve_data_root(cfg: Config) -> str:
    """Make ``cfg.data.root`` absolute, in place, and return a line saying which folder the data is read from.

    ``~`` is expanded; a relative root is read from the current folder, and the line says so::

        data from /home/me/data (data.root 'data' is relative: read from the current folder /home/me)

    An absolute root keeps a saved config (a checkpoint's, a run's ``config.yaml``) pointing at the same data
    from any folder.
    """
    given = cfg.data.root
    root = Path(given).expanduser()
    cfg.data.root = str(root if root.is_absolute() else root.resolve())
    if root.is_absolute():
        return f"data from {cfg.data.root}"
    return f"data from {cfg.data.root} (data.root '{given}' is relative: read from the current folder {Path.cwd()})"


def build_dataset(
    data_cfg: DataConfig,
    split: str,
    transform: Transform | None,
    *,
    num_classes: int | None = None,
    skip_mode: SkipMode = "replace",
) -> SegmentationDataset:
    """Build the data set ``data_cfg.dataset`` for ``split`` (e.g. ``data_cfg.train_split``).

    Args:
        data_cfg: data section of the config.
        split: split name (VOC: train / val / trainval / train_aug; COCO: train2017 / val2017; ...).
        transform: joint transform from :func:`build_train_transform` / :func:`build_eval_transform`.
        num_classes: the model's class count; checked against the data set's (and used by folder data
            sets without ``classes.txt``).
        skip_mode: with ``data.skip_bad_samples``, ``"replace"`` a bad sample by the next good one
            (training) or ``"drop"`` it (evaluation: load with ``collate_fn=collate_drop_bad``, or batch
            size 1, and :func:`segkit.evaluation.evaluator.evaluate` leaves it out, so no image counts twice).

    Raises:
        KeyError: unknown ``data_cfg.dataset`` (the message lists the valid names).
        DatasetError: missing or inconsistent data, a ``data.ignore_index`` that is a class, or a class
            count different from ``num_classes``.
    """
    try:
        builder = DATASETS[data_cfg.dataset]
    except KeyError:
        raise KeyError(
            f"Unknown data set '{data_cfg.dataset}' (data.dataset); valid names: {', '.join(DATASETS)}."
        ) from None
    dataset = builder(data_cfg, split, transform, num_classes, skip_mode)
    if num_classes is not None and dataset.num_classes != num_classes:
        raise DatasetError(
            f"Data set '{data_cfg.dataset}' ({dataset.source}) has {dataset.num_classes} classes "
            f"({', '.join(dataset.class_names[:6])}{', ...' if dataset.num_classes > 6 else ''}) but the model "
            f"is built for {num_classes}; set model.num_classes={dataset.num_classes}."
        )
    return dataset
