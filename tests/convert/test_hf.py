"""Hugging Face MobileNetV2 models -> segkit (``segkit.convert.hf``), checked against transformers itself.

Each architecture is built by ``transformers`` (a dev-only dependency: skipped without it) from a config, with
random weights and random BN statistics, saved as ``save_pretrained`` does (``model.safetensors``) or as a
``pytorch_model.bin``, converted by segkit (which never imports transformers), and run on the same inputs.
No network: ``hf:ID`` is tested offline only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from segkit.convert.hf import HFConversionError, convert_hf, load_hf_model, read_safetensors

transformers = pytest.importorskip("transformers", reason="transformers (dev extra) builds the reference models")

pytestmark = pytest.mark.usefixtures("one_thread")
TOL = 1e-4


def _randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights and random BN statistics, so that eps, statistics and the conv/BN pairing all matter
    (transformers' own initialisation gives near-constant logits, which would hide a misplaced tensor)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
    return model.eval()


def _segmentor(folder: Path, *, output_stride: int = 8, width: float = 0.5, num_labels: int = 5, **extra):
    config = transformers.MobileNetV2Config(
        num_labels=num_labels,
        output_stride=output_stride,
        depth_multiplier=width,
        architectures=["MobileNetV2ForSemanticSegmentation"],
        **extra,
    )
    torch.manual_seed(0)
    model = _randomise(transformers.MobileNetV2ForSemanticSegmentation(config))
    model.save_pretrained(folder)
    return model


def _classifier(folder: Path, *, width: float, num_labels: int = 1001):
    config = transformers.MobileNetV2Config(
        num_labels=num_labels, depth_multiplier=width, architectures=["MobileNetV2ForImageClassification"]
    )
    torch.manual_seed(1)
    model = _randomise(transformers.MobileNetV2ForImageClassification(config), seed=1)
    model.save_pretrained(folder)
    return model


def _as_bin(folder: Path) -> None:
    """Replace model.safetensors by pytorch_model.bin (tensors only), as older Hub repos hold."""
    state = read_safetensors(folder / "model.safetensors")
    torch.save(state, folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()


@pytest.mark.parametrize("weights", ["safetensors", "bin"])
@pytest.mark.parametrize("output_stride", [8, 16])
def test_segmentor_logits_equal_transformers(tmp_path: Path, output_stride: int, weights: str) -> None:
    """OS 8 and 16, an odd and an even input size (TF 'SAME' padding differs only there): logits within 1e-4."""
    reference = _segmentor(tmp_path, output_stride=output_stride)
    if weights == "bin":
        _as_bin(tmp_path)
    conversion = load_hf_model(tmp_path)
    model = conversion.model
    assert conversion.kind == "segmentor" and model.backbone.output_stride == output_stride
    assert conversion.config.model.tf_same_padding and conversion.config.model.bn_eps == pytest.approx(1e-3)
    gen = torch.Generator().manual_seed(2)
    for size in ((65, 65), (64, 78)):
        x = torch.randn(2, 3, *size, generator=gen)
        with torch.no_grad():
            ref = reference(x).logits  # [N, C, h, w] at the feature resolution
            features = model.backbone(x)
            ours = model.head(features[model.head_in])
            full = model(x)["out"]
        assert ours.shape == ref.shape and ref.std(dim=(2, 3)).mean() > 0.1  # logits vary across the image
        assert (ours - ref).abs().max() <= TOL, (size, (ours - ref).abs().max())
        upsampled = F.interpolate(ref, size=size, mode="bilinear", align_corners=True)  # TF DeepLab's resize
        assert (full - upsampled).abs().max() <= TOL


def test_segmentor_runs_at_another_output_stride(tmp_path: Path) -> None:
    """The same weights built at OS16 from an OS8 config equal transformers' OS16 model with those weights."""
    _segmentor(tmp_path / "os8", output_stride=8)
    reference = transformers.MobileNetV2ForSemanticSegmentation.from_pretrained(tmp_path / "os8", output_stride=16)
    conversion = load_hf_model(tmp_path / "os8", output_stride=16)
    assert conversion.config.model.output_stride == 16 and any("output stride 16" in n for n in conversion.notes)
    x = torch.randn(1, 3, 65, 65)
    with torch.no_grad():
        ours = conversion.model.head(conversion.model.backbone(x)[conversion.model.head_in])
        assert (ours - reference.eval()(x).logits).abs().max() <= TOL


@pytest.mark.parametrize(("width", "size"), [(1.4, 64), (1.0, 64), (0.75, 65), (0.35, 96)])
def test_imagenet_classifiers_equal_transformers(tmp_path: Path, width: float, size: int) -> None:
    """The four ImageNet widths (1001 classes with background): logits within 1e-4, the same top-1."""
    reference = _classifier(tmp_path, width=width)
    conversion = load_hf_model(tmp_path)
    assert conversion.kind == "classifier" and conversion.config.model.num_classes == 1001
    assert conversion.config.model.width_mult == pytest.approx(width)
    x = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref, ours = reference(x).logits, conversion.model(x)
    assert (ours - ref).abs().max() <= TOL
    assert torch.equal(ours.argmax(1), ref.argmax(1))


