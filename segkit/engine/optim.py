"""Optimiser and learning-rate schedule of the official DeepLab recipe.

SGD with momentum (the official recipe; ``train.optimizer=adamw`` for short from-scratch runs such as
the demo); weight decay skipped (by default) on depthwise weights, norm parameters and biases; conv/linear biases at ``bias_lr_mult`` x the learning rate (TF DeepLab: 2x); poly decay
``(1 - it / total) ** power`` stepped every iteration, with an optional linear warm-up.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from segkit.config import TrainConfig

_NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)


def classify_parameter(module: nn.Module, param_name: str) -> str:
    """``"depthwise"``, ``"norm"``, ``"bias"`` or ``"weight"`` for a parameter of ``module``."""
    if isinstance(module, _NORM_TYPES):
        return "norm"
    if param_name == "bias":
        return "bias"
    if isinstance(module, nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels:
        return "depthwise"
    return "weight"


def build_param_groups(model: nn.Module, tcfg: TrainConfig) -> list[dict[str, Any]]:
    """Group trainable parameters by (weight decay, LR multiplier); each group records its ``kind``s."""
    decays = {"weight": True, "depthwise": tcfg.decay_depthwise, "norm": tcfg.decay_norm, "bias": tcfg.decay_bias}
    groups: dict[tuple[float, float], dict[str, Any]] = {}
    seen: set[int] = set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            kind = classify_parameter(module, name)
            wd = tcfg.weight_decay if decays[kind] else 0.0
            lr_mult = tcfg.bias_lr_mult if kind == "bias" else 1.0
            group = groups.setdefault(
                (wd, lr_mult), {"params": [], "weight_decay": wd, "lr_mult": lr_mult, "kinds": set()}
            )
            group["params"].append(param)
            group["kinds"].add(kind)
    for group in groups.values():
        group["lr"] = tcfg.lr * group["lr_mult"]
        group["kinds"] = sorted(group["kinds"])
    return list(groups.values())


def build_optimizer(model: nn.Module, tcfg: TrainConfig, *, fused: bool | None = None) -> torch.optim.Optimizer:
    """``train.optimizer`` over :func:`build_param_groups`: SGD with momentum, or AdamW (decoupled weight
    decay, ``train.momentum`` as its beta1). ``fused=True``: PyTorch's fused kernels, which also skip a
    step on the device when given ``found_inf`` (the training loop's non-finite guard)."""
    groups = build_param_groups(model, tcfg)
    if tcfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=tcfg.lr, betas=(tcfg.momentum, 0.999), fused=fused)
    return torch.optim.SGD(groups, lr=tcfg.lr, momentum=tcfg.momentum, fused=fused)


def poly_lr_factor(
    iteration: int, total: int, *, power: float = 0.9, warmup_iters: int = 0, warmup_factor: float = 0.1
) -> float:
    """Multiplier of the base LR at ``iteration`` (0-based): linear warm-up, then poly decay."""
    factor = max(0.0, 1.0 - iteration / total) ** power
    if iteration < warmup_iters:
        alpha = iteration / warmup_iters
        factor *= warmup_factor * (1 - alpha) + alpha
    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, tcfg: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """Poly schedule stepped once per iteration (``scheduler.step()`` after each optimiser step)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda it: poly_lr_factor(
            it, tcfg.iterations, power=tcfg.poly_power, warmup_iters=tcfg.warmup_iters, warmup_factor=tcfg.warmup_factor
        ),
    )
