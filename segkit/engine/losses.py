"""Training loss: pixel-wise cross-entropy on logits at label size, 255 ignored, + weighted aux loss."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class SegmentationLoss(nn.Module):
    """Cross-entropy over ``outputs["out"]`` plus ``aux_weight`` x the auxiliary head's, if present."""

    def __init__(self, *, ignore_index: int = 255, aux_weight: float = 0.4) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.aux_weight = aux_weight

    def forward(self, outputs: dict[str, Tensor], target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        # outputs[k]: [N, C, H, W] logits at the label size; target: [N, H, W] int64
        parts = {"loss_out": F.cross_entropy(outputs["out"].float(), target, ignore_index=self.ignore_index)}
        if "aux" in outputs:
            parts["loss_aux"] = F.cross_entropy(outputs["aux"].float(), target, ignore_index=self.ignore_index)
        total = parts["loss_out"] + self.aux_weight * parts.get("loss_aux", 0.0)
        return total, parts
