"""The trade-off figure of ``segkit tradeoff``: mIoU vs MAdds, and vs measured CPU latency.

:func:`points` lists what is drawn: the paper's eight points, segkit's float results, and beside them the int8 /
fake-int8 / other-runtime results, each at its row's MAdds (one x for every point of one network: the markers of
one MAdds value share x and differ only by their mIoU), and on the latency panel exactly the measured pairs: a
result at the latency of its own (row, precision, runtime), an int8 one linked to the fp32 result of its runtime when
that was evaluated too. :func:`plot` draws them and places every label where it overlaps no other label, no marker, the legend or
the axes' titles (:func:`place_labels`; a label moved away from its point gets a leader line). The titles say
what was evaluated: the paper's data (VOC 2012 val, 1449 images) and segkit's, with the image count of its JSON
reports. segkit's mIoU is the mean over the classes in the ground truth; a result whose report did not record its
definition has `` (mIoU def.?)`` in its label.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segkit.analysis.complexity import TABLE7, Table7Row
from segkit.analysis.tradeoff import (
    EXTRA,
    PAPER_DATA,
    ROWS,
    LatencyKey,
    Result,
    evaluated_data,
    main_results,
    variant_results,
)
from segkit.evaluation.metrics import MIOU_DEFINITION
from segkit.utils.io import atomic_path

__all__ = ["Point", "figure", "label_boxes", "place_labels", "plot", "points", "titles"]

COLORS = {"MNet V1": "tab:blue", "MNet V2*": "tab:green", "ResNet-101": "tab:red"}
SHORT = {
    "pytorch": "PyTorch",
    "onnxruntime": "ORT",
    "openvino": "OpenVINO",
    "litert": "LiteRT",
    "executorch": "ExecuTorch",
}
# kind -> (marker, size, legend text)
STYLE = {
    "paper": ("o", 50, "paper, single scale"),
    "paper-mf": ("s", 50, "paper, MF (12 passes)"),
    "segkit": ("*", 140, "segkit-trained, measured"),
    "official": ("D", 60, "official weights, segkit eval"),
    "int8": ("X", 90, "int8 file (runtime in its label)"),
    "fake-int8": ("P", 90, "fake-int8 (QAT model in PyTorch)"),
    "float-variant": ("^", 70, "float, another runtime / bf16"),
}
LABEL_FONT = 7
GAP_PT = 6.0  # between a marker and its label
DPI = 120
LEADER = {"arrowstyle": "-", "color": "0.45", "linewidth": 0.6, "shrinkA": 1, "shrinkB": 4}  # label -> its point


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
        for c, r in main.items():
            text = {"segkit": "segkit", "official": "official fp32"}[kind]
            label = f"{EXTRA[c]} {text}" if c in EXTRA else text
            out.append(Point("madds", madds[c] / 1e9, r.miou, kind, _color(c), label + _mark(r)))
    for config in sorted(madds):  # int8 / fake-int8 / other-runtime results beside the float one, at its MAdds
        for converted in (False, True):
            for r in variant_results(results, config, converted):
                out.append(Point("madds", madds[config] / 1e9, r.miou, _kind(r), _color(config), _short(r)))
    for row in TABLE7:
        if row.config in latency and not row.mf:
            y = own[row.config].miou if row.config in own else row.paper_miou
            kind = "segkit" if row.config in own else "paper"
            out.append(Point("latency", latency[row.config], y, kind, COLORS[row.network], _label(row)))
    out += _latency_points(madds, results, latency, runtime_latency, own, official)
    return out


def _latency_points(
    madds: Mapping[str, int],
    results: list[Result],
    latency: Mapping[str, float],
    runtime_latency: Mapping[LatencyKey, float],
    own: Mapping[str, Result],
    official: Mapping[str, Result],
) -> list[Point]:
    """The latency panel's segkit results: exactly the measured pairs, each result at the runtimes.json latency of
    its own (row, precision, runtime) (the converted float model: ``latency``'s figure of its network when there is
    one, as the table); an int8 / fake-int8 point is linked to the fp32 result of its runtime when that one was
    evaluated too (never to a latency without an mIoU of its own)."""
    groups = {(c, conv): variant_results(results, c, conv) for c in sorted(madds) for conv in (False, True)}
    named = len({c for (c, _), rows in groups.items() if rows}) > 1  # name the row only when several rows have some
    out: list[Point] = []
    for (config, converted), variants in groups.items():
        if config in ROWS and ROWS[config].mf:
            continue
        main = (official if converted else own).get(config)
        fp32_at: dict[str, tuple[float, float]] = {}  # runtime -> its fp32 result's point
        if main is not None and not converted and config in ROWS and config in latency:  # drawn from --latency
            fp32_at["pytorch"] = (latency[config], main.miou)
        candidates = ([main] if main is not None else []) + variants
        for r in sorted(candidates, key=lambda r: r.precision != "fp32"):  # the fp32 points first: links end there
            x = runtime_latency.get(r.latency_key)
            if r is main and converted and config in latency:  # the network's --latency figure, as the table's
                x = latency[config]  # converted float line gives it
            if x is None or (r is main and r.runtime in fp32_at):
                continue
            link = fp32_at.get(r.runtime) if r.precision != "fp32" else None
            if r.precision == "fp32":
                fp32_at.setdefault(r.runtime, (x, r.miou))
            kind = ("official" if converted else "segkit") if r is main else _kind(r)
            label = f"{_name(config) + ' ' if named else ''}{_short(r)}"
            out.append(Point("latency", x, r.miou, kind, _color(config), label, link))
    return out


def titles(results: list[Result]) -> tuple[str, str]:
    """The titles of the two panels; they state the data of the paper and of segkit's results (image counts)."""
    data = evaluated_data(results)
    seg = f"segkit: {data}" if data else "no segkit results"
    return (
        f"mIoU vs compute: paper Table 7 ({PAPER_DATA})\n{seg}",
        f"mIoU vs measured CPU latency\n{seg}" if data else "mIoU vs measured CPU latency (paper mIoU)",
    )


