"""What ``segkit test`` and ``segkit infer`` do, as library functions: segkit.evaluation.command (on a loaded model)
and segkit.export.source (loading what --checkpoint/--model/--runtime name), on a tiny VOC-layout tree the tests write.

The command lines themselves (flags, printed lines, exit codes) are tested in tests/cli/test_{test,infer}_command.py.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from segkit.checkpoint.format import save_checkpoint
from segkit.config import load_config
from segkit.data.base import BadSampleWarning
from segkit.data.classes import VOC_CLASSES, VOC_PALETTE
from segkit.errors import SegkitError
from segkit.evaluation.command import (
    COCO_DEFAULT_SPLIT,
    default_split,
    evaluate_model,
    list_images,
    output_names,
    segment,
    segment_images,
)
from segkit.evaluation.predict import InferenceError, normalize, predict
from segkit.export.source import ModelSource, evaluate_checkpoint, infer_images
from segkit.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")

VOC_SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "voc_sample"
SIZES = {"img_a": (40, 56), "img_b": (48, 36), "img_c": (33, 47)}  # id -> (H, W)
JSON_KEYS = {"config", "decoder", "model", "precision", "runtime", "quantization", "miou", "pixel_acc", "mean_acc",
             "per_class_iou", "confusion", "num_images", "protocol",
             "miou_definition", "miou_gt_or_pred", "stray_classes", "model_file", "data"}  # fmt: skip
QUIET: dict[str, Any] = {"progress": False, "device": "cpu", "log": lambda line: None}


def make_mask(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), dtype=np.uint8)
    for _ in range(3):
        c = int(rng.integers(1, 21))
        y, x = int(rng.integers(0, h - 10)), int(rng.integers(0, w - 10))
        mask[y : y + 12, x : x + 15] = c
    mask[h // 2, :] = 255  # an ignore line, as VOC's object boundaries
    return mask


def write_voc(root: Path) -> dict[str, np.ndarray]:
    """A VOC-layout tree with three images of different sizes; returns the masks by id."""
    base = root / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    masks = {}
    for i, (sample_id, (h, w)) in enumerate(SIZES.items()):
        image = np.random.default_rng(i).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        Image.fromarray(image).save(base / "JPEGImages" / f"{sample_id}.jpg", quality=90)
        masks[sample_id] = make_mask(h, w, i)
        png = Image.fromarray(masks[sample_id], mode="P")
        png.putpalette(VOC_PALETTE.reshape(-1).tolist())
        png.save(base / "SegmentationClass" / f"{sample_id}.png")
    (base / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(SIZES) + "\n")
    return masks


@pytest.fixture(scope="module")
def voc(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    root = tmp_path_factory.mktemp("voc")
    return root, write_voc(root)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, voc: tuple[Path, dict]) -> Path:
    """A randomly initialised width-0.35 model whose config points at the tiny VOC tree."""
    root, _ = voc
    cfg = load_config(
        "voc_mnv2_os16", {"model.width_mult": 0.35, "data.root": str(root), "data.num_workers": 0, "eval.pad_to": None}
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "model.pth"
    save_checkpoint(path, build_model(cfg).eval(), cfg, class_names=list(VOC_CLASSES), palette=VOC_PALETTE[:21])
    return path


def check_report(report: dict[str, Any], masks: dict[str, np.ndarray]) -> np.ndarray:
    """The JSON keys, and its numbers against its confusion matrix and the ground truth; returns the matrix."""
    assert set(report) == JSON_KEYS
    assert set(report["model"]) == {"backbone", "width_mult", "output_stride", "aspp", "decoder", "num_classes"}
    cm = np.array(report["confusion"], dtype=np.int64)
    assert cm.shape == (21, 21)
    gt = np.concatenate([m.reshape(-1) for m in masks.values()])
    assert np.array_equal(cm.sum(axis=1), np.bincount(gt[gt != 255], minlength=21))  # rows = ground truth
    tp, union = np.diag(cm), cm.sum(0) + cm.sum(1) - np.diag(cm)
    iou = {name: (tp[i] / union[i] if union[i] else None) for i, name in enumerate(VOC_CLASSES)}
    assert list(report["per_class_iou"]) == list(VOC_CLASSES)
    for name, value in report["per_class_iou"].items():
        assert value == (pytest.approx(iou[name]) if iou[name] is not None else None)
    in_gt = [iou[name] for i, name in enumerate(VOC_CLASSES) if cm[i].sum()]
    assert report["miou"] == pytest.approx(np.mean(in_gt))  # segkit's mIoU: over the classes in the ground truth
    assert report["miou_definition"] == "classes in the ground truth"
    assert report["miou_gt_or_pred"] == pytest.approx(np.mean([v for v in iou.values() if v is not None]))
    assert report["pixel_acc"] == pytest.approx(tp.sum() / cm.sum())
    recall = [tp[i] / cm[i].sum() for i in range(21) if cm[i].sum()]
    assert report["mean_acc"] == pytest.approx(np.mean(recall))
    assert report["num_images"] == len(masks)
    return cm


def record_inputs(model: nn.Module) -> list[tuple[int, int]]:
    """The (H, W) of every input ``model`` sees from now on."""
    shapes: list[tuple[int, int]] = []
    model.register_forward_pre_hook(lambda module, inputs: shapes.append(tuple(inputs[0].shape[-2:])))
    return shapes


# -- segkit test: evaluate_checkpoint / evaluate_model ---------------------------------------------------------------


def test_evaluate_checkpoint_reports_and_writes_json(voc: tuple[Path, dict], checkpoint: Path, tmp_path: Path) -> None:
    _, masks = voc
    out = tmp_path / "sub" / "eval.json"
    lines: list[str] = []
    result = evaluate_checkpoint(checkpoint, json_path=out, progress=False, device="cpu", log=lines.append)
    report = json.loads(out.read_text())
    assert report == result.report and result.class_names == list(VOC_CLASSES)
    assert (result.dataset, result.split, result.bad_samples_report) == ("voc", "val", "")
    check_report(report, masks)
    assert (report["config"], report["precision"], report["runtime"], report["quantization"]) == (
        "voc_mnv2_os16", "fp32", "pytorch", None)  # fmt: skip
    assert report["protocol"] == {"scales": [1.0], "flip": False, "resize_longer": None, "pad_to": None,
                                  "name": "whole image", "dataset": "voc", "split": "val"}  # fmt: skip
    # where the numbers came from: the checkpoint (its bytes' sha256), the data root and split
    digest = hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest()
    assert report["model_file"]["path"] == str(Path(checkpoint).resolve()) and report["model_file"]["sha256"] == digest
    assert report["model_file"]["size"] == Path(checkpoint).stat().st_size and report["model_file"]["mtime"]
    assert report["data"] == {"dataset": "voc", "root": str(voc[0]), "split": "val"}
    assert not list(out.parent.glob(".*.tmp"))  # atomic write left nothing behind
    assert len(lines) == 1 and lines[0].startswith(
        f"Evaluating {checkpoint} (fp32, pytorch) on voc 'val' (3 images, 21"
    )
    assert f"on cpu; data from {voc[0]}" in lines[0]


def test_model_source_fast_and_another_output_stride(checkpoint: Path) -> None:
    """``fast`` in PyTorch (optimize_for_inference) gives the same confusion matrix; ``model.output_stride=8`` evaluates the
    same weights at OS8 (the official recipe: train at OS16, evaluate at OS8), which predicts differently."""
    sources = {
        "plain": ModelSource(checkpoint),
        "fast": ModelSource(checkpoint, runtime="pytorch", fast=True),  # --fast on a CPU: tests/export/test_fast.py
        "os8": ModelSource(checkpoint, overrides={"model.output_stride": 8}),
    }
    models = {name: source.load("cpu") for name, source in sources.items()}
    reports = {name: evaluate_model(model, cfg, **QUIET).report for name, (model, cfg) in models.items()}
    assert reports["fast"]["confusion"] == reports["plain"]["confusion"]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in models["fast"][0].modules())  # folded into the convs
    assert any(isinstance(m, nn.BatchNorm2d) for m in models["plain"][0].modules())
    assert models["os8"][0].backbone.output_stride == 8 and models["plain"][0].backbone.output_stride == 16
    assert reports["os8"]["model"]["output_stride"] == 8


def test_model_source_overrides_reach_the_config(checkpoint: Path) -> None:
    model, cfg = ModelSource(checkpoint, overrides={"eval.flip": True}).load()
    assert cfg.eval.flip and not model.training
    assert model.class_names == list(VOC_CLASSES) and model.segkit_config is cfg
    assert ModelSource(checkpoint).name == str(checkpoint) and ModelSource(model="m.onnx").name == "m.onnx"


def test_evaluate_model_ms_flip_fixed_input_and_save_pred(
    voc: tuple[Path, dict], checkpoint: Path, tmp_path: Path
) -> None:
    root, masks = voc
    protocol = {"eval.scales": [0.75, 1.25], "eval.flip": True, "eval.resize_longer": 64, "eval.pad_to": 72}
    model, cfg = ModelSource(checkpoint, overrides={"data.root": str(root), **protocol}).load("cpu")
    shapes = record_inputs(model)
    out, pred_dir = tmp_path / "eval.json", tmp_path / "pred"
    evaluate_model(model, cfg, split="val", json_path=out, save_pred=pred_dir, **QUIET)
    # Longer side to 64: img_a 40x56 -> 46x64, img_b 48x36 -> 64x48, img_c 33x47 -> 45x64; then scales 0.75
    # and 1.25 of that, each with its flip, padded to at least 72x72.
    assert shapes == [(72, 72)] * 2 + [(72, 80)] * 2 + [(72, 72)] * 2 + [(80, 72)] * 2 + [(72, 72)] * 2 + [(72, 80)] * 2
    report = json.loads(out.read_text())
    cm = check_report(report, masks)
    assert report["protocol"]["scales"] == [0.75, 1.25] and report["protocol"]["flip"] is True
    assert report["protocol"]["resize_longer"] == 64 and report["protocol"]["pad_to"] == 72
    pred_hist = np.zeros(21, dtype=np.int64)
    for sample_id, mask in masks.items():
        png = Image.open(pred_dir / f"{sample_id}.png")
        assert png.mode == "P" and png.size == (mask.shape[1], mask.shape[0])
        pred = np.array(png)
        assert pred.max() < 21
        pred_hist += np.bincount(pred[mask != 255], minlength=21)
        with Image.open(pred_dir / f"{sample_id}_overlay.jpg") as overlay:
            assert overlay.format == "JPEG" and overlay.width > 2 * mask.shape[1]
    assert np.array_equal(cm.sum(axis=0), pred_hist)  # columns = the saved predictions


def test_evaluate_checkpoint_of_a_bare_state_dict_needs_a_config(
    voc: tuple[Path, dict], checkpoint: Path, tmp_path: Path
) -> None:
    root, masks = voc
    bare = tmp_path / "bare.pth"
    torch.save({"module." + k: v for k, v in torch.load(checkpoint, weights_only=True)["model"].items()}, bare)
    with pytest.raises(SegkitError, match="--config"):
        evaluate_checkpoint(ModelSource(bare, overrides={"data.root": str(root)}), **QUIET)
    overrides = {"model.width_mult": 0.35, "data.num_workers": 0, "data.root": str(root), "eval.pad_to": None}
    result = evaluate_checkpoint(ModelSource(bare, config="voc_mnv2_os16", overrides=overrides), **QUIET)
    check_report(result.report, masks)
    with pytest.raises(SegkitError, match="carries its own config"):
        evaluate_checkpoint(ModelSource(checkpoint, config="voc_mnv2_os16"), **QUIET)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ({"checkpoint": "missing.pth"}, "Checkpoint not found: missing.pth"),
        ({"overrides": {"data.root": "no/such/root"}}, "PASCAL VOC 2012 not found"),
        ({"split": "nosplit"}, "Available splits: val"),
        ({"overrides": {"data.num_workers": -1}}, "data.num_workers"),
        ({"overrides": {"data.ignore_index": 3}}, r"data.ignore_index=3 collides with class 3 \('bird'\)"),
    ],
)
def test_evaluate_checkpoint_errors(checkpoint: Path, source: dict[str, Any], expected: str) -> None:
    source = dict(source)
    split = source.pop("split", None)
    with pytest.raises(SegkitError, match=expected):
        evaluate_checkpoint(ModelSource(**{"checkpoint": checkpoint, **source}), split=split, **QUIET)


def test_evaluate_checkpoint_corrupt_checkpoint_and_image(
    voc: tuple[Path, dict], checkpoint: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.pth"
    broken.write_bytes(checkpoint.read_bytes()[:1000])
    with pytest.raises(SegkitError, match="Cannot read checkpoint"):
        evaluate_checkpoint(broken, **QUIET)
    root = tmp_path / "voc"
    shutil.copytree(voc[0], root)
    bad = root / "VOCdevkit" / "VOC2012" / "JPEGImages" / "img_b.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(SegkitError, match=re.escape(str(bad))):  # raised in a DataLoader worker
        evaluate_checkpoint(ModelSource(checkpoint, overrides={"data.root": str(root), "data.num_workers": 1}), **QUIET)


def test_evaluate_checkpoint_skips_bad_samples_without_counting_twice(
    voc: tuple[Path, dict], checkpoint: Path, tmp_path: Path
) -> None:
    root = tmp_path / "voc"
    shutil.copytree(voc[0], root)
    bad = root / "VOCdevkit" / "VOC2012" / "JPEGImages" / "img_b.jpg"
    bad.write_bytes(b"not a jpeg")
    overrides = {"data.root": str(root), "data.skip_bad_samples": True, "data.num_workers": 1}
    out = tmp_path / "eval.json"
    result = evaluate_checkpoint(ModelSource(checkpoint, overrides=overrides), json_path=out, **QUIET)
    good = {k: v for k, v in voc[1].items() if k != "img_b"}
    check_report(json.loads(out.read_text()), good)  # num_images 2, and img_c not scored twice in its place
    assert result.metrics.num_images == 2 and "1 bad samples skipped" in result.bad_samples_report
    assert f"img_b: Cannot read image {bad}" in result.bad_samples_report

    for name in ("img_a", "img_c"):
        (root / "VOCdevkit" / "VOC2012" / "JPEGImages" / f"{name}.jpg").write_bytes(b"broken too")
    out.unlink()
    with pytest.warns(BadSampleWarning):
        result = evaluate_checkpoint(
            ModelSource(checkpoint, overrides={**overrides, "data.num_workers": 0}), json_path=out, **QUIET
        )
    assert result.metrics.num_images == 0 and result.report is None and not out.exists()  # nothing scored
    assert "3 bad samples skipped" in result.bad_samples_report


def write_coco_val(root: Path) -> np.ndarray:
    """A COCO-layout val2017 with one 60x80 image holding a person; returns its VOC mask."""
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    Image.fromarray(np.full((60, 80, 3), 90, np.uint8)).save(root / "val2017" / "000000000007.jpg")
    ann = {"id": 1, "image_id": 7, "category_id": 1, "iscrowd": 0, "area": 1500, "bbox": [10, 10, 50, 30],
           "segmentation": [[10, 10, 60, 10, 60, 40, 10, 40]]}  # fmt: skip
    coco = {"images": [{"id": 7, "file_name": "000000000007.jpg", "height": 60, "width": 80}], "annotations": [ann],
            "categories": [{"id": 1, "name": "person"}]}  # fmt: skip
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(coco))
    mask = np.zeros((60, 80), np.uint8)
    mask[10:40, 10:60] = VOC_CLASSES.index("person")
    return mask


def test_coco_defaults_to_val2017(checkpoint: Path, tmp_path: Path) -> None:
    """A VOC checkpoint's val_split ('val') is no COCO split: COCO evaluates val2017 unless a split is given."""
    mask = write_coco_val(tmp_path / "coco")
    source = ModelSource(checkpoint, overrides={"data.dataset": "coco", "data.root": str(tmp_path / "coco")})
    _, cfg = source.load()
    assert default_split(cfg) == COCO_DEFAULT_SPLIT == "val2017"
    assert default_split(load_config("voc_mnv2_os16")) == "val"
    cfg.data.val_split = "val2017"
    assert default_split(cfg) == "val2017"
    result = evaluate_checkpoint(source, **QUIET)
    assert result.report["protocol"]["dataset"] == "coco" and result.report["protocol"]["split"] == "val2017"
    check_report(result.report, {"000000000007": mask})
    with pytest.raises(SegkitError, match="instances_train2017.json"):  # an explicit split wins
        evaluate_checkpoint(source, split="train2017", **QUIET)


