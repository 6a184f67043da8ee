"""Antialiased shrinking (eval.antialias / --antialias) of the prediction protocols' input resizes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from segkit.checkpoint.format import save_checkpoint
from segkit.checkpoint.load import load_eval_model
from segkit.cli import main
from segkit.config import ConfigError, load_config
from segkit.data.classes import VOC_CLASSES, VOC_PALETTE
from segkit.evaluation.predict import normalize, predict, predict_logits
from segkit.models import build_model


class Echo(nn.Module):
    """Returns its input as 3-class "logits": predict_logits then returns the resized image itself."""

    def __init__(self, align_corners: bool) -> None:
        super().__init__()
        self.align_corners = align_corners

    def forward(self, x: Tensor) -> Tensor:
        return x


def aligned_reference(x: np.ndarray, n_out: int) -> np.ndarray:
    """Antialiased align-corners shrink of the last axis, pixel by pixel (triangle as wide as the step)."""
    n_in = x.shape[-1]
    step = (n_in - 1) / (n_out - 1)
    out = np.zeros((*x.shape[:-1], n_out))
    for i in range(n_out):
        w = np.maximum(0.0, 1 - np.abs(np.arange(n_in) - i * step) / max(step, 1.0))
        out[..., i] = (x * w).sum(-1) / w.sum()
    return out


def test_antialias_shrink_matches_torch_without_align_corners() -> None:
    x = torch.rand(1, 3, 60, 80)
    got = predict_logits(Echo(False), x, resize_longer=32, antialias=True)
    ref = F.interpolate(x, size=(24, 32), mode="bilinear", align_corners=False, antialias=True)
    plain = predict_logits(Echo(False), x, resize_longer=32)
    assert torch.allclose(got, ref, atol=1e-6)
    assert torch.allclose(plain, F.interpolate(x, size=(24, 32), mode="bilinear", align_corners=False))
    assert (got - plain).abs().max() > 0.05  # it changes what the model sees


def test_antialias_shrink_with_align_corners_keeps_the_grid() -> None:
    torch.manual_seed(0)
    x = torch.rand(1, 3, 41, 61, dtype=torch.float64)
    got = predict_logits(Echo(True), x, resize_longer=21, antialias=True)  # 41x61 -> 14x21
    ref = aligned_reference(aligned_reference(x.numpy(), 21).swapaxes(-1, -2), 14).swapaxes(-1, -2)
    assert got.shape[-2:] == (14, 21) and np.allclose(got.numpy(), ref, atol=1e-9)
    # a ramp stays on the align-corners positions away from the borders (plain bilinear is exact there)
    ramp = torch.arange(61, dtype=torch.float64).expand(1, 3, 41, 61).contiguous()
    aa = predict_logits(Echo(True), ramp, resize_longer=21, antialias=True)
    assert torch.allclose(aa[..., 2:-2], (torch.arange(21, dtype=torch.float64) * 3.0)[2:-2].expand_as(aa[..., 2:-2]))
    # a checkerboard is averaged away; plain bilinear aliases it
    board = ((torch.arange(41)[:, None] + torch.arange(61)) % 2).double().expand(1, 3, 41, 61)
    smooth = predict_logits(Echo(True), board, resize_longer=21, antialias=True)[..., 1:-1, 1:-1]
    aliased = predict_logits(Echo(True), board, resize_longer=21)[..., 1:-1, 1:-1]
    assert (smooth - 0.5).abs().max() < 0.1 and (aliased - 0.5).abs().max() > 0.4


@pytest.mark.parametrize("align_corners", [False, True])
def test_antialias_does_nothing_unless_shrinking(align_corners: bool) -> None:
    x = torch.rand(1, 3, 30, 40)
    model = Echo(align_corners)
    for kw in ({"resize_longer": 64}, {"resize_longer": 40}, {}):
        assert torch.equal(predict_logits(model, x, antialias=True, **kw), predict_logits(model, x, **kw))
    label = predict(model, x, scales=(1.0, 1.5), flip=True, antialias=True)
    assert torch.equal(label, predict(model, x, scales=(1.0, 1.5), flip=True))
    # MF scales below 1 shrink: those inputs are low-passed
    assert not torch.equal(predict(model, x, scales=(0.5,), antialias=True), predict(model, x, scales=(0.5,)))


def test_config_antialias_default_and_validation() -> None:
    assert load_config("voc_mnv2_os16").eval.antialias is False
    assert load_config("voc_mnv2_os16", ["eval.antialias=true"]).eval.antialias is True
    with pytest.raises(ConfigError, match="eval.antialias"):
        load_config("voc_mnv2_os16", ["eval.antialias=3"])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 48x64 images in a VOC-layout tree and a width-0.35 model reading it."""
    root = tmp_path_factory.mktemp("voc")
    base = root / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (base / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(base / "JPEGImages" / f"{name}.jpg")
        Image.fromarray(rng.integers(0, 21, (48, 64), dtype=np.uint8)).save(base / "SegmentationClass" / f"{name}.png")
    (base / "ImageSets" / "Segmentation" / "val.txt").write_text("a\nb\n")
    cfg = load_config(
        "voc_mnv2_os16", {"model.width_mult": 0.35, "data.root": str(root), "data.num_workers": 0, "eval.pad_to": None}
    )
    torch.manual_seed(0)
    path = root / "model.pth"
    save_checkpoint(path, build_model(cfg).eval(), cfg, class_names=list(VOC_CLASSES), palette=VOC_PALETTE[:21])
    return path


@pytest.mark.slow
def test_cli_antialias_reaches_the_protocol_and_the_report(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import segkit.evaluation.evaluator
    import segkit.evaluation.image

    calls: list[dict] = []

    def recording(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(kwargs)
        return predict(*args, **kwargs)

    monkeypatch.setattr(segkit.evaluation.evaluator, "predict", recording)
    monkeypatch.setattr(segkit.evaluation.image, "predict", recording)  # segkit infer's label maps
    reports = {}
    for name, extra in (("plain", []), ("aa", ["--antialias"])):
        out = tmp_path / f"{name}.json"
        rc = main(
            [
                "test",
                "--checkpoint",
                str(checkpoint),
                "--json",
                str(out),
                "--no-progress",
                "--device",
                "cpu",
                "--resize-longer",
                "32",
                *extra,
            ]
        )
        assert rc == 0, capsys.readouterr().err
        reports[name] = json.loads(out.read_text())
    assert reports["aa"]["protocol"]["antialias"] is True and "antialias" not in reports["plain"]["protocol"]
    assert reports["aa"]["protocol"]["resize_longer"] == 32
    assert calls[-1]["antialias"] is True and "antialias" not in calls[0]  # what evaluate() passed to predict()

    image_path = checkpoint.parent / "VOCdevkit" / "VOC2012" / "JPEGImages" / "a.jpg"
    rc = main(
        [
            "infer",
            "--checkpoint",
            str(checkpoint),
            "--input",
            str(image_path),
            "--output",
            str(tmp_path / "o"),
            "--resize-longer",
            "32",
            "--antialias",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    assert calls[-1]["antialias"] is True and calls[-1]["resize_longer"] == 32
    model, cfg = load_eval_model(checkpoint)
    image = np.asarray(Image.open(image_path).convert("RGB"))
    x = normalize(image, cfg.model.input_mean, cfg.model.input_std)[None]
    expected = predict(model, x, image.shape[:2], resize_longer=32, antialias=True)[0].numpy()
    assert np.array_equal(np.array(Image.open(tmp_path / "o" / "a.png")), expected)
