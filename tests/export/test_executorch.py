"""ExecuTorch export (.pte, XNNPACK): verified in ExecuTorch's runtime before the file appears, its metadata and the
partitioner's report, and ``segkit test --model model.pte`` scoring like the checkpoint.

A tiny model at the synthetic images' own size (64 px: no resizing anywhere). Lowering to XNNPACK takes 1-3 minutes
on a busy 2-core CPU, so the tests that lower are slow and share their files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segkit.cli import main as segkit_main

pytest.importorskip(
    "executorch", reason="executorch is not installed (pip install 'segkit-deeplab[executorch]'; make setup does it)"
)
pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 64


@pytest.fixture(scope="module")
def decisive_ckpt(tiny_ckpt, tmp_path_factory) -> Path:
    """tiny_ckpt with a 20x classifier: label maps without near-ties, so agreement measures the file."""
    import torch

    import segkit
    from segkit.checkpoint.format import save_checkpoint

    model = segkit.load_model(tiny_ckpt)
    with torch.no_grad():
        model.head.classifier.weight.mul_(20)
    path = tmp_path_factory.mktemp("executorch") / "decisive.pth"
    save_checkpoint(path, model, model.segkit_config)
    return path


def test_dynamic_and_wrong_names_are_refused_before_any_work(decisive_ckpt, tmp_path, capsys):
    from segkit.export import ExportError, export_checkpoint

    with pytest.raises(ExportError, match="ExecuTorch export needs a static input size"):
        export_checkpoint(decisive_ckpt, tmp_path / "m.pte", dynamic=True)
    rc = segkit_main(["export", "--checkpoint", str(decisive_ckpt), "--format", "executorch", "--out", "m.onnx"])
    assert rc == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("--format executorch writes a .pte file, got --out m.onnx; name the output *.pte.")
    )
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_export_verifies_before_writing_and_test_model_scores_like_the_checkpoint(
    decisive_ckpt, synth_root, tmp_path, capsys, monkeypatch
):
    import segkit.export.command as command
    from segkit.export.verify import AGREE_MIN
    from segkit.runtimes.metadata import read_metadata

    out = tmp_path / "model.pte"
    seen = {}
    real_verify = command.verify

    def spy(model, path, images, **kwargs):  # the file is verified where it was staged, before it reaches --out
        seen["out_existed"], seen["staged"] = out.exists(), Path(path)
        return real_verify(model, path, images, **kwargs)

    monkeypatch.setattr(command, "verify", spy)
    argv = ["export", "--checkpoint", str(decisive_ckpt), "--out", str(out), "--input-size", str(SIZE)]
    assert segkit_main([*argv, "--verify", str(synth_root), "--verify-images", "4"]) == 0
    captured = capsys.readouterr()
    assert seen["out_existed"] is False and seen["staged"] != out and out.is_file()
    line = next(x for x in captured.out.splitlines() if x.startswith("verified in executorch on 4 image(s)"))
    agreement = float(line.rsplit("pixel agreement ", 1)[1].rstrip("%")) / 100
    assert agreement >= AGREE_MIN, line
    assert f"Wrote {out} (executorch, {SIZE}x{SIZE}, input float nchw, output logits)" in captured.err
    assert "XNNPACK delegate: " in captured.err and "outside it (ExecuTorch portable kernels): " in captured.err

    meta = read_metadata(out)
    assert (meta["exported_as"], meta["runtime"], meta["precision"]) == ("executorch", "executorch", "fp32")
    assert meta["input_size"] == [SIZE, SIZE] and meta["num_classes"] == 5
    assert meta["delegation"]["delegated_nodes"] > 50 and meta["delegation"]["subgraphs"] >= 1
    assert "aten.convolution" not in meta["delegation"]["outside"]  # every convolution runs in XNNPACK

    common = ["--data-root", str(synth_root), "--no-progress", "--num-workers", "0"]
    reports = {}
    for name, source in {"ckpt": ["--checkpoint", str(decisive_ckpt)], "pte": ["--model", str(out)]}.items():
        assert segkit_main(["test", *source, *common, "--json", str(tmp_path / f"{name}.json")]) == 0
        reports[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert reports["pte"]["runtime"] == "executorch"
    assert reports["pte"]["miou"] == pytest.approx(reports["ckpt"]["miou"], abs=1e-3)
    assert reports["pte"]["pixel_acc"] == pytest.approx(reports["ckpt"]["pixel_acc"], abs=1e-3)


@pytest.mark.slow
def test_uint8_labels_program_puts_argmax_outside_the_delegate(decisive_ckpt, tmp_path):
    import numpy as np
    import torch

    import segkit
    from segkit.export.executorch import delegation_line, export_executorch
    from segkit.export.verify import verify
    from segkit.runtimes import load_exported

    model = segkit.load_model(decisive_ckpt)
    path = tmp_path / "u8labels.pte"
    meta = export_executorch(model, path, input_size=(SIZE, SIZE), input="uint8", output="labels")
    assert "aten.argmax" in meta["delegation"]["outside"]  # not an XNNPACK op: ExecuTorch's portable kernel runs it
    assert "aten.argmax x1" in delegation_line(meta)
    runner = load_exported(path)
    assert runner.input_kind == "uint8" and runner.output_kind == "labels" and runner.layout == "nhwc"
    assert runner.session.input_dtype == np.uint8 and runner.session.output_dtype == np.uint8
    assert runner(torch.zeros(1, 3, SIZE, SIZE))["labels"].shape == (1, SIZE, SIZE)
    report = verify(model, path)
    assert report.runtime == "executorch" and report.max_abs is None and report.agreement >= 0.999
