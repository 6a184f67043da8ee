"""The mIoU vs MAdds trade-off of the paper's Table 7, with segkit's own measurements placed beside it.

Evaluation results are ``segkit test --json`` files (``{"miou": ..., ...}``; a fraction in 0..1 or a
percentage). A file is placed on a Table 7 row (or on one of :data:`segkit.complexity.EXTRA_ROWS`):

1. by its ``config`` field when that is a known config name (or a mapping with ``name``), otherwise by its
   file name or folder name starting with the config name, the longest match winning
   (``voc_mnv2_os16.json``, ``voc_mnv2_os8_val_mf.json``, ``work_dirs/voc_mnv2_os16_aspp/eval.json``);
2. otherwise by the architecture in its ``model`` field (backbone, width, ASPP, decoder, output stride) and
   its protocol (MF or single scale): how a converted official checkpoint (config ``tflite_...``) is placed.

Results of converted official weights are drawn and tabulated apart from models segkit trained.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segkit.complexity import EXTRA_ROWS, TABLE7, Table7Row
from segkit.config import ConfigError, load_config
from segkit.utils.io import atomic_path

__all__ = ["Result", "load_latency", "load_results", "match_config", "plot", "tradeoff_markdown"]

ROWS: dict[str, Table7Row] = {row.config: row for row in TABLE7}
EXTRA: dict[str, str] = {config: network for network, config in EXTRA_ROWS}
CONFIG_NAMES = sorted([*ROWS, *EXTRA], key=len, reverse=True)  # longest first
CONVERTED_PREFIX = "tflite_"  # config name of a checkpoint made by ``segkit convert``


@dataclass(frozen=True)
class Result:
    """One evaluation result placed on a row: ``miou`` in %, ``converted`` for official weights."""

    config: str
    miou: float
    path: Path
    converted: bool = False


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


def load_results(results_dir: Path) -> tuple[list[Result], list[str]]:
    """The evaluation results under ``results_dir`` (recursively), and one note per file skipped."""
    found: dict[tuple[str, bool], Result] = {}
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
        miou = float(data["miou"]) * (100.0 if data["miou"] <= 1.0 else 1.0)
        if (config, converted) in found:
            notes.append(f"{path}: a second result for {config}; keeping the last one read")
        found[(config, converted)] = Result(config, miou, path, converted)
    return list(found.values()), notes


def load_latency(path: Path | None) -> dict[str, float]:
    """``{config: latency in ms}`` from a ``benchmarks/inference.py --json`` file."""
    if path is None or not path.is_file():
        return {}
    data = json.loads(path.read_text())
    rows = data.get("rows", data) if isinstance(data, dict) else data
    return {
        r["config"]: float(r["latency_ms"])
        for r in rows
        if isinstance(r, dict) and r.get("config") and r.get("latency_ms") is not None
    }


def _by_config(results: list[Result], converted: bool) -> dict[str, float]:
    return {r.config: r.miou for r in results if r.converted == converted}


def tradeoff_markdown(madds: Mapping[str, int], results: list[Result], latency: Mapping[str, float]) -> str:
    """The table: paper and segkit MAdds, paper mIoU, segkit's mIoU, CPU latency; one row per Table 7 row, then
    the converted official weights' results and the segkit-only configurations on rows of their own."""
    own, official = _by_config(results, False), _by_config(results, True)
    lines = [
        "| Network | OS | ASPP | MF | MAdds paper | MAdds segkit (tf1) | mIoU paper | mIoU segkit | CPU latency 513 (ms) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def line(
        network: str,
        os: int,
        aspp: bool,
        mf: bool,
        paper_madds: str,
        config: str,
        paper_miou: str,
        miou: Mapping[str, float],
    ) -> str:
        seg = f"{miou[config]:.2f}" if config in miou else "-"
        lat = f"{latency[config]:.0f}" if config in latency and not mf else "-"
        return (
            f"| {network} | {os} | {'yes' if aspp else ''} | {'yes' if mf else ''} | {paper_madds} "
            f"| {madds[config] / 1e9:.2f}B | {paper_miou} | {seg} | {lat} |"
        )

    for row in TABLE7:
        lines.append(
            line(
                row.network,
                row.os,
                row.aspp,
                row.mf,
                f"{row.paper_madds / 1e9:g}B",
                row.config,
                f"{row.paper_miou:.2f}",
                own,
            )
        )
    for row in TABLE7:
        if row.config in official:
            lines.append(
                line(
                    f"{row.network}, official weights converted",
                    row.os,
                    row.aspp,
                    row.mf,
                    f"{row.paper_madds / 1e9:g}B",
                    row.config,
                    f"{row.paper_miou:.2f}",
                    official,
                )
            )
    for config, network in EXTRA.items():
        if config in madds:
            cfg = load_config(config).model
            lines.append(
                line(
                    f"{network} (not in Table 7)",
                    cfg.output_stride,
                    cfg.aspp,
                    False,
                    "-",
                    config,
                    "-",
                    {**own, **{k: v for k, v in official.items() if k not in own}},
                )
            )
    return "\n".join(lines)


