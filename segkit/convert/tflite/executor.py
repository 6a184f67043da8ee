"""Execute a parsed TFLite graph op by op in float32 with PyTorch: a slow reference for checking conversions.

graph = load_tflite("deeplabv3_mnv2_pascal_quant.tflite")
values = run_graph(graph, image_uint8_nhwc)      # every computed tensor, by index
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from segkit.convert.tflite.reader import TFLiteFormatError, TFLiteGraph

__all__ = ["run_graph"]


def run_graph(
    graph: TFLiteGraph,
    image: np.ndarray,
    *,
    emulate_quantization: bool = False,
    stop_after: Iterable[int] | None = None,
) -> dict[int, np.ndarray]:
    """Execute the graph op by op in float32 with PyTorch: a slow reference for checking conversions.

    Supports the ops of MobileNetV2 classifiers and DeepLabV3 segmentors (convs, ADD, pooling,
    MEAN, CONCATENATION, RESIZE_BILINEAR, RESHAPE/SQUEEZE, SOFTMAX, ARG_MAX, (DE)QUANTIZE, PAD,
    SPACE_TO_BATCH_ND/BATCH_TO_SPACE_ND, FULLY_CONNECTED, RELU/RELU6).

    Args:
        graph: a parsed model.
        image: the raw input tensor as the TFLite interpreter takes it (e.g. uint8 NHWC).
        emulate_quantization: round every activation to its tensor's quantization grid
            (``q = clamp(round(x / scale) + zero_point)``), approximating the 8-bit interpreter.
        stop_after: tensor indices; stop as soon as all of them are computed (e.g. to read the
            backbone output at an input size the rest of a fixed-size graph does not accept).

    Returns:
        Every computed tensor by index (real values, NHWC); graph outputs included.
    """
    import torch
    import torch.nn.functional as F

    if len(graph.inputs) != 1:
        raise TFLiteFormatError(f"{graph.path}: run_graph supports one input, the graph has {len(graph.inputs)}.")
    limits = {"uint8": (0, 255), "int8": (-128, 127), "int16": (-32768, 32767)}
    values: dict[int, Any] = {}

    def quantize(index: int, x: Any) -> Any:
        t = graph.tensors[index]
        if emulate_quantization and t.quant is not None and t.dtype in limits and not t.quant.per_channel:
            s, z = float(t.quant.scale[0]), int(t.quant.zero_point[0])
            lo, hi = limits[t.dtype]
            x = (torch.clamp(torch.round(x / s) + z, lo, hi) - z) * s
        return x

    def value(index: int) -> Any:
        if index in values:
            return values[index]
        return torch.from_numpy(graph.constant(index))

    def act(x: Any, name: str) -> Any:
        if name == "RELU":
            return torch.relu(x)
        if name == "RELU6":
            return torch.clamp(x, 0.0, 6.0)
        if name == "NONE":
            return x
        raise TFLiteFormatError(f"run_graph: activation {name} is not supported.")

    def same_pad(x: Any, k: tuple[int, int], s: int, d: int) -> Any:  # x: NCHW
        pads = []
        for size, kk in zip(x.shape[2:], k):
            total = max((-(-size // s) - 1) * s + (kk - 1) * d + 1 - size, 0)
            pads.append((total // 2, total - total // 2))
        return F.pad(x, (pads[1][0], pads[1][1], pads[0][0], pads[0][1]))

    x0 = graph.inputs[0]
    inp = graph.tensors[x0]
    raw = torch.from_numpy(np.asarray(image).astype(np.float64))
    if inp.quant is not None and inp.dtype in limits:
        raw = float(inp.quant.scale[0]) * (raw - int(inp.quant.zero_point[0]))
    values[x0] = raw.float()
    wanted = set(stop_after) if stop_after is not None else None
    for op in graph.ops:
        if wanted is not None and wanted <= set(values):
            break
        o, ins, t = op.options, op.inputs, op.type
        if t in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            x = value(ins[0]).permute(0, 3, 1, 2)
            w = value(ins[1])
            w = w.permute(0, 3, 1, 2) if t == "CONV_2D" else w.permute(3, 0, 1, 2)
            b = value(ins[2]) if len(ins) > 2 and ins[2] >= 0 else None
            stride, dil = o.get("stride_h", 1), o.get("dilation_h_factor", 1)
            if o.get("padding") == "SAME":
                x = same_pad(x, tuple(w.shape[2:]), stride, dil)
            groups = x.shape[1] if t == "DEPTHWISE_CONV_2D" else 1
            y = F.conv2d(x, w, b, stride, 0, dil, groups).permute(0, 2, 3, 1)
            y = act(y, o.get("fused_activation_function", "NONE"))
        elif t == "FULLY_CONNECTED":
            x = value(ins[0])
            y = act(
                F.linear(
                    x.reshape(-1, value(ins[1]).shape[1]),
                    value(ins[1]),
                    value(ins[2]) if len(ins) > 2 and ins[2] >= 0 else None,
                ),
                o.get("fused_activation_function", "NONE"),
            )
        elif t in ("ADD", "MUL", "SUB"):
            a, b = value(ins[0]), value(ins[1])
            y = act(a + b if t == "ADD" else a * b if t == "MUL" else a - b, o.get("fused_activation_function", "NONE"))
        elif t in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            x = value(ins[0]).permute(0, 3, 1, 2)
            k, stride = (o["filter_height"], o["filter_width"]), o.get("stride_h", 1)
            if o.get("padding") == "SAME" and k != (1, 1):
                raise TFLiteFormatError(f"run_graph: {op.describe()} with SAME padding is not supported.")
            pool = F.avg_pool2d if t == "AVERAGE_POOL_2D" else F.max_pool2d
            y = act(pool(x, k, stride).permute(0, 2, 3, 1), o.get("fused_activation_function", "NONE"))
        elif t == "MEAN":
            axes = [int(a) for a in np.asarray(graph.tensors[ins[1]].data).reshape(-1)]
            y = value(ins[0]).mean(dim=axes, keepdim=bool(o.get("keep_dims")))
        elif t == "CONCATENATION":
            y = act(
                torch.cat([value(i) for i in ins], dim=o.get("axis", -1)), o.get("fused_activation_function", "NONE")
            )
        elif t in ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"):
            size = [int(v) for v in np.asarray(graph.tensors[ins[1]].data).reshape(-1)]
            x = value(ins[0]).permute(0, 3, 1, 2)
            if t == "RESIZE_NEAREST_NEIGHBOR" or not (o.get("align_corners") or o.get("half_pixel_centers")):
                raise TFLiteFormatError(f"run_graph: {op.describe()} ({o}) is not supported.")
            y = F.interpolate(x, size=size, mode="bilinear", align_corners=bool(o.get("align_corners")))
            y = y.permute(0, 2, 3, 1)
        elif t in ("RESHAPE", "SQUEEZE"):
            y = value(ins[0]).reshape(graph.tensors[op.outputs[0]].shape)
        elif t == "SOFTMAX":
            y = torch.softmax(value(ins[0]) * o.get("beta", 1.0), dim=-1)
        elif t == "ARG_MAX":
            axis = int(np.asarray(graph.tensors[ins[1]].data).reshape(-1)[0])
            y = value(ins[0]).argmax(dim=axis)
        elif t in ("QUANTIZE", "DEQUANTIZE", "CAST"):
            y = value(ins[0]).float()
        elif t in ("RELU", "RELU6"):
            y = act(value(ins[0]), t)
        elif t == "PAD":
            pads = np.asarray(graph.tensors[ins[1]].data).reshape(-1, 2)
            y = F.pad(value(ins[0]), [int(v) for pair in pads[::-1] for v in pair])
        elif t == "SPACE_TO_BATCH_ND":
            x = value(ins[0])
            r = int(np.asarray(graph.tensors[ins[1]].data).reshape(-1)[0])
            (pt, pb), (pl, pr) = np.asarray(graph.tensors[ins[2]].data).reshape(2, 2).tolist()
            x = F.pad(x, (0, 0, pl, pr, pt, pb))
            n, h, w, c = x.shape
            y = x.reshape(n, h // r, r, w // r, r, c).permute(2, 4, 0, 1, 3, 5).reshape(r * r * n, h // r, w // r, c)
        elif t == "BATCH_TO_SPACE_ND":
            x = value(ins[0])
            r = int(np.asarray(graph.tensors[ins[1]].data).reshape(-1)[0])
            (ct, cb), (cl, cr) = np.asarray(graph.tensors[ins[2]].data).reshape(2, 2).tolist()
            b, h, w, c = x.shape
            n = b // (r * r)
            y = x.reshape(r, r, n, h, w, c).permute(2, 3, 0, 4, 1, 5).reshape(n, h * r, w * r, c)
            y = y[:, ct : h * r - cb, cl : w * r - cr]
        else:
            raise TFLiteFormatError(f"run_graph: {op.describe()} is not supported by the reference executor.")
        values[op.outputs[0]] = quantize(op.outputs[0], y) if t != "ARG_MAX" else y
    return {k: v.numpy() for k, v in values.items()}
