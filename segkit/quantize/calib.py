"""Calibration images: a data set's samples through the evaluation transform, fitted to the static input."""

from __future__ import annotations

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


def calibration_images(
    model: nn.Module,
    root: str,
    *,
    split: str = "train",
    num: int = 200,
    input_size: tuple[int, int] = (513, 513),
    dataset: str | None = None,
    with_masks: bool = False,
    progress: bool = True,
) -> list[dict[str, Tensor]]:
    """Up to ``num`` samples of ``split`` under ``root`` (data set kind: ``dataset`` or the model's config),
    each ``{"image": [1, 3, H, W] normalised, fitted to input_size, "mask": [h, w] (with_masks), "extent": (h, w)}``.
    """
    import dataclasses

    from tqdm import tqdm

    from segkit.data import build_dataset
    from segkit.data.transforms import build_eval_transform

    cfg = model.segkit_config
    data_cfg = dataclasses.replace(cfg.data, root=str(root), **({"dataset": dataset} if dataset else {}))
    ds = build_dataset(
        data_cfg,
        split,
        build_eval_transform(cfg.model.input_mean, cfg.model.input_std),
        num_classes=cfg.model.num_classes,
        skip_mode="drop",
    )
    n = min(num, len(ds))
    step = len(ds) / n if n else 1.0
    out = []
    align = bool(cfg.model.align_corners)
    for i in tqdm(range(n), desc=f"calibration ({split})", disable=not progress, leave=False):
        sample = ds[int(i * step)]
        image, extent = fit_to_size(sample["image"].unsqueeze(0).float(), tuple(input_size), align)
        item = {"image": image, "extent": extent}
        if with_masks:
            item["mask"] = sample["mask"]
        out.append(item)
    return out


def synthetic_images(model: nn.Module, num: int, input_size: tuple[int, int], seed: int = 0) -> list[dict[str, Tensor]]:
    """``num`` random normal images ``{"image": [1, 3, H, W], "extent": (H, W)}`` (calibration or checks without
    data: benchmarks, tests; latency does not depend on them, accuracy does)."""
    g = torch.Generator().manual_seed(seed)
    return [{"image": torch.randn(1, 3, *input_size, generator=g), "extent": tuple(input_size)} for _ in range(num)]
