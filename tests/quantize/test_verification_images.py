"""segkit quantize keeps calibration and verification images apart, prefers held-out real images, and says what it
calibrated and verified on (in the log line before the work and in the report's printed line)."""

from __future__ import annotations

import pytest

from segkit.checkpoint.load import load_model
from segkit.quantize.check import Int8Report
from segkit.quantize.formats import QuantizeError
from segkit.quantize.images import _divided_counts, choose_images

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = (32, 32)


@pytest.fixture(scope="module")
def model(tiny_ckpt):
    return load_model(tiny_ckpt)


def _choose(model, calib_data, **kwargs):
    options = {"calib_split": "train", "num_calib": 200, "verify": None, "verify_split": "val", "num_verify": 50}
    options.update(kwargs)
    return choose_images(model, calib_data=calib_data, dataset=None, input_size=SIZE, progress=False, **options)


def _ids(items) -> set[str]:
    return {item["id"] for item in items}


def test_default_verifies_on_the_other_split_never_on_calibration_images(model, synth_root) -> None:
    chosen = _choose(model, synth_root, num_calib=8, num_verify=3)
    assert len(chosen.calibration) == 8 and _ids(chosen.calibration) <= {f"train_{i:05d}" for i in range(16)}
    assert _ids(chosen.verification) == {"val_00000", "val_00001", "val_00002"}  # held out: the val split
    assert all("mask" in item for item in chosen.verification)  # so the mIoU of both is printed too
    assert chosen.calibrated_on == f"8 synthetic images of 'train' under {synth_root}"
    assert chosen.verified_on == (
        f"3 synthetic images of 'val' under {synth_root} (held out: another split than the calibration's 'train', none "
        "of them calibrated on)"
    )


def test_one_split_is_divided_into_disjoint_parts(model, synth_root) -> None:
    # the calibration split is the verification split (no other one to verify on): divided, disjoint
    chosen = _choose(model, synth_root, verify_split="train")  # 16 images, 200 + 50 asked: 13 + 3
    calib, check = _ids(chosen.calibration), _ids(chosen.verification)
    assert not calib & check and len(calib) + len(check) == 16 and len(check) == 3
    assert "'train' divided, 13 calibrate and 3 verify, disjoint" in chosen.verified_on
    assert "--verify ROOT" in chosen.verified_on


def test_verify_on_the_calibration_split_leaves_the_calibration_images_out(model, synth_root) -> None:
    chosen = _choose(model, synth_root, num_calib=14, verify=synth_root, verify_split="train", num_verify=8)
    calib, check = _ids(chosen.calibration), _ids(chosen.verification)
    assert len(calib) == 14 and len(check) == 2 and not calib & check
    assert "(--verify; held out: none of them calibrated on)" in chosen.verified_on
    with pytest.raises(QuantizeError, match="no verification images left in 'train'.*all 16 were calibrated on"):
        _choose(model, synth_root, num_calib=16, verify=synth_root, verify_split="train")


def test_held_out_verify_root_is_preferred(model, synth_root, tmp_path) -> None:
    from tests.helpers.tiny_run import make_synth_root

    other = make_synth_root(tmp_path / "held_out")  # another root (the same generator: its val split has 4 images)
    chosen = _choose(model, synth_root, num_calib=4, verify=other, num_verify=50)
    assert len(chosen.verification) == 4 and all("mask" in item for item in chosen.verification)
    assert chosen.verified_on == (
        f"4 synthetic images of 'val' under {other} (--verify; held out: another data-set root than the calibration's)"
    )


def test_without_calibration_the_checkpoints_own_split_or_random_images(
    model, synth_root, tmp_path, monkeypatch
) -> None:
    chosen = _choose(model, None, num_verify=2)  # a QAT checkpoint to LiteRT: no calibration
    assert chosen.calibration == [] and "keeps its trained ranges" in chosen.calibrated_on
    assert chosen.verified_on == f"2 synthetic images of 'val' under {synth_root} (the checkpoint's validation split)"
    monkeypatch.setattr(model.segkit_config.data, "dataset", "voc")  # the synthetic kind would generate its set
    monkeypatch.setattr(model.segkit_config.data, "root", str(tmp_path / "absent"))
    chosen = _choose(model, None, num_verify=2)
    assert chosen.verified_on.startswith("2 synthetic random images (no --verify and the checkpoint's data root")


def test_divided_counts() -> None:
    assert _divided_counts(8, 200, 50, "r", "val") == (6, 2)  # the 8 shared VOC images: 6 calibrate, 2 verify
    assert _divided_counts(300, 200, 50, "r", "val") == (200, 50)
    assert _divided_counts(2, 200, 50, "r", "val") == (1, 1)
    with pytest.raises(QuantizeError, match="holds 1 image.*kept apart.*--verify ROOT"):
        _divided_counts(1, 200, 50, "r", "val")


def test_the_report_line_says_what_was_verified_on() -> None:
    report = Int8Report("m.onnx", 2_000_000, 3, 0.995, verified_on="3 real images of 'val' under d (held out: x)")
    assert "int8 vs float on 3 real images of 'val' under d (held out: x): pixel agreement 99.50%" in report.line()
    assert "int8 vs float on 3 images:" in Int8Report("m.onnx", 1, 3, 1.0).line()
