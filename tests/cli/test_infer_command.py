"""``segkit infer`` end to end: flags in, printed lines, files and exit codes out (segkit.cli.main, and the installed
console script). What the segmentation computes is tested on the library in tests/evaluation/test_command.py."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segkit.cli import main
from segkit.data.classes import VOC_PALETTE

pytestmark = pytest.mark.usefixtures("one_thread")

QUIET = ["--no-progress", "--device", "cpu"]


def segkit_infer(argv: list[object], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """``segkit infer ARGV``: (exit code, stdout, stderr)."""
    rc = main(["infer", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def images(synth_root: Path) -> Path:
    return synth_root / "VOCdevkit" / "VOC2012" / "JPEGImages"


def test_one_image(tiny_ckpt: Path, images: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    argv = ["--checkpoint", tiny_ckpt, "--input", images / "val_00000.jpg", "--output", out, "--resize-longer", "48",
            "--pad-to", "48", "--alpha", "0.7", *QUIET]  # fmt: skip
    rc, stdout, err = segkit_infer(argv, capsys)
    assert rc == 0, err
    assert stdout == "" and err.splitlines() == [
        "Segmenting 1 image(s) on cpu; protocol: resize longer to 48 + pad to 48",
        f"Wrote label maps and overlays of 1 image(s) to {out}",
    ]
    assert sorted(p.name for p in out.iterdir()) == ["val_00000.png", "val_00000_overlay.jpg"]
    png = Image.open(out / "val_00000.png")
    assert png.mode == "P" and png.size == (64, 64) and np.array(png).max() < 5
    assert png.getpalette()[: 3 * 5] == VOC_PALETTE[:5].reshape(-1).tolist()  # no colours in the checkpoint: VOC's
    assert Image.open(out / "val_00000_overlay.jpg").width > 64  # image + legend


def test_a_folder_with_an_unreadable_and_an_oversized_image_goes_on(
    tiny_ckpt: Path, images: Path, tmp_path: Path, capsys
) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    for name in ("val_00000", "val_00001"):
        shutil.copy(images / f"{name}.jpg", folder / f"{name}.jpg")
    Image.new("RGB", (120, 90), (90, 120, 30)).save(folder / "large.png")  # over --max-pixels 10000
    (folder / "broken.png").write_bytes(b"\x89PNG garbage")
    (folder / "notes.txt").write_text("not an image")
    out, report = tmp_path / "many", tmp_path / "infer.json"
    argv = ["--checkpoint", tiny_ckpt, "--input", folder, "--output", out, "--max-pixels", "10000", "--json", report,
            *QUIET]  # fmt: skip
    rc, _, err = segkit_infer(argv, capsys)
    assert rc == 0, err  # two images segmented: the run succeeds and lists what it skipped
    lines = err.splitlines()
    assert lines[0] == "Segmenting 4 image(s) on cpu; protocol: whole image"
    assert lines[1].startswith(f"warning: skipping {folder / 'broken.png'}: not a readable image (")
    assert lines[2].startswith(f"warning: skipping {folder / 'large.png'}: 120x90 px: a forward pass of 1 x 90x120")
    assert "--slide" in lines[2] and "--resize-longer" in lines[2]
    assert lines[3:] == [
        f"Wrote label maps and overlays of 2 image(s) to {out}",
        f"Wrote {report}",
        f"warning: skipped 2 of 4 image(s) (reasons above): {folder / 'broken.png'}, {folder / 'large.png'}",
    ]
    names = sorted(p.name for p in out.iterdir())
    assert names == ["val_00000.png", "val_00000_overlay.jpg", "val_00001.png", "val_00001_overlay.jpg"]
    data = json.loads(report.read_text())
    assert (data["segmented"], data["skipped"]) == (2, 2)
    assert [("skipped" in r, r.get("overlay")) for r in data["images"]] == [
        (True, None), (True, None), (False, "val_00000_overlay.jpg"), (False, "val_00001_overlay.jpg")
    ]  # fmt: skip


def test_nothing_segmented_exits_1_and_writes_no_folder(tiny_ckpt: Path, images: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "o"
    argv = ["--checkpoint", tiny_ckpt, "--input", images / "val_00000.jpg", "--output", out, *QUIET]
    rc, _, err = segkit_infer([*argv, "--max-pixels", "2000"], capsys)
    lines = err.splitlines()
    assert rc == 1 and len(lines) == 3 and "Traceback" not in err
    assert lines[1].startswith(
        f"warning: skipping {images / 'val_00000.jpg'}: 64x64 px: a forward pass of 1 x 64x64 = 4,096 pixels exceeds "
        "the budget of 2,000"
    )
    assert lines[2] == f"error: skipped 1 of 1 image(s) (reasons above): {images / 'val_00000.jpg'}"
    assert not out.exists()  # nothing segmented: no empty output folder
    for fix in (["--slide", "32", "16"], ["--resize-longer", "40"], ["--max-pixels", "0"]):
        rc, _, err = segkit_infer([*argv, "--max-pixels", "2000", *fix], capsys)
        assert rc == 0, (fix, err)


def test_a_protocol_no_image_can_run_is_refused_before_any(tiny_ckpt: Path, images: Path, tmp_path: Path, capsys):
    argv = ["--checkpoint", tiny_ckpt, "--input", images, "--output", tmp_path / "o", "--pad-to", "100", *QUIET]
    rc, _, err = segkit_infer([*argv, "--max-pixels", "5000"], capsys)
    assert rc == 2 and err.count("\n") == 1 and "a forward pass of 1 x 100x100 = 10,000 pixels exceeds" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--input", "{tmp}/nope.jpg"], "error: --input {tmp}/nope.jpg does not exist"),
        (["--input", "{tmp}"], "error: --input folder {tmp} holds no images"),
        (["--checkpoint", "{tmp}/missing.pth", "--input", "{image}"], "error: Checkpoint not found"),
        (["--input", "{image}", "--alpha", "1.5"], "error: --alpha must be in [0, 1], got 1.5."),
        (["--input", "{image}", "--set", "eval.pad_tto=3"], "Did you mean 'pad_to'"),
    ],
)
def test_a_user_error_is_one_line_and_exit_2(
    tiny_ckpt: Path, images: Path, tmp_path: Path, capsys, argv: list[str], expected: str
) -> None:
    fill = {"tmp": tmp_path, "image": images / "val_00000.jpg"}
    argv = [a.format(**fill) for a in argv]
    source = [] if "--checkpoint" in argv else ["--checkpoint", str(tiny_ckpt)]
    rc, _, err = segkit_infer([*source, *argv, "--output", tmp_path / "o", *QUIET], capsys)
    assert rc == 2 and expected.format(**fill) in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("scales", ["inf", "1e9", "100", "nan", "0"])
def test_scales_outside_the_range_are_refused(tiny_ckpt: Path, capsys, scales: str) -> None:
    with pytest.raises(SystemExit) as info:
        main(
            ["infer", "--checkpoint", str(tiny_ckpt), "--input", "x", "--output", "y", "--ms-flip", "--scales", scales]
        )
    err = capsys.readouterr().err
    assert info.value.code == 2 and "expected comma-separated factors in [0.125, 4.0]" in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_console_script_segments_an_image(tiny_ckpt: Path, images: Path, tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("segkit")
    if not script.is_file():
        pytest.skip(f"no console script beside {sys.executable} (segkit is not installed in this environment)")
    out = tmp_path / "out"
    argv = ["infer", "--checkpoint", str(tiny_ckpt), "--input", str(images / "val_00000.jpg"), "--output", str(out)]
    proc = subprocess.run([str(script), *argv, *QUIET], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["val_00000.png", "val_00000_overlay.jpg"]
    proc = subprocess.run([str(script), *argv[:-4], "--input", str(tmp_path / "nope.jpg"), "--output", str(out)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)  # fmt: skip
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
