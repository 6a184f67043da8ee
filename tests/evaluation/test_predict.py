"""Prediction protocols (segkit.evaluation.predict): resize-longer / pad-to / crop-back, nearest resize, MF averaging."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segkit.config import load_config
from segkit.evaluation.predict import (
    MAX_PIXELS,
    MAX_SCALE,
    MF_SCALES,
    MIN_SCALE,
    InferenceError,
    denormalize,
    normalize,
    predict,
    predict_logits,
    resize_label,
    resized_extent,
    slide_windows,
)
from segkit.models import build_model

LEVELS = torch.tensor([-1.5, -0.5, 0.5, 1.5])  # channel-0 value of each class in the synthetic images


class PixelClassifier(nn.Module):
    """Predicts the class whose level is nearest to each pixel's channel 0: a label map aligned with the input."""

    def __init__(self, align_corners: bool = True) -> None:
        super().__init__()
        self.align_corners = align_corners
        self.inputs: list[Tensor] = []

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        self.inputs.append(x.clone())
        levels = LEVELS.to(x).view(1, -1, 1, 1)
        return {"out": -10.0 * (x[:, :1] - levels) ** 2}  # [N, 4, H, W]


class ConvModel(nn.Module):
    """A fixed random 3x3 conv; ``temperature_by_width`` makes the logit scale depend on the input size."""

    def __init__(self, num_classes: int = 5, align_corners: bool = True, temperature_by_width: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, num_classes, 3, padding=1)
        self.align_corners = align_corners
        self.temperature_by_width = temperature_by_width

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        out = self.conv(x)
        if self.temperature_by_width:
            out = out * (x.shape[-1] / 10.0) ** 2
        return {"out": out}


pytestmark = pytest.mark.usefixtures("one_thread")


