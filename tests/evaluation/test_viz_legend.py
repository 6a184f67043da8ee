"""Overlays readable on any photo: the default alpha, contours at class boundaries, a legend sized to the image in
as many columns as it needs, and a standalone legend of every class (150 for ADE20K)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segkit.data.classes import VOC_CLASSES, VOC_PALETTE
from segkit.evaluation.style import CONTOURS, DEFAULT_ALPHA, DEFAULT_CONTOUR
from segkit.evaluation.viz import (
    contour_mask,
    contour_thickness,
    legend_font_size,
    legend_image,
    overlay,
    save_legend,
)

PERSON, DOG = 15, 12


def scene(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """A grey image with a person box and a dog box (VOC classes)."""
    image = np.full((h, w, 3), 100, np.uint8)
    label = np.zeros((h, w), np.uint8)
    label[h // 4 : h // 2, w // 4 : w // 2] = PERSON
    label[h * 2 // 3 : h * 5 // 6, w * 2 // 3 : w * 5 // 6] = DOG
    return image, label


def rgb_codes(panel: np.ndarray) -> np.ndarray:
    """One int per pixel (0xRRGGBB), to find a colour with one comparison."""
    p = panel.astype(np.int32)
    return (p[..., 0] << 16) | (p[..., 1] << 8) | p[..., 2]


def swatch_box(panel: np.ndarray, colour: np.ndarray, codes: np.ndarray | None = None) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the pixels of ``colour`` in ``panel`` (one swatch)."""
    codes = rgb_codes(panel) if codes is None else codes
    ys, xs = np.nonzero(codes == rgb_codes(np.asarray(colour).reshape(1, 1, 3))[0, 0])
    assert ys.size, colour
    return int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())


def test_the_default_alpha_is_applied() -> None:
    image, label = scene(60, 80)
    arr = np.array(overlay(image, label, VOC_PALETTE, VOC_CLASSES))  # alpha not given: DEFAULT_ALPHA
    expected = np.floor((1 - DEFAULT_ALPHA) * 100 + DEFAULT_ALPHA * VOC_PALETTE[PERSON].astype(float) + 0.5)
    assert DEFAULT_ALPHA == 0.6 and arr[20, 25].tolist() == expected.tolist()
    assert arr[2, 2].tolist() == [100, 100, 100]  # background left as is


