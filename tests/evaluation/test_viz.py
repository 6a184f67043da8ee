"""Palette PNGs, colour maps and overlays."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from segkit.data.classes import VOC_CLASSES, VOC_PALETTE, voc_colormap
from segkit.evaluation.viz import class_palette, colorize, legend_names, overlay, save_label_png, save_overlay


def test_voc_palette_is_the_standard_colormap():
    assert VOC_PALETTE.shape == (256, 3) and VOC_PALETTE.dtype == np.uint8
    assert VOC_PALETTE[:4].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]
    assert VOC_PALETTE[15].tolist() == [192, 128, 128]  # person
    assert VOC_PALETTE[255].tolist() == [224, 224, 192]  # VOC's boundary colour
    assert np.array_equal(voc_colormap(21), VOC_PALETTE[:21]) and len(VOC_CLASSES) == 21


def test_label_png_round_trips_exactly(tmp_path):
    rng = np.random.default_rng(0)
    label = rng.integers(0, 21, (33, 47)).astype(np.uint8)
    label[0, :] = 255
    path = tmp_path / "sub" / "mask.png"
    save_label_png(path, label, VOC_PALETTE[:21])
    img = Image.open(path)
    assert img.mode == "P"
    assert np.array_equal(np.array(img), label)
    assert np.array(img.getpalette()[: 21 * 3]).reshape(21, 3).tolist() == VOC_PALETTE[:21].tolist()
    assert [p.name for p in path.parent.iterdir()] == ["mask.png"]  # no temporary files left
    with pytest.raises(ValueError, match="0..255"):
        save_label_png(tmp_path / "bad.png", np.array([[300]]), VOC_PALETTE)


def test_colorize():
    label = np.array([[0, 1], [15, 255]], np.uint8)
    rgb = colorize(label, VOC_PALETTE)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert rgb[1, 0].tolist() == [192, 128, 128] and rgb[0, 1].tolist() == [128, 0, 0]


def test_overlay_blends_and_has_legend():
    image = np.full((60, 80, 3), 100, np.uint8)
    label = np.zeros((60, 80), np.uint8)
    label[10:30, 10:40] = 15  # person
    label[40:50, 50:70] = 12  # dog
    label[0, :] = 255
    out = overlay(image, label, VOC_PALETTE, VOC_CLASSES, alpha=0.5)
    assert out.mode == "RGB" and out.height >= 60 and out.width > 80  # legend on the right
    arr = np.array(out)
    assert arr[20, 20].tolist() == [146, 114, 114]  # 0.5 * 100 + 0.5 * (192, 128, 128), rounded
    assert arr[5, 5].tolist() == [100, 100, 100]  # background left as is
    assert arr[0, 5].tolist() == [100, 100, 100]  # ignore left as is
    legend = arr[:, 80:].reshape(-1, 3)
    for cls in (0, 12, 15, 255):  # a swatch per class present
        assert (legend == VOC_PALETTE[cls]).all(axis=1).sum() > 20, cls
    assert not (legend == VOC_PALETTE[1]).all(axis=1).any()  # absent class: no swatch
    assert (legend.sum(axis=1) < 100).sum() > 50  # dark text


def test_overlay_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match="must match"):
        overlay(np.zeros((10, 10, 3), np.uint8), np.zeros((10, 11), np.uint8), VOC_PALETTE, VOC_CLASSES)


def test_save_overlay_jpeg(tmp_path):
    image = np.zeros((40, 50, 3), np.uint8)
    label = np.ones((40, 50), np.uint8)
    path = tmp_path / "o.jpg"
    save_overlay(path, image, label, VOC_PALETTE, VOC_CLASSES)
    img = Image.open(path)
    assert img.format == "JPEG" and img.size == overlay(image, label, VOC_PALETTE, VOC_CLASSES).size
    assert [p.name for p in tmp_path.iterdir()] == ["o.jpg"]


def test_class_palette_and_legend_names_fall_back_to_voc():
    own = [[1, 2, 3], [4, 5, 6]]
    assert class_palette(2, None, own, [[9, 9, 9]]).tolist() == own  # the first given
    assert np.array_equal(class_palette(5), VOC_PALETTE[:5]) and class_palette(5).dtype == np.uint8
    assert legend_names(2, None, [], ["a", "b"]) == ["a", "b"]
    assert legend_names(21) == list(VOC_CLASSES) and legend_names(3) == ["class 0", "class 1", "class 2"]
