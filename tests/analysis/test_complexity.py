"""MAdds counter: hand-computed tiny model, the paper's MobileNetV2 figures, and what the complexity, summary and
tradeoff commands compute (:mod:`segkit.analysis.command`; the commands themselves: tests/cli/)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from segkit.analysis.command import config_complexity, model_summary, table7_report, tradeoff_report
from segkit.analysis.complexity import count_complexity, format_count, multi_scale_sizes, scale_dimension
from segkit.analysis.errors import AnalysisError
from segkit.config import ConfigError, load_config
from segkit.models import build_model


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)  # 3*4*9 + 4 = 112 params
        self.bn = nn.BatchNorm2d(4)  # 8 trainable params, running stats not counted
        self.dw = nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=4, bias=False)  # 36 params
        self.fc = nn.Linear(4, 5)  # 25 params

    def forward(self, x):
        x = self.dw(self.bn(self.conv(x)))
        return self.fc(x.mean(dim=(2, 3)))


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_counter_by_hand(device):
    report = count_complexity(Tiny(), 7, device=device)
    assert report.params == 112 + 8 + 36 + 25
    by_name = {r.name: r for r in report.layers}
    assert list(by_name) == ["conv", "dw", "fc"]
    assert by_name["conv"].output_shape == (1, 4, 7, 7)
    assert by_name["conv"].madds_pytorch == by_name["conv"].madds_tf1 == 4 * 7 * 7 * 3 * 9
    assert by_name["dw"].madds_pytorch == 4 * 7 * 7 * 9
    assert by_name["dw"].madds_tf1 == 4 * 8 * 8 * 9  # rate 2: 7x7 grid padded to 8x8
    assert by_name["fc"].madds_pytorch == 4 * 5
    assert report.madds("pytorch") == 5292 + 1764 + 20
    assert report.madds("tf1") == 5292 + 2304 + 20
    batched = count_complexity(Tiny(), (7, 9), batch_size=3)
    assert batched.madds_pytorch == 3 * (4 * 63 * 27 + 4 * 63 * 9 + 20)
    with pytest.raises(ValueError, match="convention must be one of"):
        report.madds("tf2")


def test_meta_equals_real_run_and_model_untouched():
    cfg = load_config("voc_mnv2_os16_aspp", ["model.output_stride=8"])
    model = build_model(cfg)
    real = count_complexity(model, 67, device="cpu")
    meta = count_complexity(model, 67, device="meta")
    assert [(r.name, r.output_shape, r.madds_pytorch, r.madds_tf1) for r in real.layers] == [
        (r.name, r.output_shape, r.madds_pytorch, r.madds_tf1) for r in meta.layers
    ]
    assert next(model.parameters()).device.type == "cpu" and model.training


def _mnv2(name: str):
    with torch.device("meta"):
        return build_model(load_config(name))


def test_paper_figures_mobilenet_v2():
    light, aspp = _mnv2("voc_mnv2_os16"), _mnv2("voc_mnv2_os16_aspp")
    r_light, r_aspp = count_complexity(light, 513), count_complexity(aspp, 513)
    assert r_light.params == 2_113_557 and r_aspp.params == 4_523_541
    assert r_light.madds_pytorch / 1e9 == pytest.approx(2.741, abs=5e-4)
    assert r_light.madds_tf1 / 1e9 == pytest.approx(2.75, rel=0.015)
    assert r_aspp.madds_pytorch / 1e9 == pytest.approx(5.364, abs=5e-4)
    assert r_aspp.madds_tf1 / 1e9 == pytest.approx(5.823, abs=5e-4)
    assert count_complexity(light, 512).madds_pytorch / 1e9 == pytest.approx(2.604, abs=5e-4)
    assert multi_scale_sizes(513, [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]) == [257, 385, 513, 641, 769, 897]


@pytest.fixture(scope="module")
def table7_json(tmp_path_factory) -> Path:
    """``segkit complexity --table7 --json`` computed once (meta device: seconds for all eight rows)."""
    out = tmp_path_factory.mktemp("table7")
    output = table7_report(513, json_path=out / "t7.json", markdown_path=out / "t7.md")
    assert output.files == (out / "t7.json", out / "t7.md")
    assert output.text.startswith("Table 7 at 513x513 (MF: 12 passes at 257, 385, 513, 641, 769, 897 x flip)")
    assert "Not in Table 7" in output.text and "| voc_mnv2_os16_plus |" in output.text
    return out / "t7.json"


def test_table7_targets(table7_json):
    rows = json.loads(table7_json.read_text())
    assert len(rows) == 8
    keys = {
        "network",
        "os",
        "aspp",
        "mf",
        "params",
        "madds_pytorch",
        "madds_tf1",
        "paper_params",
        "paper_madds",
        "paper_miou",
    }
    for row in rows:
        assert set(row) == keys
        assert abs(row["params"] / row["paper_params"] - 1) < 0.005, row
        if (row["network"], row["os"]) != ("MNet V1", 8):  # the documented exception
            assert abs(row["madds_tf1"] / row["paper_madds"] - 1) < 0.015, row
        if row["aspp"] or row["os"] == 8:  # TF1's space-to-batch overhead on the dilated convs
            assert row["madds_tf1"] > row["madds_pytorch"], row
    mf_mnv2 = next(r for r in rows if r["network"] == "MNet V2*" and r["mf"] and not r["aspp"])
    assert mf_mnv2["madds_tf1"] / 1e9 == pytest.approx(152.6, rel=0.002)  # 12 passes of the 8.84B OS8 model
    assert "| ResNet-101 | 8 | yes | yes |" in (table7_json.parent / "t7.md").read_text()


def test_config_complexity(tmp_path):
    output = config_complexity("voc_mnv2_os8", input_size=513, multi_scale=True, json_path=tmp_path / "c.json")
    assert "12 passes at 257, 257, 385" in output.text and "params                 2,113,557" in output.text
    assert output.files == (tmp_path / "c.json",)
    row = json.loads((tmp_path / "c.json").read_text())
    assert (row["config"], row["os"], row["params"], len(row["input_sizes"])) == ("voc_mnv2_os8", 8, 2_113_557, 12)
    with pytest.raises(AnalysisError, match="--input-size must be >= 16, got 8"):
        config_complexity("voc_mnv2_os8", input_size=8)


def test_tradeoff_report(table7_json, tmp_path):
    results = tmp_path / "results"
    (results / "voc_mnv2_os16_aspp").mkdir(parents=True)
    (results / "voc_mnv2_os16_aspp" / "eval_val.json").write_text('{"miou": 0.7012}')  # folder name, fraction
    (results / "voc_mnv2_os16_val.json").write_text('{"miou": 71.5}')  # file name prefix, percent
    mf = '"protocol": {"scales": [0.5, 0.75, 1.0, 1.25, 1.5, 1.75], "flip": true}'
    (results / "mine.json").write_text('{"miou": 0.77, "config": "voc_mnv2_os8", ' + mf + "}")  # tools/test.py --json
    single = '"protocol": {"scales": [1.0], "flip": false}'
    (results / "os8_ss.json").write_text('{"miou": 0.75, "config": "voc_mnv2_os8_aspp", ' + single + "}")  # not MF
    (results / "other.json").write_text('{"miou": 0.5}')  # unmatched: reported, skipped
    (results / "inference.json").write_text('{"rows": [{"config": "voc_mnv2_os16", "latency_ms": 700.0}]}')
    out = tmp_path / "out"
    report = tradeoff_report(results, complexity_json=table7_json, out=out)
    assert (report.table, report.plot) == (out / "tradeoff.md", out / "tradeoff.png")
    assert report.latency_rows == 1 and len(report.results) == 3
    assert any("other.json" in note for note in report.notes)
    table = (out / "tradeoff.md").read_text()
    assert table == report.markdown + "\n"
    assert "| MNet V2* | 16 | yes |  | 5.8B | 5.82B | 75.70 | 70.12 | - |" in table
    assert "| MNet V2* | 16 |  |  | 2.75B | 2.74B | 75.32 | 71.50 | 700 |" in table
    assert "| MNet V2* | 8 |  | yes | 152.6B | 152.53B | 77.33 | 77.00 | - |" in table
    assert "| MNet V2* | 8 | yes | yes | 387B | 387.48B | 78.42 | - | - |" in table  # single-scale result skipped
    assert (out / "tradeoff.png").read_bytes()[:4] == b"\x89PNG"


def test_scale_dimension_and_format():
    assert scale_dimension(513, 0.5) == 257 and scale_dimension(513, 1.0) == 513
    assert format_count(2_113_557) == "2.11M" and format_count(5.364e9) == "5.364B"
    assert math.isclose(float(format_count(4870.6e9)[:-1]), 4.871)


def test_model_summary_prints_layers_and_totals():
    out = model_summary("voc_mnv2_os16_aspp", input_size=513)
    assert out.startswith("Config: voc_mnv2_os16_aspp  (backbone mobilenet_v2, OS 16, ASPP True")
    assert "backbone.features.0.0" in out and "head.classifier" in out and "1x21x33x33" in out
    assert "Trainable params: 4,523,541" in out
    assert "MAdds (pytorch): 5,363,508,928" in out and "MAdds (tf1):     5,823,096,448" in out
    assert "Input size: 65x97" in model_summary("voc_mnv2_os16", ["model.width_mult=0.35"], input_size=[65, 97])


def test_model_summary_rejects_bad_input():
    with pytest.raises(ConfigError, match="Did you mean 'output_stride'"):
        model_summary("voc_mnv2_os16", ["model.output_strid=8"])
    with pytest.raises(AnalysisError, match=r"one or two positive integers \(H or H W\), got \[1, 2, 3\]"):
        model_summary("voc_mnv2_os16", input_size=[1, 2, 3])
