"""``segkit summary`` end to end: the layer table on the meta device (default) or a real device, one-line errors."""

from __future__ import annotations

from segkit.cli import main


def test_summary_prints_the_table(capsys):
    argv = ["summary", "--config", "voc_mnv2_os16", "--set", "model.width_mult=0.35", "--input-size", "65", "97"]
    assert main(argv) == 0
    meta = capsys.readouterr().out
    assert meta.startswith("Config: voc_mnv2_os16  (backbone mobilenet_v2, OS 16, ASPP False, decoder none, 21")
    assert "Input size: 65x97" in meta and "head.classifier" in meta
    assert main([*argv, "--device", "cpu"]) == 0  # a real forward pass: the same table
    assert capsys.readouterr().out == meta


def test_summary_errors_are_one_line(capsys):
    assert main(["summary", "--config", "voc_mnv2_os16", "--set", "model.output_strid=8"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Did you mean 'output_stride'" in err
    assert main(["summary", "--config", "voc_mnv2_os16", "--input-size", "1", "2", "3"]) == 2
    assert capsys.readouterr().err == (
        "error: --input-size takes one or two positive integers (H or H W), got [1, 2, 3].\n"
    )
