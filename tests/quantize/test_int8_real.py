"""Int8 PTQ of the converted official DeepLab model on real VOC images (../shared/data): the ONNX Runtime file,
calibrated on 4 images, keeps >= 99% of the float model's pixels on the 4 others (the issue's goal)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("onnxruntime", reason="the deploy extra is not installed")
pytest.importorskip("tflite", reason="the optional 'tflite' package is absent: pip install 'segkit-deeplab[tflite]'")

DEEPLAB = "tflite/deeplabv3_mnv2_pascal_quant.tflite"


def _fold_root(shared_data: Path, tmp: Path) -> Path:
    """A VOC root over voc_sample whose splits half0 / half1 hold alternate images."""
    voc_sample = shared_data / "voc_sample/VOCdevkit/VOC2012"
    voc = tmp / "VOCdevkit/VOC2012"
    (voc / "ImageSets/Segmentation").mkdir(parents=True)
    for sub in ("JPEGImages", "SegmentationClass"):
        (voc / sub).symlink_to(voc_sample / sub)
    ids = sorted((voc_sample / "ImageSets/Segmentation/val.txt").read_text().split())
    for k in (0, 1):
        (voc / f"ImageSets/Segmentation/half{k}.txt").write_text("\n".join(ids[k::2]) + "\n")
    return tmp


@pytest.mark.slow
def test_official_model_int8_onnx_keeps_99_percent_of_pixels_on_held_out_images(shared_data, tmp_path):
    import segkit
    from segkit.convert import convert_tflite
    from segkit.quantize import calibration_images, quantize_model, verify_int8

    ckpt = tmp_path / "official.pth"
    convert_tflite(shared_data / DEEPLAB, ckpt)
    model = segkit.load_model(ckpt)
    root = _fold_root(shared_data, tmp_path / "voc")
    size = (513, 513)
    calib = calibration_images(model, str(root), split="half0", num=4, input_size=size, progress=False)
    held_out = calibration_images(
        model, str(root), split="half1", num=4, input_size=size, with_masks=True, progress=False
    )
    out = tmp_path / "official_int8.onnx"
    quantize_model(model, out, calib, format="onnx", input_size=size, progress=False)
    report = verify_int8(model, out, held_out)
    assert report.n_images == 4
    assert report.agreement >= 0.99, report.line()
    assert min(report.per_image) >= 0.97, report.per_image
    assert abs(report.miou_int8 - report.miou_float) < 0.02, report.line()  # classes present in the ground truth
    assert report.size_bytes < 3_000_000  # int8 weights: about a quarter of the fp32 file's 8.4 MB