@pytest.mark.parametrize("size", [(300, 400), (1500, 2000)])
def test_the_legend_scales_with_the_image(size: tuple[int, int]) -> None:
    h, w = size
    image, label = scene(h, w)
    out = np.array(overlay(image, label, VOC_PALETTE, VOC_CLASSES))
    assert out.shape[0] == h  # the legend fits beside the image
    legend = out[:, w:]
    font = legend_font_size(h, w)
    assert font == max(12, round(0.025 * min(h, w)))  # 12 px at 400x300, 38 px at 2000x1500
    top, bottom, left, right = swatch_box(legend, VOC_PALETTE[PERSON])
    inner = font - 2 * max(1, font // 16)  # the swatch is as high as the text, inside its black outline
    assert bottom - top + 1 == inner and right - left + 1 == inner
    text = legend.sum(axis=2) < 150  # dark text pixels
    assert text.sum() > 10 * font  # three names written
    assert legend.shape[1] > 4 * font  # swatch and name side by side


def test_legend_size_is_proportional_between_a_small_and_a_large_image() -> None:
    widths = []
    for h, w in ((800, 1000), (2400, 3000)):
        image, label = scene(h, w)
        widths.append(overlay(image, label, VOC_PALETTE, VOC_CLASSES).width - w)
    assert 2.6 < widths[1] / widths[0] < 3.4  # three times the image, three times the legend


@pytest.mark.parametrize("contour", ["white", "class"])
def test_contours_are_drawn_at_class_boundaries(contour: str) -> None:
    h, w = 1000, 1000
    image, label = scene(h, w)
    thickness = contour_thickness(h, w)
    assert thickness == 4  # 0.4% of the shorter side
    arr = np.array(overlay(image, label, VOC_PALETTE, VOC_CLASSES, alpha=0.0, contour=contour))[:, :w]
    top, left = h // 4, w // 4  # the person box's corner
    row = arr[h // 3]  # a row through the person box: background | boundary | person | boundary | background
    colour = [255, 255, 255] if contour == "white" else VOC_PALETTE[PERSON].tolist()
    assert row[left].tolist() == colour and row[left + 1].tolist() == colour  # the class side of the boundary
    assert row[left + thickness + 2].tolist() == [100, 100, 100]  # inside: alpha 0 leaves the photo
    assert row[w // 8].tolist() == [100, 100, 100]  # far outside
    background_side = row[left - 1].tolist()
    assert background_side == (colour if contour == "white" else [100, 100, 100])  # white on both sides
    assert arr[top, w // 3].tolist() == colour  # the top edge too
    drawn = (arr == colour).all(axis=2)
    assert drawn.sum() > 4 * (h // 4) * 1.5  # the box's outline, several pixels thick (the person's colour: one box)
    assert not drawn[h // 3 + 10 : h // 2 - 10, w // 4 + 10 : w // 2 - 10].any()  # nothing inside


def test_contour_mask_marks_both_sides_of_a_boundary() -> None:
    label = np.zeros((8, 8), np.uint8)
    label[:, 4:] = 1
    assert np.nonzero(contour_mask(label, 1).any(axis=0))[0].tolist() == [3, 4]
    assert np.nonzero(contour_mask(label, 3).any(axis=0))[0].tolist() == [2, 3, 4, 5]
    assert not contour_mask(np.zeros((5, 5), np.uint8), 3).any()


def test_the_defaults_the_cli_shows() -> None:
    from segkit.cli.infer import build_parser

    args = build_parser().parse_args(["--checkpoint", "c.pth", "--input", "x", "--output", "y"])
    assert (args.alpha, args.contour, args.legend) == (DEFAULT_ALPHA, DEFAULT_CONTOUR, None)
    assert DEFAULT_CONTOUR in CONTOURS


def many_classes(n: int) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, (n, 3)).astype(np.uint8)
    palette[:, 0] = np.arange(n) % 256  # every colour distinct
    names = [f"{'a long class name ' if i % 7 == 0 else ''}class {i}" for i in range(n)]
    return palette, names


def test_a_legend_of_150_classes_is_readable_and_inside_the_image(tmp_path: Path) -> None:
    palette, names = many_classes(150)
    path = tmp_path / "legend.png"
    save_legend(path, palette, names)
    img = np.array(Image.open(path).convert("RGB"))
    h, w = img.shape[:2]
    assert 2 * h > w > h / 2 and h < 1200  # about 4:3 in several columns: neither a strip nor a wall
    tops, codes = [], rgb_codes(img)
    for colour in palette:
        top, bottom, left, right = swatch_box(img, colour, codes)
        assert bottom - top + 1 == 18 and right - left + 1 == 18  # every class at 20 px (inside a 1 px outline)
        tops.append(top)
    assert len(set(tops)) < 40  # in columns (150 rows would be 4500 px tall)
    margin = 5  # nothing drawn in the outer margin: no name runs past the border
    white = (img == 255).all(axis=2)
    assert white[:margin].all() and white[-margin:].all() and white[:, :margin].all() and white[:, -margin:].all()
    text = img.sum(axis=2) < 150
    assert text[:, -60:].any()  # the last column's names are there


def test_an_overlay_with_many_classes_present_uses_columns() -> None:
    palette, names = many_classes(150)
    h, w = 300, 400
    label = (np.arange(h * w).reshape(h, w) * 150 // (h * w)).astype(np.uint8)  # all 150 classes present
    out = np.array(overlay(np.zeros((h, w, 3), np.uint8), label, palette, names, background=None))
    assert out.shape[0] == h  # the legend's columns fit the image's height
    legend = out[:, w:]
    codes = rgb_codes(legend)
    for colour in palette:  # a swatch per class present
        swatch_box(legend, colour, codes)


def test_the_voc_legend_image_lists_every_class() -> None:
    img = np.array(legend_image(VOC_PALETTE[:21], VOC_CLASSES))
    for colour in VOC_PALETTE[1:21]:
        swatch_box(img, colour)
    with pytest.raises(ValueError, match="at least one"):
        legend_image(VOC_PALETTE[:0], [])
