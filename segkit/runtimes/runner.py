"""An exported file with the call contract of a segkit model: ``runner(x) -> {"out": logits}``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from segkit.errors import SegkitError
from segkit.runtimes.backends import BY_EXTENSION, REEXPORT, ExportedModelError, Session, brief, open_session

# What segkit runs: images in, logits or labels out (what ``segkit export`` and ``segkit quantize`` write).
CONTRACT = (
    "segkit runs files that take images ([N, 3, H, W] float or [N, H, W, 3] uint8) and return logits "
    "([N, C, H, W]) or labels ([N, H, W]), as segkit export writes them"
)
_FLOAT_IN = (np.float32, np.float16)
_INT_IN = (np.uint8, np.int8)


def _shape_text(shape: tuple[int | None, ...] | None) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]" if shape is not None else "[?]"


def check_contract(path: Path, s: Session, layout: str, output_kind: str, output_layout: str) -> None:
    """ExportedModelError unless the opened file takes one image tensor and returns logits or labels at its size.

    Checked from what the file declares (shapes, element types), before anything is run: a classifier, an
    ``nn.Linear``, a one-channel input or a file with several inputs is refused with what it takes and gives.
    """
    name = path.name
    if s.num_inputs != 1 or s.num_outputs < 1:
        raise ExportedModelError(
            f"{name} has {s.num_inputs} input(s) and {s.num_outputs} output(s); {CONTRACT}. It is another kind of model."
        )
    shape, channels = s.input_shape, None
    if len(shape) == 4:
        channels = shape[3] if layout == "nhwc" else shape[1]
    if len(shape) != 4 or channels not in (3, None):
        raise ExportedModelError(
            f"{name} takes a {len(shape)}-D input {_shape_text(shape)} ({layout.upper() if len(shape) == 4 else 'no'} "
            f"image layout, {channels if channels is not None else 'no'} colour channel(s)); {CONTRACT}. It is another "
            "kind of model (a classifier, a one-channel or a non-image model)."
        )
    if s.input_dtype.type not in _FLOAT_IN + _INT_IN:
        raise ExportedModelError(f"{name} takes {s.input_dtype} input, not float32 or uint8 images; {CONTRACT}.")
    out = s.output_shape
    if out is None:  # the file does not declare its output rank: checked on the first run
        return
    ranks = (3, 4) if output_kind == "labels" else (4,)
    if len(out) not in ranks:
        raise ExportedModelError(
            f"{name} returns a {len(out)}-D output {_shape_text(out)}, not {output_kind} "
            f"{'[N, H, W]' if output_kind == 'labels' else '[N, C, H, W]'}; {CONTRACT}. It is another kind of model "
            "(a classifier returns [N, classes])."
        )
    spatial_in = shape[1:3] if layout == "nhwc" else shape[2:4]
    if len(out) == 3:
        spatial_out = out[1:3]
    elif output_kind == "labels":
        spatial_out = out[1:3] if out[-1] == 1 else out[2:4]
    else:
        spatial_out = out[1:3] if output_layout == "nhwc" else out[2:4]
    if None not in spatial_in and None not in spatial_out and tuple(spatial_in) != tuple(spatial_out):
        raise ExportedModelError(
            f"{name} returns {spatial_out[0]}x{spatial_out[1]} outputs for {spatial_in[0]}x{spatial_in[1]} inputs; "
            f"segkit needs {output_kind} at the input size (the upsampling inside the graph, as segkit export "
            "writes it)."
        )


# The segkit metadata fields the runner reads: (check, what is expected).
def _number_list(n: int, positive: bool = False):
    def check(v: Any) -> bool:
        return (
            isinstance(v, list)
            and len(v) == n
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) and (x > 0 or not positive) for x in v)
        )

    return check


def _optional(check):
    return lambda v: v is None or check(v)


_META_FIELDS: dict[str, tuple[Any, str]] = {
    "mean": (_number_list(3), "three numbers (RGB, 0..255 scale)"),
    "std": (_number_list(3, positive=True), "three positive numbers"),
    "input": (_optional(lambda v: v in ("float", "uint8")), '"float" or "uint8"'),
    "output": (_optional(lambda v: v in ("logits", "labels")), '"logits" or "labels"'),
    "layout": (_optional(lambda v: v in ("nchw", "nhwc")), '"nchw" or "nhwc"'),
    "input_layout": (_optional(lambda v: v in ("nchw", "nhwc")), '"nchw" or "nhwc"'),
    "precision": (_optional(lambda v: isinstance(v, str)), 'a string such as "fp32" or "int8"'),
    "num_classes": (
        _optional(lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1),
        "null or a positive integer",
    ),
    "class_names": (_optional(lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)), "a list of names"),
    "palette": (
        _optional(lambda v: isinstance(v, list) and all(_number_list(3)(c) for c in v)),
        "a list of [r, g, b] colours",
    ),
    "align_corners": (_optional(lambda v: isinstance(v, bool)), "true or false"),
    "argmax_fusion": (_optional(lambda v: isinstance(v, bool)), "true or false"),
    "config": (_optional(lambda v: isinstance(v, dict)), "a JSON object (the config)"),
}


def check_metadata(meta: Any, path: Path) -> dict[str, Any] | None:
    """``meta`` when it is segkit metadata the runner can use; ExportedModelError naming the bad entry otherwise."""
    if meta is None:
        return None
    fix = (
        "the file's metadata was edited or written by another tool; re-export it with segkit export, or remove the "
        "'segkit' metadata entry to run it as a foreign file"
    )
    if not isinstance(meta, dict):
        raise ExportedModelError(
            f"{path.name}: its 'segkit' metadata entry is a JSON {type(meta).__name__}, not an object; {fix}."
        )
    for key, (check, expected) in _META_FIELDS.items():
        if key in ("mean", "std") and key not in meta:
            raise ExportedModelError(f"{path.name}: its 'segkit' metadata has no '{key}' ({expected}); {fix}.")
        if key in meta and not check(meta[key]):
            shown = repr(meta[key])
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise ExportedModelError(
                f"{path.name}: 'segkit' metadata field '{key}' is {shown}, expected {expected}; {fix}."
            )
    return meta


def _check_images(x: Any) -> None:
    if not torch.is_tensor(x) or x.ndim != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ExportedModelError(f"expected normalised float images [N, 3, H, W], got {shape}.")


@dataclass(frozen=True)
class PreparedInput:
    """Images in an exported file's own input form (:meth:`ExportedModel.prepare_input`): ``chunks`` of ``(array,
    h, w)``, one per call of the file, and ``shape``, that of the normalised images [N, 3, H, W] they came from."""

    chunks: list[tuple[np.ndarray, int, int]]
    shape: tuple[int, ...]


@dataclass(frozen=True)
class RawOutput:
    """An exported file's outputs as the runtime gave them (:meth:`ExportedModel.run_prepared`): ``chunks`` of
    ``(output, h, w)``, one per call, with the extent its labels are cropped to."""

    chunks: list[tuple[Tensor, int, int]]


class ExportedModel:
    """A .onnx / .xml / .tflite / .pte file run in ONNX Runtime, OpenVINO, LiteRT or ExecuTorch like a segkit model.

    ``model(x)`` takes normalised float images ``[N, 3, H, W]`` (what segkit's protocols feed a
    checkpoint) and returns ``{"out": logits [N, C, H, W]}``; a labels-output file returns
    ``{"labels": [N, H, W] long, "out": one-hot float}`` so argmax-based code works unchanged. A
    uint8-input file gets ``round(x * std + mean)`` (the pixels back). A static file accepts inputs up
    to its size: smaller ones are padded bottom/right with the mean pixel (0) and cropped back.

    Attributes: ``metadata`` (segkit's, or None for a foreign file), ``input_size`` ((H, W) or None),
    ``input_kind`` ("float" | "uint8"), ``input_quant`` ((scale, zero point) a float input is quantized
    with, for a full-integer file, else None), ``output_kind`` ("logits" | "labels"), ``class_names``,
    ``palette``, ``mean``, ``std``, ``align_corners``, ``segkit_config``, ``runtime``,
    ``precision`` ("fp32" | "int8", from the metadata).
    """

    def __init__(
        self, path: str | os.PathLike, runtime: str | None = None, *, threads: int | None = None, precision: str = "f32"
    ) -> None:
        from segkit.runtimes.metadata import read_metadata

        self.path = Path(path)
        if not self.path.is_file():
            raise ExportedModelError(
                f"exported model not found: {self.path}; pass a .onnx, .tflite, .pte or OpenVINO .xml file "
                "(segkit export writes them)."
            )
        suffix = self.path.suffix.lower()
        if suffix not in BY_EXTENSION:
            raise ExportedModelError(
                f"{self.path.name}: --model takes a .onnx, .tflite, .pte or OpenVINO .xml file; for a segkit "
                ".pth checkpoint use --checkpoint."
            )
        self.runtime = runtime or BY_EXTENSION[suffix]
        self.session = open_session(self.path, self.runtime, threads, precision)
        try:
            meta = read_metadata(self.path)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:  # a 'segkit' entry that is not JSON text
            raise ExportedModelError(
                f"{self.path.name}: its 'segkit' metadata entry is not valid JSON ({brief(exc, 120)}); re-export it "
                "with segkit export, or remove the entry to run it as a foreign file."
            ) from exc
        except Exception:  # noqa: BLE001 - a foreign file without readable metadata
            meta = None
        meta = check_metadata(meta, self.path)
        self.metadata: dict[str, Any] | None = meta
        s = self.session
        # precision: the metadata's; a foreign file with a quantized uint8/int8 input is int8
        self.precision: str = (meta or {}).get("precision") or (
            "int8" if meta is None and (s.quant or s.input_dtype in (np.uint8, np.int8)) else "fp32"
        )
        shape = s.input_shape
        pixels = s.input_dtype == np.uint8 and (meta or {}).get("input", "uint8") == "uint8"
        self.input_kind = "uint8" if pixels else "float"
        # a full-integer file whose float input is quantized (segkit's PT2E .tflite): quantize x with its params
        integer = np.issubdtype(s.input_dtype, np.integer)
        self.input_quant: tuple[float, int] | None = s.quant if integer and not pixels else None
        if meta and meta.get("input_layout"):
            self.layout = meta["input_layout"]
        else:
            self.layout = "nhwc" if len(shape) == 4 and shape[-1] == 3 else "nchw"
        spatial = shape[1:3] if self.layout == "nhwc" else shape[2:4]
        self.input_size: tuple[int, int] | None = (
            (int(spatial[0]), int(spatial[1])) if len(shape) == 4 and None not in spatial and spatial[0] > 0 else None
        )
        self.static_batch = len(shape) == 4 and shape[0] == 1
        quantized_out = bool(getattr(s, "out_quant", (0.0, 0))[0])  # quantized logits are dequantized by the session
        self.output_kind = (meta or {}).get("output") or (
            "labels" if np.issubdtype(s.output_dtype, np.integer) and not quantized_out else "logits"
        )
        self.output_layout = (meta or {}).get("layout") or ("nhwc" if self.runtime == "litert" else "nchw")
        if meta:
            self.mean, self.std = list(meta["mean"]), list(meta["std"])
        elif s.quant and pixels:  # real = scale * (q - zero_point): the normalisation of a uint8 input
            self.mean, self.std = [float(s.quant[1])] * 3, [1.0 / s.quant[0]] * 3
        else:
            from segkit.config import TF_MEAN, TF_STD

            self.mean, self.std = list(TF_MEAN), list(TF_STD)  # TF MobileNet preprocessing, as the official files
        self.align_corners = bool((meta or {}).get("align_corners", True))
        self.num_classes: int | None = (meta or {}).get("num_classes")
        self.class_names = (meta or {}).get("class_names")
        self.palette = (meta or {}).get("palette")
        check_contract(self.path, s, self.layout, self.output_kind, self.output_layout)
        self.segkit_config = self._config()

    def _config(self) -> Any:
        from segkit.config import Config, config_from_dict

        cfg_dict = (self.metadata or {}).get("config")
        try:
            cfg = config_from_dict(cfg_dict) if cfg_dict else Config(name=self.path.stem)
        except (SegkitError, TypeError, ValueError, KeyError) as exc:
            raise ExportedModelError(
                f"{self.path.name}: the config in its 'segkit' metadata is not a segkit config ({brief(exc, 160)}); "
                f"{REEXPORT}."
            ) from exc
        cfg.model.input_mean, cfg.model.input_std = list(self.mean), list(self.std)
        cfg.model.align_corners = self.align_corners
        if self.num_classes:
            cfg.model.num_classes = int(self.num_classes)
        return cfg

    def implied_protocol(self) -> dict[str, Any]:
        """``eval.*`` overrides a static file implies: resize the longer side to its (smaller) size and pad."""
        if self.input_size is None:
            return {}
        side = min(self.input_size)
        return {"eval.resize_longer": side, "eval.pad_to": side}

    def eval(self) -> ExportedModel:  # the model-like no-ops scripts call
        return self

    def to(self, *_: Any, **__: Any) -> ExportedModel:
        return self

    def _native(self, x: Tensor) -> np.ndarray:
        if self.input_kind == "uint8":
            std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
            mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
            x = (x.float() * std + mean).round_().clamp_(0, 255).to(torch.uint8)
        elif self.input_quant is not None:
            scale, zero = self.input_quant
            info = np.iinfo(self.session.input_dtype)
            x = (x.float() / scale + zero).round_().clamp_(info.min, info.max)
            x = x.to(torch.int8 if self.session.input_dtype == np.int8 else torch.uint8)
        else:
            x = x.float()
        if self.layout == "nhwc":
            x = x.permute(0, 2, 3, 1)
        return np.ascontiguousarray(x.cpu().numpy())

    def run_native(self, array: np.ndarray) -> np.ndarray:
        """Run the file on its own input (dtype and layout as the file declares) and return its raw output."""
        return self.session.run(array)

    def _prepare_one(self, x: Tensor) -> tuple[np.ndarray, int, int]:
        """The file's own input for ``x`` [N, 3, h, w] (padded to a static file's size, its dtype and layout), with the
        input's ``(h, w)`` to crop back to."""
        h, w = x.shape[-2:]
        if self.input_size is not None and (h, w) != self.input_size:
            H, W = self.input_size
            if h > H or w > W:
                raise ExportedModelError(
                    f"{self.path.name} has a fixed {H}x{W} input; got {h}x{w}. Resize first "
                    f"(--resize-longer {min(H, W)} --pad-to {min(H, W)}, implied when not given)."
                )
            x = F.pad(x, (0, W - w, 0, H - h), value=0.0)
        return self._native(x), int(h), int(w)

    def _run_prepared(self, native: np.ndarray, h: int, w: int) -> Tensor:
        """The file's output on its own input as it comes (labels [N, H, W], logits in the file's layout, no copy)."""
        try:
            y = torch.from_numpy(np.asarray(self.session.run(native)))
        except Exception as exc:  # noqa: BLE001 - each runtime raises its own types on a graph it cannot run
            raise ExportedModelError(
                f"{self.runtime} cannot run {self.path.name} on a {_shape_text(native.shape)} {native.dtype} input: "
                f"{brief(exc)}; {CONTRACT}."
            ) from exc
        nhwc = self.output_layout == "nhwc"
        if self.output_kind == "labels":
            y = y.reshape(y.shape[0], *y.shape[-2:]) if y.ndim == 4 and 1 in (y.shape[1], y.shape[-1]) else y
            spatial = tuple(y.shape[-2:])
        else:
            spatial = tuple(y.shape[1:3] if nhwc else y.shape[-2:]) if y.ndim == 4 else ()
        want = tuple(native.shape[1:3] if self.layout == "nhwc" else native.shape[-2:])
        if y.ndim != (3 if self.output_kind == "labels" else 4) or spatial != want:
            raise ExportedModelError(
                f"{self.path.name} returned {_shape_text(tuple(y.shape))} for a {want[0]}x{want[1]} input; "
                f"segkit needs {self.output_kind} at the input size; {CONTRACT}."
            )
        return y

    def _run_raw(self, x: Tensor) -> tuple[Tensor, int, int]:
        """The file's output on ``x`` [N, 3, h, w] as it comes (labels [N, H, W], logits in the file's layout, no
        copy), padded to a static file's size first; with the input's ``(h, w)`` to crop back to."""
        native, h, w = self._prepare_one(x)
        return self._run_prepared(native, h, w), h, w

    def _batches(self, x: Tensor) -> list[Tensor]:
        return [x[i : i + 1] for i in range(x.shape[0])] if self.static_batch or x.shape[0] == 1 else [x]

    def prepare_input(self, x: Tensor) -> PreparedInput:
        """``x`` (normalised images [N, 3, h, w]) as the file's own input, for :meth:`predict_labels`: the host work
        (padding, dtype, layout) that ``segkit infer`` and ``segkit test`` do on a reader thread."""
        _check_images(x)
        return PreparedInput([self._prepare_one(b) for b in self._batches(x)], tuple(x.shape))

    def _run_one(self, x: Tensor) -> Tensor:
        y, h, w = self._run_raw(x)
        if self.output_kind == "labels":
            return y[..., :h, :w].long()
        if self.output_layout == "nhwc":
            y = y.permute(0, 3, 1, 2)
        return y[..., :h, :w].float()

    def predict_labels(self, x: Tensor | PreparedInput) -> Tensor:
        """Label maps [N, h, w] (uint8 up to 256 classes, else int64) of normalised images [N, 3, h, w] (or of
        :meth:`prepare_input`'s result): the file's own labels when it outputs them, else the argmax of its logits
        taken in the file's layout on the cropped extent (no float copy, no one-hot). The single-view protocols use it
        (:func:`segkit.evaluation.predict.predict`); the labels equal ``self(x)["out"].argmax(1)`` (ties: the lowest
        class, as ``argmax``). The same in two steps: :meth:`run_prepared` then :meth:`labels_of`."""
        prepared = x if isinstance(x, PreparedInput) else self.prepare_input(x)
        return self.labels_of(self.run_prepared(prepared))

    def run_prepared(self, prepared: PreparedInput) -> RawOutput:
        """The file's outputs on :meth:`prepare_input`'s result, as they come: the runtime's work alone (``segkit
        infer`` and ``segkit test`` take the labels, :meth:`labels_of`, on another thread)."""
        return RawOutput([(self._run_prepared(native, h, w), h, w) for native, h, w in prepared.chunks])

    def labels_of(self, raw: RawOutput) -> Tensor:
        """The label maps [N, h, w] of :meth:`run_prepared`'s outputs (see :meth:`predict_labels`)."""
        labels = []
        for y, h, w in raw.chunks:
            if self.output_kind == "labels":
                labels.append(y[..., :h, :w])
                continue
            nhwc = self.output_layout == "nhwc"
            y = y[:, :h, :w] if nhwc else y[..., :h, :w]
            classes = y.shape[-1 if nhwc else 1]
            index = y.max(-1 if nhwc else 1).indices  # max().indices: argmax's result (first maximum), 3x faster
            labels.append(index.to(torch.uint8) if classes <= 256 else index)
        out = labels[0] if len(labels) == 1 else torch.cat(labels, 0)
        return out if out.dtype in (torch.uint8, torch.int64) else out.long()

    def __call__(self, x: Tensor) -> dict[str, Tensor]:
        _check_images(x)
        outs = torch.cat([self._run_one(b) for b in self._batches(x)], 0).to(x.device)
        if self.output_kind == "labels":
            n = int(self.num_classes or max(int(outs.max()) + 1, 21))
            onehot = F.one_hot(outs.clamp(0, n - 1), n).permute(0, 3, 1, 2).float()
            return {"labels": outs, "out": onehot}
        return {"out": outs}

    def __repr__(self) -> str:
        size = "dynamic" if self.input_size is None else f"{self.input_size[0]}x{self.input_size[1]}"
        return (
            f"ExportedModel({self.path.name}, runtime={self.runtime}, input={self.input_kind} {self.layout} {size}, "
            f"output={self.output_kind})"
        )


def load_exported(
    path: str | os.PathLike, runtime: str | None = None, *, threads: int | None = None, precision: str = "f32"
) -> ExportedModel:
    """Load an exported .onnx / .xml / .tflite / .pte file (runtime default by extension: onnxruntime, openvino,
    litert, executorch)."""
    return ExportedModel(path, runtime, threads=threads, precision=precision)
