"""Read a TensorFlow Lite flatbuffer into a small, plain-Python graph.

Uses the ``tflite`` package (generated flatbuffer classes, no TensorFlow), imported lazily::

    graph = load_tflite("deeplabv3_mnv2_pascal_quant.tflite")
    for op in graph.ops:                       # execution order
        print(op.index, op.type, op.inputs, op.outputs, op.options)
    w = graph.constant(op.inputs[1])           # float32 weights, dequantized

Tensors keep TFLite's layouts (NHWC activations, OHWI conv weights, 1HWC depthwise weights);
layout changes belong to the converter.
"""

from __future__ import annotations

import inspect
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segkit.errors import SegkitError

__all__ = ["QuantParams", "TFLiteFormatError", "TFLiteGraph", "TFLiteOp", "TFLiteTensor", "load_tflite"]

INSTALL_HINT = "pip install 'segkit-deeplab[tflite]'  (or: pip install tflite)"

# TensorType enum -> numpy dtype (strings/resources/variants have no array form).
_DTYPES: dict[int, str] = {
    0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool", 7: "int16",
    9: "int8", 10: "float64", 12: "uint64", 15: "uint32", 16: "uint16",
}  # fmt: skip
_TYPE_NAMES: dict[int, str] = {
    5: "string",
    8: "complex64",
    11: "complex128",
    13: "resource",
    14: "variant",
    17: "int4",
    18: "bfloat16",
}
_PADDING = {0: "SAME", 1: "VALID"}
_ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}


class TFLiteFormatError(SegkitError, ValueError):
    """The file is not a TFLite model this reader understands; the message names the file and the problem."""


def _import_tflite() -> Any:
    try:
        import tflite
    except ImportError as exc:
        raise ImportError(f"Reading .tflite files needs the optional 'tflite' package: {INSTALL_HINT}.") from exc
    return tflite


@dataclass(frozen=True)
class QuantParams:
    """Affine quantization: ``real = scale * (q - zero_point)``, per tensor or per channel.

    Attributes:
        scale: float64 [1] (per tensor) or [C] (per channel).
        zero_point: int64, same length as ``scale``.
        quantized_dimension: the channel axis for per-channel parameters.
    """

    scale: np.ndarray
    zero_point: np.ndarray
    quantized_dimension: int = 0

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1


@dataclass
class TFLiteTensor:
    """One tensor of the main subgraph.

    Attributes:
        index: position in the subgraph's tensor list (what ops refer to).
        name: TFLite's tensor name (often several TF op names joined by ';').
        shape: the static shape (NHWC for activations).
        dtype: numpy dtype name ('uint8', 'int8', 'int32', 'float32', ...) or the TFLite type name.
        quant: quantization parameters, or None for a float / unquantized tensor.
        data: the raw constant contents (reshaped to ``shape``), or None for activations.
    """

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    quant: QuantParams | None = None
    data: np.ndarray | None = field(default=None, repr=False)

    @property
    def is_constant(self) -> bool:
        return self.data is not None


@dataclass
class TFLiteOp:
    """One operator, in execution order.

    Attributes:
        index: position in the subgraph's operator list.
        type: builtin operator name ('CONV_2D', 'DEPTHWISE_CONV_2D', ...) or 'CUSTOM:<code>'.
        inputs: tensor indices (-1 marks an omitted optional input).
        outputs: tensor indices.
        options: builtin options as snake_case keys, e.g. ``stride_h``, ``dilation_h_factor``,
            ``padding`` ('SAME'/'VALID'), ``fused_activation_function`` ('NONE'/'RELU'/'RELU6'/...),
            ``depth_multiplier``, ``align_corners``, ``half_pixel_centers``, ``filter_height``.
    """

    index: int
    type: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return f"op {self.index} ({self.type})"


