"""Issue 20, items 1 and 5: no command writes over one of its inputs, and an output that cannot be written is refused
before the work, in one line (exit 2), by the one shared check :func:`segkit.utils.io.check_output`.

The walk at the bottom runs EVERY command with an output option through ``segkit.cli.main`` against "the output is
one of its inputs" and "the output cannot be written".
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from segkit.cli import main
from segkit.utils.io import OutputPathError, check_output

pytestmark = pytest.mark.usefixtures("one_thread")

QUIET = ["--no-progress", "--device", "cpu"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _read_only_folder(tmp_path: Path) -> Path:
    """A folder nothing can be created in: chmod 0o500, or, where the permission bits do not stop this user (root),
    a folder of /sys (a kernel file system that takes no new files); skips when neither works here."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        (folder / "probe").touch()
    except OSError:
        return folder
    (folder / "probe").unlink()
    folder.chmod(0o700)
    if Path("/sys").is_dir() and not os.access("/sys", os.W_OK | os.X_OK) or _cannot_create(Path("/sys")):
        return Path("/sys")
    pytest.skip("no read-only folder on this machine")


def _cannot_create(folder: Path) -> bool:
    import tempfile

    try:
        fd, probe = tempfile.mkstemp(dir=folder)
    except OSError:
        return True
    os.close(fd)
    os.unlink(probe)
    return False


# -- the shared check ---------------------------------------------------------------------------------------------


def test_an_output_that_is_an_input_is_refused(tmp_path: Path) -> None:
    ckpt = tmp_path / "ck.pth"
    ckpt.write_bytes(b"weights")
    with pytest.raises(OutputPathError, match=r"^--out .*ck\.pth is the --checkpoint .*ck\.pth this command reads"):
        check_output(ckpt, inputs={"--checkpoint": ckpt})
    with pytest.raises(OutputPathError, match="is the --checkpoint"):  # the same file through another path
        check_output(tmp_path / "sub" / ".." / "ck.pth", inputs={"--checkpoint": ckpt})
    link = tmp_path / "link.pth"
    link.symlink_to(ckpt)
    with pytest.raises(OutputPathError, match="is the --checkpoint"):
        check_output(link, inputs={"--checkpoint": ckpt})
    hard = tmp_path / "hard.pth"
    os.link(ckpt, hard)
    with pytest.raises(OutputPathError, match="is the --checkpoint"):
        check_output(hard, inputs={"--checkpoint": ckpt})
    data = tmp_path / "data"
    (data / "a").mkdir(parents=True)
    with pytest.raises(OutputPathError, match=r"lies inside --verify .*data, which this command reads"):
        check_output(data / "a" / "m.onnx", inputs={"--verify": data})
    # another file beside an input, a missing input and None are fine
    assert check_output(tmp_path / "m.onnx", inputs={"--checkpoint": ckpt, "--verify": None, "--config": "no.yaml"})
    assert ckpt.read_bytes() == b"weights" and not (tmp_path / "m.onnx").exists()


def test_an_output_folder_beside_the_inputs_is_refused_where_asked(tmp_path: Path) -> None:
    photo = tmp_path / "photos" / "a.png"
    photo.parent.mkdir()
    photo.write_bytes(b"png")
    inputs = {"--input": [photo]}
    with pytest.raises(OutputPathError, match=r"^--output .*photos holds the --input .*a\.png this command reads"):
        check_output(photo.parent, inputs=inputs, kind="folder", flag="--output", beside_inputs=False)
    check_output(photo.parent / "labels", inputs=inputs, kind="folder", flag="--output", beside_inputs=False)
    check_output(photo.parent, inputs={"--checkpoint": photo}, kind="folder", flag="--save-pred")  # allowed


