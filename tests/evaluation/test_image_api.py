"""The one-call Python API: ``segkit.load_model(ckpt).predict(image)`` on a path, a PIL image or an RGB uint8 array,
under the checkpoint's own protocol and normalisation, with optional class probabilities."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image

import segkit
from segkit.errors import SegkitError
from segkit.evaluation.command import segment
from segkit.evaluation.image import predict_image
from segkit.evaluation.predict import InferenceError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> tuple[np.ndarray, object]:
    """An RGB uint8 image of 37x53 (odd sides, not a multiple of the stride) and its PNG file."""
    rgb = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    path = tmp_path_factory.mktemp("photo") / "photo.png"
    Image.fromarray(rgb).save(path)
    return rgb, path


def test_path_pil_and_array_give_one_label_map_at_the_image_size(tiny_ckpt, photo) -> None:
    rgb, path = photo
    model = segkit.load_model(tiny_ckpt)
    labels = model.predict(rgb)
    assert labels.shape == (37, 53) and labels.dtype == np.uint8
    assert labels.max() < model.segkit_config.model.num_classes
    np.testing.assert_array_equal(model.predict(path), labels)
    np.testing.assert_array_equal(model.predict(str(path)), labels)
    with Image.open(path) as img:
        np.testing.assert_array_equal(model.predict(img), labels)
    # the same as segkit infer's segment()
    np.testing.assert_array_equal(labels, segment(model, rgb, model.segkit_config, "cpu"))


@pytest.mark.parametrize(
    "protocol",
    [
        {},
        {"eval.resize_longer": 32, "eval.pad_to": 32},
        {"eval.scales": [0.75, 1.0], "eval.flip": True},
        {"eval.slide": [32, 16]},
    ],
    ids=["whole", "resize-pad", "ms-flip", "slide"],
)
def test_the_checkpoints_protocol_applies_and_probs_agree(tiny_ckpt, photo, protocol) -> None:
    rgb, _ = photo
    model = segkit.load_model(tiny_ckpt, overrides=protocol)
    labels = model.predict(rgb)
    np.testing.assert_array_equal(labels, segment(model, rgb, model.segkit_config, "cpu"))
    labels2, probs = model.predict(rgb, probs=True)
    c = model.segkit_config.model.num_classes
    assert probs.shape == (c, 37, 53) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-4)
    np.testing.assert_array_equal(labels2, labels)


class _Recorder(torch.nn.Module):
    """Two classes: 1 where the normalised red channel is positive; records the input sizes it sees."""

    align_corners = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, int]] = []
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        self.seen.append(tuple(x.shape[-2:]))
        red = x[:, :1] * 10
        return {"out": torch.cat([-red, red], 1)}


def test_protocol_and_normalisation_come_from_the_config(tiny_ckpt) -> None:
    rgb = np.zeros((37, 53, 3), np.uint8)
    rgb[:, :20, 0] = 150  # red 150 on the left, 50 on the right
    rgb[:, 20:, 0] = 50
    cfg = segkit.load_model(tiny_ckpt, overrides={"eval.resize_longer": 26, "eval.pad_to": 32}).segkit_config
    cfg.model.input_mean = [100.0, 0.0, 0.0]  # the config's normalisation is applied
    cfg.model.input_std = [1.0, 1.0, 1.0]
    model = _Recorder()
    labels = predict_image(model, rgb, cfg=cfg)
    assert model.seen == [(32, 32)]  # resized to 26 (longer side 53 -> 26), padded to 32
    assert labels.shape == (37, 53)
    assert (labels[:, :18] == 1).all() and (labels[:, 22:] == 0).all()  # red above the configured mean: class 1
    cfg.eval.scales, cfg.eval.flip = [0.5, 1.0], True
    model.seen.clear()
    _, probs = predict_image(model, rgb, cfg=cfg, probs=True)
    assert len(model.seen) == 4 and probs.shape == (2, 37, 53)  # 2 scales x (plain, flipped)


def test_bad_images_are_one_line_errors(tiny_ckpt, photo, tmp_path) -> None:
    model = segkit.load_model(tiny_ckpt)
    rgb, _ = photo
    for bad in (rgb.astype(np.float32), rgb[..., 0], torch.zeros(3, 8, 8)):
        with pytest.raises(InferenceError) as info:
            model.predict(bad)
        assert "\n" not in str(info.value)
    with pytest.raises(SegkitError, match="not found"):
        model.predict(tmp_path / "missing.jpg")


def test_predict_survives_deepcopy_and_fast(tiny_ckpt, photo) -> None:
    rgb, _ = photo
    model = segkit.load_model(tiny_ckpt)
    labels = model.predict(rgb)
    np.testing.assert_array_equal(copy.deepcopy(model).predict(rgb), labels)
    fast = segkit.load_model(tiny_ckpt, fast=True)
    assert (fast.predict(rgb) == labels).mean() > 0.99  # BN folded: the same up to float rounding


def test_a_model_without_a_checkpoint_says_how(tiny_ckpt, photo) -> None:
    cfg = segkit.load_model(tiny_ckpt).segkit_config
    model = segkit.build_model(cfg).eval()
    with pytest.raises(NotImplementedError, match="segkit.load_model"):
        model.predict(photo[0])
    assert predict_image(model, photo[0], cfg=cfg).shape == (37, 53)  # the function, with the config given
