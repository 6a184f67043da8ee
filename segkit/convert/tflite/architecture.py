"""Architecture inference: what a TFLite graph describes, in segkit's terms (:class:`TFLiteArchitecture`).

The architecture is read from the graph, never from the file name:

- backbone: the stem conv and the 17 inverted residual blocks are followed through the graph
  (:mod:`~segkit.convert.tflite.matcher`); the width multiplier and channel rounding are the ones
  whose MobileNetV2 channel counts equal the graph's; strides give the output stride, depthwise
  dilation factors (or SPACE_TO_BATCH_ND / BATCH_TO_SPACE_ND pairs around a conv) the dilation
  rates, which must follow TF DeepLab's rule that segkit implements;
- head: DeepLabV3's branches (and a DeepLabV3+ decoder: its end point, separable or not) or a classifier's
  pooling and logits (:mod:`~segkit.convert.tflite.heads`);
- preprocessing: the input tensor's quantization (``real = scale * (q - zero_point)`` with
  ``q`` the 0..255 pixel) gives ``mean = zero_point`` and ``std = 1 / scale``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import nn

from segkit.config import Config, DataConfig, EvalConfig, ModelConfig, validate_config
from segkit.convert.tflite.heads import DecoderSpec, HeadMatcher
from segkit.convert.tflite.matcher import BackboneLayer, ConvSpec, TFLiteConversionError, op_desc, tensor_desc
from segkit.convert.tflite.reader import TFLiteGraph
from segkit.models.backbones.mobilenetv2 import INVERTED_RESIDUAL_SETTING, MobileNetV2

__all__ = ["TFLiteArchitecture", "infer_architecture"]

STANDARD_WIDTHS = (1.0, 0.5, 0.75, 0.35, 1.4, 1.3, 0.25, 0.1, 1.5, 2.0)
BN_EPS, BN_MOMENTUM = 1e-3, 0.003  # official backbone BN (decay 0.997)
HEAD_BN_EPS, HEAD_BN_MOMENTUM = 1e-5, 0.0003  # official head BN (decay 0.9997)
# DataLoader workers a converted checkpoint's config asks for: it runs on machines other than the one
# that converted it, so a small count every machine has (``--num-workers`` / data.num_workers override it).
CONVERTED_NUM_WORKERS = 2


@dataclass
class TFLiteArchitecture:
    """What the graph describes, in segkit's terms.

    Attributes:
        kind: 'segmentor' (DeepLabV3) or 'classifier' (ImageNet MobileNetV2).
        input_size: the graph's input (H, W).
        input_dtype: the input tensor's dtype ('uint8', 'int8', 'float32').
        input_mean, input_std: RGB preprocessing on the 0..255 scale.
        width_mult, round_nearest: MobileNetV2 channel multiplier and rounding.
        output_stride: stride of the backbone output.
        dilations: depthwise dilation rate of every backbone layer (1 for the stem).
        final_conv: the 1x1 conv to 1280 channels is present.
        num_classes: logits channels.
        head_channels: filters of the DeepLab branches (None for a classifier).
        aspp_rates: rates of the 3x3 atrous branches; empty for the light head.
        branch_order: the head's concat order as found ('image_pool', 'aspp0', 'atrous_0', ...).
        align_corners: bilinear resize convention of the logits upsampling.
        resize_mode: 'tf_legacy' when the graph's bilinear resizes are TF1's legacy ones (align_corners=False,
            half_pixel_centers=False), else 'pytorch' (``F.interpolate`` with ``align_corners``).
        decoder: the DeepLabV3+ decoder as found (None without one): its end point
            (``decoder_output_stride``, ``decoder_feature``) and whether its convs are separable.
        quantization: the scheme the file uses, read from its tensors (:data:`QUANTIZATION_SCHEMES`): 'uint8'
            (per-tensor uint8 weights and activations, TF1's quantization-aware training), 'int8' (full integer:
            per-channel int8 weights, int32 biases, int8 activations, QUANTIZE ops at the input and between
            scales), 'int8_weights' (int8 weights, float activations) or 'float'.
        notes: assumptions the converter had to make.
    """

    kind: Literal["segmentor", "classifier"]
    input_size: tuple[int, int]
    input_dtype: str
    input_mean: list[float]
    input_std: list[float]
    width_mult: float
    round_nearest: int
    output_stride: int
    dilations: list[int]
    final_conv: bool
    num_classes: int
    head_channels: int | None = None
    aspp_rates: list[int] = field(default_factory=list)
    branch_order: list[str] = field(default_factory=list)
    align_corners: bool = True
    resize_mode: str = "pytorch"
    quantization: str = "float"
    decoder: DecoderSpec | None = None
    notes: list[str] = field(default_factory=list)
    layers: list[BackboneLayer] = field(default_factory=list, repr=False)
    head: dict[str, ConvSpec] = field(default_factory=dict, repr=False)

    @property
    def decoder_output_stride(self) -> int | None:
        """Stride of the decoder's low-level feature (4 for the official layer_4 end point)."""
        if self.decoder is None:
            return None
        layer = self.decoder.feature.split("/")[0]
        index = [layer_.name for layer_ in self.layers].index(layer)
        return int(np.prod([layer_.stride for layer_ in self.layers[: index + 1]]))

    def summary(self) -> str:
        """Readable description of the inferred architecture."""
        rates = sorted({d for d in self.dilations if d > 1})
        lines = [
            f"kind: {self.kind}",
            f"input: {self.input_size[0]}x{self.input_size[1]} {self.input_dtype}, "
            f"mean {_fmt_list(self.input_mean)}, std {_fmt_list(self.input_std)} (0..255 scale)",
            f"backbone: MobileNetV2 width {self.width_mult:g} (channels rounded to {self.round_nearest}), "
            f"output stride {self.output_stride}, depthwise dilation rates {rates or [1]}, "
            + (
                f"final 1x1 conv to {self.layers[-1].convs[0].out_channels} channels"
                if self.final_conv
                else "no final 1x1 conv (the head reads layer_18)"
            ),
        ]
        if self.kind == "segmentor":
            aspp = f"ASPP rates {self.aspp_rates}" if self.aspp_rates else "no ASPP (image pooling + 1x1 branch)"
            lines.append(
                f"head: DeepLabV3, {aspp}, {self.head_channels} channels, concat order "
                f"{self.branch_order}, {self.num_classes} classes, align_corners={self.align_corners}, "
                f"resize mode {self.resize_mode}"
            )
            if self.decoder is not None:
                proj = self.decoder.convs["feature_projection0"].out_channels
                lines.append(
                    f"decoder: DeepLabV3+, output stride {self.decoder_output_stride} ({self.decoder.feature}, "
                    f"{proj}-channel projection), {'separable' if self.decoder.separable else 'regular'} 3x3 convs"
                )
        else:
            lines.append(f"head: global average pool -> {self.num_classes}-way logits")
        lines.append(f"quantization: {QUANTIZATION_SCHEMES[self.quantization]}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def model_config(self) -> ModelConfig:
        """The segkit model config that reproduces this graph."""
        return ModelConfig(
            width_mult=self.width_mult,
            round_nearest=self.round_nearest,
            output_stride=self.output_stride,  # type: ignore[arg-type]
            final_conv=self.final_conv,
            aspp=bool(self.aspp_rates),
            aspp_rates=list(self.aspp_rates) if self.aspp_rates else None,
            decoder="deeplabv3plus" if self.decoder is not None else "none",
            decoder_output_stride=self.decoder_output_stride or 4,  # type: ignore[arg-type]
            decoder_feature="block" if self.decoder is not None and "/" not in self.decoder.feature else "depthwise",
            decoder_separable=self.decoder.separable if self.decoder is not None else True,
            head_channels=self.head_channels or 256,
            dropout=0.1 if self.kind == "segmentor" else 0.2,  # official keep_prob 0.9 / 0.8
            num_classes=self.num_classes,
            align_corners=self.align_corners,
            resize_mode=self.resize_mode,  # type: ignore[arg-type]
            tf_same_padding=True,
            bn_eps=BN_EPS,
            bn_momentum=BN_MOMENTUM,
            head_bn_eps=HEAD_BN_EPS,
            head_bn_momentum=HEAD_BN_MOMENTUM,
            input_mean=list(self.input_mean),
            input_std=list(self.input_std),
        )

    def config(self, name: str = "tflite_converted") -> Config:
        """A complete, validated segkit config around :meth:`model_config`."""
        h, w = self.input_size
        data = DataConfig(dataset="voc" if self.num_classes == 21 else "folder", num_workers=CONVERTED_NUM_WORKERS)
        evaluation = EvalConfig()
        if h == w and h >= 16:
            data.crop_size = h
            if self.kind == "segmentor":  # the interpreter's protocol, as the file's static export implies
                evaluation.resize_longer = evaluation.pad_to = h
        cfg = Config(name=name, model=self.model_config(), data=data, eval=evaluation)
        validate_config(cfg)
        return cfg


QUANTIZATION_SCHEMES = {
    "uint8": "uint8 (per-tensor uint8 weights, int32 biases, uint8 activations: TF1 quantization-aware training)",
    "int8": "full-integer int8 (per-channel int8 weights, int32 biases, int8 activations, QUANTIZE ops)",
    "int8_weights": "int8 weights, float activations (weights dequantized on load)",
    "float": "none (float weights)",
}


def quantization_scheme(graph: TFLiteGraph, convs: list[ConvSpec]) -> str:
    """The file's quantization scheme (a key of :data:`QUANTIZATION_SCHEMES`), from its convs' tensors."""
    weights = set()
    activations = set()
    for conv in convs:
        w = graph.tensors[conv.op.inputs[1]]
        if w.data is None and graph.producer(w.index) is not None:  # DEQUANTIZE-wrapped constant
            w = graph.tensors[graph.producer(w.index).inputs[0]]
        weights.add(w.dtype)
        activations.add(graph.tensors[conv.output].dtype)
    if weights == {"uint8"} and activations == {"uint8"}:
        return "uint8"
    if weights == {"int8"}:
        return "int8" if activations == {"int8"} else "int8_weights"
    return "float"


def _fmt_list(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"


def _expected_channels(width: float, rounding: int, final_conv: bool) -> list[tuple[int, ...]]:
    """Per layer: the out-channels of each conv, as segkit's MobileNetV2 builds them (on the meta device)."""
    with torch.device("meta"):
        net = MobileNetV2(width_mult=width, round_nearest=rounding, final_conv=final_conv)
    return [tuple(m.out_channels for m in layer.modules() if isinstance(m, nn.Conv2d)) for layer in net.features]


def _infer_width(
    layers: list[BackboneLayer], final_conv: bool, fail: Callable[[str], TFLiteConversionError]
) -> tuple[float, int]:
    """The (width multiplier, channel rounding) whose MobileNetV2 has exactly the graph's channel counts."""
    found = [tuple(c.out_channels for c in layer.convs) for layer in layers]
    last = layers[-2 if final_conv else -1].convs[-1].out_channels
    candidates = [round(last / 320, 4), *STANDARD_WIDTHS]
    candidates += [
        round(layer.convs[-1].out_channels / c, 4)
        for layer, c in zip(layers[1:], [c for _, c, n, _ in INVERTED_RESIDUAL_SETTING for _ in range(n)])
    ]
    for rounding in (8, 1):
        for width in dict.fromkeys(candidates):
            if width > 0 and _expected_channels(width, rounding, final_conv) == found:
                return width, rounding
    raise fail(
        f"the channel counts do not match MobileNetV2 at any width multiplier with channel rounding 8 or 1 "
        f"(graph per layer: {found[:4]} ... {found[-2:]}; width 1.0 would give "
        f"{_expected_channels(1.0, 8, final_conv)[:4]} ...)."
    )


def _check_decoder(arch: TFLiteArchitecture, reader: HeadMatcher) -> None:
    """The decoder found must be the one segkit builds: its end point, 48-channel projection, 256-channel convs."""
    from segkit.models.build import DECODER_LAYERS

    dec = arch.decoder
    assert dec is not None
    graph = reader.g
    proj0 = dec.convs["feature_projection0"]
    stride = arch.decoder_output_stride
    layer = dec.feature.split("/")[0]
    if DECODER_LAYERS.get(stride or 0) != layer or stride is None or stride >= arch.output_stride:
        raise reader.fail(
            f"decoder: feature_projection0 {op_desc(graph, proj0.op)} reads {dec.feature} (stride {stride}); "
            f"segkit's decoder reads {', '.join(f'{v} at stride {k}' for k, v in DECODER_LAYERS.items())} "
            f"(TF DeepLab's end points), below the output stride {arch.output_stride}."
        )
    if proj0.out_channels != 48:
        raise reader.fail(
            f"decoder: feature_projection0 {op_desc(graph, proj0.op)} has {proj0.out_channels} filters; "
            "segkit's decoder (as TF DeepLab) uses 48."
        )
    for name, conv in dec.convs.items():
        if name.startswith("decoder_conv") and not name.endswith("depthwise") and conv.out_channels != 256:
            raise reader.fail(
                f"decoder: {name} {op_desc(graph, conv.op)} has {conv.out_channels} filters; segkit's decoder uses 256."
            )
    if not dec.encoder_first:
        raise reader.fail(
            f"decoder: the concat puts the low-level feature ({tensor_desc(graph, proj0.output)}) before the "
            "encoder output; segkit's decoder (as TF DeepLab) concatenates the encoder output first."
        )


def infer_architecture(graph: TFLiteGraph) -> TFLiteArchitecture:
    """Read the model family's architecture from a parsed TFLite graph.

    Raises:
        TFLiteConversionError: the graph is not a MobileNetV2 classifier or DeepLabV3 segmentor that
            segkit can build; the message names the op or tensor that did not fit.
    """
    reader = HeadMatcher(graph)
    x, size, dtype, mean, std = reader.read_input()
    layers = reader.read_backbone(x)
    feat = layers[-1].output

    # Optional 1x1 conv to 1280 channels (layer_19): a single ReLU6 1x1 conv reading layer_18.
    final_conv = False
    readers = reader.readers(feat)
    if len(readers) == 1 and reader.is_conv_start(readers[0]):
        conv = reader.conv(readers[0])
        if conv.kernel_size == 1 and conv.activation == "RELU6" and not conv.depthwise:
            layers.append(BackboneLayer("layer_19", [conv], stride=1, dilation=1, residual=False, output=conv.output))
            final_conv, feat = True, conv.output
    width, rounding = _infer_width(layers, final_conv, reader.fail)

    strides = [layer.stride for layer in layers]
    output_stride = int(np.prod(strides))
    if output_stride not in (8, 16, 32):
        raise reader.fail(
            f"the backbone's output stride is {output_stride} (layer strides {strides}); segkit supports 8, 16 and 32."
        )
    dilations = [layer.dilation for layer in layers]

    # The segkit backbone must place strides and dilations exactly like the graph.
    ref = MobileNetV2(
        width_mult=width,
        round_nearest=rounding,
        output_stride=output_stride,  # type: ignore[arg-type]
        final_conv=final_conv,
    )
    ref_strides = [2] + [getattr(m, "stride", 1) for m in list(ref.features)[1:]]
    for layer, module, s, d in zip(layers, ref.features, ref_strides, ref.layer_dilation):
        if layer.residual != getattr(module, "use_res_connect", False):
            raise reader.fail(
                f"{layer.name}: the graph has {'a' if layer.residual else 'no'} residual connection, "
                "segkit's MobileNetV2 the opposite."
            )
        if (layer.stride, layer.dilation) != (s, d):
            op = layer.convs[1 if len(layer.convs) == 3 else 0].op
            raise reader.fail(
                f"{layer.name} ({op_desc(graph, op)}) has stride {layer.stride} and dilation {layer.dilation}, "
                f"but segkit's output-stride-{output_stride} MobileNetV2 (TF DeepLab's rule: the layer that loses "
                f"its stride keeps the previous rate) has stride {s} and dilation {d}."
            )

    readers = reader.readers(feat)
    is_segmentor = len(readers) > 1
    arch = TFLiteArchitecture(
        kind="segmentor" if is_segmentor else "classifier",
        input_size=size,
        input_dtype=dtype,
        input_mean=mean,
        input_std=std,
        width_mult=width,
        round_nearest=rounding,
        output_stride=output_stride,
        dilations=dilations,
        final_conv=final_conv,
        num_classes=0,
        layers=layers,
    )
    if is_segmentor:
        head, order, align, num_classes = reader.read_segmentation_head(feat)
        arch.head, arch.branch_order, arch.align_corners, arch.num_classes = head, order, align, num_classes
        arch.head_channels = head["aspp0"].out_channels
        arch.aspp_rates = [head[f"atrous_{i}"].dilation for i in range(len(order) - 2)]
        arch.decoder = reader.decoder
        arch.resize_mode = reader.resize_mode()
        if arch.decoder is not None:
            _check_decoder(arch, reader)
        for name, conv in head.items():
            if name != "classifier" and conv.out_channels != arch.head_channels:
                raise reader.fail(
                    f"head branch '{name}' ({op_desc(graph, conv.op)}) has {conv.out_channels} "
                    f"filters, the 1x1 branch {arch.head_channels}; segkit's head uses one width."
                )
    else:
        if not final_conv:
            found = op_desc(graph, readers[0]) if readers else "nothing"
            raise reader.fail(
                f"{tensor_desc(graph, feat)} feeds only {found}; expected a DeepLabV3 head, or the "
                "classifier's 1x1 conv to 1280 channels."
            )
        arch.head = {"classifier": reader.read_classifier_head(feat)}
        arch.num_classes = arch.head["classifier"].out_channels
    convs = [c for layer in layers for c in layer.convs] + list(arch.head.values())
    arch.quantization = quantization_scheme(graph, convs)
    arch.notes = reader.notes
    return arch
