"""``segkit summary`` end to end: the layer table on the meta device (default) or a real device, one-line errors."""

from __future__ import annotations

import pytest

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


# ----------------------------------------------------------------------------- --checkpoint


def _table(text: str) -> str:
    """The summary without its first (model) line."""
    return text.split("\n", 1)[1]


def test_summary_of_a_checkpoint_is_its_configs_model_at_its_input_size(tiny_ckpt, synth_root, tiny_overrides, capsys):
    assert main(["summary", "--checkpoint", str(tiny_ckpt)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Checkpoint: {tiny_ckpt}  (config demo_mnv2_os16: backbone mobilenet_v2, OS 16")
    assert "input size: its data.crop_size" in out.splitlines()[0]  # the tiny run's crop, 48 (demo: eval.pad_to null)
    assert "Input size: 48x48" in out and "head.classifier" in out
    # the same table as the config the checkpoint was saved from, at the same size
    assert (
        main(["summary", "--config", "demo_mnv2_os16", "--set", *tiny_overrides(synth_root), "--input-size", "48"]) == 0
    )
    assert _table(capsys.readouterr().out) == _table(out)


def test_summary_of_a_checkpoint_counts_the_loaded_model(tiny_ckpt, capsys):
    from segkit.analysis.complexity import count_complexity
    from segkit.checkpoint.load import load_model

    assert main(["summary", "--checkpoint", str(tiny_ckpt), "--input-size", "65", "97", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    report = count_complexity(load_model(tiny_ckpt), (65, 97))
    assert "Input size: 65x97" in out and "input size: its" not in out
    assert f"Trainable params: {report.params:,}" in out and f"MAdds (pytorch): {report.madds_pytorch:,}" in out


def test_summary_of_a_checkpoint_applies_set_to_its_config(tiny_ckpt, capsys):
    assert main(["summary", "--checkpoint", str(tiny_ckpt), "--set", "model.output_stride=8"]) == 0
    assert "OS 8" in capsys.readouterr().out.splitlines()[0]


def test_summary_needs_exactly_one_model(tiny_ckpt, tmp_path, capsys):
    for argv in (["summary"], ["summary", "--config", "voc_mnv2_os16", "--checkpoint", str(tiny_ckpt)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--config NAME|PATH" in err and "--checkpoint CKPT" in err
    assert main(["summary", "--checkpoint", str(tmp_path / "missing.pth")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.pth" in err


@pytest.mark.slow  # converts the official TFLite model (about 10 s)
def test_summary_of_the_converted_official_model(shared_data, tmp_path, capsys):
    pytest.importorskip("tflite", reason="the optional 'tflite' package is absent")
    ckpt = tmp_path / "official.pth"
    assert main(["convert", str(shared_data / "tflite/deeplabv3_mnv2_pascal_quant.tflite"), str(ckpt)]) == 0
    capsys.readouterr()
    assert main(["summary", "--checkpoint", str(ckpt)]) == 0
    out = capsys.readouterr().out
    assert "input size: its eval.pad_to" in out.splitlines()[0] and "Input size: 513x513" in out
    assert "Trainable params: 2,113,557" in out and "MAdds (pytorch): 2,740,709,056" in out  # the paper's 2.75B