class TFLiteGraph:
    """The main subgraph of a TFLite model: tensors, operators and graph inputs/outputs."""

    def __init__(
        self,
        path: Path,
        tensors: list[TFLiteTensor],
        ops: list[TFLiteOp],
        inputs: list[int],
        outputs: list[int],
        description: str = "",
    ) -> None:
        self.path = path
        self.tensors = tensors
        self.ops = ops
        self.inputs = inputs
        self.outputs = outputs
        self.description = description
        self._producer: dict[int, TFLiteOp] = {}
        self._consumers: dict[int, list[TFLiteOp]] = {}
        for op in ops:
            for t in op.outputs:
                self._producer[t] = op
            for t in op.inputs:
                if t >= 0:
                    self._consumers.setdefault(t, []).append(op)

    def tensor(self, index: int) -> TFLiteTensor:
        return self.tensors[index]

    def producer(self, index: int) -> TFLiteOp | None:
        """The op that writes tensor ``index`` (None for graph inputs and constants)."""
        return self._producer.get(index)

    def consumers(self, index: int) -> list[TFLiteOp]:
        """The ops that read tensor ``index``, in execution order."""
        return list(self._consumers.get(index, []))

    def dequantize(self, tensor: int | TFLiteTensor) -> np.ndarray:
        """The real (float32) values of a constant tensor.

        Quantized uint8/int8/int16/int32 tensors are mapped with ``scale * (q - zero_point)``,
        per tensor or per channel along ``quantized_dimension``; float tensors are returned as
        float32; unquantized integer tensors (shapes, axes) are returned as they are, as float32.

        Raises:
            TFLiteFormatError: the tensor holds no constant data (an activation), or its
                quantization parameters do not fit its shape.
        """
        t = self.tensors[tensor] if isinstance(tensor, int) else tensor
        if t.data is None:
            raise TFLiteFormatError(
                f"{self.path}: tensor {t.index} '{t.name}' has no constant data (it is computed at run time), "
                "so it cannot be read as a weight."
            )
        q = t.quant
        if q is None or t.dtype.startswith("float"):
            return t.data.astype(np.float32)
        data = t.data.astype(np.float64)
        if q.per_channel:
            axis = q.quantized_dimension
            if axis >= data.ndim or data.shape[axis] != q.scale.size or q.zero_point.size not in (1, q.scale.size):
                raise TFLiteFormatError(
                    f"{self.path}: tensor {t.index} '{t.name}' of shape {t.shape} has {q.scale.size} per-channel "
                    f"scales along dimension {axis}, which does not match its shape."
                )
            bshape = [1] * data.ndim
            bshape[axis] = -1
            scale = q.scale.reshape(bshape)
            zero = q.zero_point.reshape(bshape) if q.zero_point.size > 1 else q.zero_point[0]
        else:
            scale, zero = q.scale[0], q.zero_point[0]
        return (scale * (data - zero)).astype(np.float32)

    def constant(self, index: int) -> np.ndarray:
        """Like :meth:`dequantize`, but also looks through a DEQUANTIZE op (float16 / hybrid exports)."""
        t = self.tensors[index]
        if t.data is None:
            op = self.producer(index)
            if op is not None and op.type == "DEQUANTIZE" and self.tensors[op.inputs[0]].data is not None:
                return self.dequantize(op.inputs[0])
        return self.dequantize(t)

    def is_constant(self, index: int) -> bool:
        """True when tensor ``index`` holds (possibly DEQUANTIZE-wrapped) constant data."""
        if index < 0:
            return False
        if self.tensors[index].data is not None:
            return True
        op = self.producer(index)
        return op is not None and op.type == "DEQUANTIZE" and self.tensors[op.inputs[0]].data is not None

    def summary(self, *, show_tensors: bool = False) -> str:
        """A readable op list: type, key options and (optionally) input/output shapes."""
        lines = [f"{self.path.name}: {len(self.ops)} ops, {len(self.tensors)} tensors"]
        for i in self.inputs:
            t = self.tensors[i]
            lines.append(f"  input  {i}: {t.name} {list(t.shape)} {t.dtype} {_fmt_quant(t.quant)}")
        for i in self.outputs:
            t = self.tensors[i]
            lines.append(f"  output {i}: {t.name} {list(t.shape)} {t.dtype}")
        keys = (
            "stride_h",
            "dilation_h_factor",
            "padding",
            "fused_activation_function",
            "depth_multiplier",
            "filter_height",
            "align_corners",
            "half_pixel_centers",
            "axis",
        )
        for op in self.ops:
            opts = " ".join(f"{k}={op.options[k]}" for k in keys if k in op.options)
            shapes = ""
            if show_tensors:
                ins = ",".join(str(list(self.tensors[i].shape)) if i >= 0 else "-" for i in op.inputs)
                outs = ",".join(str(list(self.tensors[i].shape)) for i in op.outputs)
                shapes = f"  {ins} -> {outs}"
            lines.append(f"  {op.index:3d} {op.type:<20s} {opts}{shapes}")
        return "\n".join(lines)


