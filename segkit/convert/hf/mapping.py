"""Transformers' MobileNetV2 (``MobileNetV2ForSemanticSegmentation``, ``MobileNetV2ForImageClassification``) in
segkit's terms: the model config its ``config.json`` describes and the names of its tensors in segkit's model.

Read from transformers' ``modeling_mobilenet_v2.py`` (transformers itself is never imported):

- ``conv_stem`` = segkit's ``layer_1`` (``first_conv``, stride 2) and ``layer_2`` (``conv_3x3`` depthwise +
  ``reduce_1x1``: the expansion-1 block); ``layer.{i}`` = ``layer_{i+3}`` (``expand_1x1``, ``conv_3x3``,
  ``reduce_1x1``); ``conv_1x1`` = ``layer_19`` (the classifier's 1x1 conv to 1280 channels; the segmentation model
  builds it but its head reads the 320-channel ``layer_18``, so segkit drops it).
- Channels: ``make_divisible(round(c * depth_multiplier), depth_divisible_by, min_depth)``;
  ``finegrained_output`` keeps 1280 final channels below width 1.0 (segkit's rule).
- ``output_stride``: the layer that would exceed it gets stride 1 and keeps the previous rate, the layers after it
  the multiplied rate (DeepLab's rule, segkit's ``dilation_schedule``).
- ``tf_padding``: TF 'SAME' padding on every conv; it differs from symmetric padding only on stride-2 convs at
  even sizes (segkit's ``model.tf_same_padding``).
- ``segmentation_head``: image pooling (``conv_pool``) and a 1x1 branch (``conv_aspp``), concatenated in that order,
  ``conv_projection``, dropout, ``classifier`` (1x1 with bias): segkit's light DeepLabV3 head. Head BN eps 1e-5,
  backbone BN eps ``layer_norm_eps`` (1e-3). The logits come at the feature resolution; segkit upsamples them to
  the input size with ``align_corners=True`` as TF DeepLab.
- ``classifier``: a linear layer on the pooled 1280 features (1001 classes for Google's checkpoints: 0 = background).
"""

from __future__ import annotations

from typing import Any, Literal

from segkit.config import TF_MEAN, TF_STD, ModelConfig
from segkit.convert.hf.files import HFConversionError

__all__ = ["ARCHITECTURES", "hf_kind", "model_config", "segkit_names"]

ARCHITECTURES = {
    "MobileNetV2ForSemanticSegmentation": "segmentor",
    "MobileNetV2ForImageClassification": "classifier",
}
NUM_BLOCKS = 16  # transformers' ``mobilenet_v2.layer.{0..15}``: segkit's layer_3 .. layer_18
BN_PARAMS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
BN_MOMENTUM, HEAD_BN_EPS, HEAD_BN_MOMENTUM = 0.003, 1e-5, 0.0003  # TF DeepLab's decays 0.997 / 0.9997


def hf_kind(config: dict[str, Any], state_keys: set[str], where: str) -> Literal["segmentor", "classifier"]:
    """'segmentor' or 'classifier', from ``config.json``'s ``architectures`` (or the tensor names without it)."""
    if config.get("model_type") not in (None, "mobilenet_v2"):
        raise HFConversionError(
            f"{where}: model_type {config.get('model_type')!r}; segkit reads transformers' mobilenet_v2 models "
            f"({', '.join(ARCHITECTURES)})."
        )
    archs = config.get("architectures") or []
    known = [ARCHITECTURES[a] for a in archs if a in ARCHITECTURES]
    if known:
        return known[0]  # type: ignore[return-value]
    if archs:
        raise HFConversionError(
            f"{where}: architecture {archs[0]!r}; segkit reads {' and '.join(ARCHITECTURES)} (MobileNetV2)."
        )
    if any(k.startswith("segmentation_head.") for k in state_keys):
        return "segmentor"
    if "classifier.weight" in state_keys:
        return "classifier"
    raise HFConversionError(f"{where}: config.json names no architecture and the weights have neither head.")


def _check_supported(config: dict[str, Any], kind: str, where: str) -> None:
    """Refuse the options segkit's MobileNetV2 does not build, naming the key."""
    fixed = {
        "num_channels": 3,
        "min_depth": 8,
        "expand_ratio": 6,
        "first_layer_is_expansion": True,
        "hidden_act": "relu6",
    }
    for key, value in fixed.items():
        if key in config and config[key] != value:
            raise HFConversionError(
                f"{where}: config.json has {key}={config[key]!r}; segkit's MobileNetV2 builds only {key}={value!r}."
            )
    width = float(config.get("depth_multiplier", 1.0))
    if not config.get("finegrained_output", True) and width < 1.0 and kind == "classifier":
        raise HFConversionError(
            f"{where}: finegrained_output=false narrows the final conv below 1280 channels at depth_multiplier "
            f"{width:g}; segkit keeps 1280 (finegrained_output=true, as TF's MobileNetV2)."
        )
    stride = config.get("output_stride", 32)
    allowed = (32,) if kind == "classifier" else (8, 16, 32)
    if stride not in allowed:
        raise HFConversionError(
            f"{where}: output_stride={stride!r}; segkit builds a {kind} at output stride {' / '.join(map(str, allowed))}."
        )