def test_an_output_that_cannot_be_written_is_refused(tmp_path: Path) -> None:
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(OutputPathError, match=r"cannot be created: .*file\.txt is a file, not a folder"):
        check_output(a_file / "deeper" / "m.onnx")
    with pytest.raises(OutputPathError, match=r"^--out .* is an existing folder; name a file"):
        check_output(tmp_path)
    with pytest.raises(OutputPathError, match=r"^--output .*file\.txt is an existing file; --output takes a folder"):
        check_output(a_file, kind="folder", flag="--output")
    read_only = _read_only_folder(tmp_path)
    with pytest.raises(OutputPathError, match=r"cannot be written: .* is not writable"):
        check_output(read_only / "new" / "m.onnx")
    (tmp_path / "read_only").chmod(0o700)
    assert check_output(tmp_path / "new" / "m.onnx") == tmp_path / "new" / "m.onnx"
    assert not (tmp_path / "new").exists() and _tree(tmp_path) == {"file.txt", "read_only"}  # the probe left nothing


# -- every command ------------------------------------------------------------------------------------------------


def _tiny_tflite_input(tmp_path: Path) -> Path:
    path = tmp_path / "model.tflite"
    path.write_bytes(b"TFL3 not really a model")
    return path


Case = Callable[[Path, Path, Path], tuple[list[str], list[Path]]]  # (tmp, ckpt copy, synth root) -> (argv, inputs)


def _export_same(tmp: Path, ck: Path, root: Path) -> tuple[list[str], list[Path]]:
    same = ck.with_suffix(".onnx")  # a checkpoint named like the output, so the format check does not answer first
    shutil.copy(ck, same)
    return ["export", "--checkpoint", str(same), "--out", str(same), "--no-verify"], [same]


def _export_inside_verify(tmp: Path, ck: Path, root: Path) -> tuple[list[str], list[Path]]:
    out = root / "VOCdevkit" / "m.onnx"
    return ["export", "--checkpoint", str(ck), "--out", str(out), "--verify", str(root)], [ck]


def _quantize_same(tmp: Path, ck: Path, root: Path) -> tuple[list[str], list[Path]]:
    same = ck.with_suffix(".onnx")
    shutil.copy(ck, same)
    argv = ["quantize", "--checkpoint", str(same), "--format", "onnx", "--out", str(same), "--calib-data", str(root)]
    return argv, [same]


def _quantize_inside_calib(tmp: Path, ck: Path, root: Path) -> tuple[list[str], list[Path]]:
    out = root / "m.onnx"
    return ["quantize", "--checkpoint", str(ck), "--format", "onnx", "--out", str(out), "--calib-data", str(root)], [ck]


def _test_json(tmp: Path, ck: Path, root: Path) -> tuple[list[str], list[Path]]:
    return ["test", "--checkpoint", str(ck), "--json", str(ck), *QUIET], [ck]


def _test_json_in_the_data(tmp: Path, ck: Path, root: Path) -> tuple[list[str], list[Path]]:
    image = root / "VOCdevkit" / "VOC2012" / "JPEGImages" / "val_00000.jpg"
    return ["test", "--checkpoint", str(ck), "--data-root", str(root), "--json", str(image), *QUIET], [image]


def _test_save_pred_masks(tmp: Path, ck: Path, root: Path) -> tuple[list[str], list[Path]]:
    masks = root / "VOCdevkit" / "VOC2012" / "SegmentationClass"
    argv = ["test", "--checkpoint", str(ck), "--data-root", str(root), "--save-pred", str(masks), *QUIET]
    return argv, sorted(masks.iterdir())


def _infer_same_folder(tmp: Path, ck: Path, root: Path) -> tuple[list[str], list[Path]]:
    photos = tmp / "photos"
    photos.mkdir()
    src = root / "VOCdevkit" / "VOC2012" / "SegmentationClass" / "val_00000.png"  # a .png: infer would write x.png
    shutil.copy(src, photos / "val_00000.png")
    argv = ["infer", "--checkpoint", str(ck), "--input", str(photos), "--output", str(photos), *QUIET]
    return argv, [photos / "val_00000.png"]


def _infer_same_file(tmp: Path, ck: Path, root: Path) -> tuple[list[str], list[Path]]:
    photo = tmp / "photo.png"
    shutil.copy(root / "VOCdevkit" / "VOC2012" / "SegmentationClass" / "val_00000.png", photo)
    return ["infer", "--checkpoint", str(ck), "--input", str(photo), "--output", str(photo), *QUIET], [photo]


def _convert_same(tmp: Path, ck: Path, root: Path) -> tuple[list[str], list[Path]]:
    model = _tiny_tflite_input(tmp)
    return ["convert", str(model), str(model)], [model]


