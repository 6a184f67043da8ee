"""The experiment config's schema: typed dataclasses, one per section, and their defaults."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from segkit.errors import SegkitError

IMAGENET_MEAN = [123.675, 116.28, 103.53]
IMAGENET_STD = [58.395, 57.12, 57.375]
TF_MEAN = [127.5, 127.5, 127.5]  # TF MobileNet preprocessing: x / 127.5 - 1 -> [-1, 1]
TF_STD = [127.5, 127.5, 127.5]

# The data sets ``data.dataset`` names: defined once here (the lowest layer that needs them); segkit.data.build.DATASETS
# builds exactly these, and every command's --dataset choices are this tuple.
DatasetName = Literal["voc", "coco", "folder", "synthetic", "ade20k", "ade20k_top31", "cityscapes"]
DATASET_NAMES: tuple[str, ...] = typing.get_args(DatasetName)


class ConfigError(SegkitError, ValueError):
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
    # bilinear resizes: "pytorch" (F.interpolate, align_corners above) or "tf_legacy" (TF1 resize_bilinear without
    # half-pixel centers: src = dst * in / out; converted TF DeepLab graphs such as the ADE20K file; align_corners false)
    resize_mode: Literal["pytorch", "tf_legacy"] = "pytorch"
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

    dataset: DatasetName = "voc"
    root: str = "data"  # voc: holds VOCdevkit/VOC2012; coco: annotations/ + images; folder: images/ + masks/
    train_split: str = "train_aug"
    val_split: str = "val"
    crop_size: int = 513
    # [min_side, max_side]: resize each training image into this range before the random scale (TF DeepLab's
    # min_resize_value / max_resize_value, ADE20K: [513, 513]); None: off
    resize_range: list[int] | None = None
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
    loss: str = "ce"  # "ce", "dice", "lovasz", "focal" or a weighted sum: "ce+dice", "ce+0.5*dice" (config.losses)
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
    qat: bool = False  # quantization-aware fine-tuning of train.init_weights (the qat section; segkit.models.qat)


@dataclass
class EvalConfig:
    """Evaluation protocol."""

    scales: list[float] = field(default_factory=lambda: [1.0])
    flip: bool = False
    resize_longer: int | None = None
    pad_to: int | None = None
    slide: list[int] | None = None  # [crop, stride]: sliding-window inference (segkit.evaluation.predict); None: off
    # [min_side, max_side]: shorter side to min_side unless the longer would pass max_side, then the longer to max_side
    # (TF DeepLab min/max_resize_value: [513, 513]; mmseg's ADE20K Resize scale=(2048, 512): [512, 2048]); None: off
    resize_range: list[int] | None = None
    resize_factor: int | None = None  # with resize_range: sides rounded up to k * factor + 1 (TF's resize_factor)
    antialias: bool = False  # low-pass input resizes that shrink (resize_longer, scales < 1), as PIL


@dataclass
class QatConfig:
    """Quantization-aware training (``train.qat: true``). Defaults: TF DeepLab's quantize guide
    (research/deeplab/g3doc/quantize.md: fine-tune the float model, quantized from step 0) and
    ``tf.contrib.quantize.create_training_graph`` (BN never frozen, activation ranges always updated)."""

    freeze_bn_iter: int | None = None  # from this iteration on BN uses its running statistics; null: never
    freeze_observer_iter: int | None = None  # from this iteration on the quantization ranges stay fixed; null: never
    per_channel: bool = True  # int8 weights per output channel (TFLite's int8 scheme); false: per tensor


@dataclass
class Config:
    """A complete experiment."""

    name: str = "unnamed"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    qat: QatConfig = field(default_factory=QatConfig)

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
    "qat": QatConfig,
}
