"""MobileNetV1 and ResNet-101 (resnet_v1_101_beta): the backbone contract, output-stride rule, Table 7 params."""

from __future__ import annotations

import math

import pytest
import torch

from segkit.analysis.complexity import count_complexity
from segkit.config import ConfigError, ModelConfig, load_config
from segkit.models import build_backbone, build_model
from segkit.models.backbones import MobileNetV1, ResNet, resnet101_beta


def _check_contract(backbone, size: int) -> None:
    backbone.eval()
    with torch.no_grad():
        out = backbone(torch.randn(1, 3, size, size))
    assert list(out) == [info.name for info in backbone.feature_info]
    for info in backbone.feature_info:
        assert out[info.name].shape == (1, info.channels, math.ceil(size / info.stride), math.ceil(size / info.stride))
    assert backbone.out_channels == backbone.feature_info[-1].channels


@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_mobilenet_v1_contract(output_stride):
    backbone = MobileNetV1(output_stride=output_stride, out_features=[f"conv2d_{i}" for i in range(14)])
    _check_contract(backbone, 67)
    strides = [info.stride for info in backbone.feature_info]
    assert max(strides) == output_stride and backbone.feature_info[-1].channels == 1024


# resnet_v1_101_beta's layout at a fraction of the width and depth, for tests that compute.
SMALL_BLOCKS = (("block1", 4, 2, 2), ("block2", 8, 2, 2), ("block3", 8, 3, 2), ("block4", 16, 3, 1))


def small_resnet(**kwargs) -> ResNet:
    return ResNet(SMALL_BLOCKS, stem_channels=(8, 8, 16), **kwargs)


@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_resnet_contract(output_stride):
    backbone = small_resnet(output_stride=output_stride, out_features=["stem", "block1", "block2", "block3", "block4"])
    _check_contract(backbone, 45)
    expected = {8: [4, 8, 8, 8, 8], 16: [4, 8, 16, 16, 16], 32: [4, 8, 16, 32, 32]}[output_stride]
    assert [info.stride for info in backbone.feature_info] == expected
    assert [info.channels for info in backbone.feature_info] == [16, 16, 32, 32, 64]
    with torch.device("meta"):
        full = resnet101_beta(
            output_stride=output_stride, out_features=["stem", "block1", "block2", "block3", "block4"]
        )
    assert [info.stride for info in full.feature_info] == expected
    assert [info.channels for info in full.feature_info] == [128, 256, 512, 1024, 2048]


def test_default_out_features_are_last_of_every_stride():
    with torch.device("meta"):
        assert [i.name for i in MobileNetV1().feature_info] == [
            "conv2d_1",
            "conv2d_3",
            "conv2d_5",
            "conv2d_11",
            "conv2d_13",
        ]
        assert [i.name for i in resnet101_beta(output_stride=16).feature_info] == ["stem", "block1", "block4"]


def test_mobilenet_v1_dilation_rule():
    # TF-slim mobilenet_v1_base: the layer losing its stride keeps the previous rate.
    os16 = MobileNetV1(output_stride=16)
    assert os16.layer_dilation == [1] * 13 + [2]
    assert os16.features[12].stride == 1 and os16.features[12][0][0].dilation == (1, 1)
    os8 = MobileNetV1(output_stride=8)
    assert os8.layer_dilation == [1] * 7 + [2] * 6 + [4]
    assert [m.dilation for m in os8.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1)] == [
        (1, 1)
    ] * 13


def test_resnet101_structure_and_multi_grid():
    with torch.device("meta"):
        r, os16, os8 = (resnet101_beta(output_stride=s) for s in (32, 16, 8))
    assert [len(getattr(r, n)) for n in r.block_names] == [3, 4, 23, 3]
    assert [m[0].out_channels for m in r.stem if isinstance(m, torch.nn.Sequential)] == [64, 64, 128]
    assert [u.stride for u in r.block1] == [1, 1, 2]  # TF-slim v1: stride on the last unit
    assert [u.conv2.dilation[0] for u in r.block4] == r.unit_dilation["block4"] == [1, 2, 4]
    assert os16.block3[-1].stride == 1 and os16.unit_dilation["block3"] == [1] * 23
    assert os16.unit_dilation["block4"] == [2, 4, 8]
    assert os8.block2[-1].stride == 1 and os8.unit_dilation["block2"] == [1] * 4
    assert os8.unit_dilation["block3"] == [2] * 23 and os8.unit_dilation["block4"] == [4, 8, 16]


@pytest.mark.parametrize(
    ("name", "expected", "paper"),
    [
        ("voc_mnv1_os16_aspp", 11_145_301, 11.15e6),
        ("voc_mnv1_os8_aspp", 11_145_301, 11.15e6),
        ("voc_r101_os16_aspp", 58_164_437, 58.16e6),
        ("voc_r101_os8_aspp", 58_164_437, 58.16e6),
    ],
)
def test_table7_params(name, expected, paper):
    with torch.device("meta"):
        model = build_model(load_config(name))
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert params == expected and abs(params / paper - 1) < 0.005


