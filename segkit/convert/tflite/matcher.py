"""Walk a TFLite graph from its input, matching MobileNetV2's stem and inverted residual blocks.

:class:`GraphMatcher` reads convolutions (with their SPACE_TO_BATCH_ND / PAD wrappers and fused or
separate activations) into :class:`ConvSpec` objects, weights already in PyTorch layout, and the
backbone into :class:`BackboneLayer` objects. Every mismatch raises :class:`TFLiteConversionError`
naming the op or tensor. The heads are matched in :mod:`segkit.convert.tflite.heads`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from segkit.convert.tflite.reader import TFLiteGraph, TFLiteOp, TFLiteTensor
from segkit.errors import SegkitError
from segkit.models.backbones.mobilenetv2 import INVERTED_RESIDUAL_SETTING

__all__ = [
    "BackboneLayer",
    "ConvSpec",
    "GraphMatcher",
    "TFLiteConversionError",
    "implied_activation",
    "op_desc",
    "tensor_desc",
]

CONV_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D")
# Ops that only re-quantize or change the dtype of an activation: followed transparently.
PASSTHROUGH_OPS = ("QUANTIZE", "DEQUANTIZE", "CAST")
# The integer range of each quantized activation dtype (for activations implied by a quantization range).
QUANT_LIMITS = {"uint8": (0, 255), "int8": (-128, 127)}
# Ops allowed between the logits and the graph output.
TAIL_OPS = ("RESIZE_BILINEAR", "ARG_MAX", "SOFTMAX", "RESHAPE", "SQUEEZE", "SLICE", "STRIDED_SLICE", *PASSTHROUGH_OPS)


class TFLiteConversionError(SegkitError, ValueError):
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
        activation: fused (or directly following) activation: 'NONE', 'RELU', 'RELU6'; without either,
            the one the output's quantization range implies (0..6: 'RELU6', 0..max: 'RELU').
        implied: the activation was read from the output's quantization range, not from an op.
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
    implied: bool = False

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


def implied_activation(tensor: TFLiteTensor) -> str:
    """The activation a quantized tensor's range implies: 'RELU6' for 0..6, 'RELU' for 0..max, else 'NONE'.

    Quantization-aware-trained files (e.g. the MLPerf ADE20K DeepLabV3+) often drop the fused ReLU6/ReLU
    and let the output's quantization range clamp the values: the interpreter cannot represent anything
    below ``scale * (q_min - zero_point)`` = 0 or above ``scale * (q_max - zero_point)``.
    """
    q = tensor.quant
    if q is None or q.per_channel or tensor.dtype not in QUANT_LIMITS:
        return "NONE"
    lo_q, hi_q = QUANT_LIMITS[tensor.dtype]
    scale, zero = float(q.scale[0]), int(q.zero_point[0])
    if zero != lo_q:  # the range does not start at 0
        return "NONE"
    top = scale * (hi_q - zero)
    return "RELU6" if abs(top - 6.0) <= scale else "RELU"


def tensor_desc(graph: TFLiteGraph, index: int) -> str:
    t = graph.tensor(index)
    name = t.name if len(t.name) <= 90 else t.name[:87] + "..."
    return f"tensor {index} '{name}' {list(t.shape)}"


def op_desc(graph: TFLiteGraph, op: TFLiteOp) -> str:
    out = tensor_desc(graph, op.outputs[0]) if op.outputs else "no output"
    return f"op {op.index} ({op.type}) writing {out}"


class GraphMatcher:
    """Walks a TFLiteGraph from the input, matching MobileNetV2 / DeepLabV3 patterns."""

    def __init__(self, graph: TFLiteGraph) -> None:
        self.g = graph
        self.notes: list[str] = []
        # Backbone end points by tensor (aliases included): 'layer_4', 'layer_4/depthwise_output', ...
        self.end_points: dict[int, str] = {}

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
            raise self.fail(f"expected a 4-D NHWC activation, got {tensor_desc(self.g, t)}.")
        return shape[3]

    def spatial(self, t: int) -> tuple[int, int]:
        shape = self.g.tensor(t).shape
        return (shape[1], shape[2]) if len(shape) == 4 else (1, 1)

    def const_ints(self, t: int, what: str, op: TFLiteOp) -> list[int]:
        if not self.g.is_constant(t):
            raise self.fail(f"{op_desc(self.g, op)}: its {what} ({tensor_desc(self.g, t)}) is not a constant.")
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
            raise self.fail(f"expected a convolution, found {op_desc(g, op)}.")
        opts = op.options
        x = (wrapper or pad or op).inputs[0]
        if len(op.inputs) < 2 or not g.is_constant(op.inputs[1]):
            raise self.fail(
                f"{op_desc(g, op)}: its weights are not a constant tensor; only frozen weights can be converted."
            )
        w = g.constant(op.inputs[1])
        bias_index = op.inputs[2] if len(op.inputs) > 2 else -1
        out_ch = w.shape[0] if op.type == "CONV_2D" else w.shape[3]
        bias = g.constant(bias_index) if bias_index >= 0 else np.zeros(out_ch, np.float32)
        stride_h, stride_w = opts.get("stride_h", 1), opts.get("stride_w", 1)
        dil_h, dil_w = opts.get("dilation_h_factor", 1), opts.get("dilation_w_factor", 1)
        if stride_h != stride_w or dil_h != dil_w:
            raise self.fail(
                f"{op_desc(g, op)}: non-square stride ({stride_h}, {stride_w}) or dilation "
                f"({dil_h}, {dil_w}) is not supported."
            )
        if w.ndim != 4 or w.shape[1] != w.shape[2]:
            raise self.fail(f"{op_desc(g, op)}: expected a square 4-D kernel, got weights {list(w.shape)}.")
        k = w.shape[1]
        in_ch = self.channels(op.inputs[0])
        if op.type == "CONV_2D":
            if w.shape[3] != in_ch:
                raise self.fail(
                    f"{op_desc(g, op)}: grouped convolutions are not supported "
                    f"(weights {list(w.shape)} for {in_ch} input channels)."
                )
            weight = w.transpose(0, 3, 1, 2)  # OHWI -> OIHW
        else:
            if w.shape[0] != 1 or w.shape[3] != in_ch:
                raise self.fail(
                    f"{op_desc(g, op)}: depth multiplier {w.shape[3] // max(in_ch, 1)} "
                    f"(weights {list(w.shape)}, {in_ch} input channels) is not supported; "
                    "MobileNetV2 uses 1."
                )
            weight = w.transpose(3, 0, 1, 2)  # 1HWC -> C1HW
        if bias.shape != (weight.shape[0],):
            raise self.fail(f"{op_desc(g, op)}: bias of shape {list(bias.shape)} for {weight.shape[0]} outputs.")
        out = op.outputs[0]
        dilation = dil_h
        if wrapper is not None:
            block = self.const_ints(wrapper.inputs[1], "block shape", wrapper)
            if len(set(block)) != 1 or dil_h != 1 or stride_h != 1:
                raise self.fail(
                    f"{op_desc(g, wrapper)}: block shape {block} around a conv with stride "
                    f"{stride_h} and dilation {dil_h} is not an atrous convolution segkit can map."
                )
            after = g.consumers(out)
            if len(after) != 1 or after[0].type != "BATCH_TO_SPACE_ND":
                raise self.fail(f"{op_desc(g, wrapper)} is not closed by a BATCH_TO_SPACE_ND after {op_desc(g, op)}.")
            dilation, out = block[0], after[0].outputs[0]
            if self.spatial(out) != self.spatial(x):
                raise self.fail(
                    f"{op_desc(g, after[0])}: the atrous conv changes the size "
                    f"{self.spatial(x)} -> {self.spatial(out)}; only 'SAME' atrous convs are supported."
                )
        elif pad is not None:
            pads = self.const_ints(pad.inputs[1], "paddings", pad)
            expected = []
            for size in self.spatial(x):
                total = max((math.ceil(size / stride_h) - 1) * stride_h + (k - 1) * dil_h + 1 - size, 0)
                expected += [total // 2, total - total // 2]
            if opts.get("padding") != "VALID" or pads != [0, 0, *expected, 0, 0]:
                raise self.fail(
                    f"{op_desc(g, pad)}: explicit paddings {pads} before {op_desc(g, op)} differ "
                    f"from TF 'SAME' padding ({[0, 0, *expected, 0, 0]}); segkit cannot reproduce them."
                )
        elif opts.get("padding") != "SAME" and k > 1:
            raise self.fail(
                f"{op_desc(g, op)}: 'VALID' padding on a {k}x{k} conv is not supported "
                "(MobileNetV2/DeepLab use 'SAME')."
            )
        activation = opts.get("fused_activation_function", "NONE")
        nxt = g.consumers(out)
        if activation == "NONE" and len(nxt) == 1 and nxt[0].type in ("RELU", "RELU6"):
            activation, out = nxt[0].type, nxt[0].outputs[0]
        implied = False
        if activation == "NONE":
            activation = implied_activation(g.tensor(out))
            implied = activation != "NONE"
            if implied and "quantization range" not in " ".join(self.notes):
                self.notes.append(
                    "activations read from the output tensors' quantization ranges (0..6: ReLU6, 0..max: ReLU), "
                    "not from fused activations."
                )
        if activation not in ("NONE", "RELU", "RELU6"):
            raise self.fail(f"{op_desc(g, op)}: activation {activation} is not supported (NONE, RELU, RELU6).")
        return ConvSpec(
            op=op,
            depthwise=op.type == "DEPTHWISE_CONV_2D",
            weight=np.ascontiguousarray(weight),
            bias=bias.astype(np.float32),
            stride=stride_h,
            dilation=dilation,
            activation=activation,
            input=x,
            output=out,
            implied=implied,
        )

    def single_conv_reader(self, t: int) -> ConvSpec | None:
        starts = [op for op in self.readers(t) if self.is_conv_start(op)]
        return self.conv(starts[0]) if len(starts) == 1 else None

    def backbone_conv_reader(self, t: int) -> ConvSpec | None:
        """The one conv of the backbone reading ``t``.

        Where the graph branches (a DeepLabV3+ decoder taps a backbone tensor with its 1x1
        ``feature_projection0``), the conv whose output feeds a CONCATENATION is the decoder's, not the backbone's.
        """
        starts = [op for op in self.readers(t) if self.is_conv_start(op)]
        if len(starts) > 1:
            starts = [
                op for op in starts if not any(r.type == "CONCATENATION" for r in self.readers(self.conv(op).output))
            ]
        return self.conv(starts[0]) if len(starts) == 1 else None

    def add_end_point(self, t: int, name: str) -> None:
        for alias in self.aliases(t):
            self.end_points.setdefault(alias, name)

    # --- input ------------------------------------------------------------------------------
    def read_input(self) -> tuple[int, tuple[int, int], str, list[float], list[float]]:
        g = self.g
        if len(g.inputs) != 1:
            raise self.fail(
                f"expected one input image, the graph has {len(g.inputs)} inputs "
                f"({', '.join(tensor_desc(g, i) for i in g.inputs)})."
            )
        t = g.tensor(g.inputs[0])
        if len(t.shape) != 4 or t.shape[3] != 3:
            raise self.fail(f"expected an NHWC RGB input [1, H, W, 3], got {tensor_desc(g, t.index)}.")
        q = t.quant
        if t.dtype == "uint8" and q is not None and not q.per_channel:
            mean, std = float(q.zero_point[0]), 1.0 / float(q.scale[0])
        elif t.dtype == "int8" and q is not None and not q.per_channel:
            mean, std = float(q.zero_point[0]) + 128.0, 1.0 / float(q.scale[0])
            self.notes.append("int8 input: assumed q = pixel - 128.")
        elif t.dtype == "float32":
            mean, std = 127.5, 127.5
            self.notes.append(
                "float input carries no preprocessing: assumed TF MobileNet's [-1, 1] "
                "(mean 127.5, std 127.5); check the exporter's preprocessing."
            )
        else:
            raise self.fail(
                f"unsupported input {tensor_desc(g, t.index)} of type {t.dtype} "
                "(expected uint8/int8 with quantization parameters, or float32)."
            )
        return t.index, (t.shape[1], t.shape[2]), t.dtype, [mean] * 3, [std] * 3

    # --- backbone ---------------------------------------------------------------------------
    def read_block(self, t: int, name: str) -> BackboneLayer | None:
        first = self.backbone_conv_reader(t)
        if first is None:
            return None
        expand = None
        if first.depthwise:
            dw = first
        else:
            if first.kernel_size != 1 or first.activation != "RELU6":
                return None
            dw = self.backbone_conv_reader(first.output)
            if dw is None or not dw.depthwise:
                return None
            expand = first
        if dw.kernel_size != 3 or dw.activation != "RELU6":
            raise self.fail(
                f"{name}: expected a 3x3 depthwise conv with ReLU6, found {op_desc(self.g, dw.op)} "
                f"({dw.kernel_size}x{dw.kernel_size}, {dw.activation})."
            )
        proj = self.backbone_conv_reader(dw.output)
        if proj is None or proj.depthwise or proj.kernel_size != 1 or proj.activation != "NONE":
            found = ", ".join(op_desc(self.g, op) for op in self.readers(dw.output)) or "nothing"
            raise self.fail(
                f"{name}: expected a linear 1x1 projection conv after {op_desc(self.g, dw.op)}, found {found}."
            )
        out = proj.output
        inputs = self.aliases(t)
        adds = [op for op in self.readers(out) if op.type == "ADD" and inputs & set(op.inputs)]
        if adds:
            if adds[0].options.get("fused_activation_function", "NONE") != "NONE":
                raise self.fail(f"{name}: residual {op_desc(self.g, adds[0])} has a fused activation.")
            out = adds[0].outputs[0]
        convs = [c for c in (expand, dw, proj) if c is not None]
        self.add_end_point(dw.output, f"{name}/depthwise_output")
        self.add_end_point(out, name)
        return BackboneLayer(name, convs, stride=dw.stride, dilation=dw.dilation, residual=bool(adds), output=out)

    def read_backbone(self, x: int) -> list[BackboneLayer]:
        stem = self.single_conv_reader(x)
        if stem is None or stem.depthwise or stem.kernel_size != 3 or stem.stride != 2:
            found = ", ".join(op_desc(self.g, op) for op in self.readers(x)) or "nothing"
            raise self.fail(f"expected MobileNetV2's stem (a 3x3 stride-2 conv) reading the input, found {found}.")
        layers = [
            BackboneLayer("layer_1", [stem], stride=2, dilation=stem.dilation, residual=False, output=stem.output)
        ]
        self.add_end_point(stem.output, "layer_1")
        num_blocks = sum(n for _, _, n, _ in INVERTED_RESIDUAL_SETTING)
        while len(layers) <= num_blocks:
            name = f"layer_{len(layers) + 1}"
            block = self.read_block(layers[-1].output, name)
            if block is None:
                t = layers[-1].output
                found = ", ".join(op_desc(self.g, op) for op in self.readers(t)) or "nothing"
                raise self.fail(
                    f"expected MobileNetV2's {num_blocks} inverted residual blocks after the stem, found "
                    f"{len(layers) - 1}: {tensor_desc(self.g, t)} is read by {found}, which is not an "
                    "(expand 1x1 ReLU6 ->) depthwise 3x3 ReLU6 -> linear 1x1 block."
                )
            layers.append(block)
        return layers
