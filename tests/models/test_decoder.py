"""DeepLabV3+ decoder contract: inner end points, the official layout, counts, any size, freezing, training."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from segkit.analysis.complexity import count_config
from segkit.config import ConfigError, load_config
from segkit.models import build_model, count_parameters
from segkit.models.backbones import MobileNetV2
from segkit.models.fuse import optimize_for_inference
from segkit.models.heads import DeepLabV3PlusDecoder

# TF DeepLab's DECODER_END_POINTS for mobilenet_v2: decoder stride -> (end point, channels at width 1.0)
END_POINTS = {
    4: ("layer_4/depthwise_output", 144),
    8: ("layer_7/depthwise_output", 192),
    16: ("layer_14/depthwise_output", 576),
}


def _bn_params(c: int) -> int:
    return 2 * c  # scale + shift (running statistics are buffers)


def _decoder_params(low: int, separable: bool, enc: int = 256, proj: int = 48, ch: int = 256) -> int:
    """Parameters of the official decoder, counted from its description (not from the module)."""
    n = low * proj + _bn_params(proj)  # feature_projection0
    for cin in (enc + proj, ch):  # decoder_conv0, decoder_conv1
        if separable:
            n += cin * 9 + _bn_params(cin) + cin * ch + _bn_params(ch)
        else:
            n += cin * ch * 9 + _bn_params(ch)
    return n


@pytest.mark.parametrize("output_stride", [8, 16, 32])
@pytest.mark.parametrize("decoder_stride", [4, 8, 16])
def test_inner_end_points_shape_stride_and_value(output_stride: int, decoder_stride: int) -> None:
    name, channels = END_POINTS[decoder_stride]
    block = name.split("/")[0]
    net = MobileNetV2(output_stride=output_stride, final_conv=False, out_features=[name, block, "layer_18"]).eval()
    info = {i.name: i for i in net.feature_info}
    stride = min(decoder_stride, output_stride)
    assert (info[name].channels, info[name].stride) == (channels, stride)
    assert list(info) == [name, block, "layer_18"]  # network order, the inner end point before its block
    h, w = 97, 130
    x = torch.randn(1, 3, h, w)
    with torch.no_grad():
        out = net(x)
        assert out[name].shape == (1, channels, math.ceil(h / stride), math.ceil(w / stride))
        # Independently: run the layers before the block, then the block's expansion and depthwise conv + BN + ReLU6.
        idx = int(block[6:]) - 1
        y = net.features[:idx](x)
        expand, depthwise = net.features[idx].conv[0], net.features[idx].conv[1]
        torch.testing.assert_close(out[name], depthwise(expand(y)))
        assert out[name].min() >= 0 and out[name].max() <= 6  # after ReLU6
        torch.testing.assert_close(out[block], net.features[idx](y))


def test_end_point_names_are_validated() -> None:
    with pytest.raises(ValueError, match=r"layer_2/depthwise_output \.\. layer_18/depthwise_output"):
        MobileNetV2(out_features=["layer_1/depthwise_output"])
    with pytest.raises(ValueError, match="unknown names"):
        MobileNetV2(out_features=["layer_4/expanded"])


def _plus(overrides: tuple[str, ...] = (), name: str = "voc_mnv2_os16_plus") -> nn.Module:
    torch.manual_seed(0)
    return build_model(load_config(name, list(overrides)))


def test_official_layout_and_channels() -> None:
    model = _plus()
    assert model.decoder_in == "layer_4/depthwise_output" and model.head_in == "layer_18"
    dec = model.head.decoder
    assert isinstance(dec, DeepLabV3PlusDecoder) and dec.separable
    proj = dec.feature_projection0
    assert (proj[0].in_channels, proj[0].out_channels, proj[0].kernel_size) == (144, 48, (1, 1))
    assert isinstance(proj[1], nn.BatchNorm2d) and isinstance(proj[2], nn.ReLU)
    for conv, cin in ((dec.decoder_conv0, 304), (dec.decoder_conv1, 256)):
        dw, pw = conv.depthwise[0], conv.pointwise[0]
        assert (dw.in_channels, dw.out_channels, dw.groups, dw.kernel_size) == (cin, cin, cin, (3, 3))
        assert (pw.in_channels, pw.out_channels, pw.kernel_size) == (cin, 256, (1, 1))
        assert dw.bias is None and pw.bias is None
        assert isinstance(conv.depthwise[2], nn.ReLU) and isinstance(conv.pointwise[1], nn.BatchNorm2d)
    logits = model.head.classifier
    assert (logits.in_channels, logits.out_channels, logits.kernel_size) == (256, 21, (1, 1))
    assert logits.bias is not None
    names = {n for n, _ in model.named_modules()}
    assert {
        "head.decoder.feature_projection0",
        "head.decoder.decoder_conv0.depthwise",
        "head.decoder.decoder_conv1.pointwise",
        "head.classifier",
    } <= names

    regular = _plus(("model.decoder_separable=false",)).head.decoder
    conv = regular.decoder_conv0[0]
    assert (conv.in_channels, conv.out_channels, conv.groups, conv.kernel_size) == (304, 256, 1, (3, 3))

    block = _plus(("model.decoder_feature=block",))
    assert block.decoder_in == "layer_4" and block.head.decoder.feature_projection0[0].in_channels == 24


def test_parameter_count_computed_independently() -> None:
    base = count_parameters(build_model(load_config("voc_mnv2_os16")))
    assert count_parameters(_plus()) - base == _decoder_params(144, True) == 157_552
    assert count_parameters(_plus(("model.decoder_separable=false",))) - base == _decoder_params(144, False)
    assert count_parameters(_plus(("model.decoder_output_stride=8",))) - base == _decoder_params(192, True)
    assert count_parameters(_plus(("model.decoder_feature=block",))) - base == _decoder_params(24, True)
    # separable ASPP: three branches of depthwise 3x3 (320) + BN + pointwise 320 -> 256 + BN instead of 3x3 convs
    aspp = count_parameters(build_model(load_config("voc_mnv2_os16_aspp")))
    regular_branches = 3 * (320 * 256 * 9 + _bn_params(256))
    separable_branches = 3 * (320 * 9 + _bn_params(320) + 320 * 256 + _bn_params(256))
    assert count_parameters(
        _plus(name="voc_mnv2_os16_aspp_plus")
    ) == aspp - regular_branches + separable_branches + _decoder_params(144, True)


@pytest.mark.parametrize(("output_stride", "decoder_stride"), [(8, 4), (16, 4), (16, 8), (32, 4), (32, 8), (32, 16)])
@pytest.mark.parametrize("aspp", [False, True])
def test_every_output_stride_and_decoder_stride(output_stride: int, decoder_stride: int, aspp: bool) -> None:
    model = _plus(
        (
            f"model.output_stride={output_stride}",
            f"model.decoder_output_stride={decoder_stride}",
            f"model.aspp={str(aspp).lower()}",
        )
    ).eval()
    info = {i.name: i for i in model.backbone.feature_info}
    assert info[model.decoder_in].stride == decoder_stride and info["layer_18"].stride == output_stride
    seen = {}

    def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        seen["out"] = out.shape

    model.head.decoder.register_forward_hook(hook)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 67, 50))["out"]
    assert out.shape == (1, 21, 67, 50)
    assert seen["out"] == (1, 256, math.ceil(67 / decoder_stride), math.ceil(50 / decoder_stride))


@pytest.mark.parametrize("size", [(513, 513), (1, 1), (33, 17), (97, 130), (224, 320)])
def test_any_input_size(size: tuple[int, int]) -> None:
    model = _plus(("model.aux_head=true",)).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, *size))["out"].shape == (1, 21, *size)


def test_aux_head_with_decoder() -> None:
    model = _plus(("model.aux_head=true",)).train()
    out = model(torch.randn(2, 3, 65, 65))
    assert out["out"].shape == out["aux"].shape == (2, 21, 65, 65)
    assert {i.name for i in model.backbone.feature_info} == {"layer_4/depthwise_output", "layer_14", "layer_18"}


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (
            ["model.decoder_output_stride=16"],
            r"model.decoder_output_stride: got 16; allowed: 4, 8 or 16, smaller than "
            r"model.output_stride \(16\)",
        ),
        (["model.output_stride=8", "model.decoder_output_stride=8"], r"smaller than model.output_stride \(8\)"),
        (["model.decoder_output_stride=2"], "model.decoder_output_stride: got 2; allowed values are 4, 8, 16"),
        (
            ["model.backbone=mobilenet_v1"],
            "model.decoder: got 'deeplabv3plus'; allowed: 'none' for backbone 'mobilenet_v1'",
        ),
        (["model.decoder=unet"], "model.decoder: got 'unet'; allowed values are 'none', 'deeplabv3plus'"),
        (
            ["model.decoder_feature=output"],
            "model.decoder_feature: got 'output'; allowed values are 'depthwise', 'block'",
        ),
        (["model.aspp_separable=true"], "model.aspp_separable: got True; allowed: false when model.aspp is false"),
    ],
)
def test_config_validation(overrides: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config("voc_mnv2_os16_plus", overrides)


def test_freezing_and_norm_eval() -> None:
    model = _plus(("model.frozen_stages=2",))
    frozen = [p for layer in model.backbone.features[:4] for p in layer.parameters()]  # stem + stages 1, 2
    assert frozen and all(not p.requires_grad for p in frozen)
    assert all(p.requires_grad for p in model.backbone.features[4].parameters())
    assert all(p.requires_grad for p in model.head.decoder.parameters())
    model.train()
    assert not any(m.training for layer in model.backbone.features[:4] for m in layer.modules())
    assert model.head.decoder.training
    model = _plus(("model.norm_eval=true",)).train()
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(not m.training for m in bns) and model.head.decoder.decoder_conv0.depthwise[1] in bns
    assert model.head.dropout.training  # only norm layers are held in eval mode


def _batch(n: int = 2, size: int = 49) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(n, 3, size, size, generator=gen)
    target = (images[:, 0] > 0).long() + (images[:, 1] > 0.5).long()  # a learnable 3-class map
    return images, target


@pytest.mark.slow  # 7 training steps of the full-width DeepLabV3+ (~15 s on 2 busy cores)
def test_every_decoder_parameter_gets_a_gradient_and_training_reduces_the_loss() -> None:
    model = _plus(("model.dropout=0",)).train()
    images, target = _batch()
    loss = F.cross_entropy(model(images)["out"], target)
    loss.backward()
    for name, p in model.head.decoder.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    depthwise = model.backbone.features[3].conv[1][0].weight  # layer_4's depthwise conv feeds the decoder
    assert depthwise.grad.abs().sum() > 0
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(6):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images)["out"], target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


def _randomize_bn(model: nn.Module) -> nn.Module:
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


@pytest.mark.parametrize("name", ["voc_mnv2_os16_plus", "voc_mnv2_os16_aspp_plus"])
def test_optimize_for_inference_keeps_predictions(name: str) -> None:
    model = _randomize_bn(_plus(name=name))
    fast = optimize_for_inference(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    x = torch.randn(2, 3, 66, 71)
    with torch.inference_mode():
        ref, out = model(x)["out"], fast(x)["out"]
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    assert torch.equal(out.argmax(1), ref.argmax(1))


def test_complexity_rows_equal_an_independent_count() -> None:
    base, plus = count_config("voc_mnv2_os16"), count_config("voc_mnv2_os16_plus")
    assert plus.params == base.params + _decoder_params(144, True)
    hw = 129 * 129  # 513 at stride 4 (TF SAME: ceil(513 / 4))
    decoder = hw * (144 * 48 + 304 * 9 + 304 * 256 + 256 * 9 + 256 * 256)
    logits_moved = (hw - 33 * 33) * 256 * 21  # the logits now run at stride 4 instead of 16
    for convention in ("pytorch", "tf1"):  # no dilated conv in the decoder: both conventions agree on it
        assert plus.madds(convention) - base.madds(convention) == decoder + logits_moved


def test_extra_complexity_rows_list_the_decoder_configs() -> None:
    from segkit.analysis.complexity import extra_rows

    rows = {r["config"]: r for r in extra_rows()}
    assert set(rows) == {"voc_mnv2_os16_plus", "voc_mnv2_os16_aspp_plus"}
    for name, row in rows.items():
        assert row["decoder"] == "deeplabv3plus" and row["os"] == 16
        assert row["params"] == count_parameters(build_model(load_config(name)))
        assert row["madds_tf1"] >= row["madds_pytorch"] > count_config("voc_mnv2_os16").madds_pytorch


def test_last_layer_key_and_note() -> None:
    from segkit.models.build import init_exclude, last_layer_note

    assert init_exclude(load_config("voc_mnv2_os16_plus")) == ()
    assert init_exclude(load_config("voc_mnv2_os16_plus", ["train.init_last_layer=false"])) == (
        "head.classifier.",
        "aux_head.4.",
    )
    plus, plain = _plus(), build_model(load_config("voc_mnv2_os16"))
    source = list(plain.state_dict())
    note = last_layer_note(plus, source, [k for k in source if k in plus.state_dict()])
    assert note is not None and "was loaded" in note and "train.init_last_layer=false" in note
    note = last_layer_note(plus, source, [k for k in source if not k.startswith("head.classifier.")])
    assert note is not None and "was not loaded" in note
    assert last_layer_note(plain, source, source) is None  # no decoder here
    assert last_layer_note(plus, list(plus.state_dict()), list(plus.state_dict())) is None  # the source has one


@pytest.mark.parametrize("init_last_layer", [True, False])
def test_init_from_a_checkpoint_without_decoder(tmp_path, init_last_layer: bool) -> None:
    from segkit.checkpoint.format import save_checkpoint
    from segkit.checkpoint.load import load_state_into
    from segkit.models.build import init_exclude

    plain_cfg = load_config("voc_mnv2_os16")
    torch.manual_seed(1)
    plain = build_model(plain_cfg)
    path = tmp_path / "no_decoder.pth"
    save_checkpoint(path, plain, plain_cfg)
    cfg = load_config("voc_mnv2_os16_plus", [f"train.init_last_layer={str(init_last_layer).lower()}"])
    torch.manual_seed(2)
    model = build_model(cfg)
    decoder_before = {k: v.clone() for k, v in model.head.decoder.state_dict().items()}
    logits_before = model.head.classifier.weight.clone()
    lines: list[str] = []
    report = load_state_into(model, path, log=lines.append, exclude=init_exclude(cfg))

    source, own = plain.state_dict(), model.state_dict()
    for key, value in source.items():  # every no-decoder tensor has its place (same name and shape) ...
        if key.startswith("head.classifier.") and not init_last_layer:
            continue
        assert torch.equal(own[key], value), key
    decoder_keys = sorted(f"head.decoder.{k}" for k in decoder_before)
    expected_missing = decoder_keys + ([] if init_last_layer else ["head.classifier.bias", "head.classifier.weight"])
    assert report.missing == sorted(expected_missing)  # ... and the decoder is what stays fresh
    assert report.loaded == len(source) - (0 if init_last_layer else 2)
    assert all(torch.equal(model.head.decoder.state_dict()[k], v) for k, v in decoder_before.items())
    assert torch.equal(model.head.classifier.weight, plain.head.classifier.weight) == init_last_layer
    assert torch.equal(model.head.classifier.weight, logits_before) == (not init_last_layer)
    assert len(lines) == 1 and "\n" not in lines[0]
    assert ("logits conv) was loaded" in lines[0]) == init_last_layer
    assert ("logits conv) was not loaded" in lines[0]) == (not init_last_layer)


def test_json_report_carries_the_decoder(synth_root, tmp_path) -> None:
    import json

    from segkit.checkpoint.format import save_checkpoint
    from segkit.cli import main

    cfg = load_config(
        "voc_mnv2_os16_plus",
        {
            "model.width_mult": 0.35,
            "model.num_classes": 5,
            "data.root": str(synth_root),
            "data.num_workers": 0,
            "eval.pad_to": None,
        },
    )
    torch.manual_seed(0)
    path, out = tmp_path / "plus.pth", tmp_path / "eval.json"
    save_checkpoint(path, build_model(cfg).eval(), cfg)
    assert main(["test", "--checkpoint", str(path), "--json", str(out), "--no-progress"]) == 0
    report = json.loads(out.read_text())
    assert report["config"] == "voc_mnv2_os16_plus" and report["decoder"] == "deeplabv3plus"


@pytest.mark.slow
def test_onnx_export_keeps_predictions(tmp_path) -> None:
    """Separable ASPP + decoder through segkit.export (LiteRT too by hand: 100% agreement at 65x65)."""
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'segkit-deeplab[deploy]')")
    from segkit.export import export_onnx, verify

    model = _randomize_bn(_plus(("model.width_mult=0.35",), name="voc_mnv2_os16_aspp_plus"))
    path = tmp_path / "plus.onnx"
    export_onnx(model, path, input_size=(65, 65))
    report = verify(model, path)
    assert report.passed(), report


def test_tradeoff_never_puts_a_decoder_result_on_a_table7_row(tmp_path) -> None:
    import json

    from segkit.analysis.tradeoff import CONFIG_NAMES, load_results, tradeoff_markdown

    single = {"scales": [1.0], "flip": False}
    files = {
        "plus.json": {"config": "voc_mnv2_os16_plus", "decoder": "deeplabv3plus", "miou": 0.71, "protocol": single},
        # a decoder model evaluated under the Table 7 config's name (--set model.decoder=deeplabv3plus)
        "voc_mnv2_os16_dec.json": {
            "config": "voc_mnv2_os16",
            "decoder": "deeplabv3plus",
            "miou": 0.99,
            "protocol": single,
        },
        "voc_mnv2_os16_aspp_plus_run2.json": {"decoder": "deeplabv3plus", "miou": 72.5},  # by file name
        "plain.json": {"config": "voc_mnv2_os16", "decoder": "none", "miou": 0.70, "protocol": single},
    }
    for name, data in files.items():
        (tmp_path / name).write_text(json.dumps(data))
    results, notes = load_results(tmp_path)
    placed = {r.config: r.miou for r in results}
    assert placed == pytest.approx({"voc_mnv2_os16_plus": 71.0, "voc_mnv2_os16_aspp_plus": 72.5, "voc_mnv2_os16": 70.0})
    assert len(notes) == 1 and "voc_mnv2_os16_dec.json" in notes[0] and "deeplabv3plus decoder" in notes[0]
    table = tradeoff_markdown({c: 5e9 for c in CONFIG_NAMES}, results, {})
    assert "| MNet V2* | 16 |  |  | 2.75B | 5.00B | 75.32 | 70.00 | - |" in table  # the Table 7 row: 70, not 99
    assert "| MNet V2* + DeepLabV3+ decoder (not in Table 7) | 16 |  |  | - | 5.00B | - | 71.00 | - |" in table
