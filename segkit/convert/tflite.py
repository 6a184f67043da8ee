"""Convert official TFLite MobileNetV2 models (DeepLabV3 segmentors, ImageNet classifiers) to segkit.

The architecture is read from the graph, never from the file name:

- backbone: the stem conv and the 17 inverted residual blocks are followed through the graph
  (expand 1x1 -> depthwise 3x3 -> project 1x1, residual ADD); the width multiplier and channel
  rounding are the ones whose MobileNetV2 channel counts equal the graph's; strides give the
  output stride, depthwise dilation factors (or SPACE_TO_BATCH_ND / BATCH_TO_SPACE_ND pairs
  around a conv) the dilation rates, which must follow TF DeepLab's rule that segkit implements;
- head: the readers of the backbone output: a global pooling branch, the 1x1 branch and any 3x3
  atrous branches meeting in a CONCATENATION, then the 1x1 projection and the logits conv; the
  bilinear resize of the logits gives ``align_corners``; or, for a classifier, the 1x1 conv to
  1280 channels, global pooling and the logits conv / fully connected layer;
- preprocessing: the input tensor's quantization (``real = scale * (q - zero_point)`` with
  ``q`` the 0..255 pixel) gives ``mean = zero_point`` and ``std = 1 / scale``.

BN is folded into TFLite's convs. Weights load into a segkit model whose BN layers are
identity-initialised (weight 1, running mean 0, running var ``1 - eps`` so that
``sqrt(var + eps) == 1``) with BN bias = the folded conv bias, so the checkpoint reproduces the
TFLite model in eval mode and can still be fine-tuned (BN statistics are then re-estimated;
with small batches set ``model.norm_eval=true`` to keep them fixed)::

    conversion = convert_tflite("deeplabv3_mnv2_pascal_quant.tflite", "deeplab_official.pth")
    print(conversion.architecture.summary())
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from segkit.config import Config, DataConfig, EvalConfig, ModelConfig, validate_config
from segkit.convert.tflite_graph import TFLiteFormatError, TFLiteGraph, TFLiteOp, load_tflite
from segkit.models.backbones.mobilenetv2 import INVERTED_RESIDUAL_SETTING, MobileNetV2

__all__ = [
    "ConvSpec",
    "TFLiteArchitecture",
    "TFLiteConversion",
    "TFLiteConversionError",
    "TFLiteFormatError",
    "build_converted_model",
    "convert_tflite",
    "infer_architecture",
]

CONV_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D")
# Ops that only re-quantize or change the dtype of an activation: followed transparently.
PASSTHROUGH_OPS = ("QUANTIZE", "DEQUANTIZE", "CAST")
# Ops allowed between the logits and the graph output.
TAIL_OPS = ("RESIZE_BILINEAR", "ARG_MAX", "SOFTMAX", "RESHAPE", "SQUEEZE", "SLICE", "STRIDED_SLICE",
            *PASSTHROUGH_OPS)
STANDARD_WIDTHS = (1.0, 0.5, 0.75, 0.35, 1.4, 1.3, 0.25, 0.1, 1.5, 2.0)
BN_EPS, BN_MOMENTUM = 1e-3, 0.003  # official backbone BN (decay 0.997)
HEAD_BN_EPS, HEAD_BN_MOMENTUM = 1e-5, 0.0003  # official head BN (decay 0.9997)


class TFLiteConversionError(ValueError):
    """The TFLite graph cannot be mapped onto segkit's architecture; the message names the op/tensor."""


@dataclass
class ConvSpec:
    """One convolution read from the graph, weights already in PyTorch layout.

    Attributes:
        op: the CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED op.
        depthwise: a depthwise conv (weight ``[C, 1, kh, kw]``).
        weight: float32 ``[O, I / groups, kh, kw]`` (``[O, I]`` for a fully connected layer).
        bias: float32 ``[O]`` (zeros when the op has none).
        stride: spatial stride.
        dilation: dilation rate (from the op's options or a SPACE_TO_BATCH_ND wrapper).
        activation: fused (or directly following) activation: 'NONE', 'RELU', 'RELU6'.
        input: the activation tensor read.
        output: the tensor written (after a BATCH_TO_SPACE_ND wrapper / separate activation op).
    """

    op: TFLiteOp
    depthwise: bool
    weight: np.ndarray = field(repr=False)
    bias: np.ndarray = field(repr=False)
    stride: int
    dilation: int
    activation: str
    input: int
    output: int

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])

    @property
    def kernel_size(self) -> int:
        return int(self.weight.shape[-1]) if self.weight.ndim == 4 else 1


