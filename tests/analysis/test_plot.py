"""The trade-off figure: labels overlap nothing (each other, markers' neighbours, the legend, the titles), the
points of one MAdds value share x, the titles state the data and image count of the reports, each official file is
paired with its own published mIoU, and two protocols for one place are refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from segkit.analysis.complexity import TABLE7  # noqa: E402
from segkit.analysis.errors import AnalysisError  # noqa: E402
from segkit.analysis.plot import figure, label_boxes, points  # noqa: E402
from segkit.analysis.tradeoff import EXTRA, Result, load_results, tradeoff_markdown  # noqa: E402

MADDS = {**{row.config: int(row.paper_madds) - 10**7 for row in TABLE7}, **{c: 5 * 10**9 for c in EXTRA}}
PROTOCOL = json.dumps({"dataset": "voc", "split": "val", "scales": [1.0], "flip": False}, sort_keys=True)
OFFICIAL = "voc_mnv2_os16"


def _official(miou: float, precision: str = "fp32", runtime: str = "pytorch", quantization: str | None = None):
    return Result(OFFICIAL, miou, Path(f"{precision}_{runtime}.json"), True, precision, runtime, quantization,
                  num_images=8, protocol=PROTOCOL)  # fmt: skip


RESULTS = [
    _official(74.78),
    _official(74.74, "int8", "litert"),  # the official uint8 file itself
    _official(74.90, "int8", "litert", "ptq"),
    _official(74.86, "int8", "onnxruntime", "ptq"),
    _official(74.88, "int8", "openvino", "ptq"),
    _official(74.78, "fp32", "onnxruntime"),  # the fp32 files the int8 ones link to on the latency panel
    _official(74.77, "fp32", "openvino"),
]
RUNTIME_LATENCY = {
    (OFFICIAL, True, "fp32", "litert", False): 45.0,
    (OFFICIAL, True, "fp32", "onnxruntime", False): 42.0,
    (OFFICIAL, True, "fp32", "openvino", False): 53.0,
    (OFFICIAL, True, "int8", "litert", True): 41.0,
    (OFFICIAL, True, "int8", "litert", False): 32.0,
    (OFFICIAL, True, "int8", "onnxruntime", False): 23.0,
    (OFFICIAL, True, "int8", "openvino", False): 30.0,
}
LATENCY = {"voc_mnv2_os16": 54.0, "voc_mnv2_os16_aspp": 75.0}


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_no_label_overlaps_another_label_the_legend_or_a_title() -> None:
    fig = figure(MADDS, RESULTS, LATENCY, RUNTIME_LATENCY, plt)
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        for ax in fig.axes:
            labels = [t for t in ax.texts if t.get_text()]
            assert len(labels) >= 8
            boxes = label_boxes(labels, renderer)
            for i, a in enumerate(boxes):
                for j, b in enumerate(boxes[:i]):
                    assert not _overlap(a, b), (labels[i].get_text(), labels[j].get_text())
            frame = ax.get_window_extent(renderer).extents
            others = [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.get_xticklabels(), *ax.get_yticklabels()]
            others = [o.get_window_extent(renderer).extents for o in others if o.get_text()]
            legend = [ax.get_legend().get_window_extent(renderer).extents] if ax.get_legend() else []
            for text, box in zip(labels, boxes):
                inside = frame[0] <= box[0] and box[2] <= frame[2] and frame[1] <= box[1] and box[3] <= frame[3]
                assert inside, text.get_text()
                assert not any(_overlap(box, o) for o in [*others, *legend]), text.get_text()
    finally:
        plt.close(fig)


def test_points_of_one_madds_value_share_x() -> None:
    on_madds = [p for p in points(MADDS, RESULTS, LATENCY, RUNTIME_LATENCY) if p.panel == "madds"]
    official = [p for p in on_madds if p.label.startswith("official")]
    assert len(official) == len(RESULTS)
    assert {p.x for p in official} == {MADDS[OFFICIAL] / 1e9}  # not spread along the log axis
    assert sorted(p.y for p in official) == sorted(r.miou for r in RESULTS)  # each at its own mIoU


def test_titles_state_the_data_and_image_count() -> None:
    fig = figure(MADDS, RESULTS, LATENCY, RUNTIME_LATENCY, plt)
    try:
        for ax in fig.axes:
            assert "segkit: PASCAL VOC 2012 val, 8 images" in ax.get_title()
        assert "paper Table 7 (PASCAL VOC 2012 val, 1449 images)" in fig.axes[0].get_title()
    finally:
        plt.close(fig)
    (few,) = [_official(70.0)]
    many = Result("voc_mnv2_os16_aspp", 71.0, Path("b.json"), num_images=1449, protocol=PROTOCOL)
    fig = figure(MADDS, [few, many], {}, None, plt)
    try:
        assert "segkit: PASCAL VOC 2012 val, 1449 images; PASCAL VOC 2012 val, 8 images" in fig.axes[0].get_title()
    finally:
        plt.close(fig)


def test_each_official_file_is_paired_with_its_own_published_miou() -> None:
    table = tradeoff_markdown(MADDS, RESULTS, LATENCY, RUNTIME_LATENCY).splitlines()
    row = {line.split(" | ")[0]: line.split(" | ")[6] for line in table if line.startswith("| MNet V2*, official")}
    assert row["| MNet V2*, official weights converted"] == "74.26"
    assert row["| MNet V2*, official weights, int8 (LiteRT)"] == "74.26"  # the uint8 file: 74.26, not 75.32
    assert row["| MNet V2*, official weights, int8 PTQ (ONNX Runtime)"] == "-"  # segkit's own file: none published
    assert any(line.startswith("| MNet V2* | 16 |  |  | 2.75B |") and " | 75.32 | " in line for line in table)


def _report(folder: Path, name: str, num_images: int, resize_longer: int | None = 513) -> Path:
    protocol = {"dataset": "voc", "split": "val", "scales": [1.0], "flip": False, "resize_longer": resize_longer}
    data = {"config": "voc_mnv2_os16", "miou": 0.7, "num_images": num_images, "protocol": protocol}
    path = folder / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


def test_two_protocols_for_one_place_are_refused_in_one_line(tmp_path: Path) -> None:
    first, second = _report(tmp_path, "a", 8), _report(tmp_path, "b", 1449, None)
    with pytest.raises(AnalysisError) as info:
        load_results(tmp_path)
    text = str(info.value)
    assert "\n" not in text and str(first) in text and str(second) in text
    assert "evaluated differently (num_images 8 vs 1449; resize_longer 513 vs None)" in text
    second.unlink()
    _report(tmp_path, "b", 8)  # evaluated alike: a duplicate, noted and the last one kept
    found, notes = load_results(tmp_path)
    assert len(found) == 1 and len(notes) == 1 and "second result" in notes[0]