@pytest.mark.parametrize("backbone", ["mobilenet_v1", "resnet101"])
def test_segmentor_with_aux_head(backbone):
    cfg = load_config("voc_mnv2_os16_aspp", [f"model.backbone={backbone}", "model.aux_head=true"])
    with torch.device("meta"):
        model = build_model(cfg).train()
        out = model(torch.zeros(2, 3, 65, 65))
    assert model.backbone.feature_info[0].stride == 16  # aux reads a stride-16 feature
    assert out["out"].shape == out["aux"].shape == (2, 21, 65, 65)


@pytest.mark.parametrize(
    "model_fn",
    [
        lambda: build_model(load_config("voc_mnv1_os8_aspp")),
        lambda: small_resnet(output_stride=8),
    ],
    ids=["mnv1_os8_aspp", "resnet_os8"],
)
def test_meta_count_equals_real_run(model_fn):
    model = model_fn()
    meta, real = count_complexity(model, 41, device="meta"), count_complexity(model, 41, device="cpu")
    assert [(r.name, r.output_shape, r.madds_pytorch, r.madds_tf1) for r in meta.layers] == [
        (r.name, r.output_shape, r.madds_pytorch, r.madds_tf1) for r in real.layers
    ]
    assert meta.params == real.params and meta.madds_tf1 > meta.madds_pytorch


def test_build_backbone_unknown_name_lists_valid():
    with pytest.raises(KeyError, match="valid backbones: mobilenet_v2, mobilenet_v1, resnet101"):
        build_backbone(ModelConfig(backbone="vgg16"))  # type: ignore[arg-type]


def test_build_backbone_mobilenet_v2_unchanged():
    backbone = build_backbone(ModelConfig(aux_head=True))
    assert [i.name for i in backbone.feature_info] == ["layer_14", "layer_18"]


@pytest.mark.parametrize(
    ("factory", "kwargs", "match"),
    [
        (MobileNetV1, {"output_stride": 4}, "output_stride must be 8, 16 or 32"),
        (MobileNetV1, {"width_mult": 0}, "width_mult must be a number > 0"),
        (MobileNetV1, {"frozen_stages": 14}, "frozen_stages must be -1"),
        (MobileNetV1, {"out_features": ["layer_3"]}, "valid names are conv2d_0 .. conv2d_13"),
        (resnet101_beta, {"output_stride": 4}, "output_stride must be 8, 16 or 32"),
        (resnet101_beta, {"multi_grid": (1, 2)}, "multi_grid must hold one integer rate"),
        (resnet101_beta, {"frozen_stages": 5}, "frozen_stages must be -1"),
        (resnet101_beta, {"out_features": ["layer4"]}, "valid names are"),
    ],
)
def test_invalid_arguments(factory, kwargs, match):
    with torch.device("meta"), pytest.raises(ValueError, match=match):
        factory(**kwargs)


def test_config_validation_for_other_backbones():
    with pytest.raises(ConfigError, match="model.backbone: got 'vgg16'; allowed values are"):
        load_config("voc_mnv2_os16", ["model.backbone=vgg16"])
    with pytest.raises(ConfigError, match="model.width_mult: got 0.5; allowed: 1.0 for backbone 'resnet101'"):
        load_config("voc_r101_os16_aspp", ["model.width_mult=0.5"])
    with pytest.raises(ConfigError, match="model.final_conv: got True"):
        load_config("voc_mnv1_os16_aspp", ["model.final_conv=true"])


@pytest.mark.parametrize("factory", [MobileNetV1, resnet101_beta])
def test_frozen_stages_and_norm_eval(factory):
    with torch.device("meta"):
        backbone = factory(frozen_stages=1, norm_eval=False)
    frozen = backbone._frozen_layers()
    assert len(frozen) == 2 and all(not p.requires_grad for layer in frozen for p in layer.parameters())
    backbone.train()
    assert all(not m.training for layer in frozen for m in layer.modules())
    with torch.device("meta"):
        backbone = factory(norm_eval=True).train()
    assert all(not m.training for m in backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_resnet_tf_same_max_pool_matches_on_odd_sizes():
    a, b = small_resnet(out_features=["stem"]).eval(), small_resnet(out_features=["stem"], tf_same_padding=True).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, 33, 33)
    with torch.no_grad():
        assert torch.equal(a(x)["stem"], b(x)["stem"])
        assert b(torch.randn(1, 3, 32, 32))["stem"].shape[-1] == 8
    assert isinstance(a, ResNet)


def test_backbones_import_nothing_from_segkit_outside_their_package():
    import ast
    from pathlib import Path

    import segkit.models.backbones as pkg

    allowed = ("segkit.models.backbones", "segkit.utils")
    bad = []
    for path in sorted(Path(pkg.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):  # imports inside functions included
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            bad += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "segkit" and not n.startswith(allowed)]
    assert bad == []
