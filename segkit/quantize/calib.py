"""Calibration images: a data set's samples through the evaluation transform, fitted to the static input."""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def fit_to_size(image: Tensor, size: tuple[int, int], align_corners: bool = False) -> tuple[Tensor, tuple[int, int]]:
    """Resize a normalised [1, 3, h, w] image to fit in ``size`` (aspect kept, bilinear), pad bottom/right with 0.

    Returns the padded image and the (h, w) of the resized content (the rest is padding).
    """
    h, w = image.shape[-2:]
    scale = min(size[0] / h, size[1] / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    if (nh, nw) != (h, w):
        image = F.interpolate(image, size=(nh, nw), mode="bilinear", align_corners=align_corners)
    return F.pad(image, (0, size[1] - nw, 0, size[0] - nh), value=0.0), (nh, nw)


def _open_split(model: nn.Module, root: str | os.PathLike, split: str, dataset: str | None) -> Any:
    """The evaluation-transformed data set of ``split`` under ``root`` (kind: ``dataset`` or the model's config)."""
    import dataclasses

    from segkit.data import build_dataset
    from segkit.data.transforms import build_eval_transform

    cfg = model.segkit_config
    data_cfg = dataclasses.replace(cfg.data, root=str(root), **({"dataset": dataset} if dataset else {}))
    return build_dataset(
        data_cfg,
        split,
        build_eval_transform(cfg.model.input_mean, cfg.model.input_std),
        num_classes=cfg.model.num_classes,
        skip_mode="drop",
    )


def split_ids(model: nn.Module, root: str | os.PathLike, split: str, dataset: str | None = None) -> list[str]:
    """The sample ids of ``split`` under ``root`` (DatasetError when the split is not there)."""
    return [str(i) for i in _open_split(model, root, split, dataset).ids]


def spread(ids: Sequence[str], num: int) -> list[str]:
    """``num`` of ``ids`` (all when fewer), evenly spread over them in order."""
    n = min(num, len(ids))
    step = len(ids) / n if n else 1.0
    return [ids[int(i * step)] for i in range(n)]


def calibration_images(
    model: nn.Module,
    root: str | os.PathLike,
    *,
    split: str = "train",
    num: int = 200,
    input_size: tuple[int, int] = (513, 513),
    dataset: str | None = None,
    with_masks: bool = False,
    progress: bool = True,
    ids: Collection[str] | None = None,
    exclude: Collection[str] = (),
    purpose: str = "calibration",
) -> list[dict[str, Any]]:
    """Up to ``num`` samples of ``split`` under ``root`` (data set kind: ``dataset`` or the model's config), evenly
    spread over the split, or exactly the samples ``ids``; never one of ``exclude``. Each is ``{"image": [1, 3, H, W]
    normalised, fitted to input_size, "mask": [h, w] (with_masks), "extent": (h, w), "id": str}``. ``purpose`` names
    the progress bar (``calibration`` or ``verification``).
    """
    from tqdm import tqdm

    ds = _open_split(model, root, split, dataset)
    all_ids = [str(i) for i in ds.ids]
    index = {sample_id: i for i, sample_id in enumerate(all_ids)}
    skip = set(exclude)
    chosen = [i for i in ids if i in index] if ids is not None else spread([i for i in all_ids if i not in skip], num)
    out = []
    align = bool(model.segkit_config.model.align_corners)
    for sample_id in tqdm(chosen, desc=f"{purpose} images ({split})", disable=not progress, leave=False):
        sample = ds[index[sample_id]]
        image, extent = fit_to_size(sample["image"].unsqueeze(0).float(), tuple(input_size), align)
        item = {"image": image, "extent": extent, "id": sample_id}
        if with_masks:
            item["mask"] = sample["mask"]
        out.append(item)
    return out


def synthetic_images(model: nn.Module, num: int, input_size: tuple[int, int], seed: int = 0) -> list[dict[str, Tensor]]:
    """``num`` random normal images ``{"image": [1, 3, H, W], "extent": (H, W)}`` (calibration or checks without
    data: benchmarks, tests; latency does not depend on them, accuracy does)."""
    g = torch.Generator().manual_seed(seed)
    return [{"image": torch.randn(1, 3, *input_size, generator=g), "extent": tuple(input_size)} for _ in range(num)]
