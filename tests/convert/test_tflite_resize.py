"""``model.resize_mode``: TF's legacy bilinear resize (the ADE20K file's) as a model setting, carried by checkpoints,
set by the TFLite converter from the graph's RESIZE_BILINEAR flags, and exportable to ONNX."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import segkit
from segkit.config import ConfigError, ModelConfig
from segkit.models.resize import legacy_resize_bilinear, resize_bilinear

TINY_PLUS = ("model.width_mult=0.35", "model.decoder=deeplabv3plus", "model.num_classes=5")


def _legacy_weights(n_in: int, n_out: int) -> np.ndarray:
    """TF1 resize_bilinear(align_corners=False) along one axis: output i samples the input at i * in / out."""
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        src = i * n_in / n_out
        lo = int(np.floor(src))
        hi = min(lo + 1, n_in - 1)
        m[i, lo] += 1 - (src - lo)
        m[i, hi] += src - lo
    return m


@pytest.mark.parametrize("size", [(20, 12), (4, 9), (5, 7)])  # up, mixed, identity
def test_legacy_resize_samples_at_i_times_in_over_out(size: tuple[int, int]) -> None:
    x = torch.randn(1, 2, 5, 7, dtype=torch.float64)
    expected = np.einsum("hy,ncyx,wx->nchw", _legacy_weights(5, size[0]), x.numpy(), _legacy_weights(7, size[1]))
    np.testing.assert_allclose(legacy_resize_bilinear(x, size).numpy(), expected, atol=1e-12)
    np.testing.assert_allclose(resize_bilinear(x, size, align_corners=False, mode="tf_legacy").numpy(), expected)
    pytorch = resize_bilinear(x, size, align_corners=False)
    assert torch.equal(pytorch, F.interpolate(x, size=size, mode="bilinear", align_corners=False))


def test_default_is_pytorch_and_tf_legacy_needs_align_corners_false() -> None:
    assert ModelConfig().resize_mode == "pytorch"
    cfg = segkit.load_config("voc_mnv2_os16", ["model.resize_mode=tf_legacy", "model.align_corners=false"])
    assert cfg.model.resize_mode == "tf_legacy"
    with pytest.raises(ConfigError, match=r"model.align_corners: got True; allowed: false with model.resize_mode"):
        segkit.load_config("voc_mnv2_os16", ["model.resize_mode=tf_legacy"])
    with pytest.raises(ConfigError, match="tf_legacy"):  # a typo names the valid values
        segkit.load_config("voc_mnv2_os16", ["model.resize_mode=tf-legacy"])


def _model(mode: str) -> torch.nn.Module:
    overrides = [*TINY_PLUS, "model.align_corners=false", f"model.resize_mode={mode}"]
    torch.manual_seed(0)
    model = segkit.build_model(segkit.load_config("voc_mnv2_os16", overrides)).eval()
    for m in model.modules():  # non-trivial statistics, so the logits vary over the image
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.05, 0.5)
    return model


def test_the_mode_reaches_the_decoder_and_the_final_upsampling() -> None:
    legacy, pytorch = _model("tf_legacy"), _model("pytorch")
    pytorch.load_state_dict(legacy.state_dict())
    assert legacy.resize_mode == legacy.head.decoder.resize_mode == "tf_legacy"
    x = torch.randn(1, 3, 64, 64)
    seen = {}
    legacy.head.classifier.register_forward_hook(lambda m, i, o: seen.setdefault("logits", o))
    with torch.no_grad():
        out = legacy(x)["out"]
        other = pytorch(x)["out"]
    assert torch.allclose(out, legacy_resize_bilinear(seen["logits"], (64, 64)), atol=1e-6)
    assert not torch.allclose(out, other, atol=1e-4)  # the mode changes the function


def test_checkpoints_carry_the_mode(tmp_path: Path) -> None:
    from segkit.checkpoint.format import save_checkpoint

    model = _model("tf_legacy")
    path = tmp_path / "legacy.pth"
    cfg = segkit.load_config("voc_mnv2_os16", [*TINY_PLUS, "model.align_corners=false", "model.resize_mode=tf_legacy"])
    save_checkpoint(path, model, cfg)
    assert segkit.load_model(path).resize_mode == "tf_legacy"
    # a checkpoint written before the field existed loads with the old behaviour
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    del ckpt["config"]["model"]["resize_mode"]
    torch.save(ckpt, tmp_path / "old.pth")
    assert segkit.load_model(tmp_path / "old.pth").resize_mode == "pytorch"


@pytest.mark.slow  # exports to ONNX and runs it
def test_a_tf_legacy_model_exports_to_onnx_and_verifies(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'segkit-deeplab[deploy]')")
    from segkit.export import export_onnx, verify

    model = _model("tf_legacy")
    path = tmp_path / "legacy.onnx"
    export_onnx(model, path, input_size=(64, 64))
    report = verify(model, path)
    assert report.passed(), report
