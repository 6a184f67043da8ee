"""``build_model(cfg)``: turn a validated config into a Segmentor."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn

from segkit.config import Config, ModelConfig
from segkit.models.backbones import MobileNetV1, MobileNetV2, ResNet, resnet101_beta
from segkit.models.heads import DeepLabV3Head, FCNHead, default_aspp_rates
from segkit.models.segmentor import Segmentor

NormLayer = Callable[[int], nn.Module]


def _mobilenet_v2(mcfg: ModelConfig, norm: NormLayer) -> MobileNetV2:
    head_in = "layer_19" if mcfg.final_conv else "layer_18"
    out_features = ["layer_14", head_in] if mcfg.aux_head else [head_in]  # layer_14: last stride-16 block
    return MobileNetV2(
        width_mult=mcfg.width_mult,
        round_nearest=mcfg.round_nearest,
        output_stride=mcfg.output_stride,
        out_features=out_features,
        final_conv=mcfg.final_conv,
        frozen_stages=mcfg.frozen_stages,
        norm_eval=mcfg.norm_eval,
        norm_layer=norm,
        tf_same_padding=mcfg.tf_same_padding,
    )


def _mobilenet_v1(mcfg: ModelConfig, norm: NormLayer) -> MobileNetV1:
    out_features = ["conv2d_11", "conv2d_13"] if mcfg.aux_head else ["conv2d_13"]  # conv2d_11: last stride-16 block
    return MobileNetV1(
        width_mult=mcfg.width_mult,
        round_nearest=mcfg.round_nearest,
        output_stride=mcfg.output_stride,
        out_features=out_features,
        frozen_stages=mcfg.frozen_stages,
        norm_eval=mcfg.norm_eval,
        norm_layer=norm,
        tf_same_padding=mcfg.tf_same_padding,
    )


def _resnet101(mcfg: ModelConfig, norm: NormLayer) -> ResNet:
    out_features = ["block2", "block4"] if mcfg.aux_head else ["block4"]  # block2 ends at stride 16 (TF-slim v1)
    return resnet101_beta(
        output_stride=mcfg.output_stride,
        out_features=out_features,
        frozen_stages=mcfg.frozen_stages,
        norm_eval=mcfg.norm_eval,
        norm_layer=norm,
        tf_same_padding=mcfg.tf_same_padding,
    )


# backbone name -> builder returning the head's feature last and, with aux_head, a stride-16 feature first.
BACKBONES: dict[str, Callable[[ModelConfig, NormLayer], nn.Module]] = {
    "mobilenet_v2": _mobilenet_v2,
    "mobilenet_v1": _mobilenet_v1,
    "resnet101": _resnet101,
}


def build_backbone(mcfg: ModelConfig) -> nn.Module:
    """The backbone a model config describes, returning the head's (and aux head's) features."""
    try:
        builder = BACKBONES[mcfg.backbone]
    except KeyError:
        raise KeyError(f"Unknown backbone {mcfg.backbone!r}; valid backbones: {', '.join(BACKBONES)}.") from None
    return builder(mcfg, partial(nn.BatchNorm2d, eps=mcfg.bn_eps, momentum=mcfg.bn_momentum))


def build_model(cfg: Config | ModelConfig) -> Segmentor:
    """Build the segmentor described by ``cfg`` (a full :class:`Config` or its ``model`` section).

    The model is on the CPU in training mode; call ``.eval()`` for inference.
    """
    mcfg = cfg.model if isinstance(cfg, Config) else cfg
    backbone = build_backbone(mcfg)
    head_norm = partial(nn.BatchNorm2d, eps=mcfg.head_bn_eps, momentum=mcfg.head_bn_momentum)
    rates = ()
    if mcfg.aspp:
        rates = tuple(mcfg.aspp_rates) if mcfg.aspp_rates is not None else default_aspp_rates(mcfg.output_stride)
    head_in = backbone.feature_info[-1]
    head = DeepLabV3Head(
        head_in.channels,
        mcfg.num_classes,
        atrous_rates=rates,
        channels=mcfg.head_channels,
        dropout=mcfg.dropout,
        norm_layer=head_norm,
    )
    aux_head = aux_in = None
    if mcfg.aux_head:
        aux_info = backbone.feature_info[0]
        aux_head, aux_in = FCNHead(aux_info.channels, mcfg.num_classes, norm_layer=head_norm), aux_info.name
    return Segmentor(backbone, head, head_in=head_in.name, aux_head=aux_head, aux_in=aux_in,
                     align_corners=mcfg.align_corners, norm_eval=mcfg.norm_eval)


def count_parameters(model: nn.Module, *, trainable_only: bool = True) -> int:
    """Parameters as the paper counts them: trainable weights, BN scale/shift, biases (no running stats)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
