"""The trade-off places every kind of result: by name, by the recorded architecture (converted official weights,
config ``tflite_...``), decoder results on their own rows, and says in one line why a file was skipped; its inputs
are checked with one-line errors. The ``segkit tradeoff`` command itself: tests/cli/test_tradeoff_command.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segkit.analysis.command import tradeoff_report
from segkit.analysis.errors import AnalysisError
from segkit.analysis.tradeoff import load_results, match_config

MNV2 = {"backbone": "mobilenet_v2", "width_mult": 1.0, "output_stride": 16, "aspp": False, "decoder": "none"}
SINGLE = {"scales": [1.0], "flip": False}
MF = {"scales": [0.5, 0.75, 1.0, 1.25, 1.5, 1.75], "flip": True}


def _write(folder: Path, name: str, **data) -> Path:
    path = folder / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"config": "tflite_deeplabv3_mnv2_pascal_quant", "model": MNV2}, "voc_mnv2_os16"),
        ({"config": "tflite_x", "model": {**MNV2, "output_stride": 8}}, "voc_mnv2_os8"),
        ({"config": "tflite_x", "model": {**MNV2, "aspp": True}}, "voc_mnv2_os16_aspp"),
        ({"config": "tflite_x", "model": {**MNV2, "width_mult": 0.5}}, None),  # no row has that network
        ({"config": "tflite_x"}, None),  # nothing to place it by
        ({"config": "voc_mnv2_os16", "decoder": "deeplabv3plus"}, None),  # a decoder run is not the Table 7 row
        (
            {"config": "voc_mnv2_os16", "decoder": "deeplabv3plus", "model": {**MNV2, "decoder": "deeplabv3plus"}},
            "voc_mnv2_os16_plus",
        ),
        ({"config": "voc_mnv2_os16_plus", "decoder": "deeplabv3plus"}, "voc_mnv2_os16_plus"),
        ({"config": {"name": "voc_r101_os8_aspp"}}, "voc_r101_os8_aspp"),
    ],
)
def test_match_config(data, expected):
    assert match_config(Path("result.json"), data) == expected


@pytest.mark.slow
def test_official_weights_placed_apart_from_segkit_results(tmp_path: Path):
    results = tmp_path / "results"
    results.mkdir()
    _write(results, "official", config="tflite_deeplabv3_mnv2_pascal_quant", model=MNV2, protocol=SINGLE, miou=0.7476)
    _write(results, "mine", config="voc_mnv2_os16", decoder="none", protocol=SINGLE, miou=0.70)
    _write(results, "official_mf", config="tflite_deeplabv3_mnv2_pascal_quant", model=MNV2, protocol=MF, miou=0.76)
    _write(results, "plus", config="voc_mnv2_os16_plus", decoder="deeplabv3plus", protocol=SINGLE, miou=0.72)
    _write(results, "old", config="tflite_deeplabv3_mnv2_pascal_quant", protocol=SINGLE, miou=0.74)
    found, notes = load_results(results)
    placed = sorted((r.config, r.converted, round(r.miou, 2)) for r in found)
    assert placed == [
        ("voc_mnv2_os16", False, 70.0),
        ("voc_mnv2_os16", True, 74.76),
        ("voc_mnv2_os16_plus", False, 72.0),
    ]
    assert len(notes) == 2 and all("\n" not in n for n in notes)
    assert any("official_mf.json" in n and "multi-scale" in n for n in notes)  # OS16 + MF is no Table 7 row
    assert any("old.json" in n and "no 'model' field" in n for n in notes)

    out = tmp_path / "out"
    report = tradeoff_report(results, out=out)
    table = (out / "tradeoff.md").read_text()
    assert "| MNet V2* | 16 |  |  | 2.75B | 2.74B | 75.32 | 70.00 | - |" in table
    assert (
        "| MNet V2*, official weights converted | 16 |  |  | 2.75B | 2.74B | 74.26 | 74.76 | - |" in table
    )  # its own file
    assert "| MNet V2* + DeepLabV3+ decoder (not in Table 7) | 16 |" in table and "| 72.00 | - |" in table
    assert (out / "tradeoff.png").read_bytes()[:4] == b"\x89PNG"
    assert "3 mIoU result(s)" in report.line() and len(report.notes) == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"results": "missing"}, "--results {tmp}/missing: not a folder. Pass the folder holding segkit test --json"),
        ({"complexity_json": "absent.json"}, "no such file. Produce it with segkit complexity --table7 --json FILE."),
        ({"complexity_json": "t7.json"}, "does not hold the 8 rows of Table 7 with 'madds_tf1'; produce it with"),
        ({"complexity_json": "text.json"}, "--complexity-json {tmp}/text.json: not readable JSON"),
        ({"latency": "absent.json"}, '--latency {tmp}/absent.json: no such file. Pass a latency JSON file: {"rows"'),
        ({"latency": "text.json"}, "--latency {tmp}/text.json: Expecting value: line 1 column 1 (char 0); expected"),
        ({"runtimes_json": "t7.json"}, "--runtimes-json {tmp}/t7.json: it holds no 'models' list; expected"),
        ({"input_size": 8}, "--input-size must be >= 16, got 8."),
    ],
)
def test_bad_inputs_are_one_line(tmp_path: Path, options, message):
    (tmp_path / "t7.json").write_text("[1, 2]")
    (tmp_path / "text.json").write_text("not JSON")
    options = {k: tmp_path / v if isinstance(v, str) else v for k, v in options.items()}
    with pytest.raises(AnalysisError) as info:
        tradeoff_report(out=tmp_path / "o", **options)
    text = str(info.value)
    assert "\n" not in text and message.replace("{tmp}", str(tmp_path)) in text
    assert not (tmp_path / "o").exists()
