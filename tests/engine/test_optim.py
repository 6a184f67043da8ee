"""Optimiser recipe: poly schedule values, parameter groups (decay and LR multipliers)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import segkit
from segkit.config import TrainConfig
from segkit.engine.optim import build_optimizer, build_param_groups, build_scheduler, classify_parameter, poly_lr_factor


def test_poly_schedule_values() -> None:
    assert poly_lr_factor(0, 100) == 1.0
    assert poly_lr_factor(50, 100) == pytest.approx(0.5**0.9)
    assert poly_lr_factor(99, 100) == pytest.approx(0.01**0.9)
    assert poly_lr_factor(100, 100) == 0.0
    assert poly_lr_factor(30, 100, power=1.0) == pytest.approx(0.7)


def test_warmup_is_linear_then_poly() -> None:
    f = lambda it: poly_lr_factor(it, 1000, warmup_iters=10, warmup_factor=0.1)  # noqa: E731
    assert f(0) == pytest.approx(0.1)
    assert f(5) == pytest.approx(0.55 * (1 - 5 / 1000) ** 0.9)
    assert f(10) == pytest.approx((1 - 10 / 1000) ** 0.9)


def test_scheduler_steps_per_iteration() -> None:
    tcfg = TrainConfig(iterations=10, lr=0.1, bias_lr_mult=2.0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    opt = build_optimizer(model, tcfg)
    sched = build_scheduler(opt, tcfg)
    lrs = []
    for _ in range(10):
        lrs.append({g["lr_mult"]: g["lr"] for g in opt.param_groups})
        opt.step()
        sched.step()
    assert lrs[0][1.0] == pytest.approx(0.1) and lrs[0][2.0] == pytest.approx(0.2)
    assert lrs[4][1.0] == pytest.approx(0.1 * 0.6**0.9)
    assert all(a[1.0] > b[1.0] for a, b in zip(lrs, lrs[1:]))


def test_param_groups_follow_the_official_recipe() -> None:
    model = segkit.build_model(segkit.load_config("voc_mnv2_os16"))
    groups = build_param_groups(model, TrainConfig(weight_decay=4e-5, bias_lr_mult=2.0))
    by_param = {id(p): g for g in groups for p in g["params"]}
    kinds: dict[str, int] = {}
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            kind = classify_parameter(module, name)
            kinds[kind] = kinds.get(kind, 0) + 1
            group = by_param[id(p)]
            assert group["weight_decay"] == (4e-5 if kind == "weight" else 0.0), (name, kind)
            assert group["lr_mult"] == (2.0 if kind == "bias" else 1.0)
    # convs: stem 1 + block 1 (project) 1 + 16 blocks x 2 + head 4; 17 depthwise; 54 BN layers; 1 bias (logits)
    assert kinds == {"weight": 1 + 1 + 16 * 2 + 4, "depthwise": 17, "norm": 2 * 54, "bias": 1}
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_decay_switches() -> None:
    model = nn.Sequential(nn.Conv2d(4, 4, 3, groups=4, bias=True), nn.BatchNorm2d(4))
    groups = build_param_groups(
        model, TrainConfig(weight_decay=1e-4, decay_depthwise=True, decay_norm=True, decay_bias=True, bias_lr_mult=1.0)
    )
    assert len(groups) == 1 and groups[0]["weight_decay"] == 1e-4
    frozen = nn.Conv2d(3, 3, 1)
    frozen.weight.requires_grad_(False)
    assert sum(len(g["params"]) for g in build_param_groups(frozen, TrainConfig())) == 1  # only the bias
    assert isinstance(build_optimizer(model, TrainConfig()), torch.optim.SGD)


def test_adamw_keeps_the_param_groups() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=True), nn.BatchNorm2d(8), nn.Conv2d(8, 8, 3, groups=8, bias=False))
    tcfg = TrainConfig(optimizer="adamw", lr=2e-3, weight_decay=1e-4, momentum=0.85)
    opt = build_optimizer(model, tcfg)
    assert isinstance(opt, torch.optim.AdamW)
    by_kind = {kind: g for g in opt.param_groups for kind in g["kinds"]}
    assert by_kind["weight"]["weight_decay"] == 1e-4 and by_kind["depthwise"]["weight_decay"] == 0.0
    assert by_kind["bias"]["lr"] == pytest.approx(2 * 2e-3) and by_kind["weight"]["betas"] == (0.85, 0.999)