def test_slide_matches_whole_image_where_it_fits(checkpoint: Path) -> None:
    reports = {
        name: evaluate_checkpoint(ModelSource(checkpoint, overrides={"eval.slide": slide}), **QUIET).report
        for name, slide in (("whole", None), ("fits", [64, 32]), ("windows", [32, 16]))
    }
    assert reports["fits"]["protocol"]["slide"] == [64, 32] and "slide" not in reports["whole"]["protocol"]
    assert reports["fits"]["confusion"] == reports["whole"]["confusion"]  # every image (<= 48x56) is one window
    assert reports["windows"]["protocol"]["slide"] == [32, 16]
    assert np.array(reports["windows"]["confusion"]).sum() == np.array(reports["whole"]["confusion"]).sum()


def test_relative_data_root_is_resolved_and_said(
    voc: tuple[Path, dict], checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = voc
    source = ModelSource(checkpoint, overrides={"data.root": root.name})
    monkeypatch.chdir(root.parent)
    lines: list[str] = []
    evaluate_checkpoint(source, **{**QUIET, "log": lines.append})
    assert f"data from {root.resolve()} (data.root '{root.name}' is relative: read from the current folder" in lines[0]
    monkeypatch.chdir(tmp_path)  # from elsewhere: the error names the resolved folder, not a bare 'voc...'
    with pytest.raises(SegkitError, match=re.escape(str(tmp_path / root.name))):
        evaluate_checkpoint(source, **QUIET)


def test_a_pass_over_the_pixel_budget_is_refused(voc: tuple[Path, dict], checkpoint: Path) -> None:
    model, cfg = ModelSource(checkpoint, overrides={"eval.scales": [3.0]}).load()
    with pytest.raises(InferenceError, match=r"a forward pass of 1 x 120x168 .* budget of 5,000"):
        evaluate_model(model, cfg, max_pixels=5000, **QUIET)
    image = np.asarray(Image.open(voc[0] / "VOCdevkit" / "VOC2012" / "JPEGImages" / "img_a.jpg").convert("RGB"))
    model, cfg = ModelSource(checkpoint).load()
    with pytest.raises(InferenceError, match=r"1 x 40x56 = 2,240 pixels exceeds the budget of 2,000.*--slide"):
        segment(model, image, cfg, "cpu", 2000)
    cfg.eval.slide = [32, 16]  # the sliding window keeps every pass within the budget
    assert segment(model, image, cfg, "cpu", 2000).shape == (40, 56)


# -- segkit infer: infer_images / segment_images ---------------------------------------------------------------------


def test_list_images_and_output_names(tmp_path: Path) -> None:
    with pytest.raises(SegkitError, match="nope.jpg does not exist"):
        list_images(tmp_path / "nope.jpg")
    with pytest.raises(SegkitError, match="holds no images"):
        list_images(tmp_path)
    for name in ("b.png", "a.JPG", "a.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.jpg").mkdir()
    paths = list_images(tmp_path)
    assert [p.name for p in paths] == ["a.JPG", "a.png", "b.png"] and list_images(paths[0]) == paths[:1]
    assert output_names(paths) == ["a_jpg", "a_png", "b"]


def test_segment_images_file_fast_and_folder(voc: tuple[Path, dict], checkpoint: Path, tmp_path: Path) -> None:
    images = voc[0] / "VOCdevkit" / "VOC2012" / "JPEGImages"
    protocol = {"eval.resize_longer": 64, "eval.pad_to": 72}
    model, cfg = ModelSource(checkpoint, overrides=protocol).load("cpu")
    shapes = record_inputs(model)
    out = tmp_path / "one"
    result = segment_images(model, cfg, [images / "img_a.jpg"], out, **QUIET)
    assert (result.done, result.failed, result.output) == (1, [], out)
    assert shapes == [(72, 72)]  # 40x56 -> 46x64 -> padded to 72x72
    image = np.asarray(Image.open(images / "img_a.jpg").convert("RGB"))
    x = normalize(image, cfg.model.input_mean, cfg.model.input_std)[None]
    expected = predict(model, x, image.shape[:2], resize_longer=64, pad_to=72)[0].numpy()
    assert np.array_equal(np.array(Image.open(out / "img_a.png")), expected)
    assert sorted(p.name for p in out.iterdir()) == ["img_a.png", "img_a_overlay.jpg"]
    png = Image.open(out / "img_a.png")
    assert png.mode == "P" and png.size == (56, 40) and np.array(png).max() < 21
    assert png.getpalette()[: 3 * 21] == VOC_PALETTE[:21].reshape(-1).tolist()
    assert Image.open(out / "img_a_overlay.jpg").width > 56  # image + legend

    fast = tmp_path / "fast"
    source = ModelSource(checkpoint, runtime="pytorch", overrides=protocol, fast=True)  # optimize_for_inference
    infer_images(source, images / "img_a.jpg", fast, **QUIET)
    assert np.array_equal(np.array(Image.open(fast / "img_a.png")), expected)  # optimized: same label map

    folder = tmp_path / "folder"
    folder.mkdir()
    for name in ("img_a", "img_c"):
        shutil.copy(images / f"{name}.jpg", folder / f"{name}.jpg")
    (folder / "broken.png").write_bytes(b"\x89PNG garbage")
    (folder / "notes.txt").write_text("not an image")
    cfg.eval.scales, cfg.eval.flip, cfg.eval.resize_longer, cfg.eval.pad_to = [0.5, 1.0], True, None, None
    del shapes[:]
    lines: list[str] = []
    result = segment_images(model, cfg, list_images(folder), tmp_path / "many", **{**QUIET, "log": lines.append})
    assert result.done == 2 and [p for p, _ in result.failed] == [folder / "broken.png"]  # skipped, the others done
    assert len(lines) == 2 and lines[0] == "Segmenting 3 image(s) on cpu; protocol: scales [0.5, 1] + flip"
    assert lines[1].startswith(f"warning: skipping {folder / 'broken.png'}: not a readable image")
    names = sorted(p.name for p in (tmp_path / "many").iterdir())
    assert names == ["img_a.png", "img_a_overlay.jpg", "img_c.png", "img_c_overlay.jpg"]
    assert Image.open(tmp_path / "many" / "img_c.png").size == (47, 33)
    # scales 0.5 and 1, each with its flip: img_a 40x56 -> 20x28, 40x56; img_c 33x47 -> 17x24, 33x47
    assert shapes == [(20, 28)] * 2 + [(40, 56)] * 2 + [(17, 24)] * 2 + [(33, 47)] * 2


def test_segment_images_palette_and_names_default_to_voc(voc: tuple[Path, dict], tmp_path: Path) -> None:
    """A model without class colours (a bare state dict's) draws VOC's colours."""
    cfg = load_config("voc_mnv2_os16", {"model.width_mult": 0.35})
    model = build_model(cfg).eval()
    image = voc[0] / "VOCdevkit" / "VOC2012" / "JPEGImages" / "img_b.jpg"
    segment_images(model, cfg, [image], tmp_path, **QUIET)
    assert Image.open(tmp_path / "img_b.png").getpalette()[: 3 * 21] == VOC_PALETTE[:21].reshape(-1).tolist()


def test_infer_images_checks_the_input_before_loading(tmp_path: Path, checkpoint: Path) -> None:
    with pytest.raises(SegkitError, match="nope.jpg does not exist"):
        infer_images(tmp_path / "missing.pth", tmp_path / "nope.jpg", tmp_path / "o", **QUIET)
    image = tmp_path / "x.png"
    Image.new("RGB", (20, 20)).save(image)
    with pytest.raises(SegkitError, match="Checkpoint not found"):
        infer_images(tmp_path / "missing.pth", image, tmp_path / "o", **QUIET)


# -- real VOC files -------------------------------------------------------------------------------------------------


def random_voc_checkpoint(path: Path) -> Path:
    cfg = load_config("voc_mnv2_os16", {"model.width_mult": 0.35})  # random init: the code must run, not score
    torch.manual_seed(0)
    save_checkpoint(path, build_model(cfg).eval(), cfg, class_names=list(VOC_CLASSES), palette=VOC_PALETTE[:21])
    return path


def test_infer_images_on_real_voc_sample(shared_data: Path, tmp_path: Path) -> None:
    images = shared_data / "voc_sample" / "VOCdevkit" / "VOC2012" / "JPEGImages"
    source = ModelSource(random_voc_checkpoint(tmp_path / "random.pth"), overrides={"eval.resize_longer": 129,
                         "eval.pad_to": 129})  # fmt: skip
    out = tmp_path / "out"
    result = infer_images(source, images, out, **QUIET)
    paths = sorted(images.glob("*.jpg"))
    assert result.done == len(paths) > 1 and sorted(p.name for p in out.iterdir()) == sorted(
        name for p in paths for name in (f"{p.stem}.png", f"{p.stem}_overlay.jpg")
    )
    for path in paths:
        with Image.open(path) as image, Image.open(out / f"{path.stem}.png") as png:
            assert png.mode == "P" and png.size == image.size and np.array(png).max() < 21


def test_evaluate_checkpoint_on_real_voc_sample(tmp_path: Path) -> None:
    if not VOC_SAMPLE.is_dir():
        pytest.skip(f"real VOC sample not available: {VOC_SAMPLE} is absent (it sits beside the repo in CI only)")
    overrides = {"data.root": str(VOC_SAMPLE), "data.num_workers": 0, "eval.resize_longer": 257, "eval.pad_to": 257}
    source = ModelSource(random_voc_checkpoint(tmp_path / "random.pth"), overrides=overrides)
    pred_dir = tmp_path / "pred"
    result = evaluate_checkpoint(source, save_pred=pred_dir, **QUIET)
    mask_dir = VOC_SAMPLE / "VOCdevkit" / "VOC2012" / "SegmentationClass"
    ids = (VOC_SAMPLE / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
    masks = {i: np.array(Image.open(mask_dir / f"{i}.png")) for i in ids}
    check_report(result.report, masks)
    assert len({m.shape for m in masks.values()}) > 1  # images of various sizes
    for sample_id, mask in masks.items():
        assert Image.open(pred_dir / f"{sample_id}.png").size == (mask.shape[1], mask.shape[0])
