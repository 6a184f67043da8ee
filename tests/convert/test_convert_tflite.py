"""TFLite converter: the official DeepLab / ImageNet MobileNetV2 models, run by segkit, match the TFLite interpreter.

Most tests need ``../shared/data`` (official .tflite files, 8 VOC images, the interpreter's outputs) and the
optional ``tflite`` package; they skip with the reason when either is absent.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from segkit.cli import main as segkit_main
from segkit.convert.tflite.reader import QuantParams, TFLiteFormatError, TFLiteGraph, TFLiteTensor
from tests.helpers.tflite_writer import TFLiteWriter

DEEPLAB = "tflite/deeplabv3_mnv2_pascal_quant.tflite"
IMAGENET = "tflite/mobilenet_v2_1.0_224_quant.tflite"


# One intra-op thread for the whole module, its module-scoped conversions included (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tflite_pkg() -> ModuleType:
    return pytest.importorskip(
        "tflite", reason="the optional 'tflite' package is absent: pip install 'segkit-deeplab[tflite]'"
    )


@pytest.fixture(scope="module")
def converted(shared_data: Path, tflite_pkg: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both official models converted once with `segkit convert`."""
    out = tmp_path_factory.mktemp("tflite")
    paths = {"deeplab": out / "deeplab.pth", "imagenet": out / "imagenet.pth"}
    assert segkit_main(["convert", str(shared_data / DEEPLAB), str(paths["deeplab"])]) == 0
    assert (
        segkit_main(
            [
                "convert",
                str(shared_data / IMAGENET),
                str(paths["imagenet"]),
                "--labels",
                str(shared_data / "tflite/imagenet_labels.txt"),
            ]
        )
        == 0
    )
    return paths


@pytest.fixture(scope="module")
def deeplab_graph(shared_data: Path, tflite_pkg: ModuleType):
    from segkit.convert.tflite import load_tflite

    return load_tflite(shared_data / DEEPLAB)


# -- graph reader ------------------------------------------------------------------------------------


def _graph_with(tensor: TFLiteTensor) -> TFLiteGraph:
    return TFLiteGraph(Path("synthetic.tflite"), [tensor], [], [], [])


def test_dequantize_per_tensor_and_per_channel() -> None:
    q = np.array([[0, 128, 255], [10, 20, 30]], dtype=np.uint8)
    per_tensor = TFLiteTensor(0, "w", q.shape, "uint8", QuantParams(np.array([0.5]), np.array([128])), q)
    np.testing.assert_allclose(_graph_with(per_tensor).dequantize(0), 0.5 * (q.astype(np.float64) - 128))
    qi = np.array([[-3, 4], [5, -6], [7, 8]], dtype=np.int8)  # per channel along dimension 1
    per_channel = TFLiteTensor(0, "w", qi.shape, "int8", QuantParams(np.array([0.1, 2.0]), np.array([0, 1]), 1), qi)
    expected = np.stack([0.1 * qi[:, 0], 2.0 * (qi[:, 1] - 1.0)], axis=1)
    out = _graph_with(per_channel).dequantize(0)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    bias = TFLiteTensor(
        0, "b", (2,), "int32", QuantParams(np.array([1e-4]), np.array([0])), np.array([100, -7], np.int32)
    )
    np.testing.assert_allclose(_graph_with(bias).dequantize(0), [0.01, -0.0007], rtol=1e-6)
    floats = TFLiteTensor(0, "f", (2,), "float32", None, np.array([1.5, -2.0], np.float32))
    np.testing.assert_array_equal(_graph_with(floats).dequantize(0), [1.5, -2.0])
    with pytest.raises(TFLiteFormatError, match="no constant data"):
        _graph_with(TFLiteTensor(0, "act", (1, 4), "uint8")).dequantize(0)


def test_missing_tflite_package_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from segkit.convert.tflite import load_tflite

    path = tmp_path / "m.tflite"
    path.write_bytes(b"\0\0\0\0TFL3" + b"\0" * 64)
    monkeypatch.setitem(sys.modules, "tflite", None)  # import tflite -> ImportError
    with pytest.raises(ImportError, match=r"segkit-deeplab\[tflite\]"):
        load_tflite(path)