def _overlaps(a: Sequence[float], b: Sequence[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def label_boxes(annotations: Sequence[Any], renderer: Any) -> list[tuple[float, float, float, float]]:
    """``(x0, y0, x1, y1)`` in pixels of each annotation's text (its leader line left out)."""
    from matplotlib.text import Text

    return [tuple(Text.get_window_extent(a, renderer).extents) for a in annotations]


def place_labels(ax: Any, annotations: Sequence[Any], obstacles: Sequence[Sequence[float]], renderer: Any) -> None:
    """Move each annotation (text at its point, ``textcoords="offset points"``) to the nearest free spot: right or
    left of its point, then stepped up and down; free means inside the axes and clear of every label placed before
    it and of ``obstacles`` (pixel boxes: markers, the legend). A label moved up or down gets a leader line (an
    annotation without text) from its near edge to its point."""
    frame = ax.get_window_extent(renderer).extents
    px_per_pt = ax.figure.dpi / 72.0
    gap = GAP_PT * px_per_pt
    fixed = [tuple(o) for o in obstacles]
    taken: list[tuple[float, float, float, float]] = []  # the labels placed so far
    for ann in annotations:
        ann.set_position((0, 0))
        x0, y0, x1, y1 = label_boxes([ann], renderer)[0]
        w, h = x1 - x0, y1 - y0
        px, py = ax.transData.transform(ann.xy)
        # every obstacle but the markers under its own point
        blocking = [*(o for o in fixed if not (o[0] <= px <= o[2] and o[1] <= py <= o[3])), *taken]
        best = None
        for step in range(0, 60):
            for sign in (1, -1) if step else (1,):
                dy = sign * step * (h * 0.55)
                far = 3 * gap if step else gap  # a moved label: a column further out, its leader line visible
                for dx in (far, -far - w):
                    box = (px + dx, py + dy - h / 2, px + dx + w, py + dy + h / 2)
                    inside = box[0] >= frame[0] + 2 and box[2] <= frame[2] - 2
                    inside = inside and box[1] >= frame[1] + 2 and box[3] <= frame[3] - 2
                    if inside and not any(_overlaps(box, o) for o in blocking):
                        best = (dx, dy, box)
                        break
                if best:
                    break
            if best:
                break
        if best is None:  # no free spot at all: keep it right of its point
            best = (gap, 0.0, (px + gap, py - h / 2, px + gap + w, py + h / 2))
        dx, dy, box = best
        ann.set_position((dx / px_per_pt, dy / px_per_pt))
        ann.set_horizontalalignment("left")
        ann.set_verticalalignment("center")
        if dy:  # a leader line from the label's near edge to its point
            edge = dx if dx > 0 else dx + w
            ax.annotate(
                "",
                ann.xy,
                xytext=(edge / px_per_pt, dy / px_per_pt),
                textcoords="offset points",
                arrowprops=LEADER,
                annotation_clip=False,
            ).set_in_layout(False)
        taken.append(box)


def _marker_box(ax: Any, p: Point, size: float) -> tuple[float, float, float, float]:
    px, py = ax.transData.transform((p.x, p.y))
    r = math.sqrt(size) / 2 * ax.figure.dpi / 72.0
    return (px - r, py - r, px + r, py + r)


def _line_boxes(ax: Any, start: tuple[float, float], end: tuple[float, float]) -> list[tuple[float, ...]]:
    """Small pixel boxes along the line from ``start`` to ``end`` (data coordinates): labels keep off the line."""
    (x0, y0), (x1, y1) = ax.transData.transform([start, end])
    n = max(2, int(math.hypot(x1 - x0, y1 - y0) / 4))
    return [
        (x - 1.5, y - 1.5, x + 1.5, y + 1.5)
        for x, y in ((x0 + (x1 - x0) * i / n, y0 + (y1 - y0) * i / n) for i in range(n + 1))
    ]


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

    fig = figure(madds, results, latency, runtime_latency, plt)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")
    plt.close(fig)


def figure(
    madds: Mapping[str, int],
    results: list[Result],
    latency: Mapping[str, float],
    runtime_latency: Mapping[LatencyKey, float] | None,
    plt: Any,
) -> Any:
    """The matplotlib figure of :func:`plot`, its labels placed (each axes' annotations in ``ax.texts``)."""
    pts = points(madds, results, latency, runtime_latency)
    with_latency = any(p.panel == "latency" for p in pts)
    fig, axes = plt.subplots(
        1, 2 if with_latency else 1, figsize=(15 if with_latency else 8, 6.5), squeeze=False, dpi=DPI
    )
    ax, ax2 = axes[0][0], axes[0][1] if with_latency else None
    for p in pts:
        target = ax if p.panel == "madds" else ax2
        marker, size, _ = STYLE[p.kind]
        if p.link is not None:
            target.plot([p.link[0], p.x], [p.link[1], p.y], color=p.color, linestyle=":", linewidth=1)
        target.scatter(
            p.x,
            p.y,
            marker=marker,
            s=size,
            color=p.color,
            edgecolors="black" if p.kind not in ("paper", "paper-mf") else None,
            linewidths=0.5,
            zorder=3,
        )
    for network, color in COLORS.items():
        ax.scatter([], [], color=color, label=network)
    for kind in STYLE:
        if any(p.kind == kind for p in pts):
            marker, size, text = STYLE[kind]
            ax.scatter([], [], marker=marker, s=size, color="gray", edgecolors="black", label=text)
    madds_title, latency_title = titles(results)
    ax.set_xscale("log")
    ax.set_xlabel("MAdds at 513x513 (billions, log; TF1 convention)")
    ax.set_ylabel(f"mIoU (%)\nsegkit: mean over the {MIOU_DEFINITION}")
    ax.set_title(madds_title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    _pad_limits(ax, log=True)
    if ax2 is not None:
        ax2.set_xlabel("segkit CPU latency, 513x513 batch 1 (ms; int8 and fp32 in their runtime)")
        ax2.set_ylabel(f"mIoU (%) (segkit's if measured, else the paper's)\nsegkit: mean over the {MIOU_DEFINITION}")
        ax2.set_title(latency_title, fontsize=10)
        ax2.grid(True, alpha=0.3)
        _pad_limits(ax2, log=False)
    fig.tight_layout()
    renderer = fig.canvas.get_renderer()
    for target, panel in ((ax, "madds"), (ax2, "latency")):
        if target is None:
            continue
        mine = [p for p in pts if p.panel == panel]
        markers = [_marker_box(target, p, STYLE[p.kind][1]) for p in mine]
        markers += [box for p in mine if p.link is not None for box in _line_boxes(target, p.link, (p.x, p.y))]
        legend = target.get_legend()
        obstacles = [*markers, *([legend.get_window_extent(renderer).extents] if legend else [])]
        annotations = [
            target.annotate(
                p.label,
                (p.x, p.y),
                xytext=(0, 0),
                textcoords="offset points",
                fontsize=LABEL_FONT,
                annotation_clip=False,
            )
            for p in mine
            if p.label
        ]
        for a in annotations:
            a.set_in_layout(False)
        place_labels(target, annotations, obstacles, renderer)
    return fig


def _pad_limits(ax: Any, *, log: bool) -> None:
    """Room around the data for labels: a wider x range (labels sit right or left of their point) and 8% in y."""
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    if log:
        ax.set_xlim(x0 / 1.6, x1 * 4.0)
    else:
        ax.set_xlim(x0 - 0.05 * (x1 - x0), x1 + 0.3 * (x1 - x0))
    ax.set_ylim(y0 - 0.08 * (y1 - y0), y1 + 0.08 * (y1 - y0))
