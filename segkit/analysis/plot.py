"""The trade-off figure of ``segkit tradeoff``: mIoU vs MAdds, and vs measured CPU latency.

:func:`points` lists what is drawn (the paper's eight points, segkit's float results, and beside them the int8 /
fake-int8 / other-runtime results: at the same MAdds, slightly offset, and at the latency of their runtime next to
that runtime's fp32 latency); :func:`plot` draws them. segkit's mIoU is the mean over the classes in the ground
truth (the axis says so); a result whose report did not record its definition has `` (mIoU def.?)`` in its label.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from segkit.analysis.complexity import TABLE7, Table7Row
from segkit.analysis.tradeoff import EXTRA, ROWS, LatencyKey, Result, main_results, variant_results
from segkit.evaluation.metrics import MIOU_DEFINITION
from segkit.utils.io import atomic_path

__all__ = ["Point", "plot", "points"]

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
SHORT = {"pytorch": "PyTorch", "onnxruntime": "ORT", "openvino": "OpenVINO", "litert": "LiteRT"}
# kind -> (marker, size, legend text)
STYLE = {
    "paper": ("o", 50, "paper, single scale"),
    "paper-mf": ("s", 50, "paper, MF (12 passes)"),
    "segkit": ("*", 140, "segkit-trained, measured"),
    "official": ("D", 60, "official weights, segkit eval"),
    "int8": ("X", 90, "int8 file (runtime in its label)"),
    "fake-int8": ("P", 90, "fake-int8 (QAT model in PyTorch)"),
    "float-variant": ("^", 70, "float, another runtime / bf16"),
    "runtime-fp32": ("o", 60, "fp32 in the same runtime (hollow)"),
}


@dataclass(frozen=True)
class Point:
    """One marker: ``panel`` "madds" (x in billions) or "latency" (x in ms); ``link`` joins an int8 point to the
    fp32 point of its runtime."""

    panel: str
    x: float
    y: float
    kind: str
    color: str
    label: str = ""
    link: tuple[float, float] | None = None
    offset: tuple[int, int] | None = None  # of the label, in points


def _label(row: Table7Row) -> str:
    return f"{row.network} OS{row.os}" + (" ASPP" if row.aspp else "") + (" MF" if row.mf else "")


def _name(config: str) -> str:
    return _label(ROWS[config]) if config in ROWS else EXTRA.get(config, config)


def _color(config: str) -> str:
    return COLORS[ROWS[config].network] if config in ROWS else "tab:purple"


def _kind(r: Result) -> str:
    return r.precision if r.precision in ("int8", "fake-int8") else "float-variant"


UNKNOWN_MARK = " (mIoU def.?)"  # label suffix of a result whose mIoU definition was not recorded


def _mark(r: Result) -> str:
    return "" if r.miou_definition == MIOU_DEFINITION else UNKNOWN_MARK


def _short(r: Result) -> str:
    quant = f" {r.quantization.upper()}" if r.quantization and "int8" in r.precision else ""
    return f"{'official ' if r.converted else ''}{r.precision}{quant} {SHORT.get(r.runtime, r.runtime)}{_mark(r)}"


def points(
    madds: Mapping[str, int],
    results: list[Result],
    latency: Mapping[str, float],
    runtime_latency: Mapping[LatencyKey, float] | None = None,
) -> list[Point]:
    """Every marker of the figure (see the module docstring)."""
    runtime_latency = runtime_latency or {}
    own, official = main_results(results, False), main_results(results, True)
    out = [
        Point(
            "madds",
            row.paper_madds / 1e9,
            row.paper_miou,
            "paper-mf" if row.mf else "paper",
            COLORS[row.network],
            _label(row),
        )
        for row in TABLE7
    ]
    for kind, main in (("segkit", own), ("official", official)):
        out += [
            Point("madds", madds[c] / 1e9, r.miou, kind, _color(c), (EXTRA.get(c, "") + _mark(r)).strip())
            for c, r in main.items()
        ]
    for row in TABLE7:
        if row.config in latency and not row.mf:
            y = own[row.config].miou if row.config in own else row.paper_miou
            kind = "segkit" if row.config in own else "paper"
            out.append(Point("latency", latency[row.config], y, kind, COLORS[row.network], _label(row)))
    variants = {(c, conv): variant_results(results, c, conv) for c in sorted(madds) for conv in (False, True)}
    variants = {k: v for k, v in variants.items() if v}
    named = len({c for c, _ in variants}) > 1  # name the row in a latency label only when several rows have some
    drawn_refs: set[tuple[str, bool, str]] = set()
    for (config, converted), rows in variants.items():
        mf = config in ROWS and ROWS[config].mf
        paper = ROWS[config].paper_miou if config in ROWS else None
        for i, r in enumerate(rows):
            x = madds[config] / 1e9 * 1.1 ** (i + 1)  # same MAdds: offset to the right, labels staggered
            out.append(Point("madds", x, r.miou, _kind(r), _color(config), _short(r), offset=(8, 3 - 9 * i)))
            if mf or r.latency_key not in runtime_latency:
                continue
            link, runtime = None, SHORT.get(r.runtime, r.runtime)
            ref = runtime_latency.get((config, converted, "fp32", r.runtime, False))
            base = (official if converted else own).get(config)
            ref_y = base.miou if base is not None else paper
            if ref is not None and ref_y is not None and r.precision != "fp32":
                link = (ref, ref_y)
                if (config, converted, r.runtime) not in drawn_refs:  # one fp32 point per row and runtime
                    k = sum(d[:2] == (config, converted) for d in drawn_refs)  # stagger labels of near points
                    drawn_refs.add((config, converted, r.runtime))
                    label = f"{'official ' if converted else ''}fp32 {runtime}"
                    out.append(
                        Point("latency", ref, ref_y, "runtime-fp32", _color(config), label, offset=(5, 5 + 8 * k))
                    )
            label = f"{_name(config) + ' ' if named else ''}{_short(r)}"
            out.append(
                Point("latency", runtime_latency[r.latency_key], r.miou, _kind(r), _color(config), label, link, (5, -9))
            )
    return out


def plot(
    madds: Mapping[str, int],
    results: list[Result],
    latency: Mapping[str, float],
    path: Path,
    runtime_latency: Mapping[LatencyKey, float] | None = None,
) -> None:
    """``path`` (PNG): mIoU against MAdds (log axis), and against measured CPU latency when there is any."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = points(madds, results, latency, runtime_latency)
    with_latency = any(p.panel == "latency" for p in pts)
    fig, axes = plt.subplots(1, 2 if with_latency else 1, figsize=(13 if with_latency else 7.5, 5.5), squeeze=False)
    ax, ax2 = axes[0][0], axes[0][1] if with_latency else None
    paper_offsets = {_label(row): LABEL_OFFSETS.get(row.config, (5, 4)) for row in TABLE7}
    for p in pts:
        target = ax if p.panel == "madds" else ax2
        marker, size, _ = STYLE[p.kind]
        hollow = p.kind == "runtime-fp32"
        if p.link is not None:
            target.plot([p.link[0], p.x], [p.link[1], p.y], color=p.color, linestyle=":", linewidth=1)
        target.scatter(
            p.x,
            p.y,
            marker=marker,
            s=size,
            color="none" if hollow else p.color,
            edgecolors=p.color if hollow else ("black" if p.kind not in ("paper", "paper-mf") else None),
            linewidths=1.0 if hollow else 0.5,
        )
        if p.label:
            paper_label = p.kind.startswith("paper") and p.panel == "madds"
            offset = p.offset or (paper_offsets.get(p.label, (5, 4)) if paper_label else None)
            if offset is None:
                offset = (5, -10) if p.panel == "madds" else (5, 3)
            target.annotate(
                p.label,
                (p.x, p.y),
                fontsize=7 if p.kind in ("paper", "paper-mf", "segkit", "official") else 6,
                xytext=offset,
                textcoords="offset points",
            )
    for network, color in COLORS.items():
        ax.scatter([], [], color=color, label=network)
    for kind in STYLE:
        if any(p.kind == kind for p in pts):
            marker, size, text = STYLE[kind]
            hollow = kind == "runtime-fp32"
            ax.scatter(
                [], [], marker=marker, s=size, color="none" if hollow else "gray", edgecolors="black", label=text
            )
    ax.set_xscale("log")
    ax.set_xlabel("MAdds at 513x513 (billions, log; TF1 convention)")
    ax.set_ylabel(f"PASCAL VOC 2012 val mIoU (%)\nsegkit: mean over the {MIOU_DEFINITION}")
    ax.set_title("MobileNetV2 paper, Table 7: mIoU vs compute")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    if ax2 is not None:
        ax2.set_xlabel("segkit CPU latency, 513x513 batch 1 (ms; int8 and fp32 in their runtime)")
        ax2.set_ylabel(f"mIoU (%) (segkit's if measured, else the paper's)\nsegkit: mean over the {MIOU_DEFINITION}")
        ax2.set_title("mIoU vs measured CPU latency")
        ax2.grid(True, alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
