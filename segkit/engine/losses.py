"""Training loss: ``train.loss`` (cross-entropy, Dice, Lovasz, focal or a weighted sum) on logits at label size, the
ignore index masked out, + the auxiliary head's loss weighted by ``train.aux_weight``.

Dice, Lovasz and focal are segmentation-models-pytorch's losses in multiclass mode (imported only when chosen);
the grammar of ``train.loss`` is :func:`segkit.config.losses.parse_loss`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn

from segkit.config.losses import LossTerm, parse_loss

__all__ = ["SegmentationLoss", "build_term"]


def build_term(name: str, ignore_index: int) -> Callable[[Tensor, Tensor], Tensor]:
    """The loss ``name`` (:data:`segkit.config.losses.LOSS_NAMES`) as ``f(logits [N, C, H, W], target [N, H, W])``."""
    if name == "ce":
        return lambda logits, target: F.cross_entropy(logits, target, ignore_index=ignore_index)
    from segmentation_models_pytorch import losses

    if name == "dice":
        return losses.DiceLoss("multiclass", ignore_index=ignore_index, from_logits=True)
    if name == "lovasz":
        return losses.LovaszLoss("multiclass", ignore_index=ignore_index, from_logits=True)
    if name == "focal":
        return losses.FocalLoss("multiclass", ignore_index=ignore_index)
    raise ValueError(f"unknown loss {name!r}")  # parse_loss rejected it already


class SegmentationLoss(nn.Module):
    """``loss`` over ``outputs["out"]`` plus ``aux_weight`` x the same over ``outputs["aux"]``, if present.

    Returns ``(total, parts)``: ``loss_out`` / ``loss_aux`` per head and, for a sum of several terms, each term of
    the main head (``loss_ce``, ``loss_dice``, ... unweighted)."""

    def __init__(self, *, ignore_index: int = 255, aux_weight: float = 0.4, loss: str = "ce") -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.aux_weight = aux_weight
        self.terms: list[LossTerm] = parse_loss(loss)
        self._fns = {name: build_term(name, ignore_index) for _, name in self.terms}

    def _head(self, logits: Tensor, target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        values = {name: self._fns[name](logits.float(), target) for _, name in self.terms}
        total = sum(weight * values[name] for weight, name in self.terms)
        return total, values

    def forward(self, outputs: dict[str, Tensor], target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        # outputs[k]: [N, C, H, W] logits at the label size; target: [N, H, W] int64
        out, values = self._head(outputs["out"], target)
        parts = {"loss_out": out}
        if len(self.terms) > 1:
            parts.update({f"loss_{name}": value for name, value in values.items()})
        if "aux" in outputs:
            parts["loss_aux"] = self._head(outputs["aux"], target)[0]
        total = parts["loss_out"] + self.aux_weight * parts.get("loss_aux", 0.0)
        return total, parts