def test_graph_reader_ops_and_options(deeplab_graph) -> None:
    g = deeplab_graph
    assert len(g.ops) == 72 and g.ops[0].type == "CONV_2D" and g.ops[-1].type == "ARG_MAX"
    stem = g.ops[0]
    assert stem.options["stride_h"] == 2 and stem.options["padding"] == "SAME"
    assert stem.options["fused_activation_function"] == "RELU6"
    assert g.tensor(stem.inputs[1]).shape == (32, 3, 3, 3)  # OHWI
    assert [op.options["dilation_h_factor"] for op in g.ops if op.type == "DEPTHWISE_CONV_2D"][-4:] == [1, 2, 2, 2]
    resize = [op for op in g.ops if op.type == "RESIZE_BILINEAR"]
    assert resize and all(op.options["align_corners"] and not op.options["half_pixel_centers"] for op in resize)
    inp = g.tensor(g.inputs[0])
    assert inp.dtype == "uint8" and inp.shape == (1, 513, 513, 3)
    assert inp.quant.scale[0] == pytest.approx(1 / 128) and inp.quant.zero_point[0] == 128
    w = g.tensor(stem.inputs[1])
    np.testing.assert_allclose(
        g.dequantize(w), w.quant.scale[0] * (w.data.astype(np.float64) - w.quant.zero_point[0]), rtol=1e-6
    )


# -- architecture inference --------------------------------------------------------------------------


def test_converted_config_asks_for_few_workers() -> None:
    """A converted checkpoint runs on other machines than the one that converted it: at most 2 workers."""
    from segkit.convert.tflite import TFLiteArchitecture

    arch = TFLiteArchitecture(
        kind="segmentor",
        input_size=(513, 513),
        input_dtype="uint8",
        input_mean=[128.0] * 3,
        input_std=[128.0] * 3,
        width_mult=1.0,
        round_nearest=8,
        output_stride=16,
        dilations=[1] * 18,
        final_conv=False,
        num_classes=21,
        head_channels=256,
    )
    cfg = arch.config("tflite_x")
    assert cfg.data.num_workers == 2  # the DataConfig default, 4, oversubscribes a 2-core machine
    # the interpreter's protocol, which the file's static export implies: checkpoint and export agree without flags
    assert cfg.data.crop_size == 513 and cfg.eval.pad_to == 513 and cfg.eval.resize_longer == 513


def test_infers_deeplab_architecture(deeplab_graph) -> None:
    from segkit.convert.tflite import infer_architecture

    arch = infer_architecture(deeplab_graph)
    assert arch.kind == "segmentor"
    assert (arch.width_mult, arch.round_nearest, arch.output_stride) == (1.0, 8, 16)
    assert arch.dilations == [1] * 15 + [2] * 3  # TF rule: layer_15 loses its stride and keeps rate 1
    assert not arch.final_conv and arch.aspp_rates == [] and arch.head_channels == 256
    assert arch.num_classes == 21 and arch.align_corners is True
    assert arch.resize_mode == "pytorch" and arch.quantization == "uint8"  # align_corners=True resizes, QAT uint8
    assert arch.input_size == (513, 513) and arch.input_mean == [128.0] * 3 and arch.input_std == [128.0] * 3
    mcfg = arch.model_config()
    assert (mcfg.aspp, mcfg.final_conv, mcfg.tf_same_padding) == (False, False, True)
    assert (mcfg.bn_eps, mcfg.head_bn_eps) == (1e-3, 1e-5)


def test_infers_imagenet_architecture(shared_data: Path, tflite_pkg: ModuleType) -> None:
    from segkit.convert.tflite import infer_architecture, load_tflite

    arch = infer_architecture(load_tflite(shared_data / IMAGENET))
    assert (arch.kind, arch.num_classes, arch.width_mult, arch.output_stride, arch.final_conv) == (
        "classifier",
        1001,
        1.0,
        32,
        True,
    )
    assert arch.input_size == (224, 224) and arch.layers[-1].convs[0].out_channels == 1280