@dataclass
class BackboneLayer:
    """A backbone layer as found in the graph: the stem, an inverted residual block or the final 1x1 conv."""

    name: str
    convs: list[ConvSpec]
    stride: int
    dilation: int
    residual: bool
    output: int


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
    notes: list[str] = field(default_factory=list)
    layers: list[BackboneLayer] = field(default_factory=list, repr=False)
    head: dict[str, ConvSpec] = field(default_factory=dict, repr=False)

    def summary(self) -> str:
        """Readable description of the inferred architecture."""
        rates = sorted({d for d in self.dilations if d > 1})
        lines = [
            f"kind: {self.kind}",
            f"input: {self.input_size[0]}x{self.input_size[1]} {self.input_dtype}, "
            f"mean {_fmt_list(self.input_mean)}, std {_fmt_list(self.input_std)} (0..255 scale)",
            f"backbone: MobileNetV2 width {self.width_mult:g} (channels rounded to {self.round_nearest}), "
            f"output stride {self.output_stride}, depthwise dilation rates {rates or [1]}, "
            + (f"final 1x1 conv to {self.layers[-1].convs[0].out_channels} channels" if self.final_conv
               else "no final 1x1 conv (the head reads layer_18)"),
        ]
        if self.kind == "segmentor":
            aspp = f"ASPP rates {self.aspp_rates}" if self.aspp_rates else "no ASPP (image pooling + 1x1 branch)"
            lines.append(f"head: DeepLabV3, {aspp}, {self.head_channels} channels, concat order "
                         f"{self.branch_order}, {self.num_classes} classes, align_corners={self.align_corners}")
        else:
            lines.append(f"head: global average pool -> {self.num_classes}-way logits")
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
            head_channels=self.head_channels or 256,
            dropout=0.1 if self.kind == "segmentor" else 0.2,  # official keep_prob 0.9 / 0.8
            num_classes=self.num_classes,
            align_corners=self.align_corners,
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
        data = DataConfig(dataset="voc" if self.num_classes == 21 else "folder")
        evaluation = EvalConfig()
        if h == w and h >= 16:
            data.crop_size = h
            evaluation.pad_to = h if self.kind == "segmentor" else None
        cfg = Config(name=name, model=self.model_config(), data=data, eval=evaluation)
        validate_config(cfg)
        return cfg


@dataclass
class TFLiteConversion:
    """Result of :func:`convert_tflite`: the loaded model (eval mode), its config and what was inferred."""

    model: nn.Module
    config: Config
    architecture: TFLiteArchitecture
    class_names: list[str] | None = None


