"""segkit.evaluation.evaluator, tools/test.py and tools/infer.py on a tiny VOC-layout tree the tests write themselves."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn

import segkit.cli.infer as INFER_TOOL
import segkit.cli.test as TEST_TOOL
import segkit.cli.train as TRAIN_TOOL
from segkit.checkpoint.format import save_checkpoint
from segkit.checkpoint.load import load_eval_model
from segkit.cli.common import error_message
from segkit.config import EvalConfig, load_config
from segkit.data.base import BadSampleWarning
from segkit.data.classes import VOC_CLASSES, VOC_PALETTE
from segkit.evaluation.evaluator import evaluate
from segkit.evaluation.predict import normalize, predict
from segkit.evaluation.report import format_report_json
from segkit.models import build_model

REPO = Path(__file__).resolve().parents[2]
VOC_SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "voc_sample"
SIZES = {"img_a": (40, 56), "img_b": (48, 36), "img_c": (33, 47)}  # id -> (H, W)
JSON_KEYS = {
    "config",
    "decoder",
    "model",
    "precision",
    "runtime",
    "quantization",
    "miou",
    "pixel_acc",
    "mean_acc",
    "per_class_iou",
    "confusion",
    "num_images",
    "protocol",
}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models gain nothing from intra-op threads, and lose much when the cores are busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


def run_tool(tool: ModuleType, argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    rc = tool.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


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
    assert report["miou"] == pytest.approx(np.mean([v for v in iou.values() if v is not None]))
    assert report["pixel_acc"] == pytest.approx(tp.sum() / cm.sum())
    recall = [tp[i] / cm[i].sum() for i in range(21) if cm[i].sum()]
    assert report["mean_acc"] == pytest.approx(np.mean(recall))
    assert report["num_images"] == len(masks)
    return cm


# -- segkit.evaluation.evaluator --------------------------------------------------------------------------------


class Oracle(nn.Module):
    """Reads the class off channel 0 of the image (label / 10): a perfect model for the batches below."""

    align_corners = False

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        label = (x[:, 0] * 10).round().long().clamp(0, self.num_classes - 1)
        return {"out": nn.functional.one_hot(label, self.num_classes).permute(0, 3, 1, 2).float()}


def oracle_batches(num_classes: int = 4) -> list[dict[str, Any]]:
    g = torch.Generator().manual_seed(0)
    batches = []
    for i, (h, w) in enumerate([(12, 20), (17, 9)]):
        mask = torch.randint(0, num_classes, (1, h, w), generator=g)
        image = torch.rand(1, 3, h, w, generator=g)
        image[:, 0] = mask / 10
        mask[0, 0, :] = 255
        batches.append({"image": image, "mask": mask, "id": [f"s{i}"]})
    return batches


def test_evaluate_perfect_model_streams_into_the_confusion_matrix(tmp_path: Path) -> None:
    model = Oracle(4).train()
    batches = oracle_batches()
    metrics = evaluate(
        model,
        batches,
        4,
        ignore_index=255,
        progress=False,
        save_pred_dir=tmp_path,
        mean=[0, 0, 0],
        std=[255, 255, 255],
        class_names=["bg", "a", "b", "c"],
    )
    assert metrics.miou == 1.0 and metrics.pixel_acc == 1.0 and metrics.mean_acc == 1.0
    gt = torch.cat([b["mask"].reshape(-1) for b in batches])
    assert np.array_equal(np.diag(metrics.confusion), np.bincount(gt[gt != 255].numpy(), minlength=4))
    assert model.training  # mode restored
    for b in batches:
        sid, mask = b["id"][0], b["mask"][0].numpy()
        pred = np.array(Image.open(tmp_path / f"{sid}.png"))
        assert Image.open(tmp_path / f"{sid}.png").mode == "P"
        assert np.array_equal(pred[mask != 255], mask[mask != 255])
        overlay = Image.open(tmp_path / f"{sid}_overlay.jpg")
        assert overlay.height >= mask.shape[0] and overlay.width > 2 * mask.shape[1]  # GT | prediction + legends


class RecordingOracle(Oracle):
    """The oracle, recording every input it is given."""

    def __init__(self, num_classes: int) -> None:
        super().__init__(num_classes)
        self.inputs: list[Tensor] = []

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        self.inputs.append(x.clone())
        return super().forward(x)


def test_evaluate_protocol_and_distributed(tmp_path: Path) -> None:
    import torch.distributed as dist

    model = RecordingOracle(4)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        protocol = EvalConfig(scales=[1.0, 1.5], flip=True, resize_longer=32, pad_to=40)
        metrics = evaluate(model, oracle_batches(), 4, protocol=protocol, progress=True)
    finally:
        dist.destroy_process_group()
    assert metrics.pixel_acc > 0.5  # resampled, so not perfect; runs through all_reduce
    assert metrics.confusion.sum() == sum(int((b["mask"] != 255).sum()) for b in oracle_batches())
    assert metrics.num_images == 2 and metrics.bad_samples == []
    # Views per image: scale 1 and 1.5 of the longer side resized to 32, each also flipped, padded to >= 40.
    # 12x20 -> 19x32 (x1.5: 29x48); 17x9 -> 32x17 (x1.5: 48x26).
    shapes = [tuple(x.shape[-2:]) for x in model.inputs]
    assert shapes == [(40, 40), (40, 40), (40, 48), (40, 48), (40, 40), (40, 40), (48, 40), (48, 40)]
    for plain, flipped, (h, w) in ((0, 1, (19, 32)), (2, 3, (29, 48)), (4, 5, (32, 17)), (6, 7, (48, 26))):
        a, b = model.inputs[plain], model.inputs[flipped]
        assert torch.equal(b[..., :h, :w], a[..., :h, :w].flip(-1))  # the flip, padded on the right
        assert not a[..., h:, :].any() and not a[..., w:].any()  # padding: the mean pixel, 0 once normalised


def test_evaluate_leaves_dropped_samples_out() -> None:
    """Placeholders of a skip_mode='drop' data set are not scored and not counted, but reported."""
    good = oracle_batches()
    batches = [good[0], {"id": ["s9"], "bad_reason": ["Cannot read image s9.jpg"]},  # default collate, batch 1
               {**good[1], "bad": [("s7", "Mask s7.png is 3x4")]},  # collate_drop_bad: a mixed batch
               {"bad": [("s8", "missing")]}]  # collate_drop_bad: every sample bad  # fmt: skip
    metrics = evaluate(Oracle(4), batches, 4, progress=False)
    assert metrics.num_images == 2 and metrics.miou == 1.0
    assert metrics.bad_samples == [("s9", "Cannot read image s9.jpg"), ("s7", "Mask s7.png is 3x4"), ("s8", "missing")]
    assert metrics.confusion.sum() == sum(int((b["mask"] != 255).sum()) for b in good)


def test_evaluate_save_pred_needs_the_normalisation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mean= and std="):
        evaluate(Oracle(4), oracle_batches(), 4, save_pred_dir=tmp_path, progress=False)


def test_error_message_strips_worker_traceback() -> None:
    text = (
        "Caught DatasetError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
        '  File "x.py", line 1\nsegkit.data.base.DatasetError: Cannot read image /a/b.jpg: bad.'
    )
    assert error_message(RuntimeError(text)) == "Cannot read image /a/b.jpg: bad."
    assert error_message(RuntimeError("plain")) == "plain"


def test_format_report_json_round_trips_with_one_row_per_line() -> None:
    report = {
        "miou": 0.5,
        "per_class_iou": {"a [1,  2]": None, "b": 0.25},
        "confusion": [[1, 2], [3, 4]],
        "protocol": {"scales": [0.5, 1.0], "flip": False},
    }
    text = format_report_json(report)
    assert json.loads(text) == report
    assert "    [1, 2],\n    [3, 4]\n" in text and '"a [1,  2]"' in text
    with pytest.raises(ValueError):
        format_report_json({"miou": float("nan")})  # NaN is not JSON; metrics_to_json writes null


# -- tools/test.py ------------------------------------------------------------------------------------


def test_tool_test_prints_table_and_writes_json(
    voc: tuple[Path, dict], checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _, masks = voc
    out = tmp_path / "sub" / "eval.json"
    rc, stdout, stderr = run_tool(TEST_TOOL, ["--checkpoint", checkpoint, "--json", out], capsys)
    assert rc == 0, stderr
    for text in ("aeroplane", "mIoU", "pixel acc", "mean acc"):
        assert text in stdout
    assert "eval" in stderr  # the progress bar
    report = json.loads(out.read_text())
    check_report(report, masks)
    assert (report["precision"], report["runtime"], report["quantization"]) == ("fp32", "pytorch", None)
    assert report["protocol"] == {
        "scales": [1.0],
        "flip": False,
        "resize_longer": None,
        "pad_to": None,
        "dataset": "voc",
        "split": "val",
    }
    assert not list(out.parent.glob(".*.tmp"))  # atomic write left nothing behind


def test_tool_test_fast_and_another_output_stride(
    voc: tuple[Path, dict], checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """--fast (optimize_for_inference) gives the same confusion matrix; --set model.output_stride=8 evaluates
    the same weights at OS8 (the official recipe: train at OS16, evaluate at OS8), which predicts differently."""
    reports, models = {}, {}
    load = TEST_TOOL.load_eval_model

    def load_and_keep(*args: Any, **kwargs: Any) -> tuple[nn.Module, Any]:
        model, cfg = load(*args, **kwargs)
        models[name] = model
        return model, cfg

    for name, extra in (("plain", []), ("fast", ["--fast"]), ("os8", ["--set", "model.output_stride=8"])):
        out = tmp_path / f"{name}.json"
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(TEST_TOOL, "load_eval_model", load_and_keep)
            rc, _, stderr = run_tool(TEST_TOOL, ["--checkpoint", checkpoint, "--json", out, *extra], capsys)
        assert rc == 0, stderr
        reports[name] = json.loads(out.read_text())
    assert reports["plain"]["config"] == "voc_mnv2_os16"
    assert reports["fast"]["confusion"] == reports["plain"]["confusion"]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in models["fast"].modules())  # folded into the convs
    assert any(isinstance(m, nn.BatchNorm2d) for m in models["plain"].modules())
    assert models["os8"].backbone.output_stride == 8 and models["plain"].backbone.output_stride == 16


def record_model_inputs(tool: ModuleType, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Make ``tool`` record the (H, W) of every input its model sees."""
    shapes: list[tuple[int, int]] = []
    load = tool.load_eval_model

    def load_recording(*args: Any, **kwargs: Any) -> tuple[nn.Module, Any]:
        model, cfg = load(*args, **kwargs)
        model.register_forward_pre_hook(lambda module, inputs: shapes.append(tuple(inputs[0].shape[-2:])))
        return model, cfg

    monkeypatch.setattr(tool, "load_eval_model", load_recording)
    return shapes