def test_unmappable_graphs_name_the_op(deeplab_graph) -> None:
    from segkit.convert.tflite import TFLiteConversionError, infer_architecture

    g = deeplab_graph
    dw16 = [op for op in g.ops if op.type == "DEPTHWISE_CONV_2D"][15]  # layer_17's depthwise
    saved = dict(dw16.options)
    dw16.options["dilation_h_factor"] = dw16.options["dilation_w_factor"] = 4
    try:
        with pytest.raises(
            TFLiteConversionError, match=rf"layer_17 \(op {dw16.index} \(DEPTHWISE_CONV_2D\).*dilation 4"
        ):
            infer_architecture(g)
    finally:
        dw16.options.clear()
        dw16.options.update(saved)
    expand = g.ops[3]  # layer_3's expand conv
    expand.type = "CUSTOM:MyConv"
    try:
        with pytest.raises(TFLiteConversionError, match=r"found 1: tensor .* is read by op 3 \(CUSTOM:MyConv\)"):
            infer_architecture(g)
    finally:
        expand.type = "CONV_2D"


def test_corrupt_or_foreign_files_give_clear_errors(tmp_path: Path, shared_data: Path, tflite_pkg: ModuleType) -> None:
    from segkit.convert.tflite import load_tflite

    text = tmp_path / "notes.tflite"
    text.write_text("not a model")
    with pytest.raises(TFLiteFormatError, match="not a TensorFlow Lite model"):
        load_tflite(text)
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes((shared_data / IMAGENET).read_bytes()[:4096])
    with pytest.raises(TFLiteFormatError, match="corrupt or truncated"):
        load_tflite(truncated)
    assert segkit_main(["convert", str(truncated), str(tmp_path / "out.pth")]) == 2
    assert not (tmp_path / "out.pth").exists()


# -- numerics ----------------------------------------------------------------------------------------


def test_segkit_equals_the_graph_run_in_float(deeplab_graph) -> None:
    """Same function as the TFLite graph (float, op by op): at 513 (logits) and at an even size (backbone)."""
    from segkit.convert.tflite import build_converted_model, infer_architecture, run_graph

    arch = infer_architecture(deeplab_graph)
    model = build_converted_model(arch)
    rng = np.random.default_rng(0)
    for size in (513, 224):  # 513 = 8k+1: no asymmetric padding; 224: TF 'SAME' pads bottom/right only
        image = rng.integers(0, 256, (1, size, size, 3), dtype=np.uint8)
        feat_t, logits_t = arch.layers[-1].output, arch.head["classifier"].output
        ref = run_graph(deeplab_graph, image, stop_after=[logits_t] if size == 513 else [feat_t])
        x = (torch.from_numpy(image).permute(0, 3, 1, 2).float() - 128.0) / 128.0
        with torch.no_grad():
            feat = model.backbone(x)["layer_18"]
            torch.testing.assert_close(feat, torch.from_numpy(ref[feat_t]).permute(0, 3, 1, 2), atol=2e-4, rtol=1e-4)
            if size == 513:
                logits = model.head(feat)
                torch.testing.assert_close(
                    logits, torch.from_numpy(ref[logits_t]).permute(0, 3, 1, 2), atol=2e-4, rtol=1e-4
                )


