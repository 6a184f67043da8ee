"""A small TFLite flatbuffer writer for the converter's round-trip tests (no TensorFlow needed).

``TFLiteWriter`` collects tensors and ops, then writes a ``.tflite`` file with the builder functions of the
optional ``tflite`` package (and ``flatbuffers``); both are imported only when a file is written, so a test
module can import this one and still skip when ``tflite`` is absent.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import numpy as np

OPTIONS = {  # op type -> (builtin code, options table name, BuiltinOptions enum value)
    "CONV_2D": (3, "Conv2DOptions", 1),
    "DEPTHWISE_CONV_2D": (4, "DepthwiseConv2DOptions", 2),
    "ADD": (0, "AddOptions", 11),
    "CONCATENATION": (2, "ConcatenationOptions", 10),
    "RESIZE_BILINEAR": (23, "ResizeBilinearOptions", 15),
    "MEAN": (40, "ReducerOptions", 27),
    "AVERAGE_POOL_2D": (1, "Pool2DOptions", 5),
    "SPACE_TO_BATCH_ND": (38, "SpaceToBatchNDOptions", 25),
    "BATCH_TO_SPACE_ND": (37, "BatchToSpaceNDOptions", 24),
    "DEQUANTIZE": (6, None, 0),
    "QUANTIZE": (114, None, 0),
    "ARG_MAX": (56, "ArgMaxOptions", 40),
}
ENUMS = {"SAME": 0, "VALID": 1, "NONE": 0, "RELU": 1, "RELU6": 3}


def _m(name: str) -> ModuleType:
    """A generated ``tflite`` module (its builder functions; the package's attribute of that name is the class)."""
    return importlib.import_module(f"tflite.{name}")


class TFLiteWriter:
    """Collects tensors and ops, then writes a .tflite flatbuffer with the ``tflite`` package's builders."""

    def __init__(self) -> None:
        self.tensors: list[dict] = []
        self.ops: list[tuple[str, list[int], list[int], dict]] = []

    def tensor(self, shape, dtype="float32", data=None, scale=None, zero_point=None, qdim=0) -> int:
        self.tensors.append(
            dict(shape=list(shape), dtype=dtype, data=data, scale=scale, zero_point=zero_point, qdim=qdim)
        )
        return len(self.tensors) - 1

    def const(self, array: np.ndarray) -> int:
        return self.tensor(array.shape, str(array.dtype), array)

    def op(self, kind: str, inputs: list[int], out_shape, options: dict | None = None, dtype="float32") -> int:
        out = self.tensor(out_shape, dtype)
        self.ops.append((kind, inputs, [out], options or {}))
        return out

    def write(self, path: Path, inputs: list[int], outputs: list[int]) -> None:
        import flatbuffers

        b = flatbuffers.Builder(1 << 20)
        types = {"float32": 0, "int32": 2, "uint8": 3, "int64": 4, "int8": 9}

        def ivec(values, start) -> int:
            start(b, len(values))
            for v in reversed(values):
                b.PrependInt32(int(v))
            return b.EndVector()

        buffers = []
        for t in [None, *self.tensors]:  # buffer 0 is the empty sentinel
            data = None
            if t is not None and t["data"] is not None:
                data = b.CreateNumpyVector(np.ascontiguousarray(t["data"]).view(np.uint8).reshape(-1))
            _m("Buffer").BufferStart(b)
            if data is not None:
                _m("Buffer").BufferAddData(b, data)
            buffers.append(_m("Buffer").BufferEnd(b))
        tensors = []
        for i, t in enumerate(self.tensors):
            name = b.CreateString(f"t{i}")
            shape = ivec(t["shape"], _m("Tensor").TensorStartShapeVector)
            quant = None
            if t["scale"] is not None:
                scale = b.CreateNumpyVector(np.asarray(t["scale"], np.float32).reshape(-1))
                zero = b.CreateNumpyVector(np.asarray(t["zero_point"], np.int64).reshape(-1))
                _m("QuantizationParameters").QuantizationParametersStart(b)
                _m("QuantizationParameters").QuantizationParametersAddScale(b, scale)
                _m("QuantizationParameters").QuantizationParametersAddZeroPoint(b, zero)
                _m("QuantizationParameters").QuantizationParametersAddQuantizedDimension(b, t["qdim"])
                quant = _m("QuantizationParameters").QuantizationParametersEnd(b)
            _m("Tensor").TensorStart(b)
            _m("Tensor").TensorAddShape(b, shape)
            _m("Tensor").TensorAddType(b, types[t["dtype"]])
            _m("Tensor").TensorAddBuffer(b, i + 1 if t["data"] is not None else 0)
            _m("Tensor").TensorAddName(b, name)
            if quant is not None:
                _m("Tensor").TensorAddQuantization(b, quant)
            tensors.append(_m("Tensor").TensorEnd(b))
        kinds = sorted({kind for kind, *_ in self.ops})
        ops = []
        for kind, ins, outs, options in self.ops:
            code, table, enum = OPTIONS[kind]
            opts = None
            if table is not None:
                module = _m(table)
                getattr(module, f"{table}Start")(b)
                for key, value in options.items():
                    camel = "".join(part.capitalize() for part in key.split("_"))
                    getattr(module, f"{table}Add{camel}")(
                        b, ENUMS.get(value, value) if isinstance(value, str) else value
                    )
                opts = getattr(module, f"{table}End")(b)
            in_vec = ivec(ins, _m("Operator").OperatorStartInputsVector)
            out_vec = ivec(outs, _m("Operator").OperatorStartOutputsVector)
            _m("Operator").OperatorStart(b)
            _m("Operator").OperatorAddOpcodeIndex(b, kinds.index(kind))
            _m("Operator").OperatorAddInputs(b, in_vec)
            _m("Operator").OperatorAddOutputs(b, out_vec)
            if opts is not None:
                _m("Operator").OperatorAddBuiltinOptionsType(b, enum)
                _m("Operator").OperatorAddBuiltinOptions(b, opts)
            ops.append(_m("Operator").OperatorEnd(b))
        codes = []
        for kind in kinds:
            _m("OperatorCode").OperatorCodeStart(b)
            _m("OperatorCode").OperatorCodeAddDeprecatedBuiltinCode(b, OPTIONS[kind][0])
            _m("OperatorCode").OperatorCodeAddBuiltinCode(b, OPTIONS[kind][0])
            _m("OperatorCode").OperatorCodeAddVersion(b, 1)
            codes.append(_m("OperatorCode").OperatorCodeEnd(b))

        def tvec(items, start) -> int:
            start(b, len(items))
            for item in reversed(items):
                b.PrependUOffsetTRelative(item)
            return b.EndVector()

        sg_tensors = tvec(tensors, _m("SubGraph").SubGraphStartTensorsVector)
        sg_ops = tvec(ops, _m("SubGraph").SubGraphStartOperatorsVector)
        sg_in = ivec(inputs, _m("SubGraph").SubGraphStartInputsVector)
        sg_out = ivec(outputs, _m("SubGraph").SubGraphStartOutputsVector)
        _m("SubGraph").SubGraphStart(b)
        _m("SubGraph").SubGraphAddTensors(b, sg_tensors)
        _m("SubGraph").SubGraphAddOperators(b, sg_ops)
        _m("SubGraph").SubGraphAddInputs(b, sg_in)
        _m("SubGraph").SubGraphAddOutputs(b, sg_out)
        subgraph = _m("SubGraph").SubGraphEnd(b)
        m_codes = tvec(codes, _m("Model").ModelStartOperatorCodesVector)
        m_subgraphs = tvec([subgraph], _m("Model").ModelStartSubgraphsVector)
        m_buffers = tvec(buffers, _m("Model").ModelStartBuffersVector)
        _m("Model").ModelStart(b)
        _m("Model").ModelAddVersion(b, 3)
        _m("Model").ModelAddOperatorCodes(b, m_codes)
        _m("Model").ModelAddSubgraphs(b, m_subgraphs)
        _m("Model").ModelAddBuffers(b, m_buffers)
        b.Finish(_m("Model").ModelEnd(b), file_identifier=b"TFL3")
        path.write_bytes(b.Output())