def _convert_labels(tmp: Path, ck: Path, root: Path) -> tuple[list[str], list[Path]]:
    model, labels = _tiny_tflite_input(tmp), tmp / "labels.txt"
    labels.write_text("background\ncat\n")
    return ["convert", str(model), str(labels), "--labels", str(labels)], [model, labels]


def _tradeoff_latency(tmp: Path, ck: Path, root: Path) -> tuple[list[str], list[Path]]:
    out = tmp / "tradeoff"
    out.mkdir()
    latency = out / "tradeoff.md"  # the file the command would write
    latency.write_text('{"rows": []}\n')
    return ["tradeoff", "--latency", str(latency), "--out", str(out)], [latency]


def _complexity_config(tmp: Path, ck: Path, root: Path) -> tuple[list[str], list[Path]]:
    config = tmp / "cfg.yaml"
    config.write_text("_base_: demo_mnv2_os16\n")
    return ["complexity", "--config", str(config), "--json", str(config)], [config]


SAME_AS_INPUT: dict[str, Case] = {
    "export --out CHECKPOINT": _export_same,
    "export --out inside --verify": _export_inside_verify,
    "quantize --out CHECKPOINT": _quantize_same,
    "quantize --out inside --calib-data": _quantize_inside_calib,
    "test --json CHECKPOINT": _test_json,
    "test --json a data-set image": _test_json_in_the_data,
    "test --save-pred the mask folder": _test_save_pred_masks,
    "infer --output the --input folder": _infer_same_folder,
    "infer --output the --input file": _infer_same_file,
    "convert MODEL MODEL": _convert_same,
    "convert MODEL --labels L L": _convert_labels,
    "tradeoff --out holding --latency": _tradeoff_latency,
    "complexity --json CONFIG": _complexity_config,
}


