"""Export to ONNX / LiteRT, verification, metadata, runners, and the commands running exported files.

Tiny models (width 0.35, inputs <= 129 px); every conversion is made once per session (LiteRT's are slow).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from segkit.cli import main as segkit_main
from segkit.export.formats import EXTENSIONS, FORMATS

pytest.importorskip("onnxruntime", reason="the deploy extra is not installed (pip install 'segkit-deeplab[deploy]')")

SIZE = 65


def _tiny_model(cfg):
    import segkit

    torch.manual_seed(0)
    model = segkit.build_model(cfg).eval()
    with torch.no_grad():  # a decisive classifier, so the label maps are not a sea of near-ties
        model.head.classifier.weight.mul_(20)
    model.segkit_config, model.class_names, model.palette = cfg, None, None
    return model


@pytest.fixture(scope="session")
def tiny(tiny_cfg, synth_root, tmp_path_factory):
    """(model, checkpoint path, out dir): demo config at width 0.35 on the synthetic set, saved as a checkpoint."""
    from segkit.checkpoint.format import save_checkpoint

    cfg = tiny_cfg(synth_root, **{"data.num_workers": 0, "eval.pad_to": None})
    model = _tiny_model(cfg)
    out = tmp_path_factory.mktemp("export")
    save_checkpoint(out / "tiny.pth", model, cfg)
    return model, out / "tiny.pth", out


@pytest.fixture(scope="session")
def onnx_files(tiny):
    """Static, dynamic and uint8-in/labels-out ONNX files of the tiny model."""
    from segkit.export import export_onnx

    model, _, out = tiny
    files = {"static": out / "static.onnx", "dynamic": out / "dynamic.onnx", "u8labels": out / "u8labels.onnx"}
    export_onnx(model, files["static"], input_size=(SIZE, SIZE))
    export_onnx(model, files["dynamic"], input_size=(SIZE, SIZE), dynamic=True)
    export_onnx(model, files["u8labels"], input_size=(SIZE, SIZE), input="uint8", output="labels")
    return files


@pytest.fixture(scope="session")
def tflite_files(tiny):
    """The two LiteRT conversions of the suite: float logits (from the checkpoint, as `segkit export` makes it) and
    uint8-in/labels-out."""
    pytest.importorskip("litert_torch", reason="litert-torch is not installed (pip install 'segkit-deeplab[deploy]')")
    from segkit.export import export_checkpoint, export_tflite

    model, ckpt, out = tiny
    files = {"float": out / "float.tflite", "u8labels": out / "u8labels.tflite"}
    report = export_checkpoint(ckpt, files["float"], input_size=SIZE, skip_verify=True)
    assert (report.format, report.verification, report.metadata["input_size"]) == ("tflite", None, [SIZE, SIZE])
    export_tflite(model, files["u8labels"], input_size=(SIZE, SIZE), input="uint8", output="labels")
    return files


def test_image_pooling_broadcast_is_exact():
    """The export-friendly broadcast (product with ones) gives the eval logits of expand()."""
    import segkit
    from segkit.models.heads.deeplabv3 import ImagePooling

    cfg = segkit.load_config("voc_mnv2_os16", ["model.width_mult=0.35"])
    model = _tiny_model(cfg)
    x = torch.randn(2, 3, SIZE, 81)
    with torch.no_grad():
        new = model(x)["out"]
        original = ImagePooling.forward

        def expand_forward(self, feat):
            return self.conv(feat.mean(dim=(2, 3), keepdim=True)).expand(-1, -1, feat.shape[2], feat.shape[3])

        ImagePooling.forward = expand_forward
        try:
            old = model(x)["out"]
        finally:
            ImagePooling.forward = original
    assert torch.equal(new, old)


@pytest.mark.slow
def test_onnx_static_dynamic_and_variants_verify(tiny, onnx_files):
    from segkit.export import verify

    model = tiny[0]
    for kind in ("static", "dynamic"):
        report = verify(model, onnx_files[kind])
        assert report.passed() and report.rel < 1e-5, (kind, report.line())
    report = verify(model, onnx_files["u8labels"])
    assert report.max_abs is None and report.agreement >= 0.999, report.line()
    report = verify(model, onnx_files["dynamic"], runtime="openvino")
    assert report.passed(), report.line()


@pytest.mark.slow
def test_dynamic_equals_static_at_the_same_size(onnx_files):
    from segkit.runtimes import load_exported

    x = torch.randn(1, 3, SIZE, SIZE)
    static, dynamic = load_exported(onnx_files["static"]), load_exported(onnx_files["dynamic"])
    assert static.input_size == (SIZE, SIZE) and dynamic.input_size is None
    torch.testing.assert_close(static(x)["out"], dynamic(x)["out"], rtol=0, atol=1e-5)
    assert dynamic(torch.randn(2, 3, 49, 97))["out"].shape == (2, 5, 49, 97)  # any size, any batch


@pytest.mark.slow
def test_runner_contract_matches_the_model(tiny, onnx_files):
    from segkit.runtimes import load_exported

    model = tiny[0]
    x = torch.randn(1, 3, 49, 61)  # smaller than the static size: padded and cropped by the runner
    runner = load_exported(onnx_files["dynamic"])
    with torch.no_grad():
        ref = model(x)["out"]
    torch.testing.assert_close(runner(x)["out"], ref, rtol=0, atol=1e-4)
    import openvino as ov

    xml = onnx_files["dynamic"].with_suffix(".xml")
    ov.save_model(ov.convert_model(str(onnx_files["dynamic"])), str(xml))  # an OpenVINO IR keeps the metadata
    ir = load_exported(xml)
    assert ir.runtime == "openvino" and ir.metadata["num_classes"] == 5
    torch.testing.assert_close(ir(x)["out"], ref, rtol=0, atol=1e-4)
    labels = load_exported(onnx_files["u8labels"])
    assert labels.input_kind == "uint8" and labels.output_kind == "labels"
    out = labels(torch.zeros(1, 3, SIZE, SIZE))
    assert out["labels"].shape == (1, SIZE, SIZE) and out["out"].shape == (1, 5, SIZE, SIZE)


@pytest.mark.slow
def test_metadata_round_trip(onnx_files, tflite_files, tiny):
    from segkit.export import read_metadata

    cfg = tiny[0].segkit_config
    for path in (onnx_files["u8labels"], tflite_files["u8labels"]):
        meta = read_metadata(path)
        assert meta["config_name"] == cfg.name and meta["num_classes"] == 5
        assert meta["mean"] == list(cfg.model.input_mean) and meta["std"] == list(cfg.model.input_std)
        assert meta["input"] == "uint8" and meta["output"] == "labels" and meta["input_size"] == [SIZE, SIZE]
        assert meta["input_layout"] == "nhwc" and len(meta["palette"]) == 5
        assert meta["segkit_version"]
    assert read_metadata(onnx_files["dynamic"])["input_size"] is None
    assert read_metadata(tflite_files["float"])["layout"] == "nhwc"


@pytest.mark.slow
def test_tflite_verifies_and_labels_variant(tiny, tflite_files):
    from segkit.export import verify
    from segkit.runtimes import load_exported

    report = verify(tiny[0], tflite_files["float"])
    assert report.passed() and report.rel < 1e-5, report.line()
    report = verify(tiny[0], tflite_files["u8labels"])
    assert report.agreement >= 0.999, report.line()
    runner = load_exported(tflite_files["u8labels"])
    assert runner.runtime == "litert" and runner.layout == "nhwc" and runner.input_size == (SIZE, SIZE)


@pytest.mark.slow
def test_export_checkpoint_writes_verifies_and_refuses(tiny):
    """``segkit export``'s library entry: the file, the line saying what was written, the verification."""
    from segkit.export import ExportError, export_checkpoint, export_format

    _, ckpt, out = tiny
    lines = []
    report = export_checkpoint(
        ckpt, out / "lib.onnx", input_size=[SIZE], input="uint8", output="labels", verify_images=2, log=lines.append
    )
    assert lines == [f"Wrote {out / 'lib.onnx'} (onnx, {SIZE}x{SIZE}, input uint8 nhwc, output labels, opset 18)"]
    assert report.passed() and report.verification.max_abs is None and report.verification.num_images == 2
    assert export_format("m.TFLITE") == "tflite" and export_format("m.ONNX", "onnx") == "onnx"
    with pytest.raises(ExportError, match=r"--format onnx writes a \.onnx file, got --out m\.bin"):
        export_format("m.bin", "onnx")  # the runtimes open a file by its extension (issue 20, item 6)
    with pytest.raises(ExportError, match=r"cannot tell the format of m\.bin; pass --format onnx\|openvino\|tflite"):
        export_format("m.bin")
    with pytest.raises(ExportError, match="static"):
        export_checkpoint(ckpt, out / "x.tflite", dynamic=True)
    with pytest.raises(ExportError, match="--input-size takes H W or one N, got 1 2 3"):
        export_checkpoint(ckpt, out / "y.onnx", input_size=[1, 2, 3])
    assert not (out / "x.tflite").exists() and not (out / "y.onnx").exists()


