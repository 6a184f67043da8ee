"""The ``train.loss`` grammar: a sum of weighted terms, each one of :data:`LOSS_NAMES` (no torch imported here).

``"ce"`` (the default), ``"dice"``, ``"ce+dice"``, ``"ce+0.5*dice"``: every term is ``[WEIGHT*]NAME``; a missing
weight is 1. The losses themselves are built by :class:`segkit.engine.losses.SegmentationLoss`.
"""

from __future__ import annotations

import difflib
import math

from segkit.config.schema import ConfigError

__all__ = ["LOSS_NAMES", "LossTerm", "parse_loss"]

# name -> what it is (segmentation-models-pytorch's losses in multiclass mode, the ignore index masked out)
LOSS_NAMES: dict[str, str] = {
    "ce": "pixel-wise cross-entropy",
    "dice": "soft Dice (segmentation_models_pytorch.losses.DiceLoss)",
    "lovasz": "Lovasz-softmax (segmentation_models_pytorch.losses.LovaszLoss)",
    "focal": "focal loss, gamma 2 (segmentation_models_pytorch.losses.FocalLoss)",
}
LossTerm = tuple[float, str]  # (weight, name)
ALLOWED = f"a '+'-separated sum of [WEIGHT*]NAME terms, NAME one of {', '.join(LOSS_NAMES)} (e.g. 'ce', 'ce+0.5*dice')"


def _error(spec: object, detail: str) -> ConfigError:
    return ConfigError(f"train.loss: got {spec!r} ({detail}); allowed: {ALLOWED}.")


def parse_loss(spec: str) -> list[LossTerm]:
    """``[(weight, name), ...]`` of ``spec``; raises :class:`ConfigError` (one line, the closest name) otherwise."""
    if not isinstance(spec, str) or not spec.strip():
        raise _error(spec, "empty")
    terms: list[LossTerm] = []
    for raw in spec.split("+"):
        text = raw.strip().lower()
        weight_text, _, name = text.rpartition("*")
        name = name.strip()
        if name not in LOSS_NAMES:
            match = difflib.get_close_matches(name, list(LOSS_NAMES), n=1, cutoff=0.4)
            hint = f"did you mean '{match[0]}'?" if match else f"unknown loss {name!r}"
            raise _error(spec, f"unknown loss {name!r}; {hint}" if match else hint)
        try:
            weight = float(weight_text) if weight_text.strip() else 1.0
        except ValueError:
            raise _error(spec, f"weight {weight_text.strip()!r} of {name} is no number") from None
        if not (math.isfinite(weight) and weight > 0):
            raise _error(spec, f"weight {weight_text.strip()} of {name} must be > 0")
        if any(n == name for _, n in terms):
            raise _error(spec, f"{name} appears twice; give it one weight")
        terms.append((weight, name))
    return terms
