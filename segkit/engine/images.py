"""TensorBoard pictures of a run: image | ground truth | prediction strips of a few validation samples."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from segkit.config import Config
from segkit.data import is_bad_sample
from segkit.engine.runlog import RunLogger
from segkit.evaluation.predict import denormalize, predict
from segkit.evaluation.viz import colorize


@torch.no_grad()
def log_prediction_images(
    net: nn.Module,
    val_set: Dataset,
    cfg: Config,
    logger: RunLogger,
    iteration: int,
    *,
    device: torch.device,
    count: int = 3,
) -> None:
    """The first ``count`` readable validation samples as strips (samples skipped as bad are passed over)."""
    palette = np.asarray(val_set.palette)
    net.eval()
    shown = 0
    for i in range(min(len(val_set), 10 * count)):  # a few bad ones are passed over, not a whole bad split
        if shown == count:
            break
        sample = val_set[i]
        if is_bad_sample(sample):  # data.skip_bad_samples: the placeholder of an unreadable sample
            continue
        image = sample["image"].unsqueeze(0).to(device)
        pred = predict(net, image, tuple(sample["mask"].shape)).squeeze(0).cpu().numpy()
        rgb = denormalize(sample["image"], cfg.model.input_mean, cfg.model.input_std)
        strip = np.concatenate([rgb, colorize(sample["mask"].numpy(), palette), colorize(pred, palette)], axis=1)
        logger.image(f"val/prediction_{shown}", iteration, strip)
        shown += 1


__all__ = ["log_prediction_images"]
