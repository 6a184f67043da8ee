"""``build_model(cfg)`` / ``build_classifier(cfg)``: turn a validated config into a model.

The only model code that reads configs; backbones, heads and the segmentor take plain arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial

from torch import nn

from segkit.config import Config, ModelConfig
from segkit.models.backbones import MobileNetV1, MobileNetV2, NormLayer, ResNet, count_parameters, resnet101_beta
from segkit.models.classifier import MobileNetV2Classifier
from segkit.models.heads import DeepLabV3Head, DeepLabV3PlusDecoder, FCNHead, default_aspp_rates
from segkit.models.segmentor import Segmentor

__all__ = [
    "AUX_FEATURES",
    "BACKBONES",
    "DECODER_LAYERS",
    "build_backbone",
    "build_classifier",
    "build_model",
    "count_parameters",
    "decoder_feature_name",
    "init_exclude",
    "last_layer_note",
]

# The auxiliary head's feature: the last stride-16 layer of each backbone (block2 ends at 16 in TF-slim v1).
AUX_FEATURES = {"mobilenet_v2": "layer_14", "mobilenet_v1": "conv2d_11", "resnet101": "block2"}
# DeepLabV3+ low-level layer per decoder stride: TF DeepLab's DECODER_END_POINTS for mobilenet_v2.
DECODER_LAYERS = {4: "layer_4", 8: "layer_7", 16: "layer_14"}


# The last layers (logits convs): the same names with and without a decoder, as TF's ``logits`` scope.
LAST_LAYER_PREFIXES = ("head.classifier.", "aux_head.4.")


def init_exclude(cfg: Config) -> tuple[str, ...]:
    """Key prefixes ``train.init_weights`` must not load: the logits convs when ``train.init_last_layer`` is false."""
    return () if cfg.train.init_last_layer else LAST_LAYER_PREFIXES


def last_layer_note(model: nn.Module, source_keys: Iterable[str], loaded_keys: Iterable[str]) -> str | None:
    """The init report's line for a decoder model started from a checkpoint without a decoder, else ``None``."""
    if getattr(model, "decoder_in", None) is None or any(k.startswith("head.decoder.") for k in source_keys):
        return None
    if any(k.startswith("head.classifier.") for k in loaded_keys):
        return (
            "head.classifier (the logits conv) was loaded from a model without a decoder, where it read the encoder "
            "output; here it reads the decoder's. Set train.init_last_layer=false to start it fresh."
        )
    return (
        "head.classifier (the logits conv) was not loaded (train.init_last_layer=false or another class count): "
        "it starts from its initialisation; the encoder was initialised, the decoder starts fresh."
    )


def decoder_feature_name(mcfg: ModelConfig) -> str | None:
    """The backbone feature the decoder reads (``layer_4/depthwise_output`` officially), ``None`` without one."""
    if mcfg.decoder == "none":
        return None
    if mcfg.backbone != "mobilenet_v2":
        raise ValueError(f"model.decoder={mcfg.decoder!r} needs model.backbone=mobilenet_v2, got {mcfg.backbone!r}.")
    layer = DECODER_LAYERS[mcfg.decoder_output_stride]
    return f"{layer}/depthwise_output" if mcfg.decoder_feature == "depthwise" else layer


def _extra_features(mcfg: ModelConfig) -> list[str]:
    """Features beside the head's: the auxiliary head's and the decoder's."""
    decoder_in = decoder_feature_name(mcfg)
    return ([AUX_FEATURES[mcfg.backbone]] if mcfg.aux_head else []) + ([decoder_in] if decoder_in else [])


def _mobilenet_v2(mcfg: ModelConfig, norm: NormLayer) -> MobileNetV2:
    head_in = "layer_19" if mcfg.final_conv else "layer_18"
    out_features = [*_extra_features(mcfg), head_in]
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
    out_features = [*_extra_features(mcfg), "conv2d_13"]
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
    out_features = [*_extra_features(mcfg), "block4"]
    return resnet101_beta(
        output_stride=mcfg.output_stride,
        out_features=out_features,
        frozen_stages=mcfg.frozen_stages,
        norm_eval=mcfg.norm_eval,
        norm_layer=norm,
        tf_same_padding=mcfg.tf_same_padding,
    )


# backbone name -> builder returning the head's feature last, plus the aux head's and the decoder's features.
BACKBONES: dict[str, Callable[[ModelConfig, NormLayer], nn.Module]] = {
    "mobilenet_v2": _mobilenet_v2,
    "mobilenet_v1": _mobilenet_v1,
    "resnet101": _resnet101,
}


def build_backbone(mcfg: ModelConfig) -> nn.Module:
    """The backbone a model config describes, returning the head's (and aux head's, decoder's) features."""
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
    features = {info.name: info for info in backbone.feature_info}
    head_norm = partial(nn.BatchNorm2d, eps=mcfg.head_bn_eps, momentum=mcfg.head_bn_momentum)
    rates = ()
    if mcfg.aspp:
        rates = tuple(mcfg.aspp_rates) if mcfg.aspp_rates is not None else default_aspp_rates(mcfg.output_stride)
    decoder = None
    decoder_in = decoder_feature_name(mcfg)
    if decoder_in is not None:
        decoder = DeepLabV3PlusDecoder(
            features[decoder_in].channels,
            mcfg.head_channels,
            separable=mcfg.decoder_separable,
            align_corners=mcfg.align_corners,
            resize_mode=mcfg.resize_mode,
            norm_layer=head_norm,
        )
    head_in = backbone.feature_info[-1]
    head = DeepLabV3Head(
        head_in.channels,
        mcfg.num_classes,
        atrous_rates=rates,
        channels=mcfg.head_channels,
        dropout=mcfg.dropout,
        norm_layer=head_norm,
        separable=mcfg.aspp_separable,
        decoder=decoder,
    )
    aux_head = aux_in = None
    if mcfg.aux_head:
        aux_in = AUX_FEATURES[mcfg.backbone]
        aux_head = FCNHead(features[aux_in].channels, mcfg.num_classes, norm_layer=head_norm)
    return Segmentor(
        backbone,
        head,
        head_in=head_in.name,
        decoder_in=decoder_in,
        aux_head=aux_head,
        aux_in=aux_in,
        align_corners=mcfg.align_corners,
        resize_mode=mcfg.resize_mode,
        norm_eval=mcfg.norm_eval,
    )


def build_classifier(cfg: Config | ModelConfig) -> MobileNetV2Classifier:
    """The ImageNet classifier a model config describes (width, rounding, classes, BN eps, padding, dropout)."""
    mcfg = cfg.model if isinstance(cfg, Config) else cfg
    norm = partial(nn.BatchNorm2d, eps=mcfg.bn_eps, momentum=mcfg.bn_momentum)
    return MobileNetV2Classifier(
        mcfg.num_classes,
        width_mult=mcfg.width_mult,
        round_nearest=mcfg.round_nearest,
        dropout=mcfg.dropout,
        norm_layer=norm,
        tf_same_padding=mcfg.tf_same_padding,
    )