@pytest.mark.slow
def test_export_command_verifies_and_refuses_dynamic_tflite(tiny, capsys):
    _, ckpt, out = tiny
    argv = ["export", "--checkpoint", str(ckpt), "--out", str(out / "cli.onnx"), "--input-size", str(SIZE)]
    assert segkit_main([*argv, "--input", "uint8", "--verify-images", "2", "--set", "eval.pad_to=null"]) == 0
    captured = capsys.readouterr()
    assert "pixel agreement 100.000%" in captured.out
    assert f"Wrote {out / 'cli.onnx'} (onnx, {SIZE}x{SIZE}, input uint8 nhwc, output logits, opset 18)" in captured.err
    assert segkit_main(["export", "--checkpoint", str(ckpt), "--out", str(out / "x.tflite"), "--dynamic"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "static" in err and "--format onnx" in err
    assert segkit_main(["export", "--checkpoint", str(ckpt), "--out", str(out / "x.bin")]) == 2
    assert capsys.readouterr().err == "error: cannot tell the format of " + str(out / "x.bin") + (
        f"; pass --format {'|'.join(FORMATS)} or name it {'/'.join(EXTENSIONS)}.\n"
    )
    assert not (out / "x.tflite").exists() and not (out / "x.bin").exists()


@pytest.mark.slow
def test_refused_export_names_the_layer(tiny, tmp_path):
    from torch import nn

    from segkit.export import ExportError, export_onnx

    class DataDependent(nn.Module):
        def forward(self, x):
            return x * 2 if x.mean() > 0 else x  # a Python branch on a tensor value: not exportable

    model = _tiny_model(tiny[0].segkit_config)
    model.head.aspp0.add_module("gate", DataDependent())
    with pytest.raises(ExportError) as info:
        export_onnx(model, tmp_path / "bad.onnx", input_size=(SIZE, SIZE))
    message = str(info.value)
    assert "\n" not in message and "head.aspp0.gate" in message and "DataDependent" in message
    assert not list(tmp_path.iterdir())  # nothing half-written


@pytest.mark.parametrize(
    "name",
    ["voc_mnv2_os8_aspp", "voc_mnv1_os16_aspp", "voc_r101_os16_aspp", "voc_mnv2_os16_plus", "voc_mnv2_os16_aspp_plus"],
)
@pytest.mark.slow
def test_every_config_family_exports(name, tmp_path):
    import segkit
    from segkit.export import export_onnx, verify

    overrides = [] if "r101" in name else ["model.width_mult=0.35"]
    model = _tiny_model(segkit.load_config(name, overrides))
    path = tmp_path / f"{name}.onnx"
    export_onnx(model, path, input_size=(SIZE, SIZE), exporter="torchscript" if "r101" in name else "dynamo")
    report = verify(model, path, [np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)])
    assert report.passed(), report.line()


def _labels_of(pred_dir: Path) -> dict[str, np.ndarray]:
    from PIL import Image

    return {p.stem: np.array(Image.open(p)) for p in sorted(pred_dir.glob("*.png"))}


@pytest.mark.slow
def test_cli_test_and_infer_with_model_agree_with_checkpoint(tiny, onnx_files, tflite_files, synth_root, tmp_path):
    def infer(argv):
        return segkit_main(["infer", *argv])

    def test(argv):
        return segkit_main(["test", *argv])

    _, ckpt, _ = tiny
    common = ["--data-root", str(synth_root), "--no-progress", "--num-workers", "0"]
    runs = {
        "ckpt": ["--checkpoint", str(ckpt)],
        "onnx": ["--model", str(onnx_files["dynamic"])],
        "ov": ["--model", str(onnx_files["dynamic"]), "--runtime", "openvino"],
    }
    reports = {}
    for name, source in runs.items():
        assert (
            test([*source, *common, "--json", str(tmp_path / f"{name}.json"), "--save-pred", str(tmp_path / name)]) == 0
        )
        reports[name] = json.loads((tmp_path / f"{name}.json").read_text())
    ref = _labels_of(tmp_path / "ckpt")
    for name in ("onnx", "ov"):
        got = _labels_of(tmp_path / name)
        agree = np.mean([np.mean(got[k] == ref[k]) for k in ref])
        assert agree >= 0.999, (name, agree)
    # a static LiteRT file implies its input size: resize-longer + pad to 65, as --checkpoint with those flags
    assert (
        test(
            [
                "--checkpoint",
                str(ckpt),
                *common,
                "--resize-longer",
                str(SIZE),
                "--pad-to",
                str(SIZE),
                "--save-pred",
                str(tmp_path / "ckpt65"),
            ]
        )
        == 0
    )
    assert test(["--model", str(tflite_files["float"]), *common, "--save-pred", str(tmp_path / "tfl")]) == 0
    ref65, got = _labels_of(tmp_path / "ckpt65"), _labels_of(tmp_path / "tfl")
    assert np.mean([np.mean(got[k] == ref65[k]) for k in ref65]) >= 0.999
    images = synth_root / "VOCdevkit" / "VOC2012" / "JPEGImages"
    one = sorted(images.iterdir())[0]
    assert (
        infer(["--checkpoint", str(ckpt), "--input", str(one), "--output", str(tmp_path / "i_ckpt"), "--no-progress"])
        == 0
    )
    assert (
        infer(
            [
                "--model",
                str(onnx_files["dynamic"]),
                "--input",
                str(one),
                "--output",
                str(tmp_path / "i_onnx"),
                "--no-progress",
            ]
        )
        == 0
    )
    a, b = _labels_of(tmp_path / "i_ckpt")[one.stem], _labels_of(tmp_path / "i_onnx")[one.stem]
    assert np.mean(a == b) >= 0.999 and (tmp_path / "i_onnx" / f"{one.stem}_overlay.jpg").is_file()


@pytest.mark.slow
def test_runtime_flag_on_a_checkpoint_exports_and_caches(tiny, synth_root, tmp_path, monkeypatch):
    from segkit.export import cached_export, load_for_tools

    monkeypatch.setenv("SEGKIT_CACHE", str(tmp_path))
    _, ckpt, _ = tiny
    model, cfg = load_for_tools(None, "openvino", checkpoint=str(ckpt))
    first = cached_export(ckpt, "openvino")
    assert first.is_file() and cached_export(ckpt, "openvino") == first
    assert model.runtime == "openvino" and cfg.model.num_classes == 5


@pytest.mark.slow
def test_official_tflite_file_evaluates_to_the_reference(shared_data, tmp_path):
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed")
    reference = json.loads((shared_data / "reference" / "summary.json").read_text())
    ref = reference["coral_deeplabv3_mnv2_pascal_quant"]
    assert (
        segkit_main(
            [
                "test",
                "--model",
                str(shared_data / "tflite" / "deeplabv3_mnv2_pascal_quant.tflite"),
                "--data-root",
                str(shared_data / "voc_sample"),
                "--resize-longer",
                "513",
                "--pad-to",
                "513",
                "--no-progress",
                "--num-workers",
                "0",
                "--json",
                str(tmp_path / "r.json"),
                "--save-pred",
                str(tmp_path / "p"),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "r.json").read_text())
    miou = report.get("miou_present", report.get("miou"))
    assert abs(miou - ref["miou_present"]) <= 0.005, (miou, ref["miou_present"])
    preds = np.load(shared_data / "reference" / "coral_deeplabv3_mnv2_pascal_quant_preds.npz")
    got = _labels_of(tmp_path / "p")
    agree = sum(int((got[k] == preds[k]).sum()) for k in preds.files) / sum(preds[k].size for k in preds.files)
    assert agree >= 0.99, agree


def test_export_shows_verification_progress_then_says_wrote(tiny, monkeypatch) -> None:
    """A bar over the verification images (~3 s each at 513 x 513), and "Wrote X" only after "verified ...": the
    file appears once its verification passed (one stream, as a terminal shows both)."""
    import io
    import sys

    _, ckpt, out = tiny
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stream)
    monkeypatch.setattr(sys, "stderr", stream)
    argv = ["export", "--checkpoint", str(ckpt), "--out", str(out / "order.onnx"), "--input-size", str(SIZE)]
    assert segkit_main([*argv, "--verify-images", "2"]) == 0
    text = stream.getvalue()
    assert "verifying in onnxruntime:" in text and "/2 [" in text  # the bar
    assert text.index("verified in onnxruntime on 2 image(s)") < text.index(f"Wrote {out / 'order.onnx'}")