@pytest.fixture
def workspace(tiny_ckpt: Path, synth_root: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """(tmp folder, a copy of the tiny checkpoint, a copy of the synthetic data set): the inputs a case may touch."""
    ck = tmp_path / "ck.pth"
    shutil.copy(tiny_ckpt, ck)
    root = tmp_path / "data"
    shutil.copytree(synth_root, root)
    return tmp_path, ck, root


def _refused(argv: list[str], capsys: pytest.CaptureFixture, *expected: str) -> str:
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 2, (argv, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in err, err
    return err


@pytest.mark.parametrize("case", list(SAME_AS_INPUT))
def test_every_command_refuses_an_output_that_is_an_input(case: str, workspace, capsys) -> None:
    tmp, ck, root = workspace
    argv, inputs = SAME_AS_INPUT[case](tmp, ck, root)
    before = {p: _digest(p) for p in inputs}
    tree = _tree(tmp)
    err = _refused(argv, capsys)
    assert "this command reads" in err or "holds the --input" in err, err
    assert {p: _digest(p) for p in inputs} == before  # every input unchanged
    assert _tree(tmp) == tree  # and nothing written anywhere


# (command, flag of the output, the rest of argv; the output's place is appended after the flag)
OUTPUT_OPTIONS = {
    "export --out": (["export", "--checkpoint", "{ck}"], "--out", "m.onnx"),
    "quantize --out": (
        ["quantize", "--checkpoint", "{ck}", "--format", "onnx", "--calib-data", "{root}"],
        "--out",
        "m.onnx",
    ),
    "quantize --out (openvino)": (
        ["quantize", "--checkpoint", "{ck}", "--format", "openvino", "--calib-data", "{root}"],
        "--out",
        "m.xml",
    ),
    "test --json": (["test", "--checkpoint", "{ck}", "--data-root", "{root}", *QUIET], "--json", "eval.json"),
    "test --save-pred": (["test", "--checkpoint", "{ck}", "--data-root", "{root}", *QUIET], "--save-pred", "pred"),
    "infer --output": (["infer", "--checkpoint", "{ck}", "--input", "{image}", *QUIET], "--output", "out"),
    "convert OUT": (["convert", "{tflite}"], "", "out.pth"),
    "tradeoff --out": (["tradeoff"], "--out", "tradeoff"),
    "complexity --json": (["complexity", "--config", "demo_mnv2_os16"], "--json", "c.json"),
    "complexity --markdown": (["complexity", "--table7"], "--markdown", "c.md"),
}


def _argv(name: str, place: Path, tmp: Path, ck: Path, root: Path) -> list[str]:
    head, flag, leaf = OUTPUT_OPTIONS[name]
    values = {
        "ck": str(ck),
        "root": str(root),
        "image": str(root / "VOCdevkit" / "VOC2012" / "JPEGImages" / "val_00000.jpg"),
        "tflite": str(_tiny_tflite_input(tmp)),
    }
    argv = [item.format(**values) for item in head]
    return [*argv, *([flag] if flag else []), str(place / leaf)]


@pytest.mark.parametrize("name", list(OUTPUT_OPTIONS))
def test_every_command_refuses_an_output_that_cannot_be_written(name: str, workspace, capsys) -> None:
    tmp, ck, root = workspace
    a_file = tmp / "a_file"
    a_file.write_text("keep me")
    before, tree = _digest(ck), _tree(tmp)
    _refused(_argv(name, a_file, tmp, ck, root), capsys, "a_file is a file, not a folder")
    read_only = _read_only_folder(tmp)
    _refused(_argv(name, read_only, tmp, ck, root), capsys, "is not writable")
    (tmp / "read_only").chmod(0o700)
    assert (
        a_file.read_text() == "keep me" and _digest(ck) == before and _tree(tmp) == tree | {"model.tflite", "read_only"}
    )


@pytest.mark.parametrize(
    ("name", "wanted"),
    [
        ("export --out", "is an existing folder; name a file"),
        ("quantize --out", "is an existing folder; name a file"),
        ("test --json", "is an existing folder; name a file"),
        ("complexity --json", "is an existing folder; name a file"),
        ("convert OUT", "is an existing folder; name a file"),
    ],
)
def test_an_existing_folder_where_a_file_is_wanted_is_refused_first(name: str, wanted: str, workspace, capsys) -> None:
    tmp, ck, root = workspace
    argv = _argv(name, tmp, tmp, ck, root)
    Path(argv[-1]).mkdir()
    _refused(argv, capsys, wanted)


@pytest.mark.parametrize("name", ["infer --output", "test --save-pred", "tradeoff --out"])
def test_an_existing_file_where_a_folder_is_wanted_is_refused_first(name: str, workspace, capsys) -> None:
    tmp, ck, root = workspace
    argv = _argv(name, tmp, tmp, ck, root)
    Path(argv[-1]).write_text("a file")
    _refused(argv, capsys, "is an existing file")
    assert Path(argv[-1]).read_text() == "a file"


def test_test_json_is_checked_before_the_evaluation(workspace, capsys, monkeypatch) -> None:
    """--json under a file used to be found after the whole evaluation: now nothing is evaluated."""
    import segkit.evaluation.command as command

    tmp, ck, root = workspace
    (tmp / "a_file").write_text("x")

    def no_evaluation(*args, **kwargs):
        raise AssertionError("evaluated before the output was checked")

    monkeypatch.setattr(command, "evaluate", no_evaluation)
    _refused(["test", "--checkpoint", str(ck), "--json", str(tmp / "a_file" / "e.json"), *QUIET], capsys, "a_file")


def test_outputs_elsewhere_still_work(workspace, capsys) -> None:
    """The checks refuse only what they should: predictions into a new folder beside the photos, the JSON beside the
    checkpoint (the Makefile's layout)."""
    tmp, ck, root = workspace
    photos = tmp / "photos"
    photos.mkdir()
    shutil.copy(root / "VOCdevkit" / "VOC2012" / "JPEGImages" / "val_00000.jpg", photos)
    assert (
        main(["infer", "--checkpoint", str(ck), "--input", str(photos), "--output", str(photos / "out"), *QUIET]) == 0
    )
    assert main(["test", "--checkpoint", str(ck), "--json", str(tmp / "eval.json"), *QUIET]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in (photos / "out").iterdir()) == ["val_00000.png", "val_00000_overlay.jpg"]
    assert (tmp / "eval.json").is_file()
