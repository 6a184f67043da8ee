"""segkit.checkpoint.load (load_model, load_state_into), segkit.checkpoint.format's file reading and segkit.utils.io's file modes."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
import torch
import torchvision

import segkit
from segkit.checkpoint.format import CheckpointError, read_torch_file, save_checkpoint
from segkit.checkpoint.load import (
    LoadReport,
    bare_state_dict,
    load_classifier,
    load_eval_model,
    load_model,
    load_state_into,
)
from segkit.config import ConfigError, load_config
from segkit.models import build_classifier, build_model
from segkit.models.classifier import MobileNetV2Classifier
from segkit.utils.io import atomic_torch_save, atomic_write_text

TINY = {"model.width_mult": 0.35}


@pytest.fixture(scope="module")
def cfg() -> segkit.Config:
    return load_config("voc_mnv2_os16", TINY)


@pytest.fixture(scope="module")
def seg_path(tmp_path_factory: pytest.TempPathFactory, cfg: segkit.Config) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("seg") / "seg.pth"
    save_checkpoint(path, build_model(cfg), cfg, class_names=[f"c{i}" for i in range(21)], palette=[[1, 2, 3]] * 21)
    return path


def bad_files(tmp_path: Path) -> dict[str, Path]:
    """A truncated torch file, random bytes, a pickle of a function, an empty file."""
    good = tmp_path / "good.pth"
    torch.save({"w": torch.ones(3)}, good)
    data = good.read_bytes()
    files = {name: tmp_path / f"{name}.pth" for name in ("truncated", "random", "pickled", "empty")}
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["random"].write_bytes(
        bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(1)).to(torch.uint8).tolist())
    )
    torch.save({"w": os.getcwd}, files["pickled"])
    files["empty"].write_bytes(b"")
    return files


EXPECTED = {
    "truncated": "truncated or damaged",
    "random": "not a PyTorch file",
    "pickled": "pickle holding Python objects (posix.getcwd)",
    "empty": "the file is empty",
}


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_init_weights_bad_file_is_one_line_saying_what_it_is(kind: str, tmp_path: Path, cfg: segkit.Config) -> None:
    """Issue 11 item 8: train.init_weights at a truncated, random or pickled file; before, a raw traceback."""
    path = bad_files(tmp_path)[kind]
    with pytest.raises(CheckpointError) as info:
        load_state_into(build_model(cfg), path)
    text = str(info.value)
    assert "\n" not in text and f"train.init_weights file {path}" in text and EXPECTED[kind] in text
    assert "weights_only=False" not in text and "weights_only` set to `False" not in text  # PyTorch's hint dropped
    assert "bare state dicts" in text and "mobilenet_v2" in text  # what is accepted


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_segkit_test_on_a_bad_file_is_one_line(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from segkit.cli import main

    path = bad_files(tmp_path)[kind]
    assert main(["test", "--checkpoint", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: Cannot read checkpoint") and EXPECTED[kind] in err
    assert "Traceback" not in err and "False" not in err


def test_read_torch_file_reads_tensors_only(tmp_path: Path) -> None:
    path = tmp_path / "ok.pth"
    torch.save({"w": torch.arange(3)}, path)
    assert torch.equal(read_torch_file(path)["w"], torch.arange(3))
    assert zipfile.is_zipfile(path)
    with pytest.raises(CheckpointError, match="^Checkpoint not found"):
        read_torch_file(tmp_path / "nope.pth")


def test_load_model_segmentor_classifier_and_bare(tmp_path: Path, cfg: segkit.Config, seg_path: Path) -> None:
    model = load_model(seg_path)
    assert not model.training and model.segkit_config == cfg and model.class_names[1] == "c1"
    assert model.palette[0] == [1, 2, 3]
    reference = build_model(cfg)
    reference.load_state_dict(torch.load(seg_path, weights_only=True)["model"])
    x = torch.randn(1, 3, 33, 41)
    assert torch.equal(model(x)["out"], reference.eval()(x)["out"])
    # overrides apply to the stored config; the weights do not depend on the output stride
    os8 = load_model(seg_path, overrides=["model.output_stride=8"])
    assert os8.backbone.output_stride == 8 and os8.segkit_config.model.output_stride == 8
    # a bare state dict (under 'state_dict', saved from DDP) + a config name, a YAML path or a Config
    bare = tmp_path / "bare.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in reference.state_dict().items()}}, bare)
    for config in ("voc_mnv2_os16", cfg):
        loaded = load_model(bare, config=config, overrides=TINY if isinstance(config, str) else ())
        assert torch.equal(loaded(x)["out"], model(x)["out"]) and loaded.class_names[0] == "background"
    with pytest.raises(ConfigError, match="drop --config"):
        load_model(seg_path, config="voc_mnv2_os16")
    with pytest.raises(CheckpointError, match="another architecture"):
        load_model(bare, config="voc_mnv2_os16")  # width 1.0 config, width 0.35 weights
    # a classifier checkpoint gives a classifier; load_eval_model refuses it in one line
    ccfg = load_config("voc_mnv2_os16", {**TINY, "model.num_classes": 10})
    clf_path = tmp_path / "clf.pth"
    save_checkpoint(clf_path, build_classifier(ccfg), ccfg, kind="classifier")
    clf = load_model(clf_path)
    assert isinstance(clf, MobileNetV2Classifier) and isinstance(load_classifier(clf_path), MobileNetV2Classifier)
    assert clf(torch.randn(2, 3, 64, 64)).shape == (2, 10)
    with pytest.raises(CheckpointError, match="not a segmentation model"):
        load_eval_model(clf_path)
    with pytest.raises(CheckpointError, match="not a classifier"):
        load_classifier(seg_path)
    assert segkit.load_model is load_model


def test_bare_state_dict_unwraps_once() -> None:
    w = torch.ones(2)
    assert bare_state_dict({"model": {"module.a": w, "module.b": w}}).keys() == {"a", "b"}
    with pytest.raises(CheckpointError, match="neither a segkit checkpoint nor a state dict"):
        bare_state_dict({"a": 1})


def test_load_state_into_sources(tmp_path: Path, cfg: segkit.Config, seg_path: Path) -> None:
    """torchvision file, segkit checkpoint, an in-memory state dict; the report says what loaded."""
    tv = torchvision.models.mobilenet_v2(weights=None, width_mult=0.35)
    tv_path = tmp_path / "tv.pth"
    torch.save(tv.state_dict(), tv_path)
    model, lines = build_model(cfg), []
    report = load_state_into(model, tv_path, log=lines.append)
    assert isinstance(report, LoadReport) and report.loaded == len(model.backbone.state_dict())
    assert torch.equal(model.backbone.features[3].conv[0][0].weight, tv.features[3].conv[0][0].weight)
    assert lines == [report.line()] and "unexpected 0" in lines[0]
    state = torch.load(seg_path, weights_only=True)
    report = load_state_into(model, state, log=lines.append)  # a checkpoint dict in memory
    assert report.loaded == len(model.state_dict()) and report.missing == [] and report.source == "state dict"
    report = load_state_into(model, state["model"], log=lines.append, exclude=("head.classifier.",))
    assert report.missing == ["head.classifier.bias", "head.classifier.weight"]


def test_atomic_files_honour_the_umask(tmp_path: Path) -> None:
    """Issue 11: files written atomically were 0600 (mkstemp) whatever the umask."""
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        atomic_torch_save({"w": torch.ones(1)}, tmp_path / "b.pth")
        assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
        assert (tmp_path / "b.pth").stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        atomic_write_text(tmp_path / "c.txt", "x")
        assert (tmp_path / "c.txt").stat().st_mode & 0o777 == 0o600
        (tmp_path / "a.txt").chmod(0o640)
        atomic_write_text(tmp_path / "a.txt", "y")  # replacing a file keeps its mode
        assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)