def test_deeplab_agrees_with_the_interpreter_on_voc(converted: dict[Path], shared_data: Path) -> None:
    """Protocol of ../shared/data/README.md: resize-longer 513, pad to 513 with the mean pixel, crop, nearest."""
    import segkit
    from segkit.evaluation.predict import normalize, predict

    model = segkit.load_model(converted["deeplab"])
    mcfg = model.segkit_config.model
    refs = np.load(shared_data / "reference/coral_deeplabv3_mnv2_pascal_quant_preds.npz")
    voc = shared_data / "voc_sample/VOCdevkit/VOC2012"
    agree = total = 0
    per_image = {}
    confusion = np.zeros((21, 21), np.int64)
    for name in refs.files:
        ref = refs[name]
        image = np.asarray(Image.open(voc / "JPEGImages" / f"{name}.jpg").convert("RGB"))
        x = normalize(image, mcfg.input_mean, mcfg.input_std)[None]
        pred = predict(model, x, ref.shape, resize_longer=513, pad_to=513)[0].numpy()
        per_image[name] = float((pred == ref).mean())
        agree += int((pred == ref).sum())
        total += ref.size
        gt = np.asarray(Image.open(voc / "SegmentationClass" / f"{name}.png"))
        valid = gt != 255
        confusion += np.bincount(21 * gt[valid].astype(np.int64) + pred[valid], minlength=21 * 21).reshape(21, 21)
    overall = agree / total
    print("agreement per image:", {k: f"{v:.2%}" for k, v in per_image.items()}, f"overall {overall:.3%}")
    assert min(per_image.values()) >= 0.98, per_image
    assert overall >= 0.995
    # mIoU over the classes present in the ground truth, as reference/summary.json computes it
    present = confusion.sum(1) > 0
    iou = np.diag(confusion) / np.maximum(confusion.sum(0) + confusion.sum(1) - np.diag(confusion), 1)
    summary = json.loads((shared_data / "reference/summary.json").read_text())["coral_deeplabv3_mnv2_pascal_quant"]
    assert abs(iou[present].mean() - summary["miou_present"]) < 0.01


def test_imagenet_classifier_matches_reference(converted: dict[Path], shared_data: Path) -> None:
    """224x224 is an even size: stride-2 convs need TF's asymmetric 'SAME' padding here."""
    import segkit
    from segkit.checkpoint.load import load_classifier
    from segkit.models.classifier import MobileNetV2Classifier

    model = load_classifier(converted["imagenet"])
    assert isinstance(model, MobileNetV2Classifier) and model.class_names[653] == "military uniform"
    assert isinstance(segkit.load_model(converted["imagenet"]), MobileNetV2Classifier)  # any segkit checkpoint
    ckpt = torch.load(converted["imagenet"], weights_only=True)
    assert ckpt["kind"] == "classifier"
    assert {"classifier.1.weight", "classifier.1.bias", "features.18.0.weight"} <= set(ckpt["model"])
    mcfg = model.segkit_config.model
    mean, std = torch.tensor(mcfg.input_mean).view(1, 3, 1, 1), torch.tensor(mcfg.input_std).view(1, 3, 1, 1)
    ref = np.load(shared_data / "reference/mobilenet_v2_1.0_224_quant_imagenet.npz")
    for name, top1 in (("grace_hopper", 653), ("cat", 286), ("bird", 20)):
        x = (torch.from_numpy(ref[f"{name}_input"]).permute(0, 3, 1, 2).float() - mean) / std
        with torch.no_grad():
            prob = model(x).softmax(-1)[0].numpy()
        assert prob.argmax() == top1 == ref[f"{name}_output"].argmax()
        # The reference is the interpreter's uint8 softmax output (scale 1/256, zero point 0); segkit runs the same
        # weights in float. Compared on the output tensor's grid, as the interpreter reports it, the largest
        # differences are 0.0078, 0.0195 (cat: 200/256 vs 205/256) and 0; in float 0.006, 0.021 and 0.0015
        # (README). Rounding every activation to its 8-bit grid (run_graph) also leaves 0.0195 on 'cat'.
        out_grid = np.round(prob * 256) / 256
        assert np.abs(out_grid - ref[f"{name}_output"][0]).max() < 0.02, name
        assert np.abs(prob - ref[f"{name}_output"][0]).max() < 0.0215, name  # the float figures, not worse


def test_classifier_initialises_a_segmentation_backbone(converted: dict[Path]) -> None:
    from segkit.config import ModelConfig
    from segkit.models import build_model
    from segkit.models.backbones import load_torchvision_weights

    model = build_model(ModelConfig(bn_eps=1e-3))
    missing, unexpected = load_torchvision_weights(model.backbone, converted["imagenet"])
    assert missing == []
    ckpt = torch.load(converted["imagenet"], weights_only=True)
    torch.testing.assert_close(
        model.backbone.features[17].conv[0][0].weight, ckpt["model"]["features.17.conv.0.0.weight"]
    )