def _fmt_quant(q: QuantParams | None) -> str:
    if q is None:
        return "(float)"
    if q.per_channel:
        return f"(per-channel x{q.scale.size}, dim {q.quantized_dimension})"
    return f"(scale {q.scale[0]:.6g}, zero point {int(q.zero_point[0])})"


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def _read_options(tfl: Any, op: Any) -> dict[str, Any]:
    """All scalar/vector fields of the op's builtin options table, by reflection on the generated class."""
    kind = op.BuiltinOptionsType()
    table = op.BuiltinOptions()
    if kind == 0 or table is None:
        return {}
    names = {v: k for k, v in vars(tfl.BuiltinOptions).items() if isinstance(v, int) and not k.startswith("_")}
    cls = getattr(tfl, names.get(kind, ""), None)
    if cls is None:
        return {}
    obj = cls()
    obj.Init(table.Bytes, table.Pos)
    options: dict[str, Any] = {}
    for attr, fn in inspect.getmembers(cls, inspect.isfunction):
        if (
            attr.startswith(("Init", "GetRootAs"))
            or attr.endswith(("IsNone", "Length"))
            or "BufferHasIdentifier" in attr
        ):
            continue
        params = list(inspect.signature(fn).parameters)
        if params != ["self"]:
            continue
        value = getattr(obj, attr)()
        if attr.endswith("AsNumpy"):
            attr = attr[: -len("AsNumpy")]
            value = value.tolist() if isinstance(value, np.ndarray) else []
        elif not isinstance(value, (int, float, bool)):
            continue  # nested tables are not needed here
        options[_snake(attr)] = value
    if "padding" in options:
        options["padding"] = _PADDING.get(options["padding"], options["padding"])
    if "fused_activation_function" in options:
        act = options["fused_activation_function"]
        options["fused_activation_function"] = _ACTIVATIONS.get(act, act)
    return options


def _read_quant(tfl_tensor: Any) -> QuantParams | None:
    q = tfl_tensor.Quantization()
    if q is None or q.ScaleLength() == 0:
        return None
    scale = np.asarray(q.ScaleAsNumpy(), dtype=np.float64).reshape(-1)
    zero = (
        np.asarray(q.ZeroPointAsNumpy(), dtype=np.int64).reshape(-1) if q.ZeroPointLength() else np.zeros(1, np.int64)
    )
    return QuantParams(scale=scale, zero_point=zero, quantized_dimension=int(q.QuantizedDimension()))