def _fmt_list(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"


def _tensor_desc(graph: TFLiteGraph, index: int) -> str:
    t = graph.tensor(index)
    name = t.name if len(t.name) <= 90 else t.name[:87] + "..."
    return f"tensor {index} '{name}' {list(t.shape)}"


def _op_desc(graph: TFLiteGraph, op: TFLiteOp) -> str:
    out = _tensor_desc(graph, op.outputs[0]) if op.outputs else "no output"
    return f"op {op.index} ({op.type}) writing {out}"


class _GraphReader:
    """Walks a TFLiteGraph from the input, matching MobileNetV2 / DeepLabV3 patterns."""

    def __init__(self, graph: TFLiteGraph) -> None:
        self.g = graph
        self.notes: list[str] = []

    def fail(self, message: str) -> TFLiteConversionError:
        return TFLiteConversionError(f"{self.g.path.name}: {message}")

    # --- tensor helpers -------------------------------------------------------------------
    def readers(self, t: int) -> list[TFLiteOp]:
        """Ops reading ``t``, looking through re-quantization ops."""
        out = []
        for op in self.g.consumers(t):
            if op.type in PASSTHROUGH_OPS:
                out += self.readers(op.outputs[0])
            else:
                out.append(op)
        return out

    def aliases(self, t: int) -> set[int]:
        """``t`` and the tensors that are ``t`` re-quantized."""
        found = {t}
        for op in self.g.consumers(t):
            if op.type in PASSTHROUGH_OPS:
                found |= self.aliases(op.outputs[0])
        return found

    def channels(self, t: int) -> int:
        shape = self.g.tensor(t).shape
        if len(shape) != 4:
            raise self.fail(f"expected a 4-D NHWC activation, got {_tensor_desc(self.g, t)}.")
        return shape[3]

    def spatial(self, t: int) -> tuple[int, int]:
        shape = self.g.tensor(t).shape
        return (shape[1], shape[2]) if len(shape) == 4 else (1, 1)

    def const_ints(self, t: int, what: str, op: TFLiteOp) -> list[int]:
        if not self.g.is_constant(t):
            raise self.fail(f"{_op_desc(self.g, op)}: its {what} ({_tensor_desc(self.g, t)}) is not a constant.")
        return [int(v) for v in np.asarray(self.g.tensor(t).data).reshape(-1)]

    # --- convolutions -----------------------------------------------------------------------
    def is_conv_start(self, op: TFLiteOp) -> bool:
        if op.type in CONV_OPS:
            return True
        if op.type in ("SPACE_TO_BATCH_ND", "PAD"):
            nxt = self.g.consumers(op.outputs[0])
            return len(nxt) == 1 and nxt[0].type in CONV_OPS
        return False

    def conv(self, op: TFLiteOp) -> ConvSpec:
        """Read the conv starting at ``op`` (a conv, or a SPACE_TO_BATCH_ND / PAD in front of one)."""
        g = self.g
        wrapper, pad = None, None
        if op.type == "SPACE_TO_BATCH_ND":
            wrapper, op = op, g.consumers(op.outputs[0])[0]
        elif op.type == "PAD":
            pad, op = op, g.consumers(op.outputs[0])[0]
        if op.type not in CONV_OPS:
            raise self.fail(f"expected a convolution, found {_op_desc(g, op)}.")
        opts = op.options
        x = (wrapper or pad or op).inputs[0]
        if len(op.inputs) < 2 or not g.is_constant(op.inputs[1]):
            raise self.fail(f"{_op_desc(g, op)}: its weights are not a constant tensor; only frozen weights "
                            "can be converted.")
        w = g.constant(op.inputs[1])
        bias_index = op.inputs[2] if len(op.inputs) > 2 else -1
        out_ch = w.shape[0] if op.type == "CONV_2D" else w.shape[3]
        bias = g.constant(bias_index) if bias_index >= 0 else np.zeros(out_ch, np.float32)
        stride_h, stride_w = opts.get("stride_h", 1), opts.get("stride_w", 1)
        dil_h, dil_w = opts.get("dilation_h_factor", 1), opts.get("dilation_w_factor", 1)
        if stride_h != stride_w or dil_h != dil_w:
            raise self.fail(f"{_op_desc(g, op)}: non-square stride ({stride_h}, {stride_w}) or dilation "
                            f"({dil_h}, {dil_w}) is not supported.")
        if w.ndim != 4 or w.shape[1] != w.shape[2]:
            raise self.fail(f"{_op_desc(g, op)}: expected a square 4-D kernel, got weights {list(w.shape)}.")
        k = w.shape[1]
        in_ch = self.channels(op.inputs[0])
        if op.type == "CONV_2D":
            if w.shape[3] != in_ch:
                raise self.fail(f"{_op_desc(g, op)}: grouped convolutions are not supported "
                                f"(weights {list(w.shape)} for {in_ch} input channels).")
            weight = w.transpose(0, 3, 1, 2)  # OHWI -> OIHW
        else:
            if w.shape[0] != 1 or w.shape[3] != in_ch:
                raise self.fail(f"{_op_desc(g, op)}: depth multiplier {w.shape[3] // max(in_ch, 1)} "
                                f"(weights {list(w.shape)}, {in_ch} input channels) is not supported; "
                                "MobileNetV2 uses 1.")
            weight = w.transpose(3, 0, 1, 2)  # 1HWC -> C1HW
        if bias.shape != (weight.shape[0],):
            raise self.fail(f"{_op_desc(g, op)}: bias of shape {list(bias.shape)} for {weight.shape[0]} outputs.")
        out = op.outputs[0]
        dilation = dil_h
        if wrapper is not None:
            block = self.const_ints(wrapper.inputs[1], "block shape", wrapper)
            if len(set(block)) != 1 or dil_h != 1 or stride_h != 1:
                raise self.fail(f"{_op_desc(g, wrapper)}: block shape {block} around a conv with stride "
                                f"{stride_h} and dilation {dil_h} is not an atrous convolution segkit can map.")
            after = g.consumers(out)
            if len(after) != 1 or after[0].type != "BATCH_TO_SPACE_ND":
                raise self.fail(f"{_op_desc(g, wrapper)} is not closed by a BATCH_TO_SPACE_ND after {_op_desc(g, op)}.")
            dilation, out = block[0], after[0].outputs[0]
            if self.spatial(out) != self.spatial(x):
                raise self.fail(f"{_op_desc(g, after[0])}: the atrous conv changes the size "
                                f"{self.spatial(x)} -> {self.spatial(out)}; only 'SAME' atrous convs are supported.")
        elif pad is not None:
            pads = self.const_ints(pad.inputs[1], "paddings", pad)
            expected = []
            for size in self.spatial(x):
                total = max((math.ceil(size / stride_h) - 1) * stride_h + (k - 1) * dil_h + 1 - size, 0)
                expected += [total // 2, total - total // 2]
            if opts.get("padding") != "VALID" or pads != [0, 0, *expected, 0, 0]:
                raise self.fail(f"{_op_desc(g, pad)}: explicit paddings {pads} before {_op_desc(g, op)} differ "
                                f"from TF 'SAME' padding ({[0, 0, *expected, 0, 0]}); segkit cannot reproduce them.")
        elif opts.get("padding") != "SAME" and k > 1:
            raise self.fail(f"{_op_desc(g, op)}: 'VALID' padding on a {k}x{k} conv is not supported "
                            "(MobileNetV2/DeepLab use 'SAME').")
        activation = opts.get("fused_activation_function", "NONE")
        nxt = g.consumers(out)
        if activation == "NONE" and len(nxt) == 1 and nxt[0].type in ("RELU", "RELU6"):
            activation, out = nxt[0].type, nxt[0].outputs[0]
        if activation not in ("NONE", "RELU", "RELU6"):
            raise self.fail(f"{_op_desc(g, op)}: activation {activation} is not supported (NONE, RELU, RELU6).")
        return ConvSpec(op=op, depthwise=op.type == "DEPTHWISE_CONV_2D", weight=np.ascontiguousarray(weight),
                        bias=bias.astype(np.float32), stride=stride_h, dilation=dilation, activation=activation,
                        input=x, output=out)

    def single_conv_reader(self, t: int) -> ConvSpec | None:
        starts = [op for op in self.readers(t) if self.is_conv_start(op)]
        return self.conv(starts[0]) if len(starts) == 1 else None

    # --- input ------------------------------------------------------------------------------
    def read_input(self) -> tuple[int, tuple[int, int], str, list[float], list[float]]:
        g = self.g
        if len(g.inputs) != 1:
            raise self.fail(f"expected one input image, the graph has {len(g.inputs)} inputs "
                            f"({', '.join(_tensor_desc(g, i) for i in g.inputs)}).")
        t = g.tensor(g.inputs[0])
        if len(t.shape) != 4 or t.shape[3] != 3:
            raise self.fail(f"expected an NHWC RGB input [1, H, W, 3], got {_tensor_desc(g, t.index)}.")
        q = t.quant
        if t.dtype == "uint8" and q is not None and not q.per_channel:
            mean, std = float(q.zero_point[0]), 1.0 / float(q.scale[0])
        elif t.dtype == "int8" and q is not None and not q.per_channel:
            mean, std = float(q.zero_point[0]) + 128.0, 1.0 / float(q.scale[0])
            self.notes.append("int8 input: assumed q = pixel - 128.")
        elif t.dtype == "float32":
            mean, std = 127.5, 127.5
            self.notes.append("float input carries no preprocessing: assumed TF MobileNet's [-1, 1] "
                              "(mean 127.5, std 127.5); check the exporter's preprocessing.")
        else:
            raise self.fail(f"unsupported input {_tensor_desc(g, t.index)} of type {t.dtype} "
                            "(expected uint8/int8 with quantization parameters, or float32).")
        return t.index, (t.shape[1], t.shape[2]), t.dtype, [mean] * 3, [std] * 3

    # --- backbone ---------------------------------------------------------------------------
    def read_block(self, t: int, name: str) -> BackboneLayer | None:
        first = self.single_conv_reader(t)
        if first is None:
            return None
        expand = None
        if first.depthwise:
            dw = first
        else:
            if first.kernel_size != 1 or first.activation != "RELU6":
                return None
            dw = self.single_conv_reader(first.output)
            if dw is None or not dw.depthwise:
                return None
            expand = first
        if dw.kernel_size != 3 or dw.activation != "RELU6":
            raise self.fail(f"{name}: expected a 3x3 depthwise conv with ReLU6, found {_op_desc(self.g, dw.op)} "
                            f"({dw.kernel_size}x{dw.kernel_size}, {dw.activation}).")
        proj = self.single_conv_reader(dw.output)
        if proj is None or proj.depthwise or proj.kernel_size != 1 or proj.activation != "NONE":
            found = ", ".join(_op_desc(self.g, op) for op in self.readers(dw.output)) or "nothing"
            raise self.fail(f"{name}: expected a linear 1x1 projection conv after {_op_desc(self.g, dw.op)}, "
                            f"found {found}.")
        out = proj.output
        inputs = self.aliases(t)
        adds = [op for op in self.readers(out) if op.type == "ADD" and inputs & set(op.inputs)]
        if adds:
            if adds[0].options.get("fused_activation_function", "NONE") != "NONE":
                raise self.fail(f"{name}: residual {_op_desc(self.g, adds[0])} has a fused activation.")
            out = adds[0].outputs[0]
        convs = [c for c in (expand, dw, proj) if c is not None]
        return BackboneLayer(name, convs, stride=dw.stride, dilation=dw.dilation, residual=bool(adds), output=out)

    def read_backbone(self, x: int) -> list[BackboneLayer]:
        stem = self.single_conv_reader(x)
        if stem is None or stem.depthwise or stem.kernel_size != 3 or stem.stride != 2:
            found = ", ".join(_op_desc(self.g, op) for op in self.readers(x)) or "nothing"
            raise self.fail(f"expected MobileNetV2's stem (a 3x3 stride-2 conv) reading the input, found {found}.")
        layers = [BackboneLayer("layer_1", [stem], stride=2, dilation=stem.dilation, residual=False,
                                output=stem.output)]
        num_blocks = sum(n for _, _, n, _ in INVERTED_RESIDUAL_SETTING)
        while len(layers) <= num_blocks:
            name = f"layer_{len(layers) + 1}"
            block = self.read_block(layers[-1].output, name)
            if block is None:
                t = layers[-1].output
                found = ", ".join(_op_desc(self.g, op) for op in self.readers(t)) or "nothing"
                raise self.fail(
                    f"expected MobileNetV2's {num_blocks} inverted residual blocks after the stem, found "
                    f"{len(layers) - 1}: {_tensor_desc(self.g, t)} is read by {found}, which is not an "
                    "(expand 1x1 ReLU6 ->) depthwise 3x3 ReLU6 -> linear 1x1 block."
                )
            layers.append(block)
        return layers

    # --- heads ------------------------------------------------------------------------------
    def global_pool(self, op: TFLiteOp, x: int) -> bool:
        size = self.spatial(x)
        if op.type == "AVERAGE_POOL_2D":
            o = op.options
            return (o.get("filter_height"), o.get("filter_width")) == size and self.spatial(op.outputs[0]) == (1, 1)
        if op.type == "MEAN":
            axes = sorted(a % 4 for a in self.const_ints(op.inputs[1], "axes", op))
            return axes == [1, 2]
        return False

    def follow_to_concat(self, t: int, branch: str) -> tuple[TFLiteOp, int, list[TFLiteOp]]:
        """Follow ``t`` through resizes/re-quantization to the CONCATENATION it feeds."""
        resizes = []
        for _ in range(8):
            ops = self.g.consumers(t)
            if len(ops) != 1:
                break
            op = ops[0]
            if op.type == "CONCATENATION":
                return op, t, resizes
            if op.type not in (*PASSTHROUGH_OPS, "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "BROADCAST_TO",
                               "TILE", "RESHAPE"):
                break
            if op.type.startswith("RESIZE"):
                resizes.append(op)
            t = op.outputs[0]
        found = ", ".join(_op_desc(self.g, op) for op in self.g.consumers(t)) or "nothing"
        raise self.fail(f"head branch '{branch}': expected its output to reach the branches' CONCATENATION, "
                        f"but {_tensor_desc(self.g, t)} is read by {found}.")

    def read_segmentation_head(self, feat: int) -> tuple[dict[str, ConvSpec], list[str], bool, int]:
        g = self.g
        branches: dict[str, ConvSpec] = {}
        atrous: list[ConvSpec] = []
        for op in self.readers(feat):
            if self.global_pool(op, feat):
                conv = self.single_conv_reader(op.outputs[0])
                if conv is None or conv.kernel_size != 1 or conv.depthwise:
                    raise self.fail(f"image pooling branch: expected a 1x1 conv after {_op_desc(g, op)}.")
                branches["image_pool"] = conv
            elif self.is_conv_start(op):
                conv = self.conv(op)
                if conv.depthwise:
                    raise self.fail(f"{_op_desc(g, conv.op)} reads the backbone output: separable ASPP "
                                    "branches are not supported by segkit's DeepLabV3 head (regular 3x3 convs only).")
                if conv.kernel_size == 1:
                    if "aspp0" in branches:
                        raise self.fail(f"two 1x1 branches read the backbone output ({_op_desc(g, conv.op)}).")
                    branches["aspp0"] = conv
                elif conv.kernel_size == 3:
                    atrous.append(conv)
                else:
                    raise self.fail(f"head branch {_op_desc(g, conv.op)} has a {conv.kernel_size}x"
                                    f"{conv.kernel_size} kernel; DeepLabV3 uses 1x1 and 3x3.")
            else:
                raise self.fail(f"unexpected {_op_desc(g, op)} reading the backbone output "
                                f"({_tensor_desc(g, feat)}); expected DeepLabV3's pooling and conv branches.")
        for name in ("image_pool", "aspp0"):
            if name not in branches:
                raise self.fail(f"the DeepLabV3 head has no '{name}' branch reading {_tensor_desc(g, feat)}; "
                                "segkit's head needs image pooling and the 1x1 branch.")
        for i, conv in enumerate(atrous):
            branches[f"atrous_{i}"] = conv
        concat_op, order = None, {}
        for name, conv in branches.items():
            if conv.activation != "RELU":
                raise self.fail(f"head branch '{name}' ({_op_desc(g, conv.op)}) has activation {conv.activation}; "
                                "DeepLabV3 uses ReLU.")
            op, t, _ = self.follow_to_concat(conv.output, name)
            if concat_op is not None and op is not concat_op:
                raise self.fail(f"head branches end in different CONCATENATION ops ({concat_op.index}, {op.index}).")
            concat_op = op
            order[name] = op.inputs.index(t)
        assert concat_op is not None
        if concat_op.options.get("axis") not in (3, -1) or len(concat_op.inputs) != len(branches):
            raise self.fail(f"{_op_desc(g, concat_op)}: expected a channel concat (axis 3) of the "
                            f"{len(branches)} head branches, got axis {concat_op.options.get('axis')} with "
                            f"{len(concat_op.inputs)} inputs.")
        branch_order = sorted(order, key=order.get)
        project = self.single_conv_reader(concat_op.outputs[0])
        if project is None or project.kernel_size != 1 or project.activation != "RELU":
            raise self.fail(f"expected the 1x1 projection conv with ReLU after {_op_desc(g, concat_op)}.")
        logits = self.single_conv_reader(project.output)
        if logits is None or logits.kernel_size != 1 or logits.activation != "NONE":
            raise self.fail(f"expected the 1x1 logits conv after the projection {_op_desc(g, project.op)}.")
        branches["project"] = project
        branches["classifier"] = logits
        align_corners = self.read_tail(logits.output)
        return branches, branch_order, align_corners, logits.out_channels

    def read_tail(self, t: int, *, segmentor: bool = True) -> bool:
        """Check the ops after the logits; return the upsampling's align_corners."""
        g = self.g
        upsampling = []
        frontier = [t]
        while frontier:
            cur = frontier.pop()
            for op in g.consumers(cur):
                if op.type not in TAIL_OPS:
                    raise self.fail(f"{_op_desc(g, op)} after the logits is not understood; allowed there: "
                                    f"{', '.join(TAIL_OPS)}.")
                if op.type == "RESIZE_BILINEAR" and self.spatial(op.outputs[0]) != self.spatial(op.inputs[0]):
                    upsampling.append(op)
                frontier += list(op.outputs)
        if not upsampling:
            if segmentor:
                self.notes.append("the graph does not upsample its logits; assumed align_corners=True.")
            return True
        flags = {(bool(op.options.get("align_corners")), bool(op.options.get("half_pixel_centers"))) for op in upsampling}
        if len(flags) != 1:
            raise self.fail(f"the logits resizes disagree on align_corners/half_pixel_centers: {sorted(flags)}.")
        align, half = flags.pop()
        if not align and not half:
            self.notes.append("legacy TF resize (align_corners=False, half_pixel_centers=False) has no PyTorch "
                              "equivalent; using align_corners=False (half-pixel centers).")
        return align

    def read_classifier_head(self, feat: int) -> ConvSpec:
        g = self.g
        pools = [op for op in self.readers(feat) if self.global_pool(op, feat)]
        if len(pools) != 1 or len(self.readers(feat)) != 1:
            found = ", ".join(_op_desc(g, op) for op in self.readers(feat)) or "nothing"
            raise self.fail(f"classifier: expected one global average pool reading {_tensor_desc(g, feat)}, "
                            f"found {found}.")
        t = pools[0].outputs[0]
        for _ in range(4):  # RESHAPE/SQUEEZE in front of a fully connected layer
            ops = self.readers(t)
            if len(ops) == 1 and ops[0].type in ("RESHAPE", "SQUEEZE"):
                t = ops[0].outputs[0]
        ops = self.readers(t)
        if len(ops) == 1 and ops[0].type == "FULLY_CONNECTED":
            op = ops[0]
            w = g.constant(op.inputs[1])
            b = g.constant(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else np.zeros(w.shape[0], np.float32)
            act = op.options.get("fused_activation_function", "NONE")
            logits = ConvSpec(op=op, depthwise=False, weight=w, bias=b, stride=1, dilation=1, activation=act,
                              input=t, output=op.outputs[0])
        else:
            conv = self.single_conv_reader(t)
            if conv is None or conv.kernel_size != 1 or conv.depthwise:
                found = ", ".join(_op_desc(g, op) for op in ops) or "nothing"
                raise self.fail(f"classifier: expected a 1x1 conv or FULLY_CONNECTED after the pooling, found {found}.")
            logits = ConvSpec(op=conv.op, depthwise=False, weight=conv.weight[:, :, 0, 0], bias=conv.bias, stride=1,
                              dilation=1, activation=conv.activation, input=conv.input, output=conv.output)
        if logits.activation != "NONE":
            raise self.fail(f"classifier: the logits layer {_op_desc(g, logits.op)} has activation {logits.activation}.")
        self.read_tail(logits.output, segmentor=False)
        return logits


def _expected_channels(width: float, rounding: int, final_conv: bool) -> list[tuple[int, ...]]:
    """Per layer: the out-channels of each conv, as segkit's MobileNetV2 builds them (on the meta device)."""
    with torch.device("meta"):
        net = MobileNetV2(width_mult=width, round_nearest=rounding, final_conv=final_conv)
    return [tuple(m.out_channels for m in layer.modules() if isinstance(m, nn.Conv2d)) for layer in net.features]


def _infer_width(layers: list[BackboneLayer], final_conv: bool,
                 fail: Callable[[str], TFLiteConversionError]) -> tuple[float, int]:
    """The (width multiplier, channel rounding) whose MobileNetV2 has exactly the graph's channel counts."""
    found = [tuple(c.out_channels for c in layer.convs) for layer in layers]
    last = layers[-2 if final_conv else -1].convs[-1].out_channels
    candidates = [round(last / 320, 4), *STANDARD_WIDTHS]
    candidates += [round(layer.convs[-1].out_channels / c, 4) for layer, c in
                   zip(layers[1:], [c for _, c, n, _ in INVERTED_RESIDUAL_SETTING for _ in range(n)])]
    for rounding in (8, 1):
        for width in dict.fromkeys(candidates):
            if width > 0 and _expected_channels(width, rounding, final_conv) == found:
                return width, rounding
    raise fail(
        f"the channel counts do not match MobileNetV2 at any width multiplier with channel rounding 8 or 1 "
        f"(graph per layer: {found[:4]} ... {found[-2:]}; width 1.0 would give "
        f"{_expected_channels(1.0, 8, final_conv)[:4]} ...)."
    )


def infer_architecture(graph: TFLiteGraph) -> TFLiteArchitecture:
    """Read the model family's architecture from a parsed TFLite graph.

    Raises:
        TFLiteConversionError: the graph is not a MobileNetV2 classifier or DeepLabV3 segmentor that
            segkit can build; the message names the op or tensor that did not fit.
    """
    reader = _GraphReader(graph)
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
        raise reader.fail(f"the backbone's output stride is {output_stride} (layer strides {strides}); "
                          "segkit supports 8, 16 and 32.")
    dilations = [layer.dilation for layer in layers]

    # The segkit backbone must place strides and dilations exactly like the graph.
    ref = MobileNetV2(width_mult=width, round_nearest=rounding, output_stride=output_stride,  # type: ignore[arg-type]
                      final_conv=final_conv)
    ref_strides = [2] + [getattr(m, "stride", 1) for m in list(ref.features)[1:]]
    for layer, module, s, d in zip(layers, ref.features, ref_strides, ref.layer_dilation):
        if layer.residual != getattr(module, "use_res_connect", False):
            raise reader.fail(f"{layer.name}: the graph has {'a' if layer.residual else 'no'} residual connection, "
                              "segkit's MobileNetV2 the opposite.")
        if (layer.stride, layer.dilation) != (s, d):
            op = layer.convs[1 if len(layer.convs) == 3 else 0].op
            raise reader.fail(
                f"{layer.name} ({_op_desc(graph, op)}) has stride {layer.stride} and dilation {layer.dilation}, "
                f"but segkit's output-stride-{output_stride} MobileNetV2 (TF DeepLab's rule: the layer that loses "
                f"its stride keeps the previous rate) has stride {s} and dilation {d}."
            )

    readers = reader.readers(feat)
    is_segmentor = len(readers) > 1
    arch = TFLiteArchitecture(
        kind="segmentor" if is_segmentor else "classifier", input_size=size, input_dtype=dtype, input_mean=mean,
        input_std=std, width_mult=width, round_nearest=rounding, output_stride=output_stride, dilations=dilations,
        final_conv=final_conv, num_classes=0, layers=layers,
    )
    if is_segmentor:
        head, order, align, num_classes = reader.read_segmentation_head(feat)
        arch.head, arch.branch_order, arch.align_corners, arch.num_classes = head, order, align, num_classes
        arch.head_channels = head["aspp0"].out_channels
        arch.aspp_rates = [head[f"atrous_{i}"].dilation for i in range(len(order) - 2)]
        for name, conv in head.items():
            if name != "classifier" and conv.out_channels != arch.head_channels:
                raise reader.fail(f"head branch '{name}' ({_op_desc(graph, conv.op)}) has {conv.out_channels} "
                                  f"filters, the 1x1 branch {arch.head_channels}; segkit's head uses one width.")
    else:
        if not final_conv:
            found = _op_desc(graph, readers[0]) if readers else "nothing"
            raise reader.fail(f"{_tensor_desc(graph, feat)} feeds only {found}; expected a DeepLabV3 head, or the "
                              "classifier's 1x1 conv to 1280 channels.")
        arch.head = {"classifier": reader.read_classifier_head(feat)}
        arch.num_classes = arch.head["classifier"].out_channels
    arch.notes = reader.notes
    return arch


# --- loading into segkit modules ------------------------------------------------------------------

def _conv_bn_pairs(module: nn.Module) -> list[tuple[nn.Conv2d, nn.BatchNorm2d | None]]:
    """Convs in registration (= execution) order, each with the BN that directly follows it."""
    mods = [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    return [(m, mods[i + 1] if i + 1 < len(mods) and isinstance(mods[i + 1], nn.BatchNorm2d) else None)
            for i, m in enumerate(mods) if isinstance(m, nn.Conv2d)]


@torch.no_grad()
def _load_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d | None, spec: ConvSpec, where: str,
               weight: np.ndarray | None = None) -> None:
    w = torch.from_numpy(np.ascontiguousarray(spec.weight if weight is None else weight))
    if tuple(conv.weight.shape) != tuple(w.shape):
        raise TFLiteConversionError(f"{where}: {spec.op.describe()} has weights {list(w.shape)} (PyTorch layout), "
                                    f"the segkit module expects {list(conv.weight.shape)}.")
    if conv.stride[0] != spec.stride or conv.dilation[0] != spec.dilation:
        raise TFLiteConversionError(f"{where}: {spec.op.describe()} has stride {spec.stride} dilation {spec.dilation}, "
                                    f"the segkit module stride {conv.stride[0]} dilation {conv.dilation[0]}.")
    conv.weight.copy_(w)
    bias = torch.from_numpy(spec.bias)
    if bn is not None:  # identity BN carrying the folded bias: y = (x - 0) / sqrt(1 - eps + eps) * 1 + b
        bn.weight.fill_(1.0)
        bn.bias.copy_(bias)
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)
        if bn.num_batches_tracked is not None:
            bn.num_batches_tracked.zero_()
    elif conv.bias is not None:
        conv.bias.copy_(bias)
    elif bias.abs().max() > 0:
        raise TFLiteConversionError(f"{where}: {spec.op.describe()} has a bias but the segkit conv has none and no BN.")


def _load_backbone(backbone: nn.Module, layers: list[BackboneLayer]) -> None:
    features = backbone.features
    if len(features) != len(layers):
        raise TFLiteConversionError(f"the graph has {len(layers)} backbone layers, the segkit backbone {len(features)}.")
    for layer, module in zip(layers, features):
        pairs = _conv_bn_pairs(module)
        if len(pairs) != len(layer.convs):
            raise TFLiteConversionError(f"{layer.name}: {len(layer.convs)} convs in the graph, {len(pairs)} in segkit.")
        for (conv, bn), spec in zip(pairs, layer.convs):
            _load_conv(conv, bn, spec, layer.name)


def build_converted_model(arch: TFLiteArchitecture) -> nn.Module:
    """Build the segkit model for ``arch`` and load the graph's weights; returned in eval mode.

    A segmentor is a :class:`segkit.models.Segmentor`, a classifier a
    :class:`segkit.models.classifier.MobileNetV2Classifier`.
    """
    mcfg = arch.model_config()
    if arch.kind == "classifier":
        from segkit.models.classifier import build_classifier

        model = build_classifier(mcfg)
        _load_backbone(model, arch.layers)
        spec = arch.head["classifier"]
        linear = model.classifier[1]
        if tuple(linear.weight.shape) != spec.weight.shape:
            raise TFLiteConversionError(f"classifier: logits weights {list(spec.weight.shape)} vs segkit "
                                        f"{list(linear.weight.shape)}.")
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(spec.weight)))
            linear.bias.copy_(torch.from_numpy(spec.bias))
        return model.eval()

    from segkit.models import build_model

    model = build_model(mcfg)
    _load_backbone(model.backbone, arch.layers)
    head = model.head
    c = arch.head_channels
    # The projection's input channels follow the graph's concat order; segkit concatenates
    # [image_pool, aspp0, atrous_0, ...]: reorder the weight's input blocks to segkit's order.
    segkit_order = ["image_pool", "aspp0", *[f"atrous_{i}" for i in range(len(arch.aspp_rates))]]
    w = arch.head["project"].weight
    blocks = {name: w[:, i * c:(i + 1) * c] for i, name in enumerate(arch.branch_order)}
    project_w = np.concatenate([blocks[name] for name in segkit_order], axis=1)
    targets = {
        "image_pool": (head.image_pool.conv[0], head.image_pool.conv[1]),
        "aspp0": (head.aspp0[0], head.aspp0[1]),
        **{f"atrous_{i}": (branch[0], branch[1]) for i, branch in enumerate(head.atrous)},
        "project": (head.project[0], head.project[1]),
        "classifier": (head.classifier, None),
    }
    for name, (conv, bn) in targets.items():
        _load_conv(conv, bn, arch.head[name], f"head.{name}", weight=project_w if name == "project" else None)
    return model.eval()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def convert_tflite(
    path: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    class_names: list[str] | None = None,
) -> TFLiteConversion:
    """Convert a TFLite MobileNetV2 DeepLabV3 segmentor or ImageNet classifier to segkit.

    Args:
        path: the .tflite file.
        out: where to write the segkit checkpoint (kind 'segmentor' or 'classifier'); None: do not write.
        class_names: one name per class; default: PASCAL VOC's names for a 21-class segmentor, else none.

    Raises:
        ImportError: the optional ``tflite`` package is missing.
        TFLiteFormatError: not a (readable) TFLite file.
        TFLiteConversionError: a graph segkit cannot reproduce; the message names the op/tensor.
    """
    path = Path(path)
    graph = load_tflite(path)
    arch = infer_architecture(graph)
    model = build_converted_model(arch)
    name = "tflite_" + re.sub(r"[^A-Za-z0-9_]+", "_", path.stem)
    cfg = arch.config(name)
    palette = None
    if class_names is not None:
        if len(class_names) != arch.num_classes:
            raise ValueError(f"class_names has {len(class_names)} names but the model has {arch.num_classes} classes.")
    elif arch.kind == "segmentor" and arch.num_classes == 21:
        from segkit.data.classes import VOC_CLASSES, VOC_PALETTE

        class_names = list(VOC_CLASSES)
        palette = VOC_PALETTE[:21].tolist()
        arch.notes.append("21 classes: assumed PASCAL VOC's class names and palette.")
    if out is not None:
        from segkit.checkpoint import save_checkpoint

        save_checkpoint(
            out, model, cfg, class_names=class_names, palette=palette, kind=arch.kind,
            source={"converter": "segkit.convert.tflite", "file": path.name, "sha256": _sha256(path),
                    "input_size": list(arch.input_size), "input_dtype": arch.input_dtype,
                    "notes": list(arch.notes)},
        )
    return TFLiteConversion(model=model, config=cfg, architecture=arch, class_names=class_names)

