"""Model complexity: trainable parameters and conv/linear multiply-adds (MAdds).

Counts the way the MobileNetV2 paper's Table 7 does:

- **Params**: trainable parameters (conv weights, BN scale/shift, biases; no running stats).
- **MAdds**: multiply-adds of ``Conv2d`` and ``Linear`` layers only, measured with forward
  hooks on a real forward pass. A conv costs ``out_elements * in_channels / groups * kh * kw``;
  a linear layer ``rows * in_features * out_features``. Pooling, BN, activations, additions and
  resizing are not counted.

Two conventions are recorded for every layer:

- ``pytorch``: what the PyTorch model computes (native dilated convs).
- ``tf1``: TensorFlow 1's atrous overhead. TF1 ran a conv with rate ``r > 1`` (stride 1) via
  space-to-batch: each spatial dim is padded up to a multiple of ``r``, so the conv is computed on
  a ``ceil(H / r) * r x ceil(W / r) * r`` output grid (33 -> 36 for rates 6/12/18, 33 -> 34 for
  rate 2). This is how the paper's ASPP rows were counted.

Multi-scale (MF) figures are the sum of one pass per scaled input size (:func:`scale_dimension`),
twice with flipping. :func:`table7` measures all eight rows of the paper's Table 7.

The forward pass can run on the ``meta`` device (shapes only, no arithmetic), which makes even
ResNet-101 at output stride 8 on a 897x897 input instant::

    report = count_complexity(model, 513, device="meta")
    print(report.params, report.madds("tf1"))
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from segkit.config import Config, load_config
from segkit.evaluation.predict import MF_SCALES  # the paper's MF scales, defined once
from segkit.models.build import build_model, count_parameters

__all__ = [
    "CONVENTIONS",
    "DATASET_ROWS",
    "MF_SCALES",
    "EXTRA_ROWS",
    "TABLE7",
    "ComplexityReport",
    "LayerRecord",
    "Table7Row",
    "count_complexity",
    "count_config",
    "count_trainable_parameters",
    "dataset_rows",
    "dataset_rows_markdown",
    "config_markdown",
    "config_row",
    "extra_rows",
    "extra_rows_markdown",
    "format_count",
    "format_table",
    "multi_scale_sizes",
    "scale_dimension",
    "table7",
    "table7_markdown",
]

Convention = Literal["pytorch", "tf1"]
CONVENTIONS: tuple[str, ...] = ("pytorch", "tf1")


@dataclass(frozen=True)
class LayerRecord:
    """One counted call of a conv or linear layer.

    Attributes:
        name: qualified module name (``backbone.features.3.conv.1.0``); a module called twice
            appears twice.
        type: class name (``Conv2d``, ``Linear``, ...).
        output_shape: shape of the layer's output, batch included.
        params: trainable parameters of the module (counted once per module in the totals).
        madds_pytorch: multiply-adds the PyTorch layer computes.
        madds_tf1: multiply-adds under TF1's atrous (space-to-batch) convention.
        dilation: the conv's dilation (``(1, 1)`` for linear layers).
    """

    name: str
    type: str
    output_shape: tuple[int, ...]
    params: int
    madds_pytorch: int
    madds_tf1: int
    dilation: tuple[int, int] = (1, 1)

    def madds(self, convention: Convention = "pytorch") -> int:
        """MAdds of this layer under ``convention``."""
        return self.madds_tf1 if convention == "tf1" else self.madds_pytorch


@dataclass
class ComplexityReport:
    """Per-layer records and totals of one (or several summed) forward passes.

    Attributes:
        layers: one record per counted layer call, in execution order.
        params: trainable parameters of the whole model (not only conv/linear).
        input_sizes: the ``(H, W)`` of every counted pass.
    """

    layers: list[LayerRecord] = field(default_factory=list)
    params: int = 0
    input_sizes: list[tuple[int, int]] = field(default_factory=list)

    @property
    def madds_pytorch(self) -> int:
        """Total MAdds, ``pytorch`` convention."""
        return sum(r.madds_pytorch for r in self.layers)

    @property
    def madds_tf1(self) -> int:
        """Total MAdds, ``tf1`` convention."""
        return sum(r.madds_tf1 for r in self.layers)

    def madds(self, convention: Convention = "pytorch") -> int:
        """Total MAdds under ``convention`` (``"pytorch"`` or ``"tf1"``)."""
        _check_convention(convention)
        return self.madds_tf1 if convention == "tf1" else self.madds_pytorch

    def __add__(self, other: ComplexityReport) -> ComplexityReport:
        if self.params and other.params and self.params != other.params:
            raise ValueError(f"cannot add reports of different models ({self.params} vs {other.params} params).")
        return ComplexityReport(
            self.layers + other.layers, self.params or other.params, self.input_sizes + other.input_sizes
        )


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {', '.join(CONVENTIONS)}, got {convention!r}.")


def count_trainable_parameters(model: nn.Module) -> int:
    """Trainable parameters, as the paper counts them: :func:`segkit.models.count_parameters`."""
    return count_parameters(model)


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _conv_madds(module: nn.Conv2d, out: Tensor) -> tuple[int, int]:
    """``(pytorch, tf1)`` MAdds of one conv call with output ``out`` ([N, C, H, W])."""
    kh, kw = module.kernel_size
    per_output = module.in_channels // module.groups * kh * kw
    n, c, h, w = out.shape
    pytorch = n * c * h * w * per_output
    dh, dw = _pair(module.dilation)
    sh, sw = _pair(module.stride)
    if (dh > 1 or dw > 1) and sh == 1 and sw == 1:
        # TF1 space-to-batch: the output grid is padded up to a multiple of the rate.
        h, w = math.ceil(h / dh) * dh, math.ceil(w / dw) * dw
    return pytorch, n * c * h * w * per_output


def _linear_madds(module: nn.Linear, out: Tensor) -> int:
    rows = out.numel() // module.out_features
    return rows * module.in_features * module.out_features


def _module_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters(recurse=False) if p.requires_grad)


def count_complexity(
    model: nn.Module,
    input_size: int | Sequence[int] = 513,
    *,
    batch_size: int = 1,
    in_channels: int = 3,
    device: str | torch.device | None = None,
) -> ComplexityReport:
    """Count trainable params and conv/linear MAdds of one forward pass.

    Args:
        model: any module whose forward takes one ``[N, C, H, W]`` tensor. It is run in eval
            mode (restored afterwards) under ``torch.no_grad``; it is not modified.
        input_size: ``H`` (square) or ``(H, W)``.
        batch_size: images per pass; MAdds scale linearly with it (1 gives per-image MAdds).
        in_channels: channels of the input tensor.
        device: where to run the pass. ``"meta"`` computes shapes only (no arithmetic, no
            memory): a model that is not on the meta device is deep-copied there first.
            ``None`` uses the device of the model's first parameter.

    Returns:
        A :class:`ComplexityReport` with one record per conv/linear call.
    """
    height, width = _pair(input_size)
    if height < 1 or width < 1 or batch_size < 1:
        raise ValueError(f"input_size {input_size!r} and batch_size {batch_size!r} must be positive.")
    params = count_trainable_parameters(model)
    first = next(iter(model.parameters()), None)
    model_device = first.device if first is not None else torch.device("cpu")
    device = torch.device(device) if device is not None else model_device
    if device.type == "meta" and model_device.type != "meta":
        model = copy.deepcopy(model).to("meta")

    records: list[LayerRecord] = []
    names = {module: name for name, module in model.named_modules()}

    def hook(module: nn.Module, inputs: tuple[Tensor, ...], out: Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            pytorch, tf1 = _conv_madds(module, out)
            dilation = _pair(module.dilation)
        else:
            pytorch = tf1 = _linear_madds(module, out)
            dilation = (1, 1)
        records.append(
            LayerRecord(
                names[module], type(module).__name__, tuple(out.shape), _module_params(module), pytorch, tf1, dilation
            )
        )

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(batch_size, in_channels, height, width, device=device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return ComplexityReport(records, params, [(height, width)])


def scale_dimension(size: int, scale: float) -> int:
    """Scaled input size of a multi-scale pass, as the official DeepLab (``int((size - 1) * scale + 1)``).

    ``513 -> 257, 385, 513, 641, 769, 897`` for the scales 0.5 .. 1.75; this reproduces the
    paper's MF figures (``round(size * scale)`` differs by at most one pixel).
    """
    return int((size - 1) * scale + 1)


def multi_scale_sizes(size: int, scales: Iterable[float]) -> list[int]:
    """:func:`scale_dimension` for every scale."""
    return [scale_dimension(size, s) for s in scales]


def format_count(value: float, unit: str = "") -> str:
    """Human-readable count: ``2113557 -> '2.11M'``, ``5.364e9 -> '5.364B'``."""
    for factor, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= factor:
            digits = 3 if suffix in ("B", "T") else 2
            return f"{value / factor:.{digits}f}{suffix}{unit}"
    return f"{value:.0f}{unit}"


def format_table(report: ComplexityReport, *, max_name: int = 48) -> str:
    """Per-layer table (name, type, output shape, params, MAdds in both conventions) and totals."""
    header = ("layer", "type", "output shape", "params", "MAdds", "MAdds tf1")
    rows = []
    for r in report.layers:
        name = r.name if len(r.name) <= max_name else "..." + r.name[-(max_name - 3) :]
        rows.append(
            (
                name,
                r.type + (f" d{r.dilation[0]}" if r.dilation != (1, 1) else ""),
                "x".join(str(s) for s in r.output_shape),
                f"{r.params:,}",
                f"{r.madds_pytorch:,}",
                f"{r.madds_tf1:,}",
            )
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    align = ("<", "<", "<", ">", ">", ">")

    def line(cells: Sequence[str]) -> str:
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths)).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    out += [line(row) for row in rows]
    conv_params = sum(r.params for r in {r.name: r for r in report.layers}.values())
    out.append(line(["-" * w for w in widths]))
    out.append(
        f"Conv/linear layers: {len(report.layers)} calls holding {conv_params:,} trainable params "
        "(the rest: norm layers)"
    )
    sizes = ", ".join(f"{h}x{w}" for h, w in report.input_sizes)
    out.append(f"Input size: {sizes}")
    out.append(f"Trainable params: {report.params:,} ({format_count(report.params)})")
    out.append(f"MAdds (pytorch): {report.madds_pytorch:,} ({format_count(report.madds_pytorch)})")
    out.append(f"MAdds (tf1):     {report.madds_tf1:,} ({format_count(report.madds_tf1)})")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# Table 7 of the MobileNetV2 paper


@dataclass(frozen=True)
class Table7Row:
    """One row of Table 7 and the segkit config that builds its network."""

    network: str
    config: str
    os: int
    aspp: bool
    mf: bool
    paper_miou: float
    paper_params: float
    paper_madds: float


TABLE7: tuple[Table7Row, ...] = (
    Table7Row("MNet V1", "voc_mnv1_os16_aspp", 16, True, False, 75.29, 11.15e6, 14.25e9),
    Table7Row("MNet V1", "voc_mnv1_os8_aspp", 8, True, True, 78.56, 11.15e6, 941.9e9),
    Table7Row("MNet V2*", "voc_mnv2_os16_aspp", 16, True, False, 75.70, 4.52e6, 5.8e9),
    Table7Row("MNet V2*", "voc_mnv2_os8_aspp", 8, True, True, 78.42, 4.52e6, 387e9),
    Table7Row("MNet V2*", "voc_mnv2_os16", 16, False, False, 75.32, 2.11e6, 2.75e9),
    Table7Row("MNet V2*", "voc_mnv2_os8", 8, False, True, 77.33, 2.11e6, 152.6e9),
    Table7Row("ResNet-101", "voc_r101_os16_aspp", 16, True, False, 80.49, 58.16e6, 81.0e9),
    Table7Row("ResNet-101", "voc_r101_os8_aspp", 8, True, True, 82.70, 58.16e6, 4870.6e9),
)


# segkit configurations measured beside Table 7 (no paper figures): (network, config), single scale.
EXTRA_ROWS: tuple[tuple[str, str], ...] = (
    ("MNet V2* + DeepLabV3+ decoder", "voc_mnv2_os16_plus"),
    ("MNet V2* + sep. ASPP + DeepLabV3+ decoder", "voc_mnv2_os16_aspp_plus"),
)


def count_config(
    cfg: Config | str,
    input_size: int | Sequence[int] = 513,
    *,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    overrides: list[str] | None = None,
) -> ComplexityReport:
    """Params and MAdds of the model a config builds, summed over multi-scale (and flipped) passes.

    The model is built and run on the ``meta`` device (shapes only), so this is fast for any model.

    Args:
        cfg: a :class:`Config` or a config name/path.
        input_size: the eval crop, ``N`` (square) or ``(H, W)``; scale ``s`` runs at ``scale_dimension(side, s)``
            of each side.
        scales: one pass per scale (``MF_SCALES`` for the paper's MF rows).
        flip: count every scale twice (original + left-right flipped).
        overrides: ``["model.output_stride=8", ...]`` when ``cfg`` is a name.
    """
    if isinstance(cfg, str):
        cfg = load_config(cfg, overrides)
    with torch.device("meta"):
        model = build_model(cfg)
    total = ComplexityReport()
    height, width = _pair(input_size)
    for size in zip(multi_scale_sizes(height, scales), multi_scale_sizes(width, scales)):
        report = count_complexity(model, size)
        total = total + report + (report if flip else ComplexityReport())
    return total


@dataclass(frozen=True)
class DatasetRow:
    """A Table-7-style row of another data set: a segkit config, the size TF DeepLab evaluates at, and the official
    figures it targets (``official_madds`` None where the source quotes none)."""

    network: str
    config: str
    input_size: tuple[int, int]
    scales: tuple[float, ...]
    flip: bool
    official_miou: float
    official_madds: float | None
    source: str


# TF DeepLab's MobileNetV2 models of research/deeplab/g3doc/model_zoo.md at their eval sizes: Cityscapes at its
# eval_crop_size 1025x2049 (g3doc/cityscapes.md), ADE20K at the 513x513 crop of g3doc/ade20k.md.
DATASET_ROWS: tuple[DatasetRow, ...] = (
    DatasetRow("MNet V2* (Cityscapes)", "cityscapes_mnv2_os16", (1025, 2049), (1.0,), False, 70.71, 21.27e9,
               "model_zoo.md mobilenetv2_coco_cityscapes_trainfine, OS16"),
    DatasetRow("MNet V2* (Cityscapes) MS+flip", "cityscapes_mnv2_os8", (1025, 2049), (0.75, 1.0, 1.25), True, 73.57,
               433.24e9, "model_zoo.md mobilenetv2_coco_cityscapes_trainfine, OS8 [0.75:0.25:1.25] + flip"),
    DatasetRow("MNet V2* + decoder (ADE20K)", "ade20k_mnv2_os16_plus", (513, 513), (1.0,), False, 32.04, None,
               "model_zoo.md mobilenetv2_ade20k_train, OS16 (no MAdds quoted)"),
)  # fmt: skip


def dataset_rows(input_size: Sequence[int] | None = None) -> list[dict[str, object]]:
    """Measure :data:`DATASET_ROWS` at their sizes (or ``input_size`` (H, W) for all): ``network, config, os,
    input_size, passes, params, madds_pytorch, madds_tf1, official_madds, official_miou, source``."""
    rows = []
    for row in DATASET_ROWS:
        size = tuple(input_size) if input_size is not None else row.input_size
        report = count_config(row.config, size, scales=row.scales, flip=row.flip)
        rows.append(
            {
                "network": row.network,
                "config": row.config,
                "os": load_config(row.config).model.output_stride,
                "input_size": list(size),
                "passes": len(report.input_sizes),
                "params": report.params,
                "madds_pytorch": report.madds_pytorch,
                "madds_tf1": report.madds_tf1,
                "official_madds": row.official_madds,
                "official_miou": row.official_miou,
                "source": row.source,
            }
        )
    return rows


def dataset_rows_markdown(rows: list[dict[str, object]]) -> str:
    """Markdown table of :func:`dataset_rows`' rows, with the difference of the tf1 count to the official MAdds."""
    lines = [
        "| Network | config | OS | input | passes | Params | MAdds pytorch | MAdds tf1 | official | diff tf1 | official mIoU |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        official = r["official_madds"]
        diff = f"{_rel(r['madds_tf1'], official):+.2%}" if official else ""
        lines.append(
            f"| {r['network']} | {r['config']} | {r['os']} | {r['input_size'][0]}x{r['input_size'][1]} | {r['passes']} "
            f"| {r['params'] / 1e6:.3f}M | {r['madds_pytorch'] / 1e9:.2f}B | {r['madds_tf1'] / 1e9:.2f}B "
            f"| {f'{official / 1e9:g}B' if official else '-'} | {diff} | {r['official_miou']:.2f} |"
        )
    return "\n".join(lines)


def extra_rows(input_size: int = 513, *, progress: bool = False) -> list[dict[str, object]]:
    """Measure :data:`EXTRA_ROWS`: ``network, config, os, aspp, decoder, params, madds_pytorch, madds_tf1``
    (``progress``: a bar on stderr, a few seconds a row)."""
    from tqdm import tqdm

    rows = []
    for network, name in tqdm(EXTRA_ROWS, desc="measuring MAdds (extra rows)", leave=False, disable=not progress):
        cfg = load_config(name)
        report = count_config(cfg, input_size)
        rows.append(
            {
                "network": network,
                "config": name,
                "os": cfg.model.output_stride,
                "aspp": cfg.model.aspp,
                "decoder": cfg.model.decoder,
                "params": report.params,
                "madds_pytorch": report.madds_pytorch,
                "madds_tf1": report.madds_tf1,
            }
        )
    return rows


def extra_rows_markdown(rows: list[dict[str, object]]) -> str:
    """Markdown table of :func:`extra_rows`' rows."""
    lines = [
        "| Network | config | OS | ASPP | decoder | Params | MAdds pytorch | MAdds tf1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['network']} | {r['config']} | {r['os']} | {'yes' if r['aspp'] else ''} | {r['decoder']} "
        f"| {format_count(r['params'])} | {format_count(r['madds_pytorch'])} | {format_count(r['madds_tf1'])} |"
        for r in rows
    ]
    return "\n".join(lines)


def config_row(cfg: Config, report: ComplexityReport) -> dict[str, object]:
    """One config's figures (what ``segkit complexity --config ... --json`` writes): ``config, backbone, os, aspp,
    decoder, input_sizes, params, madds_pytorch, madds_tf1``."""
    m = cfg.model
    return {
        "config": cfg.name,
        "backbone": m.backbone,
        "os": m.output_stride,
        "aspp": m.aspp,
        "decoder": m.decoder,
        "input_sizes": [h for h, _ in report.input_sizes],
        "params": report.params,
        "madds_pytorch": report.madds_pytorch,
        "madds_tf1": report.madds_tf1,
    }


def config_markdown(row: dict[str, object]) -> str:
    """Markdown table of one :func:`config_row`."""
    return (
        f"| config | params | MAdds pytorch | MAdds tf1 |\n|---|---|---|---|\n"
        f"| {row['config']} | {format_count(row['params'])} | {format_count(row['madds_pytorch'])} "
        f"| {format_count(row['madds_tf1'])} |"
    )


def _rel(measured: float, paper: float) -> float:
    return measured / paper - 1.0


def table7(input_size: int = 513, *, progress: bool = False) -> list[dict[str, object]]:
    """Measure every row of Table 7: one dict per row (``progress``: a bar on stderr; ~15 s on a 2-core CPU).

    Keys: ``network, os, aspp, mf, params, madds_pytorch, madds_tf1, paper_params, paper_madds,
    paper_miou`` (counts as plain numbers, MAdds summed over the 12 MF passes on MF rows).
    """
    from tqdm import tqdm

    rows = []
    for row in tqdm(TABLE7, desc="measuring MAdds (Table 7 rows)", leave=False, disable=not progress):
        report = count_config(row.config, input_size, scales=MF_SCALES if row.mf else (1.0,), flip=row.mf)
        rows.append(
            {
                "network": row.network,
                "os": row.os,
                "aspp": row.aspp,
                "mf": row.mf,
                "params": report.params,
                "madds_pytorch": report.madds_pytorch,
                "madds_tf1": report.madds_tf1,
                "paper_params": row.paper_params,
                "paper_madds": row.paper_madds,
                "paper_miou": row.paper_miou,
            }
        )
    return rows


def table7_markdown(rows: list[dict[str, object]]) -> str:
    """Markdown table of :func:`table7`'s rows with relative differences to the paper."""
    lines = [
        "| Network | OS | ASPP | MF | Params | paper | diff | MAdds pytorch | MAdds tf1 | paper | diff tf1 | diff pytorch |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        yes = lambda flag: "yes" if flag else ""  # noqa: E731
        lines.append(
            f"| {r['network']} | {r['os']} | {yes(r['aspp'])} | {yes(r['mf'])} "
            f"| {r['params'] / 1e6:.3f}M | {r['paper_params'] / 1e6:.2f}M | {_rel(r['params'], r['paper_params']):+.2%} "
            f"| {r['madds_pytorch'] / 1e9:.2f}B | {r['madds_tf1'] / 1e9:.2f}B | {r['paper_madds'] / 1e9:g}B "
            f"| {_rel(r['madds_tf1'], r['paper_madds']):+.2%} | {_rel(r['madds_pytorch'], r['paper_madds']):+.2%} |"
        )
    return "\n".join(lines)