def _input_norm(preprocessor: dict[str, Any] | None) -> tuple[list[float], list[float]]:
    """RGB mean / std on the 0..255 scale (transformers' MobileNetV2 processor: 0.5 / 0.5 after /255, TF's [-1, 1])."""
    if not preprocessor or "image_mean" not in preprocessor or "image_std" not in preprocessor:
        return list(TF_MEAN), list(TF_STD)
    scale = 255.0 if preprocessor.get("do_rescale", True) else 1.0
    return [float(m) * scale for m in preprocessor["image_mean"]], [float(s) * scale for s in preprocessor["image_std"]]


def model_config(
    config: dict[str, Any], kind: str, preprocessor: dict[str, Any] | None, where: str, *, output_stride: int | None
) -> ModelConfig:
    """The segkit model config reproducing a transformers MobileNetV2 ``config.json``.

    Args:
        output_stride: build the segmentor at this stride instead of ``config.json``'s (the same weights run at
            any stride; the official VOC checkpoint was trained at 16 and is evaluated at 8).
    """
    _check_supported(config, kind, where)
    num_classes = len(config["id2label"]) if config.get("id2label") else config.get("num_labels")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise HFConversionError(f"{where}: config.json gives no class count (id2label / num_labels).")
    mean, std = _input_norm(preprocessor)
    stride = output_stride or config.get("output_stride", 32)
    return ModelConfig(
        width_mult=float(config.get("depth_multiplier", 1.0)),
        round_nearest=int(config.get("depth_divisible_by", 8)),
        output_stride=32 if kind == "classifier" else stride,  # type: ignore[arg-type]
        final_conv=kind == "classifier",
        aspp=False,
        head_channels=256,
        dropout=0.1 if kind == "segmentor" else 0.2,  # TF's keep_prob 0.9 / 0.8
        num_classes=num_classes,
        align_corners=True,
        tf_same_padding=bool(config.get("tf_padding", True)),
        bn_eps=float(config.get("layer_norm_eps", 1e-3)),
        bn_momentum=BN_MOMENTUM,
        head_bn_eps=HEAD_BN_EPS,
        head_bn_momentum=HEAD_BN_MOMENTUM,
        input_mean=mean,
        input_std=std,
    )


def _conv_layers(kind: str) -> dict[str, tuple[str, str | None]]:
    """transformers' conv layer name -> (segkit conv, segkit BN or None), with the model's prefixes."""
    backbone = "backbone." if kind == "segmentor" else ""
    f = f"{backbone}features"
    layers: dict[str, tuple[str, str | None]] = {
        "mobilenet_v2.conv_stem.first_conv": (f"{f}.0.0", f"{f}.0.1"),
        "mobilenet_v2.conv_stem.conv_3x3": (f"{f}.1.conv.0.0", f"{f}.1.conv.0.1"),
        "mobilenet_v2.conv_stem.reduce_1x1": (f"{f}.1.conv.1", f"{f}.1.conv.2"),
    }
    for i in range(NUM_BLOCKS):
        block = f"{f}.{i + 2}.conv"
        layers[f"mobilenet_v2.layer.{i}.expand_1x1"] = (f"{block}.0.0", f"{block}.0.1")
        layers[f"mobilenet_v2.layer.{i}.conv_3x3"] = (f"{block}.1.0", f"{block}.1.1")
        layers[f"mobilenet_v2.layer.{i}.reduce_1x1"] = (f"{block}.2", f"{block}.3")
    if kind == "classifier":
        layers["mobilenet_v2.conv_1x1"] = (f"{f}.{NUM_BLOCKS + 2}.0", f"{f}.{NUM_BLOCKS + 2}.1")
    else:
        layers["segmentation_head.conv_pool"] = ("head.image_pool.conv.0", "head.image_pool.conv.1")
        layers["segmentation_head.conv_aspp"] = ("head.aspp0.0", "head.aspp0.1")
        layers["segmentation_head.conv_projection"] = ("head.project.0", "head.project.1")
        layers["segmentation_head.classifier"] = ("head.classifier", None)
    return layers


def segkit_names(kind: str) -> tuple[dict[str, str], tuple[str, ...]]:
    """transformers' tensor name -> segkit's, and the prefixes of tensors segkit drops on purpose.

    The segmentation model's ``mobilenet_v2.conv_1x1`` (1280 channels) is built by transformers but never run.
    """
    names: dict[str, str] = {}
    for hf, (conv, bn) in _conv_layers(kind).items():
        names[f"{hf}.convolution.weight"] = f"{conv}.weight"
        if bn is None:
            names[f"{hf}.convolution.bias"] = f"{conv}.bias"
        else:
            names.update({f"{hf}.normalization.{p}": f"{bn}.{p}" for p in BN_PARAMS})
    if kind == "classifier":
        names["classifier.weight"], names["classifier.bias"] = "classifier.1.weight", "classifier.1.bias"
    dropped = ("mobilenet_v2.conv_1x1.",) if kind == "segmentor" else ()
    return names, dropped
