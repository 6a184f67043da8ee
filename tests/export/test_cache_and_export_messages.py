"""segkit export says what it verified on (real or synthetic images, from where, held out from training or not) and,
for an exporter that takes long, what it exports while it ticks the elapsed time."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from segkit.export.command import _export_step, export_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = {"input_size": 32, "exporter": "torchscript", "verify_images": 1}


def test_the_checkpoints_own_split_is_named_with_its_kind(tiny_ckpt, synth_root, tmp_path) -> None:
    report = export_checkpoint(tiny_ckpt, tmp_path / "m.onnx", **FAST)
    assert report.verification.source == (
        f"the 'val' split of {synth_root} (synthetic images: the checkpoint's validation split, held out from training)"
    )
    assert "on 1 image(s) from the 'val' split of" in report.verification.line()


def test_an_absent_data_root_says_synthetic_and_how_to_verify_on_real_images(tiny_ckpt, tmp_path) -> None:
    absent = tmp_path / "no_voc_here"
    report = export_checkpoint(
        tiny_ckpt, tmp_path / "m.onnx", overrides=[f"data.root={absent}", "data.dataset=voc"], **FAST
    )
    source = report.verification.source
    assert source.startswith("segkit's synthetic shapes (160 px) (synthetic images, not photos: ")
    assert f"the checkpoint's data root {absent} is absent; pass --verify ROOT to verify on real images" in source


def test_held_out_photos_given_with_verify_are_used_and_named(tiny_ckpt, tmp_path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(
            photos / f"{i}.png"
        )
    report = export_checkpoint(tiny_ckpt, tmp_path / "m.onnx", verify_root=photos, **{**FAST, "verify_images": 8})
    assert report.verification.num_images == 2
    assert report.verification.source == f"the image files under {photos} (real images, --verify)"


@pytest.mark.slow  # a dynamo export: ~25 s on a loaded 2-core CPU
def test_a_dynamo_export_says_what_it_does_and_how_long_it_took(tiny_ckpt, tmp_path, capfd) -> None:
    export_checkpoint(tiny_ckpt, tmp_path / "m.onnx", **{**FAST, "exporter": "dynamo"})
    err = capfd.readouterr().err
    assert "exporting m.onnx (onnx, 32x32, dynamo exporter)...\n" in err
    assert re.search(r"exporting m\.onnx \(onnx, 32x32, dynamo exporter\): done in \d+\.\d s\n", err), err
    # the TorchScript tracer takes a second or two: nothing to say
    export_checkpoint(tiny_ckpt, tmp_path / "t.onnx", **FAST)
    assert "exporting" not in capfd.readouterr().err


def test_a_dynamic_dynamo_export_warns_of_minutes_and_names_the_fast_exporter(tmp_path) -> None:
    what, note = _export_step(tmp_path / "d.onnx", "onnx", (513, 513), True, "dynamo")
    assert what == "exporting d.onnx (onnx, dynamic H, W, dynamo exporter)"
    assert "minutes on a CPU" in note and "--exporter torchscript takes ~1 s" in note
    assert _export_step(tmp_path / "d.onnx", "onnx", (513, 513), False, "dynamo")[1] == ""


def test_timed_step_says_what_ticks_and_says_how_long(capfd) -> None:
    from segkit.export.progress import timed_step

    with timed_step("exporting x", " (once; ~1 s)"):
        pass
    err = capfd.readouterr().err
    assert err.startswith("exporting x (once; ~1 s)...\n") and "exporting x: 00:00 elapsed" in err
    assert re.search(r"exporting x: done in \d+\.\d s\n$", err), err
    lines: list[str] = []
    with pytest.raises(RuntimeError), timed_step("failing", log=lines.append):
        raise RuntimeError("export failed")
    assert lines == ["failing..."]  # no "done" after a failure
    with timed_step("short", enabled=False):
        pass
    assert capfd.readouterr().err == ""
