"""Thin sessions over ONNX Runtime, OpenVINO and the LiteRT interpreter: numpy in, numpy out."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from segkit.evaluation.predict import InferenceError

RUNTIMES = ("onnxruntime", "openvino", "litert")
BY_EXTENSION = {".onnx": "onnxruntime", ".xml": "openvino", ".tflite": "litert"}
ACCEPTS = {"onnxruntime": (".onnx",), "openvino": (".onnx", ".xml"), "litert": (".tflite",)}
PACKAGES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "litert": "ai-edge-litert"}


class ExportedModelError(InferenceError):
    """A file cannot be loaded or run in a runtime; the one-line message says what to change."""


def _missing(runtime: str, exc: ImportError) -> ExportedModelError:
    return ExportedModelError(
        f"--runtime {runtime} needs the '{PACKAGES[runtime]}' package ({exc}); pip install 'segkit[deploy]'."
    )


class Session:
    """``run(array) -> array`` for one input and one output. Attributes: input_shape (None for dynamic
    dims), input_dtype, output_dtype, quant (scale, zero_point) of a quantized input or None."""

    input_shape: tuple[int | None, ...]
    input_dtype: np.dtype
    output_dtype: np.dtype
    quant: tuple[float, int] | None = None

    def run(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class OrtSession(Session):
    def __init__(self, path: Path, threads: int | None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise _missing("onnxruntime", exc) from exc
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # no busy-waiting between calls: a spinning pool would steal the cores from the host-side work
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        inp, out = self.sess.get_inputs()[0], self.sess.get_outputs()[0]
        self.input_name, self.output_name = inp.name, out.name
        self.input_shape = tuple(d if isinstance(d, int) else None for d in inp.shape)
        types = {
            "tensor(float)": np.float32,
            "tensor(uint8)": np.uint8,
            "tensor(int64)": np.int64,
            "tensor(int32)": np.int32,
        }
        self.input_dtype = np.dtype(types.get(inp.type, np.float32))
        self.output_dtype = np.dtype(types.get(out.type, np.float32))

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.sess.run([self.output_name], {self.input_name: x})[0]


class OpenVinoSession(Session):
    def __init__(self, path: Path, threads: int | None, precision: str = "f32") -> None:
        try:
            import openvino as ov
        except ImportError as exc:
            raise _missing("openvino", exc) from exc
        core = ov.Core()
        self.model = core.read_model(str(path))
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self.compiled = core.compile_model(self.model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        inp, out = self.model.inputs[0], self.model.outputs[0]
        shape = inp.get_partial_shape()
        self.input_shape = tuple(d.get_length() if d.is_static else None for d in shape)
        self.input_dtype = np.dtype(inp.get_element_type().to_dtype())
        self.output_dtype = np.dtype(out.get_element_type().to_dtype())

    def run(self, x: np.ndarray) -> np.ndarray:
        result = self.request.infer({0: x})
        return next(iter(result.values())).copy()


class LiteRtSession(Session):
    def __init__(self, path: Path, threads: int | None) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise _missing("litert", exc) from exc
        self.interp = Interpreter(model_path=str(path), num_threads=threads or None)
        try:
            self.interp.allocate_tensors()
        except RuntimeError as exc:
            text = " ".join(str(exc).split())
            raise ExportedModelError(
                f"the LiteRT interpreter cannot run {path}: {text}. The file uses an op or shape "
                "the interpreter lacks; re-export it with segkit (segkit export --format tflite), "
                "or use --format onnx."
            ) from exc
        inp, out = self.interp.get_input_details()[0], self.interp.get_output_details()[0]
        self.input_index, self.output_index = inp["index"], out["index"]
        self.input_shape = tuple(int(d) for d in inp["shape"])
        self.input_dtype, self.output_dtype = np.dtype(inp["dtype"]), np.dtype(out["dtype"])
        scale, zero = inp.get("quantization", (0.0, 0))
        self.quant = (float(scale), int(zero)) if scale else None
        self.out_quant = out.get("quantization", (0.0, 0))

    def run(self, x: np.ndarray) -> np.ndarray:
        self.interp.set_tensor(self.input_index, x)
        self.interp.invoke()
        y = self.interp.get_tensor(self.output_index)
        scale, zero = self.out_quant
        if scale and y.dtype in (np.uint8, np.int8) and y.ndim == 4:  # quantized logits -> float
            y = (y.astype(np.float32) - zero) * scale
        return y.copy()


def open_session(path: Path, runtime: str, threads: int | None, precision: str = "f32") -> Session:
    """The session of ``runtime`` for ``path`` (checked: the runtime reads that kind of file)."""
    if runtime not in RUNTIMES:
        raise ExportedModelError(f"--runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}.")
    if path.suffix.lower() not in ACCEPTS[runtime]:
        raise ExportedModelError(
            f"--runtime {runtime} reads {' or '.join(ACCEPTS[runtime])} files, not {path.name}; "
            f"use --runtime {BY_EXTENSION.get(path.suffix.lower(), 'onnxruntime')} or export to "
            f"{ACCEPTS[runtime][0]}."
        )
    if runtime == "onnxruntime":
        return OrtSession(path, threads)
    if runtime == "openvino":
        return OpenVinoSession(path, threads, precision)
    return LiteRtSession(path, threads)
