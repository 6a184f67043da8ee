"""The MLPerf ADE20K DeepLabV3+ TFLite file (../shared/data/ade20k_mlperf): conversion and agreement with the interpreter.

The file differs from the VOC one in three ways the converter has to read: a DeepLabV3+ decoder (tapping
``layer_4/depthwise_output``, separable convs), ReLU6/ReLU only implied by the output tensors' quantization
ranges (no fused activations), and TF's legacy bilinear resize (align_corners=False, half_pixel_centers=False),
which the converter maps to ``model.resize_mode: tf_legacy``.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from segkit.cli import main as segkit_main

ADE = "ade20k_mlperf/deeplabv3_mnv2_ade20k_uint8.tflite"
REFERENCE = "ade20k_mlperf/reference/deeplabv3_mnv2_ade20k_uint8_preds.npz"
ADE20K_TOP31 = [
    "other",
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair",
    "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair",
]  # fmt: skip
# Share of the 10 images' pixels where segkit's argmax equals the interpreter's (measured, see
# docs/official_weights.md). The converted float model (model.resize_mode=tf_legacy, as the file's resizes):
# 98.29%, the rest is the interpreter's 8-bit rounding (before the resize mode: 91.35% with half-pixel resizes).
# The converter's executor with exact 8-bit emulation (integer accumulators, the interpreter's rounding) gives the
# interpreter's label maps: 99.98% (bit-exact on 8 of the 10 images).
MIN_AGREEMENT = 0.982
MIN_AGREEMENT_EMULATED = 0.999


@pytest.fixture(scope="module")
def tflite_pkg() -> ModuleType:
    return pytest.importorskip(
        "tflite", reason="the optional 'tflite' package is absent: pip install 'segkit-deeplab[tflite]'"
    )


@pytest.fixture(scope="module")
def ade_graph(shared_data: Path, tflite_pkg: ModuleType):
    from segkit.convert.tflite import load_tflite

    path = shared_data / ADE
    if not path.is_file():
        pytest.skip(f"the MLPerf ADE20K model is absent: {path}")
    return load_tflite(path)


@pytest.fixture(scope="module")
def ade_checkpoint(ade_graph, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ade20k") / "ade.pth"
    assert segkit_main(["convert", str(ade_graph.path), str(out)]) == 0
    return out


# -- pieces that need no file -------------------------------------------------------------------------


def test_activation_implied_by_the_quantization_range() -> None:
    from segkit.convert.tflite import QuantParams, TFLiteTensor
    from segkit.convert.tflite.matcher import implied_activation

    def tensor(scale: float, zero: int, dtype: str = "uint8") -> TFLiteTensor:
        quant = QuantParams(scale=np.array([scale]), zero_point=np.array([zero]))
        return TFLiteTensor(index=0, name="t", shape=(1, 4, 4, 8), dtype=dtype, quant=quant)

    assert implied_activation(tensor(6 / 255, 0)) == "RELU6"
    assert implied_activation(tensor(0.0235285, 0)) == "RELU6"  # 0..5.9998 as in the file
    assert implied_activation(tensor(162.6 / 255, 0)) == "RELU"
    assert implied_activation(tensor(6 / 255, -128, "int8")) == "RELU6"
    assert implied_activation(tensor(0.35, 122)) == "NONE"  # a linear projection's range
    assert implied_activation(tensor(0.1, 0, "int32")) == "NONE"
    assert implied_activation(TFLiteTensor(index=0, name="f", shape=(1,), dtype="float32")) == "NONE"


# -- the file -------------------------------------------------------------------------------------------


def test_infers_the_deeplabv3plus_architecture(ade_graph) -> None:
    from segkit.convert.tflite import infer_architecture

    arch = infer_architecture(ade_graph)
    assert arch.kind == "segmentor"
    assert (arch.width_mult, arch.round_nearest, arch.output_stride, arch.final_conv) == (1.0, 8, 16, False)
    assert arch.input_size == (512, 512) and arch.input_mean == [128.0] * 3 and arch.input_std == [128.0] * 3
    assert arch.aspp_rates == [] and arch.head_channels == 256 and arch.num_classes == 32
    assert arch.branch_order == ["image_pool", "aspp0"]
    assert arch.decoder is not None
    assert arch.decoder.feature == "layer_4/depthwise_output" and arch.decoder_output_stride == 4
    assert arch.decoder.separable and arch.decoder.encoder_first
    assert list(arch.decoder.convs) == [
        "feature_projection0",
        "decoder_conv0.depthwise",
        "decoder_conv0.pointwise",
        "decoder_conv1.depthwise",
        "decoder_conv1.pointwise",
    ]
    # no fused activations in this file: ReLU6 / ReLU come from the output tensors' quantization ranges
    stem, *blocks = arch.layers
    assert stem.convs[0].activation == "RELU6" and stem.convs[0].implied
    assert all(block.convs[-1].activation == "NONE" for block in blocks)  # linear projections stay linear
    assert all(c.activation == "RELU6" and c.implied for block in blocks for c in block.convs[:-1])
    assert all(c.activation == "RELU" for c in arch.decoder.convs.values())
    assert arch.head["classifier"].activation == "NONE"
    assert any("legacy TF resize" in n for n in arch.notes)
    assert arch.resize_mode == "tf_legacy" and not arch.align_corners
    mcfg = arch.model_config()
    assert (mcfg.decoder, mcfg.decoder_output_stride, mcfg.decoder_feature, mcfg.decoder_separable) == (
        "deeplabv3plus",
        4,
        "depthwise",
        True,
    )
    assert mcfg.tf_same_padding and not mcfg.aspp and mcfg.num_classes == 32
    assert mcfg.resize_mode == "tf_legacy" and not mcfg.align_corners
    assert "decoder: DeepLabV3+, output stride 4 (layer_4/depthwise_output" in arch.summary()


def test_checkpoint_loads_with_the_ade20k_classes(ade_checkpoint: Path) -> None:
    import segkit
    from segkit.convert.tflite.classes import ADE20K_TOP31_CLASSES

    assert list(ADE20K_TOP31_CLASSES) == ADE20K_TOP31
    model = segkit.load_model(ade_checkpoint)
    ckpt = torch.load(ade_checkpoint, map_location="cpu", weights_only=True)
    assert ckpt["class_names"] == ADE20K_TOP31
    from segkit.data.ade20k import ADE20K_TOP31_PALETTE

    assert ckpt["palette"] == ADE20K_TOP31_PALETTE.tolist()  # ADE20K's colours in infer and --legend, not VOC's
    assert ckpt["config"]["eval"]["resize_longer"] == ckpt["config"]["eval"]["pad_to"] == 512
    assert ckpt["config"]["model"]["decoder"] == "deeplabv3plus" and ckpt["config"]["model"]["tf_same_padding"]
    assert ckpt["config"]["model"]["resize_mode"] == "tf_legacy" and model.head.decoder.resize_mode == "tf_legacy"
    assert model.head.decoder is not None and model.decoder_in == "layer_4/depthwise_output"
    assert model.head.classifier.out_channels == 32
    with torch.no_grad():
        out = model.eval()(torch.zeros(1, 3, 64, 64))["out"]
    assert out.shape == (1, 32, 64, 64)


def test_an_unmapped_activation_still_names_the_op(shared_data: Path, tflite_pkg: ModuleType) -> None:
    """Without the quantization range that implies ReLU6, layer_2's depthwise conv is refused by name."""
    from segkit.convert.tflite import TFLiteConversionError, infer_architecture, load_tflite

    graph = load_tflite(shared_data / ADE)
    dw = graph.ops[1]
    graph.tensors[dw.outputs[0]].quant = None
    with pytest.raises(TFLiteConversionError, match=r"layer_2: expected a 3x3 depthwise conv with ReLU6, found op 1"):
        infer_architecture(graph)