# label placement (points) where the default would overlap a neighbour
LABEL_OFFSETS = {
    "voc_mnv2_os16_aspp": (5, 6),
    "voc_mnv1_os16_aspp": (5, -11),
    "voc_mnv2_os16": (-20, 8),
    "voc_mnv2_os8_aspp": (-60, 8),
    "voc_mnv1_os8_aspp": (5, -11),
    "voc_r101_os8_aspp": (-95, -12),
}
COLORS = {"MNet V1": "tab:blue", "MNet V2*": "tab:green", "ResNet-101": "tab:red"}


def _label(row: Table7Row) -> str:
    return f"{row.network} OS{row.os}" + (" ASPP" if row.aspp else "") + (" MF" if row.mf else "")


def plot(madds: Mapping[str, int], results: list[Result], latency: Mapping[str, float], path: Path) -> None:
    """``path`` (PNG): mIoU against MAdds (log axis), and against measured CPU latency when there is any."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    own, official = _by_config(results, False), _by_config(results, True)
    with_latency = any(row.config in latency and not row.mf for row in TABLE7)
    fig, axes = plt.subplots(1, 2 if with_latency else 1, figsize=(13 if with_latency else 7.5, 5.5), squeeze=False)
    ax = axes[0][0]
    for row in TABLE7:
        color = COLORS[row.network]
        ax.scatter(row.paper_madds / 1e9, row.paper_miou, color=color, marker="o" if not row.mf else "s", s=50)
        ax.annotate(
            _label(row),
            (row.paper_madds / 1e9, row.paper_miou),
            fontsize=7,
            xytext=LABEL_OFFSETS.get(row.config, (5, 4)),
            textcoords="offset points",
        )
    for values, marker in ((own, "*"), (official, "D")):
        for config, miou in values.items():
            color = COLORS[ROWS[config].network] if config in ROWS else "tab:purple"
            ax.scatter(
                madds[config] / 1e9,
                miou,
                color=color,
                marker=marker,
                s=140 if marker == "*" else 60,
                edgecolors="black",
                linewidths=0.5,
            )
            if config in EXTRA:
                ax.annotate(
                    EXTRA[config], (madds[config] / 1e9, miou), fontsize=7, xytext=(5, -10), textcoords="offset points"
                )
    for network, color in COLORS.items():
        ax.scatter([], [], color=color, label=network)
    ax.scatter([], [], color="gray", marker="o", label="paper, single scale")
    ax.scatter([], [], color="gray", marker="s", label="paper, MF (12 passes)")
    ax.scatter([], [], color="gray", marker="*", s=140, edgecolors="black", label="segkit-trained, measured")
    if official:
        ax.scatter([], [], color="gray", marker="D", s=60, edgecolors="black", label="official weights, segkit eval")
    ax.set_xscale("log")
    ax.set_xlabel("MAdds at 513x513 (billions, log; TF1 convention)")
    ax.set_ylabel("PASCAL VOC 2012 val mIoU (%)")
    ax.set_title("MobileNetV2 paper, Table 7: mIoU vs compute")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    if with_latency:
        ax2 = axes[0][1]
        for row in TABLE7:
            if row.config in latency and not row.mf:
                y = own.get(row.config, row.paper_miou)
                ax2.scatter(
                    latency[row.config], y, color=COLORS[row.network], marker="*" if row.config in own else "o", s=100
                )
                ax2.annotate(
                    _label(row), (latency[row.config], y), fontsize=7, xytext=(5, 3), textcoords="offset points"
                )
        ax2.set_xlabel("segkit CPU latency, 513x513 batch 1 (ms)")
        ax2.set_ylabel("mIoU (%) (segkit-trained if measured, else the paper's)")
        ax2.set_title("mIoU vs measured CPU latency")
        ax2.grid(True, alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
