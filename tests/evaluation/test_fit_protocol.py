"""A fixed-size model (its protocol pads to N x N: a converted official checkpoint) fits any photo: an image larger
than N x N has its longer side resized to N and is padded, and the label map comes back at the photo's size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segkit.cli import main as segkit_main
from segkit.config import EvalConfig
from segkit.evaluation.command import Segmenter, segment_images
from segkit.evaluation.predict import InferenceError
from segkit.evaluation.protocol import fitted_protocol, fixed_input_size, protocol_name, protocol_record
from segkit.export.source import ModelSource

pytestmark = pytest.mark.usefixtures("one_thread")
QUIET = {"progress": False, "device": "cpu", "log": lambda line: None}
DEEPLAB = "tflite/deeplabv3_mnv2_pascal_quant.tflite"


def test_which_protocols_are_fixed_size_and_what_they_become() -> None:
    pad = EvalConfig(pad_to=513)
    assert fixed_input_size(pad) == 513
    for other in (EvalConfig(), EvalConfig(pad_to=513, resize_longer=513), EvalConfig(pad_to=513, slide=[513, 341])):
        assert fixed_input_size(other) is None and fitted_protocol(other, (3000, 4000)) is other
    assert fitted_protocol(pad, (500, 513)) is pad  # fits: the model's own protocol (what segkit test scores)
    fitted = fitted_protocol(pad, (3000, 4000))
    assert (fitted.resize_longer, fitted.pad_to, pad.resize_longer) == (513, 513, None)
    assert protocol_name(pad) == "pad to 513" and protocol_name(fitted) == "resize longer to 513 + pad to 513"
    assert protocol_name(EvalConfig()) == "whole image"
    assert protocol_name(EvalConfig(scales=[0.5, 1.0], flip=True)) == "scales [0.5, 1] + flip"
    assert protocol_record(fitted)["name"] == protocol_name(fitted) and protocol_record(fitted)["resize_longer"] == 513


def test_a_large_image_is_fitted_to_the_input_and_mapped_back(tiny_ckpt: Path, tmp_path: Path) -> None:
    model, cfg = ModelSource(tiny_ckpt, overrides={"eval.pad_to": 32}).load("cpu")
    shapes: list[tuple[int, ...]] = []
    model.register_forward_pre_hook(lambda module, inputs: shapes.append(tuple(inputs[0].shape[-2:])))
    rng = np.random.default_rng(0)
    large, small = tmp_path / "large.png", tmp_path / "small.png"
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(large)
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(small)
    lines: list[str] = []
    # a budget the whole 48x64 image is over: only the fitted protocol runs it
    result = segment_images(
        model, cfg, [large, small], tmp_path / "out", max_pixels=1024, **{**QUIET, "log": lines.append}
    )
    assert (result.done, result.failed, result.fitted) == (2, [], [large])
    assert shapes == [(32, 32), (32, 32)]  # 48x64 -> 24x32, padded; 20x30 padded as the checkpoint says
    assert Image.open(tmp_path / "out" / "large.png").size == (64, 48)  # back at the photo's size
    assert (
        lines[0]
        == "Segmenting 2 image(s) on cpu; protocol: pad to 32; images larger than 32x32: resize longer to 32 + pad to 32"
    )
    images = result.report["images"]
    assert [r["protocol"] for r in images] == ["resize longer to 32 + pad to 32", "pad to 32"]
    assert result.report["fit_larger_images"]["resize_longer"] == 32

    seg = Segmenter.of(model, cfg, device="cpu", max_pixels=1024, fit=False)  # the protocol as it is: over budget
    with pytest.raises(InferenceError, match="exceeds the budget of 1,024"):
        seg.label(np.asarray(Image.open(large)))
    assert model.predict(str(large), max_pixels=1024).shape == (48, 64)  # the Python API fits too


@pytest.fixture(scope="module")
def official(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The official VOC TFLite model converted with ``segkit convert`` (513 x 513 input)."""
    pytest.importorskip(
        "tflite", reason="the optional 'tflite' package is absent: pip install 'segkit-deeplab[tflite]'"
    )
    path = tmp_path_factory.mktemp("official") / "official.pth"
    assert segkit_main(["convert", str(shared_data / DEEPLAB), str(path)]) == 0
    return path


def test_the_converted_official_model_segments_a_phone_sized_photo(
    official: Path, shared_data: Path, tmp_path: Path, capsys
) -> None:
    photo = shared_data / "voc_sample/VOCdevkit/VOC2012/JPEGImages/vainf_8.jpg"  # 513 x 513, a horse
    folder = tmp_path / "photos"
    folder.mkdir()
    with Image.open(photo) as image:
        image.convert("RGB").resize((2400, 1800), Image.BILINEAR).save(folder / "phone.jpg", quality=95)
        image.save(folder / "voc.jpg")
    out, report = tmp_path / "out", tmp_path / "infer.json"
    argv = ["infer", "--checkpoint", official, "--input", folder, "--output", out, "--json", report, "--no-progress",
            "--device", "cpu", "--max-pixels", "2000000"]  # fmt: skip
    rc = segkit_main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert rc == 0, err  # 2400 x 1800 = 4.3 MP, over the budget whole: resized, not refused
    # the converter stores the interpreter's own protocol (resize longer + pad), so no fitting is needed
    assert "protocol: resize longer to 513 + pad to 513" in err
    data = json.loads(report.read_text())
    assert [(Path(r["input"]).name, r["protocol"]) for r in data["images"]] == [
        ("phone.jpg", "resize longer to 513 + pad to 513"), ("voc.jpg", "resize longer to 513 + pad to 513")]  # fmt: skip
    assert data["model_file"]["path"] == str(official.resolve()) and len(data["model_file"]["sha256"]) == 64
    assert data["model"]["config"].startswith("tflite_")
    phone = np.array(Image.open(out / "phone.png"))
    voc = np.array(Image.open(out / "voc.png"))
    assert phone.shape == (1800, 2400) and voc.shape == (513, 513)
    assert 13 in np.unique(phone)  # the horse
    small = np.array(Image.fromarray(phone).resize((513, 513), Image.NEAREST))
    assert (small == voc).mean() > 0.9  # the same segmentation as the photo at the model's own size
