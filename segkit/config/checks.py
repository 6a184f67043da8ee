"""Value ranges that types alone cannot express (run on every config that is built)."""

from __future__ import annotations

import math
from typing import Any

from segkit.config.losses import parse_loss
from segkit.config.schema import MAX_FROZEN_STAGES, Config, ConfigError


def validate_config(cfg: Config) -> None:
    """Check value ranges that types alone cannot express."""

    def need(cond: bool, key: str, value: Any, allowed: str) -> None:
        if not cond:
            raise ConfigError(f"{key}: got {value!r}; allowed: {allowed}.")

    m, d, t, e, q = cfg.model, cfg.data, cfg.train, cfg.eval, cfg.qat
    need(m.width_mult > 0, "model.width_mult", m.width_mult, "a number > 0 (e.g. 1.0, 0.5)")
    if m.backbone == "resnet101":
        need(
            m.width_mult == 1.0, "model.width_mult", m.width_mult, "1.0 for backbone 'resnet101' (no width multiplier)"
        )
    if m.backbone != "mobilenet_v2":
        need(
            not m.final_conv, "model.final_conv", m.final_conv, f"false for backbone '{m.backbone}' (MobileNetV2 only)"
        )
    need(m.round_nearest >= 1, "model.round_nearest", m.round_nearest, "an integer >= 1 (1 disables rounding)")
    need(m.num_classes >= 2, "model.num_classes", m.num_classes, "an integer >= 2")
    need(m.head_channels >= 1, "model.head_channels", m.head_channels, "an integer >= 1")
    need(0.0 <= m.dropout < 1.0, "model.dropout", m.dropout, "0 <= p < 1")
    max_frozen = MAX_FROZEN_STAGES[m.backbone]
    need(
        -1 <= m.frozen_stages <= max_frozen,
        "model.frozen_stages",
        m.frozen_stages,
        f"-1 (none) or 0..{max_frozen} for backbone '{m.backbone}' (0 = the stem only)",
    )
    need(
        m.aspp or m.aspp_rates is None,
        "model.aspp_rates",
        m.aspp_rates,
        "null when model.aspp is false (the light head has no atrous branches); set model.aspp=true to use them",
    )
    need(
        m.aspp or not m.aspp_separable,
        "model.aspp_separable",
        m.aspp_separable,
        "false when model.aspp is false (it makes the atrous branches separable); set model.aspp=true to use it",
    )
    if m.decoder != "none":
        need(
            m.backbone == "mobilenet_v2",
            "model.decoder",
            m.decoder,
            f"'none' for backbone '{m.backbone}' (the decoder reads MobileNetV2 end points); use model.backbone=mobilenet_v2",
        )
        need(
            m.decoder_output_stride < m.output_stride,
            "model.decoder_output_stride",
            m.decoder_output_stride,
            f"4, 8 or 16, smaller than model.output_stride ({m.output_stride}); e.g. 4 (official)",
        )
    if m.aspp_rates is not None:
        need(
            len(m.aspp_rates) == 3 and all(r >= 1 for r in m.aspp_rates),
            "model.aspp_rates",
            m.aspp_rates,
            "null (tied to the output stride) or three rates >= 1, e.g. [6, 12, 18]",
        )
    need(
        m.resize_mode == "pytorch" or not m.align_corners,
        "model.align_corners",
        m.align_corners,
        "false with model.resize_mode=tf_legacy (TF's legacy resize is align_corners=False without half-pixel "
        "centers); set model.align_corners=false or model.resize_mode=pytorch",
    )
    for key in ("input_mean", "input_std"):
        value = getattr(m, key)
        need(len(value) == 3, f"model.{key}", value, "three RGB values on the 0..255 scale")
    need(all(s > 0 for s in m.input_std), "model.input_std", m.input_std, "positive values")
    need(d.crop_size >= 16, "data.crop_size", d.crop_size, "an integer >= 16")
    need(
        d.resize_range is None or (len(d.resize_range) == 2 and 16 <= d.resize_range[0] <= d.resize_range[1]),
        "data.resize_range",
        d.resize_range,
        "null or [min_side, max_side] with 16 <= min_side <= max_side, e.g. [513, 513] (TF DeepLab's ADE20K)",
    )
    need(
        0 < d.scale_min <= d.scale_max,
        "data.scale_min/scale_max",
        (d.scale_min, d.scale_max),
        "0 < scale_min <= scale_max",
    )
    need(d.scale_step >= 0, "data.scale_step", d.scale_step, "0 (continuous) or a positive step")
    need(0 <= d.ignore_index <= 255, "data.ignore_index", d.ignore_index, "0..255")
    need(d.num_workers >= 0, "data.num_workers", d.num_workers, "an integer >= 0")
    for key, low in (("synthetic_num_train", 1), ("synthetic_num_val", 1), ("synthetic_image_size", 32)):
        need(getattr(d, key) >= low, f"data.{key}", getattr(d, key), f"an integer >= {low}")
    need(t.iterations >= 1, "train.iterations", t.iterations, "an integer >= 1")
    need(t.batch_size >= 1, "train.batch_size", t.batch_size, "an integer >= 1")
    need(t.lr > 0, "train.lr", t.lr, "a number > 0")
    need(0 <= t.momentum < 1, "train.momentum", t.momentum, "0 <= m < 1")
    need(t.grad_accum >= 1, "train.grad_accum", t.grad_accum, "an integer >= 1")
    need(t.warmup_iters >= 0, "train.warmup_iters", t.warmup_iters, "an integer >= 0")
    need(
        t.warmup_iters <= t.iterations,
        "train.warmup_iters",
        t.warmup_iters,
        f"an integer <= train.iterations ({t.iterations}): the warmup is part of the run; lower it (e.g. --set "
        f"train.warmup_iters=0) or raise train.iterations",
    )
    need(0 < t.warmup_factor <= 1, "train.warmup_factor", t.warmup_factor, "0 < f <= 1")
    parse_loss(t.loss)  # one line naming the closest loss when a name is unknown
    for key in ("log_interval", "val_interval", "ckpt_interval"):
        need(getattr(t, key) >= 1, f"train.{key}", getattr(t, key), "an integer >= 1")
    need(
        len(e.scales) >= 1 and all(math.isfinite(s) and s > 0 for s in e.scales),
        "eval.scales",
        e.scales,
        "a non-empty list of finite positive scales",
    )
    need(
        e.slide is None or (len(e.slide) == 2 and e.slide[0] >= 16 and 1 <= e.slide[1] <= e.slide[0]),
        "eval.slide",
        e.slide,
        "null or [crop, stride] with crop >= 16 and 1 <= stride <= crop",
    )
    need(
        e.resize_range is None or (len(e.resize_range) == 2 and 16 <= e.resize_range[0] <= e.resize_range[1]),
        "eval.resize_range",
        e.resize_range,
        "null or [min_side, max_side] with 16 <= min_side <= max_side, e.g. [513, 513] (TF DeepLab) or [512, 2048]",
    )
    need(
        e.resize_factor is None or (e.resize_factor >= 1 and e.resize_range is not None),
        "eval.resize_factor",
        e.resize_factor,
        "null, or an integer >= 1 together with eval.resize_range (e.g. 16, TF DeepLab's resize_factor)",
    )
    need(
        e.resize_range is None or e.resize_longer is None,
        "eval.resize_range",
        e.resize_range,
        "null when eval.resize_longer is set (one resize per protocol); set eval.resize_longer=null",
    )
    for key in ("resize_longer", "pad_to"):
        value = getattr(e, key)
        need(value is None or value >= 16, f"eval.{key}", value, "null or an integer >= 16")
    need(isinstance(e.antialias, bool), "eval.antialias", e.antialias, "true or false")
    for key in ("freeze_bn_iter", "freeze_observer_iter"):
        value = getattr(q, key)
        need(value is None or value >= 0, f"qat.{key}", value, "null (never) or an iteration >= 0")
    if t.qat:
        need(
            t.amp == "none",
            "train.amp",
            t.amp,
            "'none' with train.qat=true (fake quantization trains in float32)",
        )
