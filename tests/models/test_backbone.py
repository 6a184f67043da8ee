"""MobileNetV2 backbone contract: shapes, feature_info, dilation rule, torchvision compatibility, freezing."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
import torchvision
from torch import nn

from segkit.models.backbones import MobileNetV2, load_torchvision_weights
from segkit.models.backbones.mobilenetv2 import Conv2dSame

ALL_LAYERS = [f"layer_{i}" for i in range(1, 20)]


@pytest.mark.parametrize("output_stride", [8, 16, 32])
@pytest.mark.parametrize("width_mult", [1.0, 0.5, 1.4])
def test_feature_info_matches_real_outputs(output_stride: int, width_mult: float) -> None:
    net = MobileNetV2(width_mult=width_mult, output_stride=output_stride, out_features=ALL_LAYERS).eval()
    h, w = 97, 130  # odd and not a multiple of any stride
    with torch.no_grad():
        feats = net(torch.randn(1, 3, h, w))
    assert list(feats) == ALL_LAYERS
    for info in net.feature_info:
        f = feats[info.name]
        assert f.shape[1] == info.channels, info
        assert f.shape[2:] == (math.ceil(h / info.stride), math.ceil(w / info.stride)), info
    assert max(i.stride for i in net.feature_info) == output_stride
    assert net.out_channels == feats["layer_19"].shape[1] == (1280 if width_mult <= 1 else 1792)


def test_default_out_features_are_last_layer_of_each_stride() -> None:
    net = MobileNetV2(output_stride=16, final_conv=False)
    assert [(i.name, i.channels, i.stride) for i in net.feature_info] == [
        ("layer_2", 16, 2),
        ("layer_4", 24, 4),
        ("layer_7", 32, 8),
        ("layer_18", 320, 16),
    ]
    assert net.out_channels == 320


def _official_rates(output_stride: int) -> list[int]:
    # Rates from the official DeepLab description (../shared/docs/paper.md), layer_1 .. layer_18.
    if output_stride == 16:
        return [1] * 15 + [2, 2, 2]
    if output_stride == 8:
        return [1] * 8 + [2] * 6 + [2] + [4, 4, 4]
    return [1] * 18


@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_dilation_follows_official_rule(output_stride: int) -> None:
    net = MobileNetV2(output_stride=output_stride, final_conv=False)
    assert net.layer_dilation == _official_rates(output_stride)
    # The convs themselves: every depthwise conv has its layer's official rate, every other conv rate 1.
    depthwise_rates = []
    for idx, layer in enumerate(net.features):
        for m in layer.modules():
            if isinstance(m, nn.Conv2d):
                if m.groups > 1 and m.groups == m.in_channels == m.out_channels:
                    depthwise_rates.append(m.dilation[0])
                    assert m.padding == m.dilation, f"layer_{idx + 1}: padding must equal the rate"
                else:
                    assert m.dilation == (1, 1), f"non-depthwise conv dilated in layer_{idx + 1}"
    assert depthwise_rates == _official_rates(output_stride)[1:]  # layer_1 (the stem) has no depthwise conv
    strides = [
        next(m for m in layer.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)).stride[0]
        for layer in net.features
    ]
    assert math.prod(strides) == output_stride
    if output_stride == 16:
        assert strides[14] == 1 and net.layer_dilation[14] == 1  # layer_15 lost its stride, keeps rate 1
    if output_stride == 8:
        assert strides[7] == 1 and net.layer_dilation[7] == 1  # layer_8
        assert strides[14] == 1 and net.layer_dilation[14] == 2  # layer_15


def test_torchvision_state_dict_loads_strictly(tmp_path) -> None:
    tv = torchvision.models.mobilenet_v2(weights=None)
    net = MobileNetV2(output_stride=32, final_conv=True)
    assert set(net.state_dict()) == set(tv.features.state_dict(prefix="features."))
    path = tmp_path / "mobilenet_v2.pth"
    torch.save(tv.state_dict(), path)
    missing, unexpected = load_torchvision_weights(net, path)
    assert missing == [] and unexpected == []
    x = torch.randn(1, 3, 96, 96)
    tv.eval(), net.eval()
    with torch.no_grad():
        assert torch.allclose(net(x)["layer_19"], tv.features(x), atol=1e-5)


def test_torchvision_weights_into_dilated_backbone_without_final_conv(tmp_path) -> None:
    tv = torchvision.models.mobilenet_v2(weights=None)
    path = tmp_path / "mnv2.pth"
    torch.save(tv.state_dict(), path)
    net = MobileNetV2(output_stride=16, final_conv=False)
    missing, unexpected = load_torchvision_weights(net, path)
    assert missing == [] and unexpected == []
    assert torch.equal(net.features[17].conv[0][0].weight, tv.features[17].conv[0][0].weight)


def test_torchvision_loader_reports_width_mismatch(tmp_path) -> None:
    path = tmp_path / "mnv2.pth"
    torch.save(torchvision.models.mobilenet_v2(weights=None).state_dict(), path)
    with pytest.raises(RuntimeError, match="width_mult/round_nearest must match.*shape mismatches"):
        load_torchvision_weights(MobileNetV2(width_mult=0.5), path)
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        load_torchvision_weights(MobileNetV2(), tmp_path / "absent.pth")


@pytest.mark.parametrize("size", [(513, 513), (1, 1), (33, 17), (224, 320)])
def test_any_input_size(size) -> None:
    net = MobileNetV2(output_stride=16, final_conv=False, out_features=["layer_18"]).eval()
    with torch.no_grad():
        out = net(torch.randn(1, 3, *size))["layer_18"]
    assert out.shape == (1, 320, math.ceil(size[0] / 16), math.ceil(size[1] / 16))


def test_round_nearest_one_rounds_like_tf_slim() -> None:
    # TF slim's _make_divisible(c * width, divisible_by=1, min_depth=8): nearest integer, half up, >= 8.
    # Width 0.35: 32 -> 11.2 -> 11; 16 -> 5.6 -> 8 (min depth); 96 -> 33.6 -> 34 (not truncated to 33).
    net = MobileNetV2(width_mult=0.35, round_nearest=1, out_features=["layer_1", "layer_2", "layer_13", "layer_18"])
    assert [i.channels for i in net.feature_info] == [11, 8, 34, 112]
    rounded = MobileNetV2(width_mult=0.35, round_nearest=8, out_features=["layer_1", "layer_18"])
    assert [i.channels for i in rounded.feature_info] == [16, 112]


def test_frozen_stages_freeze_parameters_and_bn_stats() -> None:
    net = MobileNetV2(frozen_stages=2, final_conv=False)  # stem + stages 1, 2 = layer_1 .. layer_4
    frozen, trainable = net.features[:4], net.features[4:]
    assert all(not p.requires_grad for p in frozen.parameters())
    assert all(p.requires_grad for p in trainable.parameters())
    net.train()
    assert all(not m.training for layer in frozen for m in layer.modules())
    assert all(m.training for layer in trainable for m in layer.modules())
    frozen_bn, trained_bn = net.features[0][1], net.features[5].conv[0][1]
    before = frozen_bn.running_mean.clone(), trained_bn.running_mean.clone()
    net(torch.randn(2, 3, 64, 64))["layer_18"].sum().backward()
    assert torch.equal(frozen_bn.running_mean, before[0])
    assert not torch.equal(trained_bn.running_mean, before[1])
    assert all(p.grad is None for p in frozen.parameters())
    assert all(p.grad is not None for p in trainable.parameters())


def test_norm_eval_keeps_bn_statistics_fixed() -> None:
    net = MobileNetV2(norm_eval=True, final_conv=False).train()
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(not m.training for m in bns)
    stats = [m.running_mean.clone() for m in bns]
    net(torch.randn(2, 3, 64, 64)).__len__()
    assert all(torch.equal(m.running_mean, s) for m, s in zip(bns, stats))
    assert all(p.requires_grad for p in net.parameters())  # norm_eval freezes statistics, not weights


def test_norm_layer_is_used() -> None:
    net = MobileNetV2(norm_layer=lambda c: nn.GroupNorm(8, c), width_mult=1.0)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert sum(isinstance(m, nn.GroupNorm) for m in net.modules()) > 30


def test_tf_same_padding_matches_tensorflow_geometry() -> None:
    net = MobileNetV2(tf_same_padding=True, final_conv=False, out_features=["layer_2", "layer_18"]).eval()
    assert sum(isinstance(m, Conv2dSame) for m in net.modules()) == 5  # the five stride-2 convs at OS32
    ref = MobileNetV2(tf_same_padding=False, final_conv=False, out_features=["layer_2", "layer_18"]).eval()
    ref.load_state_dict(net.state_dict())  # same parameter names
    with torch.no_grad():
        odd = torch.randn(1, 3, 65, 65)  # 8k+1 sizes: TF's SAME padding is symmetric, outputs equal
        a, b = net(odd), ref(odd)
        assert all(torch.equal(a[k], b[k]) for k in a)
        even = torch.randn(1, 3, 64, 64)  # even sizes: TF pads bottom/right only, outputs differ
        a, b = net(even)["layer_2"], ref(even)["layer_2"]
        assert a.shape == b.shape and (a - b).abs().max() > 0.1 * a.abs().max()
    conv = Conv2dSame(1, 1, 3, stride=2, bias=False)
    nn.init.ones_(conv.weight)
    y = conv(torch.ones(1, 1, 4, 4))
    assert y.flatten().tolist() == [9.0, 6.0, 6.0, 4.0]  # TF: pad 0 top/left, 1 bottom/right


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"output_stride": 4}, "output_stride must be 8, 16 or 32, got 4"),
        ({"width_mult": 0}, "width_mult must be a number > 0"),
        ({"width_mult": -1.0}, "width_mult must be a number > 0"),
        ({"round_nearest": 0}, "round_nearest must be an integer >= 1"),
        ({"frozen_stages": 12}, "frozen_stages must be -1 .* or 0..8"),
        ({"out_features": ["layer_20"]}, "unknown names \\['layer_20'\\]"),
        ({"out_features": ["layer_19"], "final_conv": False}, "layer_19 needs final_conv=True"),
    ],
)
def test_invalid_arguments(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        MobileNetV2(**kwargs)


@pytest.mark.slow  # spawns a fresh interpreter
def test_backbone_imports_no_config_or_data_code() -> None:
    code = (
        "import sys; from segkit.models.backbones import MobileNetV2; "
        "bad = [m for m in sys.modules if m.startswith(('segkit.config', 'segkit.data', 'segkit.checkpoint.format', "
        "'segkit.train', 'segkit.engine', 'yaml', 'albumentations'))]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
