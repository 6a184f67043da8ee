"""Thin sessions over ONNX Runtime, OpenVINO, the LiteRT interpreter and ExecuTorch's runtime: numpy in, numpy out."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from segkit.evaluation.predict import InferenceError
from segkit.runtimes.names import BY_EXTENSION, RUNTIMES
from segkit.utils.quiet import quiet_libraries

ACCEPTS = {"onnxruntime": (".onnx",), "openvino": (".onnx", ".xml"), "litert": (".tflite",), "executorch": (".pte",)}
PACKAGES = {
    "onnxruntime": "onnxruntime",
    "openvino": "openvino",
    "litert": "ai-edge-litert",
    "executorch": "executorch",
}
EXTRAS = {"executorch": "executorch"}  # runtime -> the extra that installs it (default: deploy)


class ExportedModelError(InferenceError):
    """A file cannot be loaded or run in a runtime; the one-line message says what to change."""


KINDS = {
    "onnxruntime": "an ONNX",
    "openvino": "an ONNX or OpenVINO IR",
    "litert": "a LiteRT (.tflite)",
    "executorch": "an ExecuTorch (.pte)",
}
REEXPORT = "re-export it (segkit export, or segkit quantize for int8) or copy it again"


def brief(exc: BaseException, limit: int = 240) -> str:
    """A runtime's error on one line: its lines joined, C++ source locations dropped, at most ``limit`` characters."""
    parts = [
        line.strip()
        for line in str(exc).splitlines()
        if line.strip() and not (line.strip().startswith(("Exception from ", "Check '")) and line.strip().endswith(":"))
    ]
    text = " ".join(" ".join(parts).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _dims(shape: Any) -> tuple[int | None, ...] | None:
    """A runtime's shape as ``(int | None, ...)`` (None: a dynamic dimension); None when even the rank is unknown."""
    if shape is None:
        return None
    return tuple(int(d) if isinstance(d, (int, np.integer)) and int(d) >= 0 else None for d in shape)


def _missing(runtime: str, exc: ImportError) -> ExportedModelError:
    return ExportedModelError(
        f"--runtime {runtime} needs the '{PACKAGES[runtime]}' package ({exc}); "
        f"pip install 'segkit-deeplab[{EXTRAS.get(runtime, 'deploy')}]'."
    )


class Session:
    """``run(array) -> array`` for one input and one output. Attributes: input_shape (None for dynamic
    dims), input_dtype, output_dtype, quant (scale, zero_point) of a quantized input or None, output_shape
    (None when the file does not declare its rank), num_inputs, num_outputs."""

    input_shape: tuple[int | None, ...]
    input_dtype: np.dtype
    output_dtype: np.dtype
    quant: tuple[float, int] | None = None
    output_shape: tuple[int | None, ...] | None = None
    num_inputs: int = 1
    num_outputs: int = 1

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
        inputs, outputs = self.sess.get_inputs(), self.sess.get_outputs()
        self.num_inputs, self.num_outputs = len(inputs), len(outputs)
        if not inputs or not outputs:
            return
        inp, out = inputs[0], outputs[0]
        self.input_name, self.output_name = inp.name, out.name
        self.input_shape = tuple(d if isinstance(d, int) else None for d in inp.shape)
        self.output_shape = _dims(out.shape)
        types = {
            "tensor(float)": np.float32,
            "tensor(float16)": np.float16,
            "tensor(double)": np.float64,
            "tensor(uint8)": np.uint8,
            "tensor(int8)": np.int8,
            "tensor(int64)": np.int64,
            "tensor(int32)": np.int32,
        }
        self.input_dtype = np.dtype(types.get(inp.type, object))  # object: a type no image is (string, bool, ...)
        self.output_dtype = np.dtype(types.get(out.type, object))

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
        self.num_inputs, self.num_outputs = len(self.model.inputs), len(self.model.outputs)
        if not self.model.inputs or not self.model.outputs:
            return
        inp, out = self.model.inputs[0], self.model.outputs[0]
        shape = inp.get_partial_shape()
        self.input_shape = tuple(d.get_length() if d.is_static else None for d in shape)
        self.input_dtype = np.dtype(inp.get_element_type().to_dtype())
        self.output_dtype = np.dtype(out.get_element_type().to_dtype())
        out_shape = out.get_partial_shape()
        if out_shape.rank.is_static:
            self.output_shape = tuple(d.get_length() if d.is_static else None for d in out_shape)

    def run(self, x: np.ndarray) -> np.ndarray:
        result = self.request.infer({0: x})
        return next(iter(result.values())).copy()


class LiteRtSession(Session):
    def __init__(self, path: Path, threads: int | None) -> None:
        try:
            with quiet_libraries():
                from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise _missing("litert", exc) from exc
        self.interp = Interpreter(model_path=str(path), num_threads=threads or None)
        try:
            with quiet_libraries():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
                self.interp.allocate_tensors()
        except RuntimeError as exc:
            text = " ".join(str(exc).split())
            raise ExportedModelError(
                f"the LiteRT interpreter cannot run {path}: {text}. The file uses an op or shape "
                "the interpreter lacks; re-export it with segkit (segkit export --format tflite), "
                "or use --format onnx."
            ) from exc
        inputs, outputs = self.interp.get_input_details(), self.interp.get_output_details()
        self.num_inputs, self.num_outputs = len(inputs), len(outputs)
        if not inputs or not outputs:
            return
        inp, out = inputs[0], outputs[0]
        self.input_index, self.output_index = inp["index"], out["index"]
        self.input_shape = tuple(int(d) for d in inp["shape"])
        self.output_shape = _dims(out.get("shape_signature", out["shape"]))
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


# ExecuTorch's ScalarType codes (c10) -> numpy; object: a type no image is
_ET_DTYPES = {
    0: np.uint8,
    1: np.int8,
    2: np.int16,
    3: np.int32,
    4: np.int64,
    5: np.float16,
    6: np.float32,
    7: np.float64,
}


class ExecuTorchSession(Session):
    """The ``forward`` method of an ExecuTorch program (.pte) in ExecuTorch's Python runtime (XNNPACK and portable
    kernels). ``threads`` sets the size of the runtime's one process-wide thread pool."""

    def __init__(self, path: Path, threads: int | None) -> None:
        try:
            with quiet_libraries(), warnings.catch_warnings():  # "This API is experimental" as it loads
                warnings.simplefilter("ignore")
                import torch
                from executorch.extension.pybindings import portable_lib
                from executorch.runtime import Runtime
        except ImportError as exc:
            raise _missing("executorch", exc) from exc
        self._torch = torch
        with quiet_libraries():  # cpuinfo lines as the thread pool and XNNPACK start
            if threads and portable_lib._threadpool_get_thread_count() != threads:
                portable_lib._unsafe_reset_threadpool(int(threads))
            program = Runtime.get().load_program(path)
            if "forward" not in program.method_names:
                raise ExportedModelError(
                    f"{path.name} is an ExecuTorch program without a 'forward' method (it has "
                    f"{', '.join(sorted(program.method_names)) or 'none'}); {REEXPORT}."
                )
            self.method = program.load_method("forward")
        meta = self.method.metadata
        self.num_inputs, self.num_outputs = meta.num_inputs(), meta.num_outputs()
        if not self.num_inputs or not self.num_outputs:
            return
        inp, out = meta.input_tensor_meta(0), meta.output_tensor_meta(0)
        self.input_shape = tuple(int(d) for d in inp.sizes())
        self.output_shape = tuple(int(d) for d in out.sizes())
        self.input_dtype = np.dtype(_ET_DTYPES.get(int(inp.dtype()), object))
        self.output_dtype = np.dtype(_ET_DTYPES.get(int(out.dtype()), object))

    def run(self, x: np.ndarray) -> np.ndarray:
        y = self.method.execute([self._torch.from_numpy(np.ascontiguousarray(x))])[0]
        return y.numpy().copy()  # the output lives in the program's planned memory, reused by the next run


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
    _check_file(path, runtime)
    try:
        if runtime == "onnxruntime":
            return OrtSession(path, threads)
        if runtime == "openvino":
            return OpenVinoSession(path, threads, precision)
        if runtime == "executorch":
            return ExecuTorchSession(path, threads)
        return LiteRtSession(path, threads)
    except ExportedModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - each runtime raises its own zoo on a file it cannot read
        raise ExportedModelError(
            f"{runtime} cannot load {path} ({brief(exc).rstrip('.')}): it is truncated, corrupt or not "
            f"{KINDS[runtime]} model, or its external data is refused; {REEXPORT}."
        ) from exc


def _check_file(path: Path, runtime: str) -> None:
    """What can be told before a runtime reads ``path``: an empty file, an OpenVINO IR without its weights or
    that is no IR (OpenVINO would try every frontend on it, printing their errors)."""
    if path.stat().st_size == 0:
        raise ExportedModelError(f"{path} is empty (0 bytes): not a model; {REEXPORT}.")
    if path.suffix.lower() == ".xml":
        with path.open("rb") as f:
            head = f.read(4096)
        if b"<net" not in head:
            raise ExportedModelError(
                f"{path} is not an OpenVINO IR .xml file (it has no <net> element); pass the .xml that segkit "
                "quantize --format openvino (or OpenVINO's ovc) wrote, beside its .bin."
            )
        weights = path.with_suffix(".bin")
        if not weights.is_file():
            raise ExportedModelError(
                f"{path} is an OpenVINO IR without its weights: {weights.name} is not beside it; keep the .xml and "
                "its .bin together (copy both), or export the model again."
            )