def load_tflite(path: str | os.PathLike) -> TFLiteGraph:
    """Parse a .tflite file's main subgraph.

    Raises:
        ImportError: the ``tflite`` package is missing (install hint in the message).
        FileNotFoundError: ``path`` does not exist.
        TFLiteFormatError: the file is not a TFLite flatbuffer or is corrupt/truncated.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"TFLite model not found: {path}.")
    tfl = _import_tflite()
    from tflite.utils import BUILTIN_OPCODE2NAME

    raw = path.read_bytes()
    if len(raw) < 8 or raw[4:8] != b"TFL3":
        raise TFLiteFormatError(
            f"{path} is not a TensorFlow Lite model (no 'TFL3' flatbuffer identifier at bytes 4..8; "
            f"the file has {len(raw)} bytes). Pass a .tflite file exported by the TFLite converter."
        )
    try:
        model = tfl.Model.GetRootAsModel(raw, 0)
        if model.SubgraphsLength() < 1:
            raise TFLiteFormatError(f"{path}: the model has no subgraph.")
        sg = model.Subgraphs(0)
        opcodes = []
        for j in range(model.OperatorCodesLength()):
            oc = model.OperatorCodes(j)
            code = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))  # schema v3a: two fields
            if code == 32:  # CUSTOM
                custom = oc.CustomCode()
                opcodes.append(f"CUSTOM:{custom.decode(errors='replace') if custom else '?'}")
            else:
                opcodes.append(BUILTIN_OPCODE2NAME.get(code, f"UNKNOWN_BUILTIN_{code}"))

        tensors = []
        for i in range(sg.TensorsLength()):
            t = sg.Tensors(i)
            shape = tuple(int(s) for s in t.ShapeAsNumpy()) if t.ShapeLength() else ()
            type_id = int(t.Type())
            dtype = _DTYPES.get(type_id, _TYPE_NAMES.get(type_id, f"type{type_id}"))
            data = None
            if t.Buffer() > 0:
                buf = model.Buffers(t.Buffer())
                blob = None
                if buf.DataLength() > 0:
                    blob = buf.DataAsNumpy().tobytes()
                elif buf.Offset() > 1:  # large models keep buffers after the flatbuffer
                    blob = raw[buf.Offset() : buf.Offset() + buf.Size()]
                if blob and dtype in _DTYPES.values():
                    arr = np.frombuffer(blob, dtype=np.dtype(dtype).newbyteorder("<"))
                    if arr.size != int(np.prod(shape, dtype=np.int64)):
                        raise TFLiteFormatError(
                            f"{path}: tensor {i} '{t.Name().decode(errors='replace')}' has shape {shape} "
                            f"but its buffer holds {arr.size} values; the file is corrupt."
                        )
                    data = arr.reshape(shape).astype(np.dtype(dtype))
            tensors.append(
                TFLiteTensor(
                    index=i,
                    name=(t.Name() or b"").decode(errors="replace"),
                    shape=shape,
                    dtype=dtype,
                    quant=_read_quant(t),
                    data=data,
                )
            )

        ops = []
        for k in range(sg.OperatorsLength()):
            op = sg.Operators(k)
            idx = op.OpcodeIndex()
            if idx >= len(opcodes):
                raise TFLiteFormatError(f"{path}: op {k} refers to operator code {idx}, but there are {len(opcodes)}.")
            inputs = tuple(int(v) for v in op.InputsAsNumpy()) if op.InputsLength() else ()
            outputs = tuple(int(v) for v in op.OutputsAsNumpy()) if op.OutputsLength() else ()
            for v in inputs + outputs:
                if v >= len(tensors):
                    raise TFLiteFormatError(
                        f"{path}: op {k} ({opcodes[idx]}) refers to tensor {v}, "
                        f"but the subgraph has {len(tensors)}; the file is corrupt."
                    )
            ops.append(
                TFLiteOp(index=k, type=opcodes[idx], inputs=inputs, outputs=outputs, options=_read_options(tfl, op))
            )
        inputs = [int(v) for v in sg.InputsAsNumpy()] if sg.InputsLength() else []
        outputs = [int(v) for v in sg.OutputsAsNumpy()] if sg.OutputsLength() else []
        description = (model.Description() or b"").decode(errors="replace")
    except TFLiteFormatError:
        raise
    except Exception as exc:  # flatbuffers raises assorted errors on truncated/corrupt data
        raise TFLiteFormatError(
            f"{path}: cannot parse the TFLite flatbuffer ({type(exc).__name__}: {exc}); the file is corrupt or truncated."
        ) from exc
    return TFLiteGraph(path, tensors, ops, inputs, outputs, description)