def test_finetuning_from_the_converted_checkpoint(converted: dict[Path]) -> None:
    """BN layers are identity-initialised around the folded convs, so the checkpoint trains (BN in train mode)."""
    import segkit
    from segkit.data.synthetic import render_sample
    from segkit.evaluation.predict import normalize

    torch.manual_seed(0)
    model = segkit.load_model(converted["deeplab"])
    bn = model.backbone.features[0][1]
    assert torch.all(bn.weight == 1) and torch.all(bn.running_mean == 0)
    assert torch.allclose(bn.running_var + bn.eps, torch.ones_like(bn.running_var))
    mcfg = model.segkit_config.model
    rng = np.random.default_rng(0)
    samples = [render_sample(rng, 97) for _ in range(2)]  # small: a few seconds per step on 2 CPU cores
    x = torch.stack([normalize(img, mcfg.input_mean, mcfg.input_std) for img, _ in samples])
    y = torch.stack([torch.from_numpy(mask.astype(np.int64)) for _, mask in samples])
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for _ in range(4):
        loss = F.cross_entropy(model(x)["out"], y, ignore_index=255)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses)) and losses[-1] < 0.9 * losses[0], losses


@pytest.mark.slow
def test_tools_evaluate_the_converted_model_like_the_interpreter(
    converted: dict[Path], shared_data: Path, tmp_path: Path
) -> None:
    """`segkit test` without protocol flags (the checkpoint's default is the interpreter's resize-longer 513 + pad
    513): the confusion matrix gives the reference mIoU (classes in GT)."""
    out = tmp_path / "eval.json"
    assert (
        segkit_main(
            [
                "test",
                "--checkpoint",
                str(converted["deeplab"]),
                "--data-root",
                str(shared_data / "voc_sample"),
                "--json",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    confusion = np.asarray(report["confusion"])
    present = confusion.sum(1) > 0
    iou = np.diag(confusion) / np.maximum(confusion.sum(0) + confusion.sum(1) - np.diag(confusion), 1)
    summary = json.loads((shared_data / "reference/summary.json").read_text())["coral_deeplabv3_mnv2_pascal_quant"]
    assert report["num_images"] == 8 and report["protocol"]["pad_to"] == report["protocol"]["resize_longer"] == 513
    assert abs(iou[present].mean() - summary["miou_present"]) < 0.01
    assert abs(report["pixel_acc"] - summary["pixel_acc"]) < 0.005


@pytest.mark.slow  # 8 training steps of the full-width converted model
def test_training_starts_from_the_converted_checkpoint(converted: dict[Path], tmp_path: Path) -> None:
    """train.init_weights = the converted official model: all but the 21-class classifier load, and it trains."""
    import segkit
    from segkit.data import generate_synthetic_voc
    from segkit.engine import train
    from segkit.engine.runlog import read_jsonl

    root = tmp_path / "synthetic"
    generate_synthetic_voc(root, num_train=4, num_val=2, image_size=64, seed=1)
    official = segkit.load_model(converted["deeplab"]).segkit_config.model
    overrides = {
        "data.root": str(root),
        "data.synthetic_num_train": 4,
        "data.synthetic_num_val": 2,
        "data.synthetic_image_size": 64,
        "data.crop_size": 64,
        "data.scale_min": 1.0,
        "data.scale_max": 1.0,
        "data.hflip": False,
        "data.num_workers": 0,
        "train.iterations": 8,
        "train.batch_size": 4,
        "train.log_interval": 1,
        "train.val_interval": 1000,
        "train.warmup_iters": 0,
        "train.lr": 0.002,
        "train.optimizer": "sgd",
        "train.init_weights": str(converted["deeplab"]),
        "model.norm_eval": True,
        "model.tf_same_padding": True,
        "model.bn_eps": official.bn_eps,
        "model.head_bn_eps": official.head_bn_eps,
        "model.input_mean": official.input_mean,
        "model.input_std": official.input_std,
    }
    cfg = segkit.load_config("demo_mnv2_os16", [f"{k}={json.dumps(v)}" for k, v in overrides.items()])
    lines: list[str] = []
    import segkit.engine.loop as engine  # the name the loop calls

    original = engine.load_initial_weights
    engine.load_initial_weights = lambda model, path, log=print, **kw: original(model, path, lines.append, **kw)
    try:
        train(cfg, work_dir=tmp_path / "run", progress=False)
    finally:
        engine.load_initial_weights = original
    report = next(line for line in lines if line.startswith("init_weights"))
    assert "missing 2: ['head.classifier.bias', 'head.classifier.weight']" in report, report
    losses = [r["loss"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "train"]
    assert all(np.isfinite(losses)) and sum(losses[-2:]) < 0.8 * sum(losses[:2]), losses


# -- round trip: segkit model -> TFLite file -> converter, for other members of the family -------------
# No TensorFlow here, so the exporter writes the file with a small flatbuffer writer
# (tests/helpers/tflite_writer.py). It folds random BN statistics into the convs like TF's converter, and can
# emit dilated convs as SPACE_TO_BATCH_ND/conv/BATCH_TO_SPACE_ND (TF1 style), per-channel int8 weights behind
# a uint8 input + DEQUANTIZE, and a different concat order.


def _export_segmentor(
    model,
    path: Path,
    size: int,
    *,
    atrous_as_space_to_batch: bool,
    int8_weights: bool,
    concat_order: list[str],
    half_pixel: bool,
) -> None:
    """Write ``model`` (eval mode, BN folded into the convs) as a TFLite DeepLabV3 graph."""

    torch.set_grad_enabled(False)
    try:
        _export(
            model,
            path,
            size,
            atrous_as_space_to_batch=atrous_as_space_to_batch,
            int8_weights=int8_weights,
            concat_order=concat_order,
            half_pixel=half_pixel,
        )
    finally:
        torch.set_grad_enabled(True)


def _export(
    model,
    path: Path,
    size: int,
    *,
    atrous_as_space_to_batch: bool,
    int8_weights: bool,
    concat_order: list[str],
    half_pixel: bool,
) -> None:
    from torch import nn

    w = TFLiteWriter()
    if int8_weights:  # uint8 image -> DEQUANTIZE -> float graph with per-channel int8 weights
        raw = w.tensor([1, size, size, 3], "uint8", scale=[1 / 127.5], zero_point=[127])
        x = w.op("DEQUANTIZE", [raw], [1, size, size, 3])
    else:
        raw = x = w.tensor([1, size, size, 3])

    def weights(conv: nn.Conv2d, bn: nn.Module | None, depthwise: bool) -> tuple[int, int]:
        wt, bias = conv.weight.detach().double(), torch.zeros(conv.out_channels, dtype=torch.float64)
        if conv.bias is not None:
            bias = conv.bias.detach().double()
        if bn is not None:
            scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
            wt, bias = wt * scale.view(-1, 1, 1, 1), bn.bias.double() - bn.running_mean.double() * scale
        wt = (wt.permute(1, 2, 3, 0) if depthwise else wt.permute(0, 2, 3, 1)).numpy()  # C1HW -> 1HWC, OIHW -> OHWI
        if not int8_weights:
            return w.const(wt.astype(np.float32)), w.const(bias.numpy().astype(np.float32))
        axis = 3 if depthwise else 0
        amax = np.abs(wt).max(axis=tuple(a for a in range(4) if a != axis))
        scales = np.maximum(amax, 1e-8) / 127
        shape = [1, 1, 1, -1] if depthwise else [-1, 1, 1, 1]
        q = np.clip(np.round(wt / scales.reshape(shape)), -127, 127).astype(np.int8)
        return (
            w.tensor(q.shape, "int8", q, scales, np.zeros_like(scales, np.int64), axis),
            w.const(bias.numpy().astype(np.float32)),
        )

    def conv(x: int, conv: nn.Conv2d, bn: nn.Module | None, act: str) -> int:
        _, h, wd, _ = w.tensors[x]["shape"]
        depthwise = conv.groups > 1
        s, d, k = conv.stride[0], conv.dilation[0], conv.kernel_size[0]
        wt, bias = weights(conv, bn, depthwise)
        out_shape = [1, -(-h // s), -(-wd // s), conv.out_channels]
        kind = "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D"
        opts = {"padding": "SAME", "stride_h": s, "stride_w": s, "fused_activation_function": act}
        if depthwise:
            opts["depth_multiplier"] = 1
        if d > 1 and atrous_as_space_to_batch:  # TF1: pad to SAME + a multiple of the rate, run VALID, crop
            extra = (-h) % d
            total = (k - 1) * d
            pads = np.array([[total // 2, total - total // 2 + extra]] * 2, np.int32)
            block = w.const(np.array([d, d], np.int32))
            hb = (h + total + extra) // d
            y = w.op("SPACE_TO_BATCH_ND", [x, block, w.const(pads)], [d * d, hb, hb, w.tensors[x]["shape"][3]])
            y = w.op(
                kind,
                [y, wt, bias],
                [d * d, hb - (k - 1), hb - (k - 1), conv.out_channels],
                {**opts, "padding": "VALID"},
            )
            return w.op("BATCH_TO_SPACE_ND", [y, block, w.const(np.array([[0, extra]] * 2, np.int32))], out_shape)
        opts.update(dilation_h_factor=d, dilation_w_factor=d)
        return w.op(kind, [x, wt, bias], out_shape, opts)

    bb = model.backbone
    x = conv(x, bb.features[0][0], bb.features[0][1], "RELU6")
    for block in list(bb.features)[1:]:
        mods = [m for m in block.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
        pairs = [(m, mods[i + 1]) for i, m in enumerate(mods) if isinstance(m, nn.Conv2d)]
        y = x
        for j, (c, bn) in enumerate(pairs):
            y = conv(y, c, bn, "NONE" if j == len(pairs) - 1 else "RELU6")
        x = (
            w.op("ADD", [x, y], w.tensors[y]["shape"], {"fused_activation_function": "NONE"})
            if block.use_res_connect
            else y
        )
    head = model.head
    _, fh, fw, _ = w.tensors[x]["shape"]
    pooled = w.op(
        "MEAN", [x, w.const(np.array([1, 2], np.int32))], [1, 1, 1, w.tensors[x]["shape"][3]], {"keep_dims": True}
    )
    pool_conv = conv(pooled, head.image_pool.conv[0], head.image_pool.conv[1], "RELU")
    resize = {"align_corners": not half_pixel, "half_pixel_centers": half_pixel}
    branches = {
        "image_pool": w.op(
            "RESIZE_BILINEAR",
            [pool_conv, w.const(np.array([fh, fw], np.int32))],
            [1, fh, fw, head.image_pool.conv[0].out_channels],
            resize,
        ),
        "aspp0": conv(x, head.aspp0[0], head.aspp0[1], "RELU"),
        **{f"atrous_{i}": conv(x, br[0], br[1], "RELU") for i, br in enumerate(head.atrous)},
    }
    channels = sum(w.tensors[t]["shape"][3] for t in branches.values())
    cat = w.op("CONCATENATION", [branches[n] for n in concat_order], [1, fh, fw, channels], {"axis": 3})
    # the projection's input channels follow the concat order
    proj = head.project[0]
    blocks = dict(
        zip(
            ["image_pool", "aspp0", *[f"atrous_{i}" for i in range(len(head.atrous))]],
            proj.weight.detach().split(head.aspp0[0].out_channels, dim=1),
        )
    )
    reordered = nn.Conv2d(channels, proj.out_channels, 1, bias=False)
    reordered.weight.data = torch.cat([blocks[n] for n in concat_order], dim=1)
    y = conv(cat, reordered, head.project[1], "RELU")
    logits = conv(y, head.classifier, None, "NONE")
    out = w.op(
        "RESIZE_BILINEAR",
        [logits, w.const(np.array([size, size], np.int32))],
        [1, size, size, head.classifier.out_channels],
        resize,
    )
    w.write(path, [raw], [out])


@pytest.mark.parametrize(
    "variant",
    [
        # width 0.5, OS8, ASPP, TF1-style atrous (SPACE_TO_BATCH_ND), float input, concat order changed, even size
        dict(
            width_mult=0.5,
            round_nearest=8,
            output_stride=8,
            aspp=True,
            num_classes=5,
            size=66,
            atrous_as_space_to_batch=True,
            int8_weights=False,
            concat_order=["aspp0", "atrous_0", "atrous_1", "atrous_2", "image_pool"],
            half_pixel=False,
        ),
        # width 0.75 without channel rounding, OS16, light head, per-channel int8 weights, uint8 input, half-pixel resize
        dict(
            width_mult=0.75,
            round_nearest=1,
            output_stride=16,
            aspp=False,
            num_classes=3,
            size=65,
            atrous_as_space_to_batch=False,
            int8_weights=True,
            concat_order=["image_pool", "aspp0"],
            half_pixel=True,
        ),
    ],
    ids=["w0.5-os8-aspp-spacetobatch-float", "w0.75-round1-os16-int8"],
)
def test_round_trip_through_tflite(variant: dict, tmp_path: Path, tflite_pkg: ModuleType) -> None:
    """Export a segkit model (random BN statistics folded in) to TFLite, convert it back: same architecture and outputs."""
    from segkit.config import ModelConfig
    from segkit.convert.tflite import convert_tflite, load_tflite, run_graph
    from segkit.models import build_model

    variant = dict(variant)
    size, export_args = (
        variant.pop("size"),
        {k: variant.pop(k) for k in ("atrous_as_space_to_batch", "int8_weights", "concat_order", "half_pixel")},
    )
    torch.manual_seed(0)
    mcfg = ModelConfig(
        **variant, tf_same_padding=True, bn_eps=1e-3, head_bn_eps=1e-5, align_corners=not export_args["half_pixel"]
    )
    model = build_model(mcfg).eval()
    for m in model.modules():  # non-trivial BN statistics, so folding matters
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    path = tmp_path / "exported.tflite"
    _export_segmentor(model, path, size, **export_args)

    conversion = convert_tflite(path, tmp_path / "converted.pth")
    arch = conversion.architecture
    assert (arch.width_mult, arch.round_nearest, arch.output_stride) == (
        variant["width_mult"],
        variant["round_nearest"],
        variant["output_stride"],
    )
    assert arch.aspp_rates == ([12, 24, 36] if variant["aspp"] else [])
    assert arch.num_classes == variant["num_classes"] and arch.align_corners == mcfg.align_corners
    assert arch.branch_order == export_args["concat_order"]
    if export_args["int8_weights"]:
        assert arch.input_mean == [127.0] * 3 and arch.input_std == [pytest.approx(127.5)] * 3
    else:
        assert arch.input_mean == [127.5] * 3 and any("float input" in n for n in arch.notes)

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (1, size, size, 3), dtype=np.uint8)
    graph = load_tflite(path)
    feed = image if export_args["int8_weights"] else (image.astype(np.float32) - 127.5) / 127.5
    expected = torch.from_numpy(run_graph(graph, feed)[graph.outputs[0]]).permute(0, 3, 1, 2)
    cmcfg = conversion.config.model
    x = (
        torch.from_numpy(image).permute(0, 3, 1, 2).float() - torch.tensor(cmcfg.input_mean).view(1, 3, 1, 1)
    ) / torch.tensor(cmcfg.input_std).view(1, 3, 1, 1)
    with torch.no_grad():
        out = conversion.model(x)["out"]
        torch.testing.assert_close(out, expected, atol=1e-3, rtol=1e-3)
        if not export_args["int8_weights"]:  # float export: the very same function as the original model
            torch.testing.assert_close(out, model(x)["out"], atol=1e-3, rtol=1e-3)
