"""Images of more than 8 bits per channel read at their real brightness wherever segkit reads images (issue 20, item 3).

PIL's ``convert("RGB")`` clips 16-bit greyscale (``I;16``) at 255, so a 16-bit PNG read as 99% white. The one reader,
:func:`segkit.data.io.read_image`, scales 16-bit greyscale (and 48-bit RGB) to 8 bits and refuses pixels with no 8-bit
scale; ``segkit infer``, the data sets of ``segkit test`` and the calibration images all read through it.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segkit.data import build_dataset
from segkit.data.io import DatasetError, read_image

pytestmark = pytest.mark.usefixtures("one_thread")


def grey16(h: int = 48, w: int = 64) -> np.ndarray:
    """A 16-bit greyscale ramp over the whole 0..65535 range."""
    ramp = np.linspace(0, 65535, h * w).reshape(h, w)
    return ramp.round().astype(np.uint16)


def as8(values: np.ndarray) -> np.ndarray:
    """16-bit values scaled to 8 bits, rounded."""
    return np.round(values.astype(np.float64) * 255 / 65535).astype(np.uint8)


def write_png16(path: Path, array: np.ndarray) -> Path:
    """A 16-bit PNG of ``array`` ([H, W] greyscale or [H, W, 3] RGB uint16), written byte by byte."""
    h, w = array.shape[:2]
    colour = 2 if array.ndim == 3 else 0
    raw = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )
    return path


def test_16bit_grey_png_is_scaled_not_clipped(tmp_path):
    values = grey16()
    path = write_png16(tmp_path / "grey16.png", values)
    assert Image.open(path).mode == "I;16"
    image = read_image(path)
    assert image.shape == (*values.shape, 3) and image.dtype == np.uint8
    assert np.array_equal(image[..., 0], as8(values)) and np.array_equal(image[..., 0], image[..., 2])
    assert abs(float(image.mean()) - 127.5) < 1  # the old reader gave ~254 (99% white)


def test_16bit_grey_tiff_is_scaled(tmp_path):
    values = grey16()
    Image.fromarray(values).save(tmp_path / "grey16.tif")
    assert np.array_equal(read_image(tmp_path / "grey16.tif")[..., 1], as8(values))


def test_48bit_rgb_png_keeps_its_colours(tmp_path):
    rgb = np.stack([grey16(), grey16()[::-1], np.full((48, 64), 40000, np.uint16)], -1)
    image = read_image(write_png16(tmp_path / "rgb48.png", rgb))
    assert image.shape == (48, 64, 3)
    assert np.abs(image.astype(int) - as8(rgb).astype(int)).max() <= 1  # PIL keeps the high byte: within 1 of rounding


def test_float_pixels_are_refused_in_one_line(tmp_path):
    Image.fromarray(np.random.default_rng(0).random((8, 8)).astype(np.float32)).save(tmp_path / "float.tif")
    with pytest.raises(DatasetError, match=r"floating-point pixels .* save it as an 8- or 16-bit") as exc:
        read_image(tmp_path / "float.tif")
    assert "\n" not in str(exc.value)


def test_32bit_integer_pixels_outside_16_bits_are_refused(tmp_path):
    Image.fromarray(np.full((8, 8), 70000, np.int32)).save(tmp_path / "int32.tif")
    with pytest.raises(DatasetError, match="32-bit integer pixels"):
        read_image(tmp_path / "int32.tif")


def _folder_set(root: Path) -> np.ndarray:
    """A 'folder' data set of one 16-bit image (its name sorts first: the val split) and a mask; the 8-bit values."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    values = grey16()
    write_png16(root / "images" / "a.png", values)
    Image.fromarray(np.zeros((48, 64), np.uint8), mode="L").save(root / "masks" / "a.png")
    return as8(values)


def test_data_sets_and_calibration_read_16bit_images_scaled(tmp_path, tiny_cfg, synth_root, tiny_ckpt):
    """``segkit test`` (a data set's samples) and ``segkit quantize`` (its calibration images) read through the reader."""
    expected = _folder_set(tmp_path / "own")
    cfg = tiny_cfg(synth_root, **{"data.dataset": "folder", "data.root": str(tmp_path / "own")})
    sample = build_dataset(cfg.data, "val", None, num_classes=cfg.model.num_classes)[0]
    image = np.asarray(sample["image"])  # [3, H, W] without a transform
    assert image.shape == (3, 48, 64) and np.array_equal(image[0], expected)

    from segkit.checkpoint.load import load_model
    from segkit.quantize.calib import calibration_images

    model = load_model(tiny_ckpt, device="cpu")
    (item,) = calibration_images(
        model, str(tmp_path / "own"), split="val", num=1, input_size=(48, 64), dataset="folder", progress=False
    )
    mean, std = model.segkit_config.model.input_mean, model.segkit_config.model.input_std
    pixels = item["image"][0, 0] * std[0] + mean[0]  # back to 0..255
    assert float((pixels - float(expected.mean())).mean().abs()) < 1  # the old reader: ~254 everywhere


def test_infer_segments_a_16bit_png_as_its_8bit_twin(tmp_path, tiny_ckpt, capsys):
    """``segkit infer`` on a 16-bit PNG writes the label map of the same picture stored with 8 bits."""
    from segkit.cli import main

    values = grey16()
    for name, kind in (("wide", "16"), ("twin", "8")):
        folder = tmp_path / name
        folder.mkdir()
        if kind == "16":
            write_png16(folder / "img.png", values)
        else:
            Image.fromarray(as8(values), mode="L").save(folder / "img.png")
        code = main(
            ["infer", "--checkpoint", str(tiny_ckpt), "--input", str(folder / "img.png")]
            + ["--output", str(tmp_path / f"out_{name}"), "--device", "cpu", "--no-progress"]
        )
        assert code == 0, capsys.readouterr().err
    wide = np.asarray(Image.open(tmp_path / "out_wide" / "img.png"))
    twin = np.asarray(Image.open(tmp_path / "out_twin" / "img.png"))
    assert np.array_equal(wide, twin)
    overlay_wide = np.asarray(Image.open(tmp_path / "out_wide" / "img_overlay.jpg"), dtype=np.int16)
    overlay_twin = np.asarray(Image.open(tmp_path / "out_twin" / "img_overlay.jpg"), dtype=np.int16)
    assert np.abs(overlay_wide - overlay_twin).mean() < 2  # the image under the colours is the same picture


def test_infer_skips_an_image_without_an_8bit_scale_naming_it(tmp_path, tiny_ckpt, capsys):
    """A refused image is treated as an unreadable one: skipped with a warning naming it (the others are done, exit 0)."""
    from segkit.cli import main

    Image.fromarray(np.random.default_rng(0).random((32, 32)).astype(np.float32)).save(tmp_path / "float.tif")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "plain.png")
    argv = ["infer", "--checkpoint", str(tiny_ckpt), "--input", str(tmp_path), "--output", str(tmp_path / "out")]
    code = main([*argv, "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0 and "Traceback" not in err
    warning = next(line for line in err.splitlines() if line.startswith("warning: skipping"))
    assert "float.tif" in warning and "floating-point pixels" in warning
    assert (tmp_path / "out" / "plain.png").is_file() and not (tmp_path / "out" / "float.png").exists()
