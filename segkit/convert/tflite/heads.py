"""Match the heads after the backbone: DeepLabV3's branches, projection and logits, or a classifier's.

:class:`HeadMatcher` extends :class:`~segkit.convert.tflite.matcher.GraphMatcher` with the readers of
the backbone output: the global pooling branch, the 1x1 branch and any 3x3 atrous branches meeting in
a CONCATENATION, the projection and logits convs and the ops after them (their bilinear resize gives
``align_corners``); or the classifier's pooling and logits conv / fully connected layer.
"""

from __future__ import annotations

import numpy as np

from segkit.convert.tflite.matcher import (
    PASSTHROUGH_OPS,
    TAIL_OPS,
    ConvSpec,
    GraphMatcher,
    op_desc,
    tensor_desc,
)
from segkit.convert.tflite.reader import TFLiteOp

__all__ = ["HeadMatcher"]


class HeadMatcher(GraphMatcher):
    """A :class:`GraphMatcher` that also reads DeepLabV3 and classifier heads."""

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
            if op.type not in (
                *PASSTHROUGH_OPS,
                "RESIZE_BILINEAR",
                "RESIZE_NEAREST_NEIGHBOR",
                "BROADCAST_TO",
                "TILE",
                "RESHAPE",
            ):
                break
            if op.type.startswith("RESIZE"):
                resizes.append(op)
            t = op.outputs[0]
        found = ", ".join(op_desc(self.g, op) for op in self.g.consumers(t)) or "nothing"
        raise self.fail(
            f"head branch '{branch}': expected its output to reach the branches' CONCATENATION, "
            f"but {tensor_desc(self.g, t)} is read by {found}."
        )

    def read_segmentation_head(self, feat: int) -> tuple[dict[str, ConvSpec], list[str], bool, int]:
        g = self.g
        branches: dict[str, ConvSpec] = {}
        atrous: list[ConvSpec] = []
        for op in self.readers(feat):
            if self.global_pool(op, feat):
                conv = self.single_conv_reader(op.outputs[0])
                if conv is None or conv.kernel_size != 1 or conv.depthwise:
                    raise self.fail(f"image pooling branch: expected a 1x1 conv after {op_desc(g, op)}.")
                branches["image_pool"] = conv
            elif self.is_conv_start(op):
                conv = self.conv(op)
                if conv.depthwise:
                    raise self.fail(
                        f"{op_desc(g, conv.op)} reads the backbone output: separable ASPP "
                        "branches are not supported by segkit's DeepLabV3 head (regular 3x3 convs only)."
                    )
                if conv.kernel_size == 1:
                    if "aspp0" in branches:
                        raise self.fail(f"two 1x1 branches read the backbone output ({op_desc(g, conv.op)}).")
                    branches["aspp0"] = conv
                elif conv.kernel_size == 3:
                    atrous.append(conv)
                else:
                    raise self.fail(
                        f"head branch {op_desc(g, conv.op)} has a {conv.kernel_size}x"
                        f"{conv.kernel_size} kernel; DeepLabV3 uses 1x1 and 3x3."
                    )
            else:
                raise self.fail(
                    f"unexpected {op_desc(g, op)} reading the backbone output "
                    f"({tensor_desc(g, feat)}); expected DeepLabV3's pooling and conv branches."
                )
        for name in ("image_pool", "aspp0"):
            if name not in branches:
                raise self.fail(
                    f"the DeepLabV3 head has no '{name}' branch reading {tensor_desc(g, feat)}; "
                    "segkit's head needs image pooling and the 1x1 branch."
                )
        for i, conv in enumerate(atrous):
            branches[f"atrous_{i}"] = conv
        concat_op, order = None, {}
        for name, conv in branches.items():
            if conv.activation != "RELU":
                raise self.fail(
                    f"head branch '{name}' ({op_desc(g, conv.op)}) has activation {conv.activation}; "
                    "DeepLabV3 uses ReLU."
                )
            op, t, _ = self.follow_to_concat(conv.output, name)
            if concat_op is not None and op is not concat_op:
                raise self.fail(f"head branches end in different CONCATENATION ops ({concat_op.index}, {op.index}).")
            concat_op = op
            order[name] = op.inputs.index(t)
        assert concat_op is not None
        if concat_op.options.get("axis") not in (3, -1) or len(concat_op.inputs) != len(branches):
            raise self.fail(
                f"{op_desc(g, concat_op)}: expected a channel concat (axis 3) of the "
                f"{len(branches)} head branches, got axis {concat_op.options.get('axis')} with "
                f"{len(concat_op.inputs)} inputs."
            )
        branch_order = sorted(order, key=order.get)
        project = self.single_conv_reader(concat_op.outputs[0])
        if project is None or project.kernel_size != 1 or project.activation != "RELU":
            raise self.fail(f"expected the 1x1 projection conv with ReLU after {op_desc(g, concat_op)}.")
        logits = self.single_conv_reader(project.output)
        if logits is None or logits.kernel_size != 1 or logits.activation != "NONE":
            raise self.fail(f"expected the 1x1 logits conv after the projection {op_desc(g, project.op)}.")
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
                    raise self.fail(
                        f"{op_desc(g, op)} after the logits is not understood; allowed there: {', '.join(TAIL_OPS)}."
                    )
                if op.type == "RESIZE_BILINEAR" and self.spatial(op.outputs[0]) != self.spatial(op.inputs[0]):
                    upsampling.append(op)
                frontier += list(op.outputs)
        if not upsampling:
            if segmentor:
                self.notes.append("the graph does not upsample its logits; assumed align_corners=True.")
            return True
        flags = {
            (bool(op.options.get("align_corners")), bool(op.options.get("half_pixel_centers"))) for op in upsampling
        }
        if len(flags) != 1:
            raise self.fail(f"the logits resizes disagree on align_corners/half_pixel_centers: {sorted(flags)}.")
        align, half = flags.pop()
        if not align and not half:
            self.notes.append(
                "legacy TF resize (align_corners=False, half_pixel_centers=False) has no PyTorch "
                "equivalent; using align_corners=False (half-pixel centers)."
            )
        return align

    def read_classifier_head(self, feat: int) -> ConvSpec:
        g = self.g
        pools = [op for op in self.readers(feat) if self.global_pool(op, feat)]
        if len(pools) != 1 or len(self.readers(feat)) != 1:
            found = ", ".join(op_desc(g, op) for op in self.readers(feat)) or "nothing"
            raise self.fail(
                f"classifier: expected one global average pool reading {tensor_desc(g, feat)}, found {found}."
            )
        t = pools[0].outputs[0]
        for _ in range(4):  # RESHAPE/SQUEEZE in front of a fully connected layer
            ops = self.readers(t)
            if len(ops) == 1 and ops[0].type in ("RESHAPE", "SQUEEZE"):
                t = ops[0].outputs[0]
        ops = self.readers(t)
        if len(ops) == 1 and ops[0].type == "FULLY_CONNECTED":
            op = ops[0]
            w = g.constant(op.inputs[1])
            b = (
                g.constant(op.inputs[2])
                if len(op.inputs) > 2 and op.inputs[2] >= 0
                else np.zeros(w.shape[0], np.float32)
            )
            act = op.options.get("fused_activation_function", "NONE")
            logits = ConvSpec(
                op=op,
                depthwise=False,
                weight=w,
                bias=b,
                stride=1,
                dilation=1,
                activation=act,
                input=t,
                output=op.outputs[0],
            )
        else:
            conv = self.single_conv_reader(t)
            if conv is None or conv.kernel_size != 1 or conv.depthwise:
                found = ", ".join(op_desc(g, op) for op in ops) or "nothing"
                raise self.fail(f"classifier: expected a 1x1 conv or FULLY_CONNECTED after the pooling, found {found}.")
            logits = ConvSpec(
                op=conv.op,
                depthwise=False,
                weight=conv.weight[:, :, 0, 0],
                bias=conv.bias,
                stride=1,
                dilation=1,
                activation=conv.activation,
                input=conv.input,
                output=conv.output,
            )
        if logits.activation != "NONE":
            raise self.fail(f"classifier: the logits layer {op_desc(g, logits.op)} has activation {logits.activation}.")
        self.read_tail(logits.output, segmentor=False)
        return logits