def test_checkpoint_loads_with_class_names_and_source(tmp_path: Path) -> None:
    import segkit

    reference = _segmentor(tmp_path / "hf", num_labels=3, id2label={0: "background", 1: "cat", 2: "dog"})
    out = tmp_path / "seg.pth"
    convert_hf(tmp_path / "hf", out)
    ckpt = torch.load(out, map_location="cpu", weights_only=True)
    assert ckpt["kind"] == "segmentor" and ckpt["class_names"] == ["background", "cat", "dog"]
    assert ckpt["source"]["converter"] == "segkit.convert.hf" and ckpt["source"]["file"] == "model.safetensors"
    assert len(ckpt["source"]["sha256"]) == 64
    model = segkit.load_model(out)
    x = torch.randn(1, 3, 33, 33)
    with torch.no_grad():
        expected = F.interpolate(reference(x).logits, size=(33, 33), mode="bilinear", align_corners=True)
        assert (model(x)["out"] - expected).abs().max() <= TOL
    assert "transformers" not in {m.split(".")[0] for m in _segkit_imports()}


def _segkit_imports() -> set[str]:
    """Modules segkit.convert.hf's source imports (transformers must not be one)."""
    import ast

    names = set()
    for path in Path(sys.modules["segkit.convert.hf"].__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
    return names


def test_converted_classifier_initialises_training(tmp_path: Path) -> None:
    """A converted ImageNet classifier is a train.init_weights file: every backbone tensor loads into a segmentor."""
    from segkit.checkpoint.load import load_state_into
    from segkit.config import ModelConfig
    from segkit.models import build_model

    _classifier(tmp_path / "hf", width=0.35)
    out = tmp_path / "mnv2.pth"
    conversion = convert_hf(tmp_path / "hf", out)
    segmentor = build_model(ModelConfig(width_mult=0.35, tf_same_padding=True, bn_eps=1e-3, num_classes=4))
    lines: list[str] = []
    report = load_state_into(segmentor, str(out), log=lines.append)
    backbone = segmentor.backbone.state_dict()
    assert report.loaded == len(backbone) and lines
    for key, value in backbone.items():
        assert torch.equal(value, conversion.model.state_dict()[key]), key


def test_pickled_bin_is_refused_unread(tmp_path: Path) -> None:
    import argparse

    _classifier(tmp_path, width=0.35, num_labels=3)
    state = read_safetensors(tmp_path / "model.safetensors")
    (tmp_path / "model.safetensors").unlink()
    torch.save({"state": state, "args": argparse.Namespace(lr=1)}, tmp_path / "pytorch_model.bin")  # pickles an object
    with pytest.raises(HFConversionError, match=r"weights_only=True.*model\.safetensors") as info:
        load_hf_model(tmp_path)
    assert "\n" not in str(info.value)


def test_folders_segkit_cannot_read_say_why(tmp_path: Path) -> None:
    with pytest.raises(HFConversionError, match="not found"):
        load_hf_model(tmp_path / "missing")
    with pytest.raises(HFConversionError, match="no config.json"):
        load_hf_model(tmp_path)
    _segmentor(tmp_path, num_labels=3)
    config = json.loads((tmp_path / "config.json").read_text())

    def fails(match: str, **changes) -> None:
        (tmp_path / "config.json").write_text(json.dumps({**config, **changes}))
        with pytest.raises(HFConversionError, match=match) as info:
            load_hf_model(tmp_path)
        assert "\n" not in str(info.value)

    fails("architecture 'MobileNetV2Model'", architectures=["MobileNetV2Model"])
    fails("model_type 'resnet'", model_type="resnet")
    fails("expand_ratio=4", expand_ratio=4)
    fails(r"has shape .* depth_multiplier", depth_multiplier=1.0)
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(HFConversionError, match="not a readable safetensors file"):
        load_hf_model(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(HFConversionError, match="no weights file"):
        load_hf_model(tmp_path)


def test_hub_id_offline_says_how_to_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = pytest.importorskip("huggingface_hub")
    monkeypatch.setattr(hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(HFConversionError) as info:
        convert_hf("hf:google/deeplabv3_mobilenet_v2_1.0_513", tmp_path / "out.pth", local_dir=tmp_path / "dl")
    message = str(info.value)
    assert message.startswith("Cannot download hf:google/deeplabv3_mobilenet_v2_1.0_513") and "\n" not in message
    assert "hf download google/deeplabv3_mobilenet_v2_1.0_513 --local-dir" in message
    assert not (tmp_path / "out.pth").exists()
    with pytest.raises(HFConversionError, match="not a Hub id"):
        load_hf_model("hf:deeplab")


def test_segkit_convert_reads_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from segkit.cli import main

    _segmentor(tmp_path / "hf", num_labels=3)
    out = tmp_path / "seg.pth"
    assert main(["convert", str(tmp_path / "hf"), str(out), "--output-stride", "16"]) == 0
    printed, err = capsys.readouterr()
    assert "transformers MobileNetV2" in printed and "output stride 16" in printed
    assert f"Wrote segmentor checkpoint {out}" in err
    assert torch.load(out, map_location="cpu", weights_only=True)["config"]["model"]["output_stride"] == 16
    assert main(["convert", str(tmp_path / "hf"), str(out), "--labels", str(tmp_path / "labels.txt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--labels applies to .tflite files" in err


def test_convert_help_lists_every_source(capsys: pytest.CaptureFixture) -> None:
    from segkit.cli.convert import build_parser

    text = " ".join(build_parser().format_help().split())
    for source in (".tflite file", "Hugging Face model folder", "hf:ORG/NAME", "zoo:NAME"):
        assert source in text, source
