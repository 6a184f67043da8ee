"""Typed, validated experiment configuration.

One YAML file per experiment in ``configs/`` (found by name or path), with at most one
level of inheritance (``_base_: other.yaml``). Every key is a field of the dataclasses
below; unknown keys and badly typed values are rejected with the key, the allowed values
and the closest valid key. Command-line overrides use dotted keys::

    cfg = load_config("voc_mnv2_os16", ["train.lr=0.01", "model.output_stride=8"])
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

# The shipped YAMLs are package data (segkit/configs/); the checkout's top-level configs/ is a symlink to them.
CONFIG_DIR = Path(__file__).resolve().parent / "configs"

IMAGENET_MEAN = [123.675, 116.28, 103.53]
IMAGENET_STD = [58.395, 57.12, 57.375]
TF_MEAN = [127.5, 127.5, 127.5]  # TF MobileNet preprocessing: x / 127.5 - 1 -> [-1, 1]
TF_STD = [127.5, 127.5, 127.5]


class ConfigError(ValueError):
    """A config file or override is invalid; the message says what and how to fix it."""


@dataclass
class ModelConfig:
    """Network: backbone -> DeepLabV3 head (+ optional auxiliary FCN head)."""

    backbone: Literal["mobilenet_v2", "mobilenet_v1", "resnet101"] = "mobilenet_v2"
    width_mult: float = 1.0
    round_nearest: int = 8  # channel rounding; 1 disables it
    output_stride: Literal[8, 16, 32] = 16
    final_conv: bool = False  # build the 1x1 conv to 1280 channels (MNet V2 without '*')
    aspp: bool = False  # three 3x3 atrous branches; False = the paper's light head
    aspp_rates: list[int] | None = None  # None: 6/12/18 at OS16, 12/24/36 at OS8, 3/6/9 at OS32
    aspp_separable: bool = False  # atrous branches as depthwise 3x3 + pointwise 1x1 (TF aspp_with_separable_conv)
    decoder: Literal["none", "deeplabv3plus"] = "none"  # DeepLabV3+ decoder on a low-level backbone feature
    decoder_output_stride: Literal[4, 8, 16] = 4  # stride of that feature; below output_stride
    decoder_feature: Literal["depthwise", "block"] = (
        "depthwise"  # official layer_N/depthwise_output, or the block output
    )
    decoder_separable: bool = True  # decoder 3x3 convs depthwise-separable (TF decoder_use_separable_conv)
    head_channels: int = 256
    dropout: float = 0.1
    num_classes: int = 21
    aux_head: bool = False  # FCN head on the stride-16 features, training only
    align_corners: bool = True
    tf_same_padding: bool = False  # TF 'SAME' padding for stride-2 convs (official weights)
    bn_eps: float = 1e-5  # backbone BN (official TF: 1e-3)
    bn_momentum: float = 0.1  # PyTorch convention (official TF decay 0.997 -> 0.003)
    head_bn_eps: float = 1e-5
    head_bn_momentum: float = 0.1
    frozen_stages: int = -1  # -1: none; k: stem and the first k bottleneck stages frozen
    norm_eval: bool = False  # keep every BN in eval mode while training
    input_mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))  # RGB, 0..255
    input_std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))


@dataclass
class DataConfig:
    """Data set and augmentation."""

    dataset: Literal["voc", "coco", "folder", "synthetic"] = "voc"
    root: str = "data"  # voc: holds VOCdevkit/VOC2012; coco: annotations/ + images; folder: images/ + masks/
    train_split: str = "train_aug"
    val_split: str = "val"
    crop_size: int = 513
    scale_min: float = 0.5
    scale_max: float = 2.0
    scale_step: float = 0.25
    hflip: bool = True
    color_jitter: float = 0.0  # strength of brightness/contrast/saturation jitter, 0 = off
    ignore_index: int = 255
    num_workers: int = 4
    skip_bad_samples: bool = False  # report and skip unreadable/inconsistent samples instead of failing
    synthetic_num_train: int = 300
    synthetic_num_val: int = 60
    synthetic_image_size: int = 160
    synthetic_seed: int = 0


@dataclass
class TrainConfig:
    """Optimisation recipe (defaults: the official DeepLab trainaug recipe)."""

    iterations: int = 30000
    batch_size: int = 16
    optimizer: Literal["sgd", "adamw"] = "sgd"  # official: SGD; AdamW for short from-scratch runs (the demo)
    lr: float = 0.007
    momentum: float = 0.9  # SGD momentum; AdamW's beta1
    weight_decay: float = 4e-5
    poly_power: float = 0.9
    warmup_iters: int = 0
    warmup_factor: float = 0.1  # LR multiplier at iteration 0 of the linear warm-up
    decay_depthwise: bool = False  # official: no weight decay on depthwise weights
    decay_norm: bool = False  # weight decay on BN scale/shift
    decay_bias: bool = False
    bias_lr_mult: float = 2.0
    aux_weight: float = 0.4
    amp: Literal["none", "bf16", "fp16"] = "none"  # CUDA only
    channels_last: bool = False
    grad_accum: int = 1
    init_weights: str | None = None  # torchvision ImageNet MobileNetV2 file or a segkit checkpoint
    init_last_layer: bool = (
        True  # also load the logits conv (head.classifier) from init_weights when it fits (TF's initialize_last_layer)
    )
    sync_bn: bool = True  # convert BN to SyncBatchNorm under DDP
    log_interval: int = 20
    val_interval: int = 2000
    ckpt_interval: int = 1000
    seed: int = 0
    deterministic: bool = False


@dataclass
class EvalConfig:
    """Evaluation protocol."""

    scales: list[float] = field(default_factory=lambda: [1.0])
    flip: bool = False
    resize_longer: int | None = None
    pad_to: int | None = None
    slide: list[int] | None = None  # [crop, stride]: sliding-window inference (segkit.inference); None: off
    antialias: bool = False  # low-pass input resizes that shrink (resize_longer, scales < 1), as PIL


@dataclass
class Config:
    """A complete experiment."""

    name: str = "unnamed"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# Highest model.frozen_stages per backbone (the stem is stage 0; see each backbone's docstring).
MAX_FROZEN_STAGES = {"mobilenet_v2": 8, "mobilenet_v1": 13, "resnet101": 4}

SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "data": DataConfig,
    "train": TrainConfig,
    "eval": EvalConfig,
}


def _closest(name: str, valid: list[str]) -> str:
    match = difflib.get_close_matches(name, valid, n=1, cutoff=0.4)
    return f" Did you mean '{match[0]}'?" if match else ""


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Return ``value`` checked (and widened int -> float) against the annotation ``tp``."""

    def bad() -> ConfigError:
        return ConfigError(f"{key}: got {value!r} ({type(value).__name__}); expected {_type_name(tp)}.")

    origin = typing.get_origin(tp)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value in allowed and type(value) is type(allowed[allowed.index(value)]):
            return value
        raise ConfigError(f"{key}: got {value!r}; allowed values are {', '.join(repr(a) for a in allowed)}.")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(key, value, arg)
            except ConfigError:
                pass
        raise bad()
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise bad()
        return [_coerce(f"{key}[{i}]", v, item_tp) for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad()
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad()
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads '1e-3' (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise bad()
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad()
    raise TypeError(f"unsupported annotation {tp!r} for {key}")  # internal: config schema


def _build_section(section: str, values: dict[str, Any]) -> Any:
    cls = SECTIONS[section]
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(
                f"Unknown config key '{section}.{key}'.{_closest(key, names)} "
                f"Valid keys in '{section}': {', '.join(names)}."
            )
        kwargs[key] = _coerce(f"{section}.{key}", value, hints[key])
    return cls(**kwargs)


def config_from_dict(raw: dict[str, Any]) -> Config:
    """Build and validate a :class:`Config` from a plain (YAML-loaded) dict."""
    if not isinstance(raw, dict):
        raise ConfigError(f"A config must be a mapping of sections, got {type(raw).__name__}.")
    valid = ["name", *SECTIONS]
    for key in raw:
        if key not in valid:
            raise ConfigError(f"Unknown config section '{key}'.{_closest(key, valid)} Valid: {', '.join(valid)}.")
    sections = {}
    for section in SECTIONS:
        values = raw.get(section) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"Config section '{section}' must be a mapping of keys, got {values!r}.")
        sections[section] = _build_section(section, values)
    name = raw.get("name", "unnamed")
    if not isinstance(name, str):
        raise ConfigError(f"name: expected a string, got {name!r}.")
    cfg = Config(name=name, **sections)
    validate_config(cfg)
    return cfg


def validate_config(cfg: Config) -> None:
    """Check value ranges that types alone cannot express."""

    def need(cond: bool, key: str, value: Any, allowed: str) -> None:
        if not cond:
            raise ConfigError(f"{key}: got {value!r}; allowed: {allowed}.")

    m, d, t, e = cfg.model, cfg.data, cfg.train, cfg.eval
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
    for key in ("input_mean", "input_std"):
        value = getattr(m, key)
        need(len(value) == 3, f"model.{key}", value, "three RGB values on the 0..255 scale")
    need(all(s > 0 for s in m.input_std), "model.input_std", m.input_std, "positive values")
    need(d.crop_size >= 16, "data.crop_size", d.crop_size, "an integer >= 16")
    need(
        0 < d.scale_min <= d.scale_max,
        "data.scale_min/scale_max",
        (d.scale_min, d.scale_max),
        "0 < scale_min <= scale_max",
    )
    need(d.scale_step >= 0, "data.scale_step", d.scale_step, "0 (continuous) or a positive step")
    need(0 <= d.ignore_index <= 255, "data.ignore_index", d.ignore_index, "0..255")
    need(d.num_workers >= 0, "data.num_workers", d.num_workers, "an integer >= 0")
    need(t.iterations >= 1, "train.iterations", t.iterations, "an integer >= 1")
    need(t.batch_size >= 1, "train.batch_size", t.batch_size, "an integer >= 1")
    need(t.lr > 0, "train.lr", t.lr, "a number > 0")
    need(0 <= t.momentum < 1, "train.momentum", t.momentum, "0 <= m < 1")
    need(t.grad_accum >= 1, "train.grad_accum", t.grad_accum, "an integer >= 1")
    need(t.warmup_iters >= 0, "train.warmup_iters", t.warmup_iters, "an integer >= 0")
    need(0 < t.warmup_factor <= 1, "train.warmup_factor", t.warmup_factor, "0 < f <= 1")
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
    for key in ("resize_longer", "pad_to"):
        value = getattr(e, key)
        need(value is None or value >= 16, f"eval.{key}", value, "null or an integer >= 16")
    need(isinstance(e.antialias, bool), "eval.antialias", e.antialias, "true or false")


def resolve_config_path(name_or_path: str | Path) -> Path:
    """Find a config by path, or by name in ``configs/`` (``voc_mnv2_os16`` -> ``configs/voc_mnv2_os16.yaml``)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    if len(path.parts) > 1:  # an explicit path (has a folder): never fall back to configs/
        raise ConfigError(
            f"Config file '{name_or_path}' not found. Pass an existing YAML file, or a config name "
            f"from {CONFIG_DIR} such as voc_mnv2_os16."
        )
    candidate = CONFIG_DIR / f"{path.name}.yaml" if path.suffix == "" else CONFIG_DIR / path.name
    if candidate.is_file():
        return candidate
    known = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    raise ConfigError(
        f"Config '{name_or_path}' not found (looked for the file itself and for {candidate}).{_closest(path.stem, known)} "
        f"Available configs: {', '.join(known)}."
    )


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}).") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config file must hold a mapping of sections.")
    return raw


def _merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key].update(value)
        else:
            merged[key] = value
    return merged


def parse_override(item: str) -> tuple[str, Any]:
    """Split ``section.key=value``; the value is parsed as YAML (``0.01``, ``true``, ``[6,12,18]``, ``null``)."""
    if "=" not in item:
        raise ConfigError(f"Override '{item}' must look like section.key=value, e.g. train.lr=0.01.")
    key, text = item.split("=", 1)
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    return key.strip(), value


def apply_overrides(raw: dict[str, Any], overrides: list[str] | dict[str, Any]) -> dict[str, Any]:
    """Return ``raw`` with dotted-key overrides applied (validated later with the whole config)."""
    items = overrides.items() if isinstance(overrides, dict) else (parse_override(o) for o in overrides)
    raw = _merge(raw, {})
    for key, value in items:
        parts = key.split(".")
        if parts == ["name"]:
            raw["name"] = value
            continue
        if len(parts) != 2 or parts[0] not in SECTIONS:
            raise ConfigError(
                f"Override key '{key}' must be 'section.key' with section one of {', '.join(SECTIONS)}"
                f" (e.g. train.lr=0.01).{_closest(parts[0], list(SECTIONS))}"
            )
        section, name = parts
        valid = [f.name for f in dataclasses.fields(SECTIONS[section])]
        if name not in valid:
            raise ConfigError(
                f"Unknown config key '{key}'.{_closest(name, valid)} Valid keys in '{section}': {', '.join(valid)}."
            )
        raw.setdefault(section, {})[name] = value
    return raw


def load_config(name_or_path: str | Path, overrides: list[str] | dict[str, Any] | None = None) -> Config:
    """Load, merge (one ``_base_`` level), override and validate an experiment config.

    Args:
        name_or_path: a config name from ``configs/`` (``voc_mnv2_os16``) or a YAML path.
        overrides: ``["train.lr=0.01", ...]`` or ``{"train.lr": 0.01}``.
    """
    path = resolve_config_path(name_or_path)
    raw = _load_yaml(path)
    base_name = raw.pop("_base_", None)
    if base_name is not None:
        base_path = (path.parent / base_name) if not Path(base_name).is_absolute() else Path(base_name)
        if not base_path.is_file():
            raise ConfigError(f"{path}: _base_ '{base_name}' not found at {base_path}.")
        base = _load_yaml(base_path)
        if "_base_" in base:
            raise ConfigError(f"{base_path}: a base config cannot have its own _base_ (one level of inheritance only).")
        raw = _merge(base, raw)
    raw.setdefault("name", path.stem)
    if overrides:
        raw = apply_overrides(raw, overrides)
    try:
        return config_from_dict(raw)
    except ConfigError as exc:
        source = f"{path} with your overrides" if overrides else str(path)
        raise ConfigError(f"{source}: {exc}") from None