def test_tool_test_ms_flip_fixed_input_and_save_pred(
    voc: tuple[Path, dict],
    checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, masks = voc
    shapes = record_model_inputs(TEST_TOOL, monkeypatch)
    out, pred_dir = tmp_path / "eval.json", tmp_path / "pred"
    argv = [
        "--checkpoint",
        checkpoint,
        "--data-root",
        root,
        "--split",
        "val",
        "--json",
        out,
        "--ms-flip",
        "--scales",
        "0.75,1.25",
        "--resize-longer",
        "64",
        "--pad-to",
        "72",
        "--save-pred",
        pred_dir,
        "--device",
        "cpu",
        "--num-workers",
        "0",
    ]
    rc, _, stderr = run_tool(TEST_TOOL, argv, capsys)
    assert rc == 0, stderr
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


def test_tool_test_bare_state_dict_needs_config(
    voc: tuple[Path, dict], checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root, masks = voc
    bare = tmp_path / "bare.pth"
    torch.save({"module." + k: v for k, v in torch.load(checkpoint, weights_only=True)["model"].items()}, bare)
    rc, _, err = run_tool(TEST_TOOL, ["--checkpoint", bare, "--data-root", root], capsys)
    assert rc == 2 and "--config" in err and "Traceback" not in err
    out = tmp_path / "eval.json"
    argv = [
        "--checkpoint",
        bare,
        "--config",
        "voc_mnv2_os16",
        "--set",
        "model.width_mult=0.35",
        "data.num_workers=0",
        "--data-root",
        root,
        "--pad-to",
        "0",
        "--json",
        out,
        "--no-progress",
    ]
    rc, _, err = run_tool(TEST_TOOL, argv, capsys)
    assert rc == 0, err
    check_report(json.loads(out.read_text()), masks)
    rc, _, err = run_tool(TEST_TOOL, ["--checkpoint", checkpoint, "--config", "voc_mnv2_os16"], capsys)
    assert rc == 2 and "carries its own config" in err


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--checkpoint", "missing.pth"], "Checkpoint not found: missing.pth"),
        (["--data-root", "no/such/root"], "PASCAL VOC 2012 not found"),
        (["--split", "nosplit"], "Available splits: val"),
        (["--set", "eval.pad_tto=3"], "Did you mean 'pad_to'"),
        (["--set", "data.num_workers=-1"], "data.num_workers"),
    ],
)
def test_tool_test_errors(checkpoint: Path, capsys: pytest.CaptureFixture, extra: list[str], expected: str) -> None:
    argv = ["--checkpoint", checkpoint, *extra] if extra[0] != "--checkpoint" else extra
    rc, _, err = run_tool(TEST_TOOL, argv, capsys)
    assert rc == 2
    assert expected in err and err.startswith("error: ") and "Traceback" not in err