def blocks_label(h: int, w: int) -> Tensor:
    """A label map [H, W] of rectangles of classes 0..3 (blocks of >= 10 px)."""
    label = torch.zeros(h, w, dtype=torch.long)
    label[5 : h // 2, 4 : w // 3] = 1
    label[h // 2 :, w // 2 :] = 2
    label[h // 3 : h - 4, w - 15 : w - 3] = 3
    return label


def image_of(label: Tensor) -> Tensor:
    """A normalised image [1, 3, H, W] whose channel 0 encodes ``label`` (other channels: noise)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 3, *label.shape, generator=g)
    x[0, 0] = LEVELS[label]
    return x


def interior(label: Tensor, radius: int) -> Tensor:
    """Pixels whose (2r+1)^2 neighbourhood holds one label only."""
    lab = label[None, None].float()
    k = 2 * radius + 1
    hi = F.max_pool2d(lab, k, stride=1, padding=radius)
    lo = -F.max_pool2d(-lab, k, stride=1, padding=radius)
    return (hi == lo)[0, 0]


def test_resized_extent() -> None:
    assert resized_extent((366, 500), 513) == (376, 513)
    assert resized_extent((100, 50), 64) == (64, 32)
    assert resized_extent((100, 50), None) == (100, 50)
    assert resized_extent((513, 400), 513) == (513, 400)
    assert resized_extent((1000, 1), 16) == (16, 1)


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize(
    ("resize_longer", "pad_to"), [(None, None), (None, 96), (112, None), (112, 128), (40, 48), (48, 32)]
)
def test_label_map_aligned_with_input(align_corners: bool, resize_longer: int | None, pad_to: int | None) -> None:
    gt = blocks_label(45, 70)
    model = PixelClassifier(align_corners)
    pred = predict(model, image_of(gt), gt.shape, resize_longer=resize_longer, pad_to=pad_to)
    assert pred.shape == (1, 45, 70) and pred.dtype == torch.long
    # resampling may move a boundary by a pixel or two, never more
    radius = 1 if resize_longer is None or resize_longer >= 70 else 2
    inside = interior(gt, radius)
    assert inside.float().mean() > 0.7
    assert torch.equal(pred[0][inside], gt[inside])


def test_pad_bottom_right_with_mean_pixel_and_crop_back() -> None:
    model = PixelClassifier()
    image = image_of(blocks_label(30, 60))
    logits = predict_logits(model, image, resize_longer=64, pad_to=80)
    assert logits.shape == (1, 4, 32, 64)  # the resized extent, padding cropped off
    seen = model.inputs[-1]
    assert seen.shape == (1, 3, 80, 80)
    expected = F.interpolate(image, size=(32, 64), mode="bilinear", align_corners=True)
    assert torch.allclose(seen[..., :32, :64], expected)  # image at the top-left
    assert (seen[..., 32:, :] == 0).all() and (seen[..., :, 64:] == 0).all()  # mean pixel below and right
    # pad_to smaller than the image pads nothing
    predict_logits(model, image, pad_to=16)
    assert model.inputs[-1].shape == (1, 3, 30, 60)
    # a custom pad value (e.g. TF's uint8 128 after [-1, 1] normalisation)
    predict_logits(model, image, pad_to=64, pad_value=0.5)
    assert (model.inputs[-1][..., 30:, :] == 0.5).all()


class PadDetector(nn.Module):
    """Class 1 wherever the input equals the sentinel padding value, class 0 elsewhere."""

    align_corners = False

    def forward(self, x: Tensor) -> Tensor:  # a plain tensor output is accepted too
        is_pad = (x[:, :1] == -100.0).float()
        return torch.cat([1 - is_pad, is_pad], dim=1)


def test_crop_back_removes_the_padding() -> None:
    image = torch.randn(2, 3, 37, 21)
    logits = predict_logits(PadDetector(), image, pad_to=64, pad_value=-100.0)
    assert logits.shape == (2, 2, 37, 21)
    assert (logits.argmax(1) == 0).all()
    pred = predict(PadDetector(), image, (37, 21), resize_longer=50, pad_to=64, pad_value=-100.0)
    assert pred.shape == (2, 37, 21) and (pred == 0).all()


def test_final_resize_is_nearest_to_the_target_size() -> None:
    model = ConvModel()
    image = torch.randn(1, 3, 30, 44)
    pred = predict(model, image, (61, 83), resize_longer=64, pad_to=64)
    logits = predict_logits(model, image, resize_longer=64, pad_to=64)
    assert logits.shape[-2:] == (44, 64)
    expected = F.interpolate(logits.argmax(1, keepdim=True).float(), size=(61, 83), mode="nearest-exact")[:, 0]
    assert torch.equal(pred, expected.long())
    assert set(pred.unique().tolist()) <= set(logits.argmax(1).unique().tolist())  # no blended labels


def test_single_scale_is_argmax_of_the_logits() -> None:
    model = ConvModel()
    image = torch.randn(2, 3, 24, 40)
    with torch.no_grad():
        expected = model(image)["out"].argmax(1)
    assert torch.equal(predict(model, image), expected)
    # a single non-unit scale: logits resized bilinearly to the input extent, then argmax
    small = F.interpolate(image, size=(12, 20), mode="bilinear", align_corners=True)
    with torch.no_grad():
        up = F.interpolate(model(small)["out"], size=(24, 40), mode="bilinear", align_corners=True)
    assert torch.equal(predict(model, image, (24, 40), scales=[0.5]), up.argmax(1))


@pytest.mark.parametrize("align_corners", [True, False])
def test_ms_flip_averages_softmax(align_corners: bool) -> None:
    model = ConvModel(align_corners=align_corners, temperature_by_width=True)
    image = torch.randn(1, 3, 20, 28)
    scales = (0.5, 1.0, 1.5)
    pred = predict(model, image, (20, 28), scales=scales, flip=True)

    def resize(x: Tensor, size: tuple[int, int]) -> Tensor:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=align_corners)

    probs, logit_sum = torch.zeros(1, 5, 20, 28), torch.zeros(1, 5, 20, 28)
    with torch.no_grad():
        for s in scales:
            x = resize(image, (round(20 * s), round(28 * s)))
            for flipped in (False, True):
                out = model(x.flip(-1))["out"].flip(-1) if flipped else model(x)["out"]
                out = resize(out, (20, 28))
                probs += out.softmax(1) / (2 * len(scales))
                logit_sum += out
    assert torch.equal(pred, probs.argmax(1))
    assert not torch.equal(pred, logit_sum.argmax(1))  # the test tells softmax from logit averaging


def test_flip_only_and_mf_scales() -> None:
    model = ConvModel()
    image = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        p = model(image)["out"].softmax(1) + model(image.flip(-1))["out"].flip(-1).softmax(1)
    assert torch.equal(predict(model, image, flip=True), p.argmax(1))
    assert MF_SCALES == (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


def test_runs_in_inference_mode() -> None:
    model = ConvModel()
    pred = predict(model, torch.randn(1, 3, 16, 16), scales=(0.75, 1.0))
    assert torch.is_inference(pred) and not pred.requires_grad
    assert all(p.grad is None for p in model.parameters())


def test_segmentor_with_every_protocol() -> None:
    cfg = load_config("voc_mnv2_os16", ["model.width_mult=0.35"])
    model = build_model(cfg).eval()
    image = torch.randn(1, 3, 37, 50)
    for kwargs in ({}, {"resize_longer": 64, "pad_to": 65}, {"scales": (0.75, 1.25), "flip": True}):
        pred = predict(model, image, (37, 50), **kwargs)
        assert pred.shape == (1, 37, 50) and int(pred.max()) < 21


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scales": []}, "scales"),
        ({"scales": [1.0, 0.0]}, "scales"),
        ({"resize_longer": 0}, "resize_longer"),
        ({"pad_to": -5}, "pad_to"),
        ({"target_size": (0, 5)}, "target_size"),
    ],
)
def test_invalid_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        predict(ConvModel(), torch.randn(1, 3, 8, 8), **kwargs)


def test_invalid_image_and_model_output() -> None:
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        predict(ConvModel(), torch.randn(3, 8, 8))
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        predict_logits(ConvModel(), torch.zeros(1, 3, 8, 8, dtype=torch.uint8))

    class Shrinks(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return x[..., ::2, ::2]

    with pytest.raises(ValueError, match="input size"):
        predict(Shrinks(), torch.randn(1, 3, 8, 8))


@pytest.mark.parametrize(
    ("mean", "std"), [([123.675, 116.28, 103.53], [58.395, 57.12, 57.375]), ([127.5] * 3, [127.5] * 3)]
)
def test_normalize_denormalize_roundtrip(mean: list[float], std: list[float]) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(7, 9, 3), dtype=np.uint8)
    x = normalize(image, mean, std)
    assert x.shape == (3, 7, 9) and x.dtype == torch.float32
    assert np.array_equal(denormalize(x, mean, std), image)
    assert np.array_equal(denormalize(x[None], mean, std), image)
    assert denormalize(x * 100, mean, std).dtype == np.uint8  # clipped, not wrapped
    with pytest.raises(ValueError, match=r"\[3, H, W\]"):
        denormalize(torch.zeros(2, 3, 4, 4), mean, std)


# -- size limits and the sliding window (issue 11 item 5) ----------------------------------------------


class PointwiseModel(nn.Module):
    """A 1x1 conv: each output pixel depends on its input pixel only, so windows give whole-image logits."""

    align_corners = False

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 6, 1)
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        self.shapes.append(tuple(x.shape))
        return {"out": self.conv(x)}


@pytest.mark.parametrize("scales", [[float("inf")], [1e9], [100.0], [float("nan")], [0.01]])
def test_scales_outside_the_range_are_refused(scales: list[float]) -> None:
    """Before: ``--scales 100`` ran out of memory, ``inf`` / ``1e9`` raised tracebacks from deep inside."""
    model = PointwiseModel()
    with pytest.raises(InferenceError, match=rf"\[{MIN_SCALE}, {MAX_SCALE}\]|positive factors"):
        predict(model, torch.zeros(1, 3, 8, 8), scales=scales)
    assert model.shapes == []  # refused before any forward pass


def test_pixel_budget_per_forward_pass() -> None:
    model = PointwiseModel()
    with pytest.raises(InferenceError, match=r"64x64 = 4,096 pixels exceeds the budget of 1,000.*--slide"):
        predict(model, torch.zeros(1, 3, 64, 64), max_pixels=1000)
    assert model.shapes == []
    assert predict(model, torch.zeros(1, 3, 64, 64), max_pixels=1000, slide=(31, 20)).shape == (1, 64, 64)
    assert max(s[-2] * s[-1] for s in model.shapes) <= 1000
    assert predict(model, torch.zeros(1, 3, 64, 64), max_pixels=None).shape == (1, 64, 64)  # no limit
    # Over the default budget: an 8000 x 8000 image is refused, not allocated through the model.
    with pytest.raises(InferenceError, match="budget"):
        predict_logits(model, torch.zeros(1, 3, 1, 1).expand(1, 3, 2049, 2049))


def test_default_budget_admits_voc_mf_at_os8() -> None:
    """The largest pass of the VOC recipe: MF (scale 1.75) of a 500x500 image padded to 513 (~875x875)."""
    model = PointwiseModel()
    predict(model, torch.zeros(1, 3, 500, 500), scales=MF_SCALES, flip=True, pad_to=513)
    assert max(s[-2] * s[-1] for s in model.shapes) == 875 * 875 <= MAX_PIXELS
    assert 1024 * 2048 <= MAX_PIXELS  # a Cityscapes image, whole


def test_slide_windows_as_mmseg() -> None:
    assert slide_windows((10, 10), 16, 8) == [(0, 10, 0, 10)]  # smaller than a window: itself
    assert slide_windows((20, 16), 16, 8) == [(0, 16, 0, 16), (4, 20, 0, 16)]  # the last window flush with the border
    windows = slide_windows((513, 700), 321, 200)
    cover = torch.zeros(513, 700)
    for y1, y2, x1, x2 in windows:
        assert y2 - y1 == 321 and x2 - x1 == 321
        cover[y1:y2, x1:x2] += 1
    assert cover.min() >= 1 and len(windows) == 2 * 3
    with pytest.raises(InferenceError, match="stride <= crop"):
        slide_windows((10, 10), 8, 9)


def test_slide_gives_the_whole_image_result() -> None:
    """Where the image fits in one window: identical; with a pointwise model, overlapping windows average to the
    whole-image logits exactly, under every protocol combination."""
    torch.manual_seed(0)
    cfg = load_config("voc_mnv2_os16", {"model.width_mult": 0.35})
    model = build_model(cfg).eval()
    x = torch.randn(1, 3, 45, 61)
    assert torch.equal(predict(model, x, slide=(64, 32)), predict(model, x))
    assert torch.equal(predict(model, x, slide=(64, 32), pad_to=64), predict(model, x, pad_to=64))
    point = PointwiseModel()
    big = torch.randn(2, 3, 97, 130)
    whole = predict_logits(point, big)
    slid = predict_logits(point, big, slide=(40, 25))
    assert len(point.shapes) == 1 + len(slide_windows((97, 130), 40, 25)) and point.shapes[-1][-2:] == (40, 40)
    torch.testing.assert_close(slid, whole, rtol=1e-5, atol=1e-5)
    for kwargs in ({}, {"scales": (0.75, 1.25), "flip": True}, {"resize_longer": 80, "pad_to": 48}):
        assert torch.equal(
            predict(point, big, (97, 130), slide=(40, 25), **kwargs), predict(point, big, (97, 130), **kwargs)
        )


@pytest.mark.parametrize(
    "size,target", [((5, 7), (13, 29)), ((40, 30), (17, 11)), ((8, 8), (8, 8)), ((3, 9), (300, 2))]
)
def test_resize_label_is_nearest_exact_without_float_copies(size: tuple[int, int], target: tuple[int, int]) -> None:
    label = torch.randint(0, 21, (2, *size), dtype=torch.uint8)
    expected = F.interpolate(label[:, None].float(), size=target, mode="nearest-exact")[:, 0].to(torch.uint8)
    out = resize_label(label, target)
    assert out.dtype == torch.uint8 and torch.equal(out, expected)


def test_slide_is_mmseg_slide_inference_and_streams_the_label_map() -> None:
    """Against a direct transcription of mmseg's slide_inference (logits summed, divided by the count), with a
    model whose windows disagree near their borders; predict's band-by-band argmax gives the same label map."""
    model = ConvModel(align_corners=False)
    x = torch.randn(2, 3, 70, 93)
    crop, stride = 32, 20
    total, count = torch.zeros(2, 5, 70, 93), torch.zeros(1, 1, 70, 93)
    h_grids, w_grids = (max(n - crop + stride - 1, 0) // stride + 1 for n in (70, 93))
    for hi in range(h_grids):
        for wi in range(w_grids):
            y2, x2 = min(hi * stride + crop, 70), min(wi * stride + crop, 93)
            y1, x1 = max(y2 - crop, 0), max(x2 - crop, 0)
            total[..., y1:y2, x1:x2] += model(x[..., y1:y2, x1:x2])["out"]
            count[..., y1:y2, x1:x2] += 1
    reference = total / count
    with torch.inference_mode():
        logits = predict_logits(model, x, slide=(crop, stride))
    torch.testing.assert_close(logits, reference, rtol=0, atol=1e-6)
    assert not torch.allclose(logits, predict_logits(model, x), atol=1e-3)  # the windows do change the logits
    label = predict(model, x, (140, 186), slide=(crop, stride))
    assert torch.equal(label, resize_label(logits.argmax(1), (140, 186)))