@pytest.mark.slow  # the 512x512 graph run op by op and the model (~8 s)
def test_segkit_equals_the_graph_run_in_float(ade_graph) -> None:
    """segkit's logits (its legacy resize mode included) equal the graph executed op by op in float."""
    from segkit.convert.tflite import build_converted_model, infer_architecture, run_graph

    arch = infer_architecture(ade_graph)
    model = build_converted_model(arch)
    image = np.random.default_rng(0).integers(0, 256, (1, 512, 512, 3), dtype=np.uint8)
    logits_tensor = arch.head["classifier"].output
    ref = run_graph(ade_graph, image, stop_after=[logits_tensor])[logits_tensor]  # [1, 128, 128, 32]
    found = {}
    model.head.classifier.register_forward_hook(lambda m, i, o: found.setdefault("logits", o))
    x = (torch.from_numpy(image).permute(0, 3, 1, 2).float() - 128) / 128
    with torch.no_grad():
        model(x)
    ours = found["logits"].permute(0, 2, 3, 1).numpy()
    assert np.abs(ours - ref).max() <= 1e-3 * max(1.0, float(np.abs(ref).max()))


def _agreement(model: torch.nn.Module, shared_data: Path) -> tuple[dict[str, float], float]:
    from PIL import Image

    refs = np.load(shared_data / REFERENCE)
    per_image, same, total = {}, 0, 0
    for path in sorted((shared_data / "ade20k_mlperf/images").glob("*.jpg")):
        image = np.array(Image.open(path).convert("RGB"))  # 512x512, fed as it is
        x = (torch.from_numpy(image).permute(2, 0, 1)[None].float() - 128) / 128
        with torch.no_grad():
            pred = model(x)["out"].argmax(1)[0].numpy()
        ref = refs[path.stem]
        assert pred.shape == ref.shape == (512, 512)
        per_image[path.stem] = float((pred == ref).mean())
        same, total = same + int((pred == ref).sum()), total + ref.size
    assert len(per_image) == 10
    return per_image, same / total


@pytest.mark.slow  # a 512x512 DeepLabV3+ over 10 images (~30 s on 2 cores)
def test_agrees_with_the_interpreter_on_ade20k(ade_checkpoint: Path, shared_data: Path) -> None:
    import segkit

    model = segkit.load_model(ade_checkpoint).eval()
    assert model.resize_mode == "tf_legacy"
    per_image, overall = _agreement(model, shared_data)
    print("segkit:", {k: round(v, 4) for k, v in per_image.items()}, round(overall, 5))
    assert overall >= MIN_AGREEMENT


@pytest.mark.slow  # the graph run op by op in float64 at 512x512 (~30-70 s on 2 cores)
def test_exact_8bit_emulation_gives_the_interpreter_label_map(ade_graph, shared_data: Path) -> None:
    """The executor's 8-bit emulation is the interpreter's arithmetic: the same label map on a real image."""
    from PIL import Image

    from segkit.convert.tflite import run_graph

    refs = np.load(shared_data / REFERENCE)
    image = np.array(Image.open(shared_data / "ade20k_mlperf/images/ADE_val_00000002.jpg").convert("RGB"))[None]
    pred = run_graph(ade_graph, image, emulate_quantization=True)[ade_graph.outputs[0]][0]
    assert float((pred == refs["ADE_val_00000002"]).mean()) >= MIN_AGREEMENT_EMULATED  # measured: 100%
