"""``segkit test`` end to end: flags in, printed lines, files and exit codes out (segkit.cli.main, and the installed
console script). What the evaluation computes is tested on the library in tests/evaluation/test_command.py."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from segkit.cli import main
from segkit.cli.common import error_message
from segkit.data import DATASETS, SYNTHETIC_CLASSES, BadSampleWarning

pytestmark = pytest.mark.usefixtures("one_thread")

JSON_KEYS = {"config", "decoder", "model", "precision", "runtime", "quantization", "miou", "pixel_acc", "mean_acc",
             "per_class_iou", "confusion", "num_images", "protocol",
             "miou_definition", "miou_gt_or_pred", "stray_classes", "model_file", "data"}  # fmt: skip
QUIET = ["--no-progress", "--device", "cpu"]


def segkit_test(argv: list[object], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """``segkit test ARGV``: (exit code, stdout, stderr)."""
    rc = main(["test", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_prints_the_table_and_writes_the_json(tiny_ckpt: Path, synth_root: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "sub" / "eval.json"
    rc, stdout, stderr = segkit_test(["--checkpoint", tiny_ckpt, "--json", out, "--device", "cpu"], capsys)
    assert rc == 0, stderr
    for text in (*SYNTHETIC_CLASSES, "mIoU", "pixel acc", "mean acc"):
        assert text in stdout
    # the protocol by name, as infer and the JSON name it (not a Python dict)
    assert f"Evaluating {tiny_ckpt} (fp32, pytorch) on synthetic 'val' (4 images, 5 classes), protocol: " in stderr
    assert "protocol: whole image, on cpu" in stderr and "{'scales'" not in stderr
    assert f"on cpu; data from {synth_root}" in stderr
    assert "eval" in stderr and f"Wrote {out}\n" in stderr  # the progress bar, then the file
    report = json.loads(out.read_text())
    assert (
        set(report) == JSON_KEYS
        and report["num_images"] == 4
        and list(report["per_class_iou"]) == list(SYNTHETIC_CLASSES)
    )
    assert report["protocol"] == {"scales": [1.0], "flip": False, "resize_longer": None, "pad_to": None,
                                  "name": "whole image", "dataset": "synthetic", "split": "val"}  # fmt: skip
    assert report["model_file"]["path"] == str(tiny_ckpt.resolve()) and len(report["model_file"]["sha256"]) == 64
    assert report["data"] == {"dataset": "synthetic", "root": str(synth_root), "split": "val"}


def test_protocol_flags_and_save_pred_reach_the_report(tiny_ckpt: Path, synth_root: Path, tmp_path: Path, capsys):
    out, pred = tmp_path / "eval.json", tmp_path / "pred"
    argv = ["--checkpoint", tiny_ckpt, "--data-root", synth_root, "--split", "val", "--num-workers", "0",
            "--ms-flip", "--scales", "0.75,1.25", "--resize-longer", "48", "--pad-to", "56", "--slide", "48", "32",
            "--antialias", "--json", out, "--save-pred", pred, *QUIET]  # fmt: skip
    rc, _, err = segkit_test(argv, capsys)
    assert rc == 0, err
    assert json.loads(out.read_text())["protocol"] == {
        "scales": [0.75, 1.25], "flip": True, "resize_longer": 48, "pad_to": 56, "slide": [48, 32], "antialias": True,
        "name": "resize longer to 48 + slide 48/32 + pad to 56 + scales [0.75, 1.25] + flip + antialias",
        "dataset": "synthetic", "split": "val",
    }  # fmt: skip
    ids = (synth_root / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
    assert sorted(p.name for p in pred.iterdir()) == sorted(n for i in ids for n in (f"{i}.png", f"{i}_overlay.jpg"))
    assert f"Wrote predictions and overlays to {pred}" in err
    rc, _, err = segkit_test(["--checkpoint", tiny_ckpt, "--set", "eval.flip=true", "--json", out, *QUIET], capsys)
    assert rc == 0 and json.loads(out.read_text())["protocol"]["flip"] is True, err


def test_dataset_choices_come_from_the_data_layer(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["test", "--help"])
    assert info.value.code == 0
    assert "{" + ",".join(DATASETS) + "}" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["test", "--checkpoint", "x.pth", "--dataset", "nope"])
    assert info.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--checkpoint", "missing.pth"], "error: Checkpoint not found: missing.pth"),
        (["--dataset", "voc", "--data-root", "no/such/root"], "PASCAL VOC 2012 not found"),
        (["--split", "nosplit"], "got 'nosplit'"),
        (["--set", "eval.pad_tto=3"], "Did you mean 'pad_to'"),
        (["--set", "data.num_workers=-1"], "data.num_workers"),
        (["--set", "data.ignore_index=3"], "error: data.ignore_index=3 collides with class 3 ('triangle')"),
        (["--config", "demo_mnv2_os16"], "carries its own config"),
        (["--set", "eval.scales=[3.0]", "--max-pixels", "5000"], "error: a forward pass of 1 x 192x192"),
    ],
)
def test_a_user_error_is_one_line_and_exit_2(tiny_ckpt: Path, capsys, extra: list[str], expected: str) -> None:
    argv = ["--checkpoint", tiny_ckpt, *extra] if extra[0] != "--checkpoint" else extra
    rc, _, err = segkit_test([*argv, *QUIET], capsys)
    assert rc == 2 and expected in err and "Traceback" not in err
    assert err.splitlines()[-1].startswith("error: ") and err.count("error: ") == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a machine without CUDA")
def test_cuda_unavailable(tiny_ckpt: Path, capsys) -> None:
    rc, _, err = segkit_test(["--checkpoint", tiny_ckpt, "--device", "cuda"], capsys)
    assert rc == 2 and "CUDA is not available" in err


@pytest.mark.parametrize("scales", ["inf", "1e9", "100", "nan", "0"])
def test_scales_outside_the_range_are_refused(tiny_ckpt: Path, capsys, scales: str) -> None:
    """Before: ``--scales inf`` / ``1e9`` gave tracebacks and ``--scales 100 --pad-to 0`` was killed for memory."""
    with pytest.raises(SystemExit) as info:
        main(["test", "--checkpoint", str(tiny_ckpt), "--ms-flip", "--scales", scales, "--pad-to", "0"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "expected comma-separated factors in [0.125, 4.0]" in err
    assert "Traceback" not in err


def test_bad_samples_are_listed_and_an_unreadable_set_fails(tiny_ckpt: Path, synth_root: Path, tmp_path, capsys):
    root = tmp_path / "synthetic"
    shutil.copytree(synth_root, root)
    images = root / "VOCdevkit" / "VOC2012" / "JPEGImages"
    bad = images / "val_00001.jpg"
    bad.write_bytes(b"not a jpeg")
    rc, _, err = segkit_test(["--checkpoint", tiny_ckpt, "--data-root", root, "--num-workers", "1", *QUIET], capsys)
    assert rc == 2 and str(bad) in err and "Traceback" not in err and err.count("\n") == 2  # the header, the error
    argv = ["--checkpoint", tiny_ckpt, "--data-root", root, "--set", "data.skip_bad_samples=true", *QUIET]
    with pytest.warns(BadSampleWarning):
        rc, stdout, err = segkit_test(argv, capsys)
    assert rc == 0 and "mIoU" in stdout, err
    assert "1 bad samples skipped" in err and "val_00001: Cannot read image" in err
    assert err.rstrip().endswith("Scored 3 images; the bad samples above were left out.")
    for path in images.glob("val_*.jpg"):
        path.write_bytes(b"broken too")
    with pytest.warns(BadSampleWarning):
        rc, stdout, err = segkit_test(argv, capsys)
    assert rc == 2 and stdout == "" and "4 bad samples skipped" in err
    assert "error: every sample of synthetic 'val' failed to load (listed above); nothing was evaluated." in err
    assert "segkit prepare-data verify" in err


def test_a_relative_data_root_is_read_from_the_current_folder(tiny_ckpt: Path, synth_root: Path, monkeypatch, capsys):
    monkeypatch.chdir(synth_root.parent)
    rc, _, err = segkit_test(["--checkpoint", tiny_ckpt, "--data-root", synth_root.name, *QUIET], capsys)
    assert rc == 0, err
    assert f"data from {synth_root} (data.root '{synth_root.name}' is relative: read from the current folder" in err


def test_the_same_bad_ignore_index_is_one_line_in_train(tmp_path: Path, capsys) -> None:
    argv = ["--config", "demo_mnv2_os16", "--work-dir", tmp_path / "work", "--device", "cpu", "--no-progress",
            "--set", "data.ignore_index=3", f"data.root={tmp_path / 'syn'}", "data.synthetic_num_train=2",
            "data.synthetic_num_val=1", "data.synthetic_image_size=32"]  # fmt: skip
    rc = main(["train", *map(str, argv)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: data.ignore_index=3 collides with class 3 ('triangle')") and "5..255" in err


def test_error_message_strips_worker_traceback() -> None:
    text = (
        "Caught DatasetError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
        '  File "x.py", line 1\nsegkit.data.base.DatasetError: Cannot read image /a/b.jpg: bad.'
    )
    assert error_message(RuntimeError(text)) == "Cannot read image /a/b.jpg: bad."
    assert error_message(RuntimeError("plain")) == "plain"


@pytest.mark.slow
def test_console_script_exits_2_without_a_traceback(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("segkit")
    if not script.is_file():
        pytest.skip(f"no console script beside {sys.executable} (segkit is not installed in this environment)")
    proc = subprocess.run(
        [str(script), "test", "--checkpoint", str(tmp_path / "x.pth")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2 and "Checkpoint not found" in proc.stderr and "Traceback" not in proc.stderr
