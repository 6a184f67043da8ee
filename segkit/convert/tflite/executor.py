"""Execute a parsed TFLite graph op by op in float32 with PyTorch: a slow reference for checking conversions.

graph = load_tflite("deeplabv3_mnv2_pascal_quant.tflite")
values = run_graph(graph, image_uint8_nhwc)      # every computed tensor, by index

Each supported op kind has a small handler ``(run, op) -> output tensor`` in ``_OPS``; ``run_graph`` feeds
the input, then calls the handler of every op in order and stores its output.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from segkit.convert.tflite.matcher import implied_activation, op_desc
from segkit.convert.tflite.reader import TFLiteFormatError, TFLiteGraph, TFLiteOp
from segkit.models.resize import legacy_resize_bilinear

__all__ = ["legacy_resize_bilinear", "run_graph"]

# The integer range of each quantized dtype that emulate_quantization rounds to.
_QUANT_LIMITS = {"uint8": (0, 255), "int8": (-128, 127), "int16": (-32768, 32767)}
# Added before rounding down: a value that is a half on the integer grid, computed a few ulps short, still rounds up.
_TIE_NUDGE = 1e-9
# Ops whose output is integer indices, never rounded to a quantization grid.
_RAW_OUTPUT_OPS = frozenset({"ARG_MAX"})


class _Run:
    """One execution: the graph, the tensors computed so far (real values, NHWC) and the rounding mode."""

    def __init__(self, graph: TFLiteGraph, emulate_quantization: bool) -> None:
        self.graph = graph
        self.emulate_quantization = emulate_quantization
        # float64 when emulating: the 8-bit grid's rounding ties (e.g. a bilinear resize by 4 lands on halves)
        # must survive the arithmetic to be rounded as the interpreter rounds them
        self.dtype = torch.float64 if emulate_quantization else torch.float32
        self.values: dict[int, torch.Tensor] = {}

    def feed(self, image: np.ndarray) -> None:
        """Store the graph input as real values (dequantized when its tensor is quantized)."""
        index = self.graph.inputs[0]
        t = self.graph.tensors[index]
        raw = torch.from_numpy(np.asarray(image).astype(np.float64))
        if t.quant is not None and t.dtype in _QUANT_LIMITS:
            raw = float(t.quant.scale[0]) * (raw - int(t.quant.zero_point[0]))
        self.values[index] = raw.to(self.dtype)

    def value(self, index: int) -> torch.Tensor:
        """A computed tensor, or the real values of a constant one."""
        if index in self.values:
            return self.values[index]
        return torch.from_numpy(self.graph.constant(index)).to(self.dtype)

    def optional(self, op: TFLiteOp, position: int) -> torch.Tensor | None:
        """Input ``position`` of ``op`` (e.g. a bias), or None when it is absent or omitted (-1)."""
        ins = op.inputs
        return self.value(ins[position]) if len(ins) > position and ins[position] >= 0 else None

    def data(self, index: int) -> np.ndarray:
        """The raw contents of a constant parameter tensor (sizes, axes, paddings, block shapes)."""
        return np.asarray(self.graph.tensors[index].data)

    def store(self, op: TFLiteOp, y: torch.Tensor) -> None:
        """Record the op's output, rounded to its tensor's 8/16-bit grid when emulating quantization.

        An activation the output's quantization range implies (0..6: ReLU6, 0..max: ReLU) is applied in
        float too: the interpreter cannot represent values outside that range, so the graph means it.
        """
        index = op.outputs[0]
        if op.type in _RAW_OUTPUT_OPS:
            self.values[index] = y
            return
        y = _activate(y, implied_activation(self.graph.tensors[index]))
        self.values[index] = self._quantize(index, y)

    def _quantize(self, index: int, x: torch.Tensor) -> torch.Tensor:
        t = self.graph.tensors[index]
        if self.emulate_quantization and t.quant is not None and t.dtype in _QUANT_LIMITS and not t.quant.per_channel:
            s, z = float(t.quant.scale[0]), int(t.quant.zero_point[0])
            lo, hi = _QUANT_LIMITS[t.dtype]
            # round half up as the interpreter's integer kernels (XNNPACK) do; the nudge keeps exact halves halves
            x = (torch.clamp(torch.floor(x / s + (0.5 + _TIE_NUDGE)) + z, lo, hi) - z) * s
        return x


def _activate(x: torch.Tensor, name: str) -> torch.Tensor:
    if name == "RELU":
        return torch.relu(x)
    if name == "RELU6":
        return torch.clamp(x, 0.0, 6.0)
    if name == "NONE":
        return x
    raise TFLiteFormatError(f"run_graph: activation {name} is not supported.")


def _fused(op: TFLiteOp, y: torch.Tensor) -> torch.Tensor:
    """Apply the op's fused activation."""
    return _activate(y, op.options.get("fused_activation_function", "NONE"))


