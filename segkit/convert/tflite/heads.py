"""Match the heads after the backbone: DeepLabV3's branches, projection and logits, or a classifier's.

:class:`HeadMatcher` extends :class:`~segkit.convert.tflite.matcher.GraphMatcher` with the readers of
the backbone output: the global pooling branch, the 1x1 branch and any 3x3 atrous branches meeting in
a CONCATENATION, the projection, an optional DeepLabV3+ decoder (:class:`DecoderSpec`), the logits conv
and the ops after it (their bilinear resize gives ``align_corners``); or the classifier's pooling and
logits conv / fully connected layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from segkit.convert.tflite.matcher import (
    PASSTHROUGH_OPS,
    TAIL_OPS,
    ConvSpec,
    GraphMatcher,
    op_desc,
    tensor_desc,
)
from segkit.convert.tflite.reader import TFLiteGraph, TFLiteOp

__all__ = ["DecoderSpec", "HeadMatcher"]


@dataclass
class DecoderSpec:
    """A DeepLabV3+ decoder as found in the graph (TF DeepLab's ``refine_by_decoder``).

    Attributes:
        feature: the backbone end point ``feature_projection0`` reads ('layer_4/depthwise_output', 'layer_4').
        feature_tensor: that tensor's index.
        separable: the decoder convs are depthwise 3x3 + pointwise 1x1 (TF's ``decoder_use_separable_conv``).
        encoder_first: the concat puts the resized encoder output before the projected low-level feature (TF's).
        convs: ``feature_projection0``, then ``decoder_conv{0,1}.depthwise`` / ``.pointwise`` (separable) or
            ``decoder_conv{0,1}``, in execution order.
        resizes: the bilinear resize(s) of the encoder output to the low-level feature's size.
        output: the tensor the logits conv reads.
    """

    feature: str
    feature_tensor: int
    separable: bool
    encoder_first: bool
    convs: dict[str, ConvSpec] = field(repr=False)
    resizes: list[TFLiteOp] = field(repr=False)
    output: int


class HeadMatcher(GraphMatcher):
    """A :class:`GraphMatcher` that also reads DeepLabV3(+) and classifier heads."""

    def __init__(self, graph: TFLiteGraph) -> None:
        super().__init__(graph)
        self.decoder: DecoderSpec | None = None  # set by read_segmentation_head
        # (align_corners, half_pixel_centers) of the logits upsampling (empty when the graph does not upsample)
        self.tail_flags: set[tuple[bool, bool]] = set()

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
        self.decoder = self.read_decoder(project)
        last = self.decoder.output if self.decoder is not None else project.output
        logits = self.single_conv_reader(last)
        if logits is None or logits.kernel_size != 1 or logits.activation != "NONE" or logits.depthwise:
            found = ", ".join(op_desc(g, op) for op in self.readers(last)) or "nothing"
            where = "the decoder" if self.decoder is not None else f"the projection {op_desc(g, project.op)}"
            raise self.fail(f"expected the 1x1 logits conv (no activation) after {where}, found {found}.")
        branches["project"] = project
        branches["classifier"] = logits
        align_corners = self.read_tail(logits.output)
        if self.decoder is not None:
            flags = {self._resize_flags(op) for op in self.decoder.resizes} | self.tail_flags
            if len(flags) > 1:
                raise self.fail(
                    f"the decoder's resize ({op_desc(g, self.decoder.resizes[0])}) and the logits upsampling "
                    f"disagree on (align_corners, half_pixel_centers): {sorted(flags)}; segkit uses one convention."
                )
            if self.decoder.resizes and not self.tail_flags:
                align_corners = self._resize_flags(self.decoder.resizes[0])[0]
        return branches, branch_order, align_corners, logits.out_channels

    def resize_mode(self) -> str:
        """'tf_legacy' when the graph's bilinear resizes use neither align_corners nor half-pixel centers."""
        flags = set(self.tail_flags)
        if self.decoder is not None:
            flags |= {self._resize_flags(op) for op in self.decoder.resizes}
        return "tf_legacy" if flags == {(False, False)} else "pytorch"

    @staticmethod
    def _resize_flags(op: TFLiteOp) -> tuple[bool, bool]:
        return bool(op.options.get("align_corners")), bool(op.options.get("half_pixel_centers"))

    def _producer_through(self, t: int) -> TFLiteOp | None:
        """The op writing ``t``, looking back through re-quantization ops."""
        op = self.g.producer(t)
        while op is not None and op.type in PASSTHROUGH_OPS:
            op = self.g.producer(op.inputs[0])
        return op

    def read_decoder(self, project: ConvSpec) -> DecoderSpec | None:
        """The DeepLabV3+ decoder between the head's projection and the logits, or None when there is none.

        TF DeepLab's layout: the encoder output resized to the low-level feature's size, concatenated with
        ``feature_projection0`` (1x1 conv + ReLU of a backbone end point), then ``decoder_conv0`` and
        ``decoder_conv1`` (3x3 + ReLU, separable as depthwise 3x3 + ReLU -> pointwise 1x1 + ReLU).
        """
        g = self.g
        readers = self.readers(project.output)
        if not (len(readers) == 1 and readers[0].type in ("RESIZE_BILINEAR", "CONCATENATION")):
            return None
        concat, t, resizes = self.follow_to_concat(project.output, "decoder (encoder output)")
        if concat.options.get("axis") not in (3, -1) or len(concat.inputs) != 2:
            raise self.fail(
                f"decoder: expected a channel concat (axis 3) of the encoder output and one low-level feature, "
                f"found {op_desc(g, concat)} with axis {concat.options.get('axis')} and {len(concat.inputs)} inputs."
            )
        position = concat.inputs.index(t)
        other = concat.inputs[1 - position]
        producer = self._producer_through(other)
        if producer is None or not self.is_conv_start(producer):
            found = op_desc(g, producer) if producer is not None else "a graph input"
            raise self.fail(
                f"decoder: {op_desc(g, concat)} concatenates the encoder output with {tensor_desc(g, other)}, "
                f"written by {found}; expected the 1x1 feature_projection0 conv."
            )
        proj0 = self.conv(producer)
        if proj0.depthwise or proj0.kernel_size != 1 or proj0.activation != "RELU":
            raise self.fail(
                f"decoder: feature_projection0 {op_desc(g, proj0.op)} is a {proj0.kernel_size}x{proj0.kernel_size} "
                f"{'depthwise ' if proj0.depthwise else ''}conv with {proj0.activation}; expected 1x1 with ReLU."
            )
        feature = self.end_points.get(proj0.input)
        if feature is None:
            raise self.fail(
                f"decoder: feature_projection0 {op_desc(g, proj0.op)} reads {tensor_desc(g, proj0.input)}, which is "
                "not a MobileNetV2 end point segkit's decoder can read (a block output or its depthwise output)."
            )
        convs: dict[str, ConvSpec] = {"feature_projection0": proj0}
        x, separable = concat.outputs[0], None
        for i in range(2):
            name = f"decoder_conv{i}"
            conv = self.single_conv_reader(x)
            if conv is None:
                found = ", ".join(op_desc(g, op) for op in self.readers(x)) or "nothing"
                raise self.fail(f"decoder: expected {name} (a 3x3 conv) reading {tensor_desc(g, x)}, found {found}.")
            bad = conv.kernel_size != 3 or conv.activation != "RELU" or conv.stride != 1 or conv.dilation != 1
            if bad:
                raise self.fail(
                    f"decoder: {name} {op_desc(g, conv.op)} is a {conv.kernel_size}x{conv.kernel_size} conv "
                    f"(stride {conv.stride}, rate {conv.dilation}, {conv.activation}); expected 3x3, stride 1, "
                    "rate 1, ReLU."
                )
            if conv.depthwise:
                point = self.single_conv_reader(conv.output)
                if point is None or point.depthwise or point.kernel_size != 1 or point.activation != "RELU":
                    found = ", ".join(op_desc(g, op) for op in self.readers(conv.output)) or "nothing"
                    raise self.fail(
                        f"decoder: {name}'s depthwise {op_desc(g, conv.op)} is not followed by a pointwise 1x1 conv "
                        f"with ReLU (found {found})."
                    )
                convs[f"{name}.depthwise"], convs[f"{name}.pointwise"] = conv, point
                x = point.output
            else:
                convs[name] = conv
                x = conv.output
            if separable is not None and separable != conv.depthwise:
                raise self.fail(
                    f"decoder: decoder_conv0 and decoder_conv1 differ in being separable ({op_desc(g, conv.op)}); "
                    "segkit builds both the same way."
                )
            separable = conv.depthwise
        return DecoderSpec(
            feature=feature,
            feature_tensor=proj0.input,
            separable=bool(separable),
            encoder_first=position == 0,
            convs=convs,
            resizes=resizes,
            output=x,
        )

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
        flags = {self._resize_flags(op) for op in upsampling}
        self.tail_flags = set(flags)
        if len(flags) != 1:
            raise self.fail(f"the logits resizes disagree on align_corners/half_pixel_centers: {sorted(flags)}.")
        align, half = flags.pop()
        if not align and not half:
            self.notes.append(
                "legacy TF resize (align_corners=False, half_pixel_centers=False): the model is built with "
                "model.resize_mode=tf_legacy (output pixel i samples the input at i * in / out)."
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
