"""The mIoU vs MAdds trade-off of the paper's Table 7, with segkit's own measurements placed beside it.

Evaluation results are ``segkit test --json`` files (``{"miou": ..., ...}``; a fraction in 0..1 or a
percentage). Every mIoU is the mean over the classes in the ground truth
(:data:`segkit.evaluation.metrics.MIOU_DEFINITION`), as ``segkit test`` and ``segkit quantize`` report it: a report
saying so (``miou_definition``) is read as is; an older report (no ``miou_definition``: its ``miou`` is over the
classes in the ground truth or the prediction) is recomputed from its ``confusion`` matrix (with a note when that
changes it); one with neither keeps its ``miou``, its definition "not recorded", and the table says so
(:attr:`Result.miou_definition`). A file is placed on a Table 7 row (or on one of :data:`segkit.analysis.complexity.EXTRA_ROWS`):

1. by its ``config`` field when that is a known config name (or a mapping with ``name``), otherwise by its
   file name or folder name starting with the config name, the longest match winning
   (``voc_mnv2_os16.json``, ``voc_mnv2_os8_val_mf.json``, ``work_dirs/voc_mnv2_os16_aspp/eval.json``);
2. otherwise by the architecture in its ``model`` field (backbone, width, ASPP, decoder, output stride) and
   its protocol (MF or single scale): how a converted official checkpoint (config ``tflite_...``) is placed.

Results of converted official weights are drawn and tabulated apart from models segkit trained.
A result is placed by (row, precision, runtime, quantization), the report's ``precision``, ``runtime`` and
``quantization`` fields (default fp32 / pytorch / none; a second result for one such place is noted and the last
read kept when both were evaluated alike, and refused with an :class:`AnalysisError` naming both files when their
protocols or data differ): the float result stays on its row; an int8 (or fake-int8, bf16, other-runtime) result gets a row
and marker of its own beside it, with the latency of its runtime (:func:`load_runtime_latency`). The figure:
:mod:`segkit.analysis.plot`; the whole ``segkit tradeoff`` command: :func:`segkit.analysis.command.tradeoff_report`.

The other inputs are JSON files with these keys (other keys are ignored):

- latency (:func:`load_latency`): ``{"rows": [{"config": NAME, "latency_ms": MS}, ...]}`` or the list of rows
  alone: the CPU latency of each config's float PyTorch model at 513x513, batch 1;
- runtime latency (:func:`load_runtime_latency`): ``{"models": [{"config" or "model": NAME, "input_size": 513,
  "rows": [{"row": NAME, "latency_ms": MS, "runtime": R, "precision": P}, ...]}, ...]}``; ``runtime`` and
  ``precision`` are optional (read from the row name, e.g. "ONNX Runtime int8");
- MAdds (:func:`load_madds`): what ``segkit complexity --table7 --json`` writes, the list of the eight Table 7
  rows in order, each with ``madds_tf1``; or ``{"rows": [...], "extra_rows": [{"config": NAME, "madds_tf1": N},
  ...]}``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segkit.analysis.complexity import EXTRA_ROWS, TABLE7, Table7Row, extra_rows, table7
from segkit.analysis.errors import AnalysisError
from segkit.config import ConfigError, load_config
from segkit.evaluation.metrics import MIOU_DEFINITION, metrics_from_confusion

__all__ = [
    "LATENCY_FORMAT",
    "MADDS_FORMAT",
    "RUNTIMES_FORMAT",
    "MIOU_UNKNOWN",
    "OFFICIAL_FILE_MIOU",
    "PAPER_DATA",
    "LatencyKey",
    "Result",
    "evaluated_data",
    "load_latency",
    "load_madds",
    "load_results",
    "load_runtime_latency",
    "match_config",
    "tradeoff_markdown",
]

ROWS: dict[str, Table7Row] = {row.config: row for row in TABLE7}
EXTRA: dict[str, str] = {config: network for network, config in EXTRA_ROWS}
CONFIG_NAMES = sorted([*ROWS, *EXTRA], key=len, reverse=True)  # longest first
CONVERTED_PREFIX = "tflite_"  # config name of a checkpoint made by ``segkit convert``
OFFICIAL_ROW = "voc_mnv2_os16"  # the row of the official DeepLab MobileNetV2 VOC file (runtimes.json "official ...")
RUNTIME_NAMES = {
    "pytorch": "PyTorch",
    "onnxruntime": "ONNX Runtime",
    "openvino": "OpenVINO",
    "litert": "LiteRT",
    "executorch": "ExecuTorch",
}
PRECISION_ORDER = ("fp32", "bf16", "fake-int8", "int8")
# (row config, converted official weights, precision, runtime, the official int8 file itself rather than segkit's)
LatencyKey = tuple[str, bool, str, str, bool]
# the JSON each input file holds, as the error messages describe it (see the module docstring)
LATENCY_FORMAT = '{"rows": [{"config": NAME, "latency_ms": MS}, ...]}'
RUNTIMES_FORMAT = '{"models": [{"config": NAME, "input_size": 513, "rows": [{"row": NAME, "latency_ms": MS}, ...]}]}'
MADDS_FORMAT = "segkit complexity --table7 --json FILE"
MIOU_UNKNOWN = "not recorded"  # the mIoU definition of a report with neither miou_definition nor a confusion matrix
# The published VOC 2012 val mIoU of the official 8-bit file (deeplabv3_mnv2_pascal_quant.tflite, TF DeepLab's
# quantize.md: 74.26; its float twin, trained without quantization and not published as a file, is Table 7's 75.32).
# segkit's converted float checkpoint holds that file's (dequantized) weights, so both are paired with 74.26.
OFFICIAL_FILE_MIOU = 74.26
PAPER_DATA = "PASCAL VOC 2012 val, 1449 images"  # what Table 7's mIoU was measured on
DATASET_NAMES = {
    "voc": "PASCAL VOC 2012",
    "coco": "COCO",
    "ade20k": "ADE20K",
    "ade20k_top31": "ADE20K (31 classes)",
    "cityscapes": "Cityscapes",
    "folder": "folder data set",
    "synthetic": "synthetic set",
}


@dataclass(frozen=True)
class Result:
    """One evaluation result placed on a row: ``miou`` in %, ``converted`` for official weights, and what ran it:
    ``precision`` (fp32 | bf16 | int8 | fake-int8), ``runtime`` (pytorch | onnxruntime | openvino | litert),
    ``quantization`` (ptq | qat | None); ``miou_definition`` what ``miou`` averages over
    (:data:`segkit.evaluation.metrics.MIOU_DEFINITION`, or :data:`MIOU_UNKNOWN` for an old report that cannot be
    recomputed)."""

    config: str
    miou: float
    path: Path
    converted: bool = False
    precision: str = "fp32"
    runtime: str = "pytorch"
    quantization: str | None = None
    miou_definition: str = MIOU_DEFINITION
    num_images: int | None = None  # the report's ``num_images``
    protocol: str = ""  # the report's ``protocol`` (JSON, keys sorted; "" when not recorded)

    @property
    def key(self) -> tuple[str, bool, str, str]:
        return (self.config, self.converted, self.precision, self.runtime)

    @property
    def latency_key(self) -> LatencyKey:
        """Its runtimes.json latency; an int8 official-weights result without segkit's ``quantization`` is the
        official file itself (its own row in runtimes.json), not a segkit PTQ / QAT file."""
        official_file = self.converted and self.precision == "int8" and self.quantization is None
        return (*self.key, official_file)

    @property
    def data(self) -> str:
        """``PASCAL VOC 2012 val, 8 images``: what was evaluated (from the report's protocol and ``num_images``)."""
        protocol = json.loads(self.protocol) if self.protocol else {}
        dataset = protocol.get("dataset")
        split = str(protocol.get("split") or "").split(" (")[0]  # "val (two folds: ...)" -> "val"
        name = " ".join(p for p in (DATASET_NAMES.get(dataset, dataset or "data set not recorded"), split) if p)
        count = f"{self.num_images} images" if self.num_images is not None else "image count not recorded"
        return f"{name}, {count}"

    @property
    def published_miou(self) -> float | None:
        """The published mIoU of exactly this network or file: the paper's for segkit's own rows,
        :data:`OFFICIAL_FILE_MIOU` for the official file and its converted checkpoint, ``None`` for segkit's own
        int8 files of the official weights (nothing was published for them)."""
        if not self.converted:
            return ROWS[self.config].paper_miou if self.config in ROWS else None
        official = self.config == OFFICIAL_ROW and (self.precision == "fp32" or self.quantization is None)
        return OFFICIAL_FILE_MIOU if official else None

    @property
    def variant(self) -> str:
        """``int8 PTQ (ONNX Runtime)``: how the result was made."""
        quant = f" {self.quantization.upper()}" if self.quantization and "int8" in self.precision else ""
        return f"{self.precision}{quant} ({RUNTIME_NAMES.get(self.runtime, self.runtime)})"


def _signature(model: Mapping[str, Any]) -> tuple[Any, ...]:
    return (
        model.get("backbone", "mobilenet_v2"),
        float(model.get("width_mult", 1.0)),
        bool(model.get("aspp", False)),
        model.get("decoder", "none") or "none",
    )


@functools.cache
def _row_models() -> dict[str, tuple[Any, ...]]:
    """``{config: (*architecture signature, output stride)}`` of every row, from the shipped configs."""
    models = {name: load_config(name).model for name in [*ROWS, *EXTRA]}
    return {name: (*_signature(vars(m)), m.output_stride) for name, m in models.items()}


def _is_mf(data: Mapping[str, Any]) -> bool | None:
    protocol = data.get("protocol")
    if isinstance(protocol, dict) and "scales" in protocol:
        return len(protocol["scales"]) > 1 and bool(protocol.get("flip"))
    return None


def _config_name(data: Mapping[str, Any]) -> str | None:
    field = data.get("config")
    if isinstance(field, dict):
        field = field.get("name")
    return Path(field).stem if isinstance(field, str) else None


def _model(data: Mapping[str, Any]) -> dict[str, Any] | None:
    model = data.get("model")
    if not isinstance(model, dict) and isinstance(data.get("config"), dict):
        model = data["config"].get("model")
    return model if isinstance(model, dict) and "output_stride" in model else None


def _decoder(data: Mapping[str, Any]) -> str | None:
    """The result's decoder (top-level ``decoder`` of the report, or ``model.decoder``), ``None`` when unknown."""
    return data.get("decoder") or (_model(data) or {}).get("decoder")


def match_config(path: Path, data: Mapping[str, Any]) -> str | None:
    """The Table 7 (or extra) config a result file belongs to, or ``None``."""
    model = _model(data)
    decoder = _decoder(data)
    name = _config_name(data)
    candidates = [name] if name is not None else [path.stem, path.parent.name]
    for text in candidates:
        for config in CONFIG_NAMES:
            if text == config or (text.startswith(config) and not text[len(config)].isalnum()):
                if decoder is None or decoder == _row_models()[config][3]:
                    return config
                break  # e.g. voc_mnv2_os16 run with a decoder: not that row; place it by its architecture
    if model is not None:
        key = (*_signature({**model, "decoder": decoder or "none"}), int(model["output_stride"]))
        return next((config for config, row_key in _row_models().items() if row_key == key), None)
    return None


def _percent(x: float) -> float:
    return float(x) * (100.0 if x <= 1.0 else 1.0)


def result_miou(data: Mapping[str, Any]) -> tuple[float, str, float | None]:
    """``(mIoU %, definition, the report's own miou % when it was recomputed)`` of a report: its ``miou`` when its
    ``miou_definition`` is segkit's; else recomputed over the classes in the ground truth from its ``confusion``;
    else its ``miou`` with the definition :data:`MIOU_UNKNOWN`."""
    stored = _percent(data["miou"])
    definition = data.get("miou_definition")
    if definition == MIOU_DEFINITION:
        return stored, MIOU_DEFINITION, None
    confusion = data.get("confusion")
    try:
        cm = np.asarray(confusion, dtype=np.int64)
    except (TypeError, ValueError):
        cm = None
    if cm is not None and cm.ndim == 2 and cm.shape[0] == cm.shape[1] and cm.size and (cm >= 0).all() and cm.any():
        return 100.0 * metrics_from_confusion(cm).miou, MIOU_DEFINITION, stored
    return stored, str(definition) if isinstance(definition, str) and definition else MIOU_UNKNOWN, None


def load_results(results_dir: Path) -> tuple[list[Result], list[str]]:
    """The evaluation results under ``results_dir`` (recursively), and one note per file skipped.

    Raises:
        AnalysisError: two results for one place (row, weights, precision, runtime, quantization) were evaluated
            with different protocols or data (a one-line message naming both files).
    """
    found: dict[tuple[str, bool, str, str, str | None], Result] = {}  # (*Result.key, quantization)
    notes: list[str] = []
    for path in sorted(results_dir.rglob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            notes.append(f"skipped {path}: not readable JSON ({exc})")
            continue
        if not isinstance(data, dict) or not isinstance(data.get("miou"), (int, float)):
            continue  # not an evaluation result (e.g. the latency file)
        try:
            config = match_config(path, data)
        except ConfigError as exc:  # a shipped config is missing or broken: say so, do not guess
            notes.append(f"skipped {path}: {exc}")
            continue
        name = _config_name(data) or path.stem
        if config is None and _decoder(data) not in (None, "none"):
            notes.append(
                f"skipped {path}: config '{name}' with the {_decoder(data)} decoder is no Table 7 row and "
                f"none of the extra decoder configs ({', '.join(EXTRA)}); evaluate one of those to place it"
            )
            continue
        if config is None:
            hint = (
                ""
                if isinstance(data.get("model"), dict)
                else "; it has no 'model' field either (re-run segkit test --json, whose report records the model)"
            )
            notes.append(
                f"skipped {path}: config '{name}' is no Table 7 config (expected one of "
                f"{', '.join(sorted(CONFIG_NAMES))}) and its architecture matches no row{hint}"
            )
            continue
        is_mf = _is_mf(data)
        want_mf = ROWS[config].mf if config in ROWS else False
        if is_mf is not None and is_mf != want_mf:
            notes.append(
                f"skipped {path}: evaluated {'with' if is_mf else 'without'} multi-scale + flip, but "
                f"the row of {config} is {'an MF' if want_mf else 'a single-scale'} result "
                f"({'add' if want_mf else 'drop'} --ms-flip in segkit test)"
            )
            continue
        converted = name.startswith(CONVERTED_PREFIX)
        miou, definition, stored = result_miou(data)
        if stored is not None and abs(stored - miou) >= 0.005:
            notes.append(
                f"{path}: a report without 'miou_definition' (its miou {stored:.2f} is over the classes in the ground "
                f"truth or the prediction); mIoU {miou:.2f} recomputed over the {MIOU_DEFINITION} from its confusion "
                "matrix"
            )
        precision, runtime = str(data.get("precision") or "fp32"), str(data.get("runtime") or "pytorch")
        result = Result(
            config,
            miou,
            path,
            converted,
            precision,
            runtime,
            data.get("quantization"),
            definition,
            data["num_images"] if isinstance(data.get("num_images"), int) else None,
            json.dumps(data["protocol"], sort_keys=True) if isinstance(data.get("protocol"), dict) else "",
        )
        ident = (*result.key, result.quantization)
        if ident in found:
            _refuse_protocol_collision(found[ident], result)
            notes.append(
                f"{path}: a second result for {config}{', official weights' if converted else ''} "
                f"{result.variant} (also {found[ident].path}); keeping the last one read"
            )
        found[ident] = result
    return list(found.values()), notes


def _protocol_difference(a: Result, b: Result) -> str:
    """``num_images 8 vs 1449; resize_longer 513 vs None``: how two results were evaluated differently ("" if alike
    or when either did not record its protocol)."""
    if not a.protocol or not b.protocol:
        return ""
    first = {**json.loads(a.protocol), "num_images": a.num_images}
    second = {**json.loads(b.protocol), "num_images": b.num_images}
    keys = sorted(k for k in {*first, *second} if first.get(k) != second.get(k))
    return "; ".join(f"{k} {first.get(k)} vs {second.get(k)}" for k in keys)


def _refuse_protocol_collision(kept: Result, new: Result) -> None:
    """Raise :class:`AnalysisError` when two results for one place of the figure were evaluated differently."""
    difference = _protocol_difference(kept, new)
    if difference:
        official = ", official weights" if new.converted else ""
        raise AnalysisError(
            f"--results holds two results for {new.config}{official} {new.variant} evaluated differently "
            f"({difference}): {kept.path} and {new.path}; one point cannot show both, so move one of them out of the "
            "results folder (or evaluate both alike)."
        )


def load_latency(path: Path | None) -> dict[str, float]:
    """``{config: latency in ms}`` from a latency file (:data:`LATENCY_FORMAT`); ``{}`` when there is none."""
    if path is None or not path.is_file():
        return {}
    data = json.loads(path.read_text())
    rows = data.get("rows", data) if isinstance(data, dict) else data
    return {
        r["config"]: float(r["latency_ms"])
        for r in rows
        if isinstance(r, dict) and r.get("config") and r.get("latency_ms") is not None
    }


def _runtime_of(row: Mapping[str, Any]) -> tuple[str, str, bool]:
    """``(precision, runtime, official file)`` of a runtimes.json row: its keys, else read from its name."""
    name = str(row.get("row", "")).lower()
    runtime = row.get("runtime") or next(
        (key for key, label in RUNTIME_NAMES.items() if key != "pytorch" and label.lower() in name), "pytorch"
    )
    precision = row.get("precision") or ("int8" if "int8" in name else "bf16" if "bf16" in name else "fp32")
    return str(precision), str(runtime), name.startswith("official")


def load_runtime_latency(path: Path | None, input_size: int = 513) -> dict[LatencyKey, float]:
    """``{(row config, converted, precision, runtime, official file): latency in ms}`` (:data:`LatencyKey`) from a
    runtime latency file (:data:`RUNTIMES_FORMAT`); ``{}`` when there is none.

    A model entry is placed by its ``config`` key or its ``model`` name (a Table 7 / extra config; a name
    starting with ``official`` or ``tflite_`` is the official weights on :data:`OFFICIAL_ROW`); entries at another
    input size are left out. Each row gives (precision, runtime) by its keys or its name ("ONNX Runtime int8"; a
    row named ``official ...`` is the official file itself, e.g. "official uint8 TFLite (LiteRT)");
    of several rows with one key (PyTorch eval, optimize_for_inference fp32) the fastest is kept.

    Raises:
        ValueError: the file holds no ``models`` list.
    """
    if path is None or not path.is_file():
        return {}
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise ValueError("it holds no 'models' list")
    out: dict[LatencyKey, float] = {}
    for entry in data["models"]:
        if not isinstance(entry, dict) or entry.get("input_size") != input_size:
            continue
        name = str(entry.get("config") or entry.get("model") or "")
        if name in ROWS or name in EXTRA:
            place = (name, False)
        elif name.lower().startswith(("official", CONVERTED_PREFIX)):
            place = (OFFICIAL_ROW, True)
        else:
            continue  # a model on no row (e.g. width 0.5)
        for row in entry.get("rows", []):
            if isinstance(row, dict) and isinstance(row.get("latency_ms"), (int, float)):
                key = (*place, *_runtime_of(row))
                out[key] = min(out.get(key, float("inf")), float(row["latency_ms"]))
    return out


def load_madds(path: Path | None, input_size: int = 513, *, progress: bool = True) -> dict[str, int]:
    """``{config: MAdds (tf1)}`` of every Table 7 row and extra config: from ``path`` (:data:`MADDS_FORMAT`; extra
    rows it lacks are measured) or, without one, measured at ``input_size`` (~20 s on a 2-core CPU; ``progress``:
    a bar on stderr while measuring).

    Raises:
        AnalysisError: ``path`` is no readable JSON or does not hold the eight Table 7 rows with ``madds_tf1``.
    """
    if path is None:
        rows, extras = table7(input_size, progress=progress), extra_rows(input_size, progress=progress)
    else:
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AnalysisError(
                f"--complexity-json {path}: not readable JSON ({exc}); produce it with {MADDS_FORMAT}."
            ) from exc
        rows = data.get("rows", data) if isinstance(data, dict) else data
        extras = data.get("extra_rows") if isinstance(data, dict) else None
        extras = extra_rows(input_size, progress=progress) if extras is None else extras
    if (
        not isinstance(rows, list)
        or len(rows) != len(TABLE7)
        or not all(isinstance(r, dict) and "madds_tf1" in r for r in rows)
    ):
        raise AnalysisError(
            f"{path} does not hold the {len(TABLE7)} rows of Table 7 with 'madds_tf1'; produce it with {MADDS_FORMAT}."
        )
    madds = {row.config: r["madds_tf1"] for row, r in zip(TABLE7, rows)}
    madds.update({r["config"]: r["madds_tf1"] for r in extras if isinstance(r, dict) and "config" in r})
    return madds


def main_results(results: list[Result], converted: bool) -> dict[str, Result]:
    """The float result of each row (fp32 PyTorch first, then any other float one)."""
    best: dict[str, Result] = {}
    for r in sorted(results, key=lambda r: (r.precision != "fp32" or r.runtime != "pytorch", r.key)):
        if r.converted == converted and r.precision in ("fp32", "bf16"):
            best.setdefault(r.config, r)
    return best


def _by_config(results: list[Result], converted: bool) -> dict[str, float]:
    return {config: r.miou for config, r in main_results(results, converted).items()}


def variant_results(results: list[Result], config: str, converted: bool) -> list[Result]:
    """The results of a row other than its float one: int8 / fake-int8 / other runtimes, in a stable order."""
    main = main_results(results, converted).get(config)
    rest = [r for r in results if r.config == config and r.converted == converted and r is not main]
    order = {p: i for i, p in enumerate(PRECISION_ORDER)}
    return sorted(rest, key=lambda r: (order.get(r.precision, len(order)), r.runtime, r.quantization or ""))


def evaluated_data(results: list[Result]) -> str:
    """``PASCAL VOC 2012 val, 8 images``: the distinct data the results were evaluated on, "; "-joined."""
    return "; ".join(dict.fromkeys(r.data for r in sorted(results, key=lambda r: str(r.path))))


def _runtime_latency_text(r: Result, runtime_latency: Mapping[LatencyKey, float]) -> str:
    """``30 (fp32 35)``: the result's latency in its runtime, and the fp32 latency of that runtime."""
    if r.latency_key not in runtime_latency:
        return "-"
    fp32 = runtime_latency.get((r.config, r.converted, "fp32", r.runtime, False))
    own = f"{runtime_latency[r.latency_key]:.0f}"
    return own + (f" (fp32 {fp32:.0f})" if fp32 is not None and r.precision != "fp32" else "")


def tradeoff_markdown(
    madds: Mapping[str, int],
    results: list[Result],
    latency: Mapping[str, float],
    runtime_latency: Mapping[LatencyKey, float] | None = None,
) -> str:
    """The table: paper and segkit MAdds, paper mIoU, segkit's mIoU, CPU latency; one row per Table 7 row, then
    the converted official weights' results and the segkit-only configurations on rows of their own. Each int8
    (fake-int8, other-runtime) result follows its row on a row of its own, with the latency of its runtime
    (``runtime_latency``, :func:`load_runtime_latency`) and that runtime's fp32 latency in brackets. A line below
    the table says what segkit's mIoU averages over and names the results whose definition was not recorded."""
    own, official = _by_config(results, False), _by_config(results, True)
    runtime_latency = runtime_latency or {}
    lines = [
        "| Network | OS | ASPP | MF | MAdds paper | MAdds segkit (tf1) | mIoU published | mIoU segkit | CPU latency 513 (ms) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def line(network: str, arch: tuple[int, bool, bool], paper: tuple[str, str], config: str, seg: str, lat: str):
        os, aspp, mf = arch
        lines.append(
            f"| {network} | {os} | {'yes' if aspp else ''} | {'yes' if mf else ''} | {paper[0]} "
            f"| {madds[config] / 1e9:.2f}B | {paper[1]} | {seg} | {lat} |"
        )

    def block(network: str, arch: tuple[int, bool, bool], paper: tuple[str, str], config: str, **kw: Any) -> None:
        """The float line (unless ``float_line`` is False), then one line per other result of the row; a result of
        the official weights is paired with the published figure of its own file (:attr:`Result.published_miou`)."""
        miou, mf = kw["miou"], arch[2]
        if kw.get("float_line", True):
            lat = f"{latency[config]:.0f}" if config in latency and not mf else "-"
            line(network, arch, paper, config, f"{miou[config]:.2f}" if config in miou else "-", lat)
        for converted in kw["converted"]:
            for r in variant_results(results, config, converted):
                lat = "-" if mf else _runtime_latency_text(r, runtime_latency)
                published = r.published_miou
                own = (paper[0], f"{published:.2f}" if converted and published is not None else "-")
                name = f"{kw.get('variant_network', network)}, {r.variant}"
                line(name, arch, own if converted else paper, config, f"{r.miou:.2f}", lat)

    for row in TABLE7:
        paper = (f"{row.paper_madds / 1e9:g}B", f"{row.paper_miou:.2f}")
        block(row.network, (row.os, row.aspp, row.mf), paper, row.config, miou=own, converted=(False,))
    for row in TABLE7:
        if any(r.config == row.config and r.converted for r in results):
            published = f"{OFFICIAL_FILE_MIOU:.2f}" if row.config == OFFICIAL_ROW else "-"
            block(
                f"{row.network}, official weights converted",
                (row.os, row.aspp, row.mf),
                (f"{row.paper_madds / 1e9:g}B", published),
                row.config,
                miou=official,
                converted=(True,),
                float_line=row.config in official,
                variant_network=f"{row.network}, official weights",
            )
    for config, network in EXTRA.items():
        if config in madds:
            cfg = load_config(config).model
            merged = {**own, **{k: v for k, v in official.items() if k not in own}}
            arch = (cfg.output_stride, cfg.aspp, False)
            block(f"{network} (not in Table 7)", arch, ("-", "-"), config, miou=merged, converted=(False, True))
    lines += [
        "",
        f"mIoU segkit: mean IoU over the {MIOU_DEFINITION} of the evaluated set (segkit test, quantize), "
        f"evaluated on: {evaluated_data(results) or 'no results'}. mIoU published: Table 7's ({PAPER_DATA}) for "
        f"the networks segkit trains; {OFFICIAL_FILE_MIOU:.2f} for the official 8-bit file and the float checkpoint "
        "converted from it; - for int8 files segkit made (nothing published).",
    ]
    unknown = sorted(str(r.path) for r in results if r.miou_definition != MIOU_DEFINITION)
    if unknown:
        lines.append(
            f"mIoU definition not recorded (a report without 'miou_definition' or a confusion matrix; its 'miou' "
            f"as written), for: {', '.join(unknown)}"
        )
    return "\n".join(lines)