def _same_pad(x: torch.Tensor, k: tuple[int, int], s: int, d: int) -> torch.Tensor:
    """TensorFlow 'SAME' padding of an NCHW tensor (the extra pixel, if any, after)."""
    pads = []
    for size, kk in zip(x.shape[2:], k):
        total = max((-(-size // s) - 1) * s + (kk - 1) * d + 1 - size, 0)
        pads.append((total // 2, total - total // 2))
    return F.pad(x, (pads[1][0], pads[1][1], pads[0][0], pads[0][1]))


# -- op handlers: (run, op) -> the op's output, real values, NHWC ------------------------------------


def _integer_operands(run: _Run, op: TFLiteOp) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """A quantized conv's input, weights and bias on their integer grids (``q - zero_point``, float64, exact) and
    the real value of one accumulator unit per output channel (``input scale * weight scale``): the interpreter
    accumulates these integers exactly, which float products of dequantized values do not."""
    xt, wt = run.graph.tensors[op.inputs[0]], run.graph.tensors[op.inputs[1]]
    assert xt.quant is not None and wt.quant is not None and wt.data is not None
    sx = float(xt.quant.scale[0])
    x = torch.round(run.value(op.inputs[0]) / sx)  # the input is on its grid already: q - zero_point, exact
    axis = wt.quant.quantized_dimension if wt.quant.per_channel else 0
    shape = [1] * wt.data.ndim
    shape[axis] = -1
    zw = wt.quant.zero_point.reshape(shape) if wt.quant.per_channel else int(wt.quant.zero_point[0])
    w = torch.from_numpy(wt.data.astype(np.float64) - zw)
    unit = torch.from_numpy(sx * np.asarray(wt.quant.scale, np.float64).reshape(-1))
    bias = None
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        bt = run.graph.tensors[op.inputs[2]]
        bias = torch.from_numpy(np.asarray(bt.data, np.float64)) if bt.data is not None else None
    return x, w, bias, unit


def _exact_integer_conv(run: _Run, op: TFLiteOp) -> bool:
    """Emulating quantization, a conv with quantized input, weights and int32 bias runs on the integer grid."""
    if not run.emulate_quantization:
        return False
    ts = [run.graph.tensors[i] for i in op.inputs[:3] if i >= 0]
    quantized = all(t.quant is not None and t.dtype in (*_QUANT_LIMITS, "int32") for t in ts)
    return quantized and ts[1].data is not None and (len(ts) < 3 or ts[2].dtype == "int32")


def _conv(run: _Run, op: TFLiteOp) -> torch.Tensor:  # CONV_2D, DEPTHWISE_CONV_2D
    o, depthwise = op.options, op.type == "DEPTHWISE_CONV_2D"
    if _exact_integer_conv(run, op):
        x, w, bias, unit = _integer_operands(run, op)
    else:
        x, w, bias, unit = run.value(op.inputs[0]), run.value(op.inputs[1]), run.optional(op, 2), None
    x = x.permute(0, 3, 1, 2)
    w = w.permute(3, 0, 1, 2) if depthwise else w.permute(0, 3, 1, 2)
    stride, dil = o.get("stride_h", 1), o.get("dilation_h_factor", 1)
    if o.get("padding") == "SAME":
        x = _same_pad(x, tuple(w.shape[2:]), stride, dil)
    groups = x.shape[1] if depthwise else 1
    y = F.conv2d(x, w, bias, stride, 0, dil, groups).permute(0, 2, 3, 1)
    if unit is not None:
        y = _requantize_accumulators(run, op, y, unit)
    return _fused(op, y)


def _requantize_accumulators(run: _Run, op: TFLiteOp, acc: torch.Tensor, unit: torch.Tensor) -> torch.Tensor:
    """Integer accumulators to the output's grid as XNNPACK does (its fp32 requantization): the accumulator as
    float32 times the float32 scale ``input scale * weight scale / output scale``, rounded half to even; returned
    as real values (``q - zero_point`` times the output scale), which the store keeps as they are."""
    out = run.graph.tensors[op.outputs[0]]
    if out.quant is None or out.dtype not in _QUANT_LIMITS:
        return acc * unit
    s_out = float(out.quant.scale[0])
    scale = (unit.float() / torch.tensor(s_out, dtype=torch.float32)).float()
    return torch.round(acc.float() * scale).to(run.dtype) * s_out


def _fully_connected(run: _Run, op: TFLiteOp) -> torch.Tensor:
    w = run.value(op.inputs[1])
    x = run.value(op.inputs[0]).reshape(-1, w.shape[1])
    return _fused(op, F.linear(x, w, run.optional(op, 2)))


_BINARY = {"ADD": operator.add, "MUL": operator.mul, "SUB": operator.sub}


def _binary(run: _Run, op: TFLiteOp) -> torch.Tensor:  # ADD, MUL, SUB
    return _fused(op, _BINARY[op.type](run.value(op.inputs[0]), run.value(op.inputs[1])))


def _pool(run: _Run, op: TFLiteOp) -> torch.Tensor:  # AVERAGE_POOL_2D, MAX_POOL_2D
    o = op.options
    x = run.value(op.inputs[0]).permute(0, 3, 1, 2)
    k, stride = (o["filter_height"], o["filter_width"]), o.get("stride_h", 1)
    if o.get("padding") == "SAME" and k != (1, 1):
        raise TFLiteFormatError(f"run_graph: {op.describe()} with SAME padding is not supported.")
    pool = F.avg_pool2d if op.type == "AVERAGE_POOL_2D" else F.max_pool2d
    return _fused(op, pool(x, k, stride).permute(0, 2, 3, 1))


def _mean(run: _Run, op: TFLiteOp) -> torch.Tensor:
    axes = [int(a) for a in run.data(op.inputs[1]).reshape(-1)]
    return run.value(op.inputs[0]).mean(dim=axes, keepdim=bool(op.options.get("keep_dims")))


def _concatenation(run: _Run, op: TFLiteOp) -> torch.Tensor:
    return _fused(op, torch.cat([run.value(i) for i in op.inputs], dim=op.options.get("axis", -1)))


def _resize(run: _Run, op: TFLiteOp) -> torch.Tensor:  # RESIZE_BILINEAR (RESIZE_NEAREST_NEIGHBOR: refused)
    o = op.options
    size = [int(v) for v in run.data(op.inputs[1]).reshape(-1)]
    x = run.value(op.inputs[0]).permute(0, 3, 1, 2)
    if op.type == "RESIZE_NEAREST_NEIGHBOR":
        raise TFLiteFormatError(f"run_graph: {op.describe()} ({o}) is not supported.")
    if not (o.get("align_corners") or o.get("half_pixel_centers")):
        return legacy_resize_bilinear(x, size).permute(0, 2, 3, 1)
    y = F.interpolate(x, size=size, mode="bilinear", align_corners=bool(o.get("align_corners")))
    return y.permute(0, 2, 3, 1)


def _reshape(run: _Run, op: TFLiteOp) -> torch.Tensor:  # RESHAPE, SQUEEZE: to the output tensor's static shape
    return run.value(op.inputs[0]).reshape(run.graph.tensors[op.outputs[0]].shape)


def _softmax(run: _Run, op: TFLiteOp) -> torch.Tensor:
    return torch.softmax(run.value(op.inputs[0]) * op.options.get("beta", 1.0), dim=-1)


def _arg_max(run: _Run, op: TFLiteOp) -> torch.Tensor:
    axis = int(run.data(op.inputs[1]).reshape(-1)[0])
    return run.value(op.inputs[0]).argmax(dim=axis)


def _quantize_op(run: _Run, op: TFLiteOp) -> torch.Tensor:
    """QUANTIZE: float -> 8-bit (the store rounds), or a requantization between two 8-bit grids.

    Emulating quantization, a requantization is done as XNNPACK's convert kernel does it: the scale ratio as an
    8-bit fixed-point multiplier (``round(256 * in_scale / out_scale)``), the product rounded half up. This differs
    from exact rounding on about 5% of the values of a ratio like 0.456 (measured on the int8 ADE20K graph).
    """
    x = run.value(op.inputs[0])
    src, dst = run.graph.tensors[op.inputs[0]], run.graph.tensors[op.outputs[0]]
    quantized = all(t.quant is not None and t.dtype in _QUANT_LIMITS and not t.quant.per_channel for t in (src, dst))
    if not (run.emulate_quantization and quantized):
        return x.to(run.dtype)
    s_in, s_out = float(src.quant.scale[0]), float(dst.quant.scale[0])
    multiplier = round(256 * s_in / s_out)
    q = torch.floor((torch.round(x / s_in) * multiplier + 128) / 256)  # x / s_in: the input's q - zero_point
    return q * s_out


def _to_float(run: _Run, op: TFLiteOp) -> torch.Tensor:  # DEQUANTIZE, CAST: values are already real
    return run.value(op.inputs[0]).to(run.dtype)


def _activation(run: _Run, op: TFLiteOp) -> torch.Tensor:  # RELU, RELU6
    return _activate(run.value(op.inputs[0]), op.type)


def _pad(run: _Run, op: TFLiteOp) -> torch.Tensor:
    pads = run.data(op.inputs[1]).reshape(-1, 2)
    return F.pad(run.value(op.inputs[0]), [int(v) for pair in pads[::-1] for v in pair])


def _space_to_batch(run: _Run, op: TFLiteOp) -> torch.Tensor:
    r = int(run.data(op.inputs[1]).reshape(-1)[0])
    (pt, pb), (pl, pr) = run.data(op.inputs[2]).reshape(2, 2).tolist()
    x = F.pad(run.value(op.inputs[0]), (0, 0, pl, pr, pt, pb))
    n, h, w, c = x.shape
    return x.reshape(n, h // r, r, w // r, r, c).permute(2, 4, 0, 1, 3, 5).reshape(r * r * n, h // r, w // r, c)


def _batch_to_space(run: _Run, op: TFLiteOp) -> torch.Tensor:
    x = run.value(op.inputs[0])
    r = int(run.data(op.inputs[1]).reshape(-1)[0])
    (ct, cb), (cl, cr) = run.data(op.inputs[2]).reshape(2, 2).tolist()
    b, h, w, c = x.shape
    n = b // (r * r)
    y = x.reshape(r, r, n, h, w, c).permute(2, 3, 0, 4, 1, 5).reshape(n, h * r, w * r, c)
    return y[:, ct : h * r - cb, cl : w * r - cr]


_Handler = Callable[[_Run, TFLiteOp], torch.Tensor]
_OPS: dict[str, _Handler] = {
    "CONV_2D": _conv,
    "DEPTHWISE_CONV_2D": _conv,
    "FULLY_CONNECTED": _fully_connected,
    "ADD": _binary,
    "MUL": _binary,
    "SUB": _binary,
    "AVERAGE_POOL_2D": _pool,
    "MAX_POOL_2D": _pool,
    "MEAN": _mean,
    "CONCATENATION": _concatenation,
    "RESIZE_BILINEAR": _resize,
    "RESIZE_NEAREST_NEIGHBOR": _resize,
    "RESHAPE": _reshape,
    "SQUEEZE": _reshape,
    "SOFTMAX": _softmax,
    "ARG_MAX": _arg_max,
    "QUANTIZE": _quantize_op,
    "DEQUANTIZE": _to_float,
    "CAST": _to_float,
    "RELU": _activation,
    "RELU6": _activation,
    "PAD": _pad,
    "SPACE_TO_BATCH_ND": _space_to_batch,
    "BATCH_TO_SPACE_ND": _batch_to_space,
}


def run_graph(
    graph: TFLiteGraph,
    image: np.ndarray,
    *,
    emulate_quantization: bool = False,
    stop_after: Iterable[int] | None = None,
) -> dict[int, np.ndarray]:
    """Execute the graph op by op in float32 with PyTorch: a slow reference for checking conversions.

    Supports the ops of MobileNetV2 classifiers and DeepLabV3(+) segmentors (the keys of ``_OPS``: convs,
    ADD/MUL/SUB, pooling, MEAN, CONCATENATION, RESIZE_BILINEAR (TF's legacy mode included), RESHAPE/SQUEEZE,
    SOFTMAX, ARG_MAX, (DE)QUANTIZE/CAST, PAD, SPACE_TO_BATCH_ND/BATCH_TO_SPACE_ND, FULLY_CONNECTED, RELU/RELU6).

    Args:
        graph: a parsed model.
        image: the raw input tensor as the TFLite interpreter takes it (e.g. uint8 NHWC).
        emulate_quantization: compute as the 8-bit interpreter (XNNPACK) does, in float64: convs on the integer
            grid (accumulators requantized with the float32 scale, rounded half to even), every other activation
            rounded half up to its tensor's grid (``q = clamp(floor(x / scale + 0.5) + zero_point)``), requantizing
            QUANTIZE ops with an 8-bit fixed-point multiplier. Gives the interpreter's labels on the ADE20K file
            (99.98% of 10 images' pixels) and its int8 rewrite. Without it, an activation implied by an output's
            quantization range (0..6, 0..max) is still applied.
        stop_after: tensor indices; stop as soon as all of them are computed (e.g. to read the
            backbone output at an input size the rest of a fixed-size graph does not accept).

    Returns:
        Every computed tensor by index (real values, NHWC); graph outputs included.

    Raises:
        TFLiteFormatError: the graph has several inputs, or uses an op, option or activation outside that set.
    """
    if len(graph.inputs) != 1:
        raise TFLiteFormatError(f"{graph.path}: run_graph supports one input, the graph has {len(graph.inputs)}.")
    run = _Run(graph, emulate_quantization)
    run.feed(image)
    wanted = set(stop_after) if stop_after is not None else None
    for op in graph.ops:
        if wanted is not None and wanted <= set(run.values):
            break
        handler = _OPS.get(op.type)
        if handler is None:
            raise TFLiteFormatError(f"run_graph: {op_desc(graph, op)} is not supported by the reference executor.")
        run.store(op, handler(run, op))
    return {k: (v.float() if v.is_floating_point() else v).numpy() for k, v in run.values.items()}