def test_tool_test_corrupt_checkpoint_and_image(
    voc: tuple[Path, dict], checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    broken = tmp_path / "broken.pth"
    broken.write_bytes(checkpoint.read_bytes()[:1000])
    rc, _, err = run_tool(TEST_TOOL, ["--checkpoint", broken], capsys)
    assert rc == 2 and "Cannot read checkpoint" in err
    root = tmp_path / "voc"
    shutil.copytree(voc[0], root)
    bad = root / "VOCdevkit" / "VOC2012" / "JPEGImages" / "img_b.jpg"
    bad.write_bytes(b"not a jpeg")
    rc, _, err = run_tool(TEST_TOOL, ["--checkpoint", checkpoint, "--data-root", root, "--num-workers", "1"], capsys)
    assert rc == 2 and str(bad) in err and "Traceback" not in err


def test_tool_test_skips_bad_samples_without_counting_twice(
    voc: tuple[Path, dict], checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "voc"
    shutil.copytree(voc[0], root)
    bad = root / "VOCdevkit" / "VOC2012" / "JPEGImages" / "img_b.jpg"
    bad.write_bytes(b"not a jpeg")
    out = tmp_path / "eval.json"
    argv = [
        "--checkpoint",
        checkpoint,
        "--data-root",
        root,
        "--set",
        "data.skip_bad_samples=true",
        "--json",
        out,
        "--num-workers",
        "1",
        "--no-progress",
    ]  # the bad sample is found in a worker process
    rc, _, err = run_tool(TEST_TOOL, argv, capsys)  # the worker's BadSampleWarning stays in the worker
    assert rc == 0, err
    good = {k: v for k, v in voc[1].items() if k != "img_b"}
    check_report(json.loads(out.read_text()), good)  # num_images 2, and img_c not scored twice in its place
    report = err[err.index("1 bad samples skipped") :]  # at the end, after the metrics
    assert f"img_b: Cannot read image {bad}" in report and "Scored 2 images" in report

    for name in ("img_a", "img_c"):
        (root / "VOCdevkit" / "VOC2012" / "JPEGImages" / f"{name}.jpg").write_bytes(b"broken too")
    with pytest.warns(BadSampleWarning):
        rc, _, err = run_tool(TEST_TOOL, argv + ["--num-workers", "0"], capsys)
    assert rc == 2 and "3 bad samples skipped" in err and "nothing was evaluated" in err


def test_tool_test_bad_ignore_index_is_one_line(checkpoint: Path, capsys: pytest.CaptureFixture) -> None:
    rc, _, err = run_tool(TEST_TOOL, ["--checkpoint", checkpoint, "--set", "data.ignore_index=3"], capsys)
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: data.ignore_index=3 collides with class 3 ('bird')")


def test_tool_train_bad_ignore_index_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    train_tool = TRAIN_TOOL
    argv = ["--config", "demo_mnv2_os16", "--work-dir", tmp_path / "work", "--device", "cpu", "--no-progress",
            "--set", "data.ignore_index=3", f"data.root={tmp_path / 'syn'}", "data.synthetic_num_train=2",
            "data.synthetic_num_val=1", "data.synthetic_image_size=32"]  # fmt: skip
    rc, _, err = run_tool(train_tool, argv, capsys)
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: data.ignore_index=3 collides with class 3 ('triangle')") and "5..255" in err


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


def test_tool_test_coco_defaults_to_val2017(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A VOC checkpoint's val_split ('val') is no COCO split: --dataset coco evaluates val2017."""
    mask = write_coco_val(tmp_path / "coco")
    out = tmp_path / "eval.json"
    argv = [
        "--checkpoint",
        checkpoint,
        "--dataset",
        "coco",
        "--data-root",
        tmp_path / "coco",
        "--json",
        out,
        "--no-progress",
        "--device",
        "cpu",
    ]
    rc, _, err = run_tool(TEST_TOOL, argv, capsys)
    assert rc == 0, err
    report = json.loads(out.read_text())
    assert report["protocol"]["dataset"] == "coco" and report["protocol"]["split"] == "val2017"
    check_report(report, {"000000000007": mask})
    rc, _, err = run_tool(TEST_TOOL, [*argv, "--split", "train2017"], capsys)  # an explicit split wins
    assert rc == 2 and "instances_train2017.json" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a machine without CUDA")
def test_tool_test_cuda_unavailable(checkpoint: Path, capsys: pytest.CaptureFixture) -> None:
    rc, _, err = run_tool(TEST_TOOL, ["--checkpoint", checkpoint, "--device", "cuda"], capsys)
    assert rc == 2 and "CUDA is not available" in err


# -- tools/infer.py -----------------------------------------------------------------------------------


def test_tool_infer_file_and_folder(
    voc: tuple[Path, dict],
    checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    images = voc[0] / "VOCdevkit" / "VOC2012" / "JPEGImages"
    shapes = record_model_inputs(INFER_TOOL, monkeypatch)
    out = tmp_path / "one"
    rc, _, err = run_tool(
        INFER_TOOL,
        [
            "--checkpoint",
            checkpoint,
            "--input",
            images / "img_a.jpg",
            "--output",
            out,
            "--resize-longer",
            "64",
            "--pad-to",
            "72",
            "--device",
            "cpu",
        ],
        capsys,
    )
    assert rc == 0, err
    assert shapes == [(72, 72)]  # 40x56 -> 46x64 -> padded to 72x72
    model, _ = load_eval_model(checkpoint)
    image = np.asarray(Image.open(images / "img_a.jpg").convert("RGB"))
    x = normalize(image, model.segkit_config.model.input_mean, model.segkit_config.model.input_std)[None]
    expected = predict(model, x, image.shape[:2], resize_longer=64, pad_to=72)[0].numpy()
    assert np.array_equal(np.array(Image.open(out / "img_a.png")), expected)
    assert sorted(p.name for p in out.iterdir()) == ["img_a.png", "img_a_overlay.jpg"]
    png = Image.open(out / "img_a.png")
    assert png.mode == "P" and png.size == (56, 40) and np.array(png).max() < 21
    assert png.getpalette()[: 3 * 21] == VOC_PALETTE[:21].reshape(-1).tolist()
    assert Image.open(out / "img_a_overlay.jpg").width > 56  # image + legend
    fast = tmp_path / "fast"
    rc, _, err = run_tool(
        INFER_TOOL,
        [
            "--checkpoint",
            checkpoint,
            "--input",
            images / "img_a.jpg",
            "--output",
            fast,
            "--resize-longer",
            "64",
            "--pad-to",
            "72",
            "--fast",
        ],
        capsys,
    )
    assert rc == 0, err
    assert np.array_equal(np.array(Image.open(fast / "img_a.png")), expected)  # optimized: same label map

    folder = tmp_path / "folder"
    folder.mkdir()
    for name in ("img_a", "img_c"):
        shutil.copy(images / f"{name}.jpg", folder / f"{name}.jpg")
    (folder / "broken.png").write_bytes(b"\x89PNG garbage")
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "many"
    rc, _, err = run_tool(
        INFER_TOOL,
        ["--checkpoint", checkpoint, "--input", folder, "--output", out, "--ms-flip", "--scales", "0.5,1"],
        capsys,
    )
    assert rc == 1  # the corrupt image is skipped, named, and fails the run at the end
    assert str(folder / "broken.png") in err and "skipping" in err
    assert sorted(p.name for p in out.iterdir()) == ["img_a.png", "img_a_overlay.jpg", "img_c.png", "img_c_overlay.jpg"]
    assert Image.open(out / "img_c.png").size == (47, 33)
    # scales 0.5 and 1, each with its flip: img_a 40x56 -> 20x28, 40x56; img_c 33x47 -> 17x24, 33x47
    assert shapes[2:] == [(20, 28)] * 2 + [(40, 56)] * 2 + [(17, 24)] * 2 + [(33, 47)] * 2  # after 2 single runs


def test_tool_infer_errors(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc, _, err = run_tool(
        INFER_TOOL, ["--checkpoint", checkpoint, "--input", tmp_path / "nope.jpg", "--output", tmp_path / "o"], capsys
    )
    assert rc == 2 and "nope.jpg does not exist" in err
    rc, _, err = run_tool(
        INFER_TOOL, ["--checkpoint", checkpoint, "--input", tmp_path, "--output", tmp_path / "o"], capsys
    )
    assert rc == 2 and "holds no images" in err
    image = tmp_path / "x.png"
    Image.new("RGB", (20, 20)).save(image)
    rc, _, err = run_tool(
        INFER_TOOL, ["--checkpoint", tmp_path / "missing.pth", "--input", image, "--output", tmp_path / "o"], capsys
    )
    assert rc == 2 and "Checkpoint not found" in err


def test_tools_run_as_scripts(tmp_path: Path) -> None:
    """The scripts import segkit from the checkout and exit with status 2 and no traceback on bad input."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "test.py"), "--checkpoint", str(tmp_path / "x.pth")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2 and "Checkpoint not found" in proc.stderr and "Traceback" not in proc.stderr


def test_load_eval_model_overrides(checkpoint: Path) -> None:
    model, cfg = load_eval_model(checkpoint, overrides={"eval.flip": True})
    assert cfg.eval.flip and not model.training
    assert model.class_names == list(VOC_CLASSES) and model.segkit_config is cfg


# -- real VOC files -------------------------------------------------------------------------------------


def test_tool_infer_on_real_voc_sample(shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    images = shared_data / "voc_sample" / "VOCdevkit" / "VOC2012" / "JPEGImages"
    cfg = load_config("voc_mnv2_os16", {"model.width_mult": 0.35})  # random init: the tool must run, not score
    ckpt = tmp_path / "random.pth"
    torch.manual_seed(0)
    save_checkpoint(ckpt, build_model(cfg).eval(), cfg, class_names=list(VOC_CLASSES), palette=VOC_PALETTE[:21])
    out = tmp_path / "out"
    rc, _, err = run_tool(
        INFER_TOOL,
        [
            "--checkpoint",
            ckpt,
            "--input",
            images,
            "--output",
            out,
            "--resize-longer",
            "129",
            "--pad-to",
            "129",
            "--no-progress",
            "--device",
            "cpu",
        ],
        capsys,
    )
    assert rc == 0, err
    paths = sorted(images.glob("*.jpg"))
    assert len(paths) > 1 and sorted(p.name for p in out.iterdir()) == sorted(
        name for p in paths for name in (f"{p.stem}.png", f"{p.stem}_overlay.jpg")
    )
    for path in paths:
        with Image.open(path) as image, Image.open(out / f"{path.stem}.png") as png:
            assert png.mode == "P" and png.size == image.size and np.array(png).max() < 21


def test_tool_test_on_real_voc_sample(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    if not VOC_SAMPLE.is_dir():
        pytest.skip(f"real VOC sample not available: {VOC_SAMPLE} is absent (it sits beside the repo in CI only)")
    cfg = load_config("voc_mnv2_os16", {"model.width_mult": 0.35})  # random init: the tool must run, not score
    ckpt = tmp_path / "random.pth"
    torch.manual_seed(0)
    save_checkpoint(ckpt, build_model(cfg).eval(), cfg, class_names=list(VOC_CLASSES), palette=VOC_PALETTE[:21])
    out, pred_dir = tmp_path / "eval.json", tmp_path / "pred"
    argv = [
        "--checkpoint",
        ckpt,
        "--data-root",
        VOC_SAMPLE,
        "--json",
        out,
        "--num-workers",
        "0",
        "--resize-longer",
        "257",
        "--pad-to",
        "257",
        "--save-pred",
        pred_dir,
    ]
    rc, stdout, err = run_tool(TEST_TOOL, argv, capsys)
    assert rc == 0, err
    mask_dir = VOC_SAMPLE / "VOCdevkit" / "VOC2012" / "SegmentationClass"
    ids = (VOC_SAMPLE / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
    masks = {i: np.array(Image.open(mask_dir / f"{i}.png")) for i in ids}
    check_report(json.loads(out.read_text()), masks)
    assert len({m.shape for m in masks.values()}) > 1  # images of various sizes
    for sample_id, mask in masks.items():
        assert Image.open(pred_dir / f"{sample_id}.png").size == (mask.shape[1], mask.shape[0])


# -- size limits, sliding window, relative data.root (issue 11) ----------------------------------------


@pytest.mark.parametrize("scales", ["inf", "1e9", "100", "nan", "0"])
def test_tools_refuse_scales_outside_the_range(checkpoint: Path, capsys: pytest.CaptureFixture, scales: str) -> None:
    """Before: ``--scales inf`` / ``1e9`` gave tracebacks and ``--scales 100 --pad-to 0`` was killed for memory."""
    for tool in (TEST_TOOL, INFER_TOOL):
        with pytest.raises(SystemExit) as info:
            tool.main(
                [
                    "--checkpoint",
                    str(checkpoint),
                    "--input",
                    "x",
                    "--output",
                    "y",
                    "--ms-flip",
                    "--scales",
                    scales,
                    "--pad-to",
                    "0",
                ]
                if tool is INFER_TOOL
                else ["--checkpoint", str(checkpoint), "--ms-flip", "--scales", scales, "--pad-to", "0"]
            )
        err = capsys.readouterr().err
        assert info.value.code == 2 and "expected comma-separated factors in [0.125, 4.0]" in err
        assert "Traceback" not in err


def test_tools_refuse_a_pass_over_the_pixel_budget(
    voc: tuple[Path, dict], checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    image = voc[0] / "VOCdevkit" / "VOC2012" / "JPEGImages" / "img_a.jpg"  # 40x56 = 2,240 pixels
    rc, _, err = run_tool(
        INFER_TOOL,
        [
            "--checkpoint",
            checkpoint,
            "--input",
            image,
            "--output",
            tmp_path / "o",
            "--max-pixels",
            "2000",
            "--no-progress",
        ],
        capsys,
    )
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: a forward pass of 1 x 40x56 = 2,240 pixels exceeds the budget of 2,000")
    assert "--slide" in err and "--resize-longer" in err
    rc, _, err = run_tool(
        TEST_TOOL,
        ["--checkpoint", checkpoint, "--set", "eval.scales=[3.0]", "--max-pixels", "5000", "--no-progress"],
        capsys,
    )
    assert rc == 2 and "Traceback" not in err and err.count("error: ") == 1
    assert err.splitlines()[-1].startswith("error: a forward pass of 1 x 120x168") and "budget of 5,000" in err
    # The sliding window keeps every pass within the budget.
    rc, _, err = run_tool(
        INFER_TOOL,
        [
            "--checkpoint",
            checkpoint,
            "--input",
            image,
            "--output",
            tmp_path / "o",
            "--max-pixels",
            "2000",
            "--slide",
            "32",
            "16",
        ],
        capsys,
    )
    assert rc == 0, err


def test_tool_test_slide_matches_whole_image_where_it_fits(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    reports = {}
    for name, extra in (
        ("whole", []),
        ("fits", ["--slide", "64", "32"]),
        ("windows", ["--slide", "32", "16"]),
        ("off", ["--slide", "0", "0"]),
    ):
        out = tmp_path / f"{name}.json"
        rc, _, err = run_tool(TEST_TOOL, ["--checkpoint", checkpoint, "--json", out, "--no-progress", *extra], capsys)
        assert rc == 0, err
        reports[name] = json.loads(out.read_text())
    assert reports["fits"]["protocol"]["slide"] == [64, 32] and "slide" not in reports["whole"]["protocol"]
    assert reports["fits"]["confusion"] == reports["whole"]["confusion"]  # every image (<= 48x56) is one window
    assert reports["windows"]["protocol"]["slide"] == [32, 16] and reports["off"] == reports["whole"]
    assert np.array(reports["windows"]["confusion"]).sum() == np.array(reports["whole"]["confusion"]).sum()


def test_tool_test_resolves_and_reports_a_relative_data_root(
    voc: tuple[Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint whose data.root is relative: the tool says which folder it reads (from the current one)."""
    root, _ = voc
    cfg = load_config("voc_mnv2_os16", {"model.width_mult": 0.35, "data.root": root.name, "data.num_workers": 0})
    path = tmp_path / "rel.pth"
    save_checkpoint(path, build_model(cfg).eval(), cfg, class_names=list(VOC_CLASSES))
    monkeypatch.chdir(root.parent)
    rc, _, err = run_tool(TEST_TOOL, ["--checkpoint", path, "--no-progress"], capsys)
    assert rc == 0, err
    assert f"data from {root.resolve()} (data.root '{root.name}' is relative: read from the current folder" in err
    monkeypatch.chdir(tmp_path)  # from elsewhere: the error names the resolved folder, not a bare 'voc...'
    rc, _, err = run_tool(TEST_TOOL, ["--checkpoint", path, "--no-progress"], capsys)
    assert rc == 2 and str(tmp_path / root.name) in err
