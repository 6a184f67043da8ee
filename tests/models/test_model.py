"""DeepLabV3 heads and the segmentor: layout, parameter counts of the paper, output sizes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import segkit
from segkit.models import Segmentor, count_parameters
from segkit.models.backbones import MobileNetV2
from segkit.models.heads import DeepLabV3Head, FCNHead


@pytest.mark.parametrize(
    ("name", "params", "paper"),
    [
        ("voc_mnv2_os16", 2_113_557, 2.11e6),
        ("voc_mnv2_os8", 2_113_557, 2.11e6),
        ("voc_mnv2_os16_aspp", 4_523_541, 4.52e6),
        ("voc_mnv2_os8_aspp", 4_523_541, 4.52e6),
    ],
)
def test_parameter_counts_match_the_paper(name: str, params: int, paper: float) -> None:
    model = segkit.build_model(segkit.load_config(name))
    n = count_parameters(model)
    assert n == params
    assert round(n / 1e6, 2) == paper / 1e6  # Table 7 prints 2.11M / 4.52M


def test_aspp_rates_follow_output_stride_and_override() -> None:
    rates = lambda m: [b[0].dilation[0] for b in m.head.atrous]  # noqa: E731
    assert rates(segkit.build_model(segkit.load_config("voc_mnv2_os16_aspp"))) == [6, 12, 18]
    assert rates(segkit.build_model(segkit.load_config("voc_mnv2_os8_aspp"))) == [12, 24, 36]
    custom = segkit.build_model(segkit.load_config("voc_mnv2_os16_aspp", ["model.aspp_rates=[2,4,8]"]))
    assert rates(custom) == [2, 4, 8]
    assert len(segkit.build_model(segkit.load_config("voc_mnv2_os16")).head.atrous) == 0


def test_light_head_layout_matches_official() -> None:
    head = DeepLabV3Head(320, 21)
    convs = [(n, m) for n, m in head.named_modules() if isinstance(m, nn.Conv2d)]
    assert [(n, m.in_channels, m.out_channels, m.kernel_size[0], m.bias is not None) for n, m in convs] == [
        ("image_pool.conv.0", 320, 256, 1, False),
        ("aspp0.0", 320, 256, 1, False),
        ("project.0", 512, 256, 1, False),
        ("classifier", 256, 21, 1, True),
    ]
    # concat -> 1x1 projection -> BN -> ReLU -> dropout (keep 0.9, element-wise like slim.dropout) -> logits
    assert type(head.dropout) is nn.Dropout and head.dropout.p == pytest.approx(0.1)


def test_norm_eval_freezes_every_bn_of_the_segmentor() -> None:
    model = segkit.build_model(
        segkit.load_config("voc_mnv2_os16", ["model.width_mult=0.35", "model.norm_eval=true", "model.aux_head=true"])
    ).train()
    bns = {n: m for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    assert any(n.startswith("head.") for n in bns) and any(n.startswith("aux_head.") for n in bns)
    stats = {n: m.running_mean.clone() for n, m in bns.items()}
    model(torch.randn(2, 3, 33, 33))
    assert [n for n, m in bns.items() if m.training or not torch.equal(m.running_mean, stats[n])] == []
    assert model.head.dropout.training  # dropout still trains: only norm layers are frozen


def test_image_pooling_branch_is_global() -> None:
    head = DeepLabV3Head(8, 3, dropout=0.0).eval()
    x = torch.randn(1, 8, 5, 7)
    pooled = head.image_pool(x)
    assert pooled.shape == (1, 256, 5, 7)
    assert torch.allclose(pooled, pooled[:, :, :1, :1].expand_as(pooled))
    shifted = x.clone()
    shifted[..., 0, 0] += 10  # a change anywhere moves the pooled branch everywhere
    assert not torch.allclose(head.image_pool(shifted)[..., 4, 6], pooled[..., 4, 6])


@pytest.mark.parametrize("size", [(513, 513), (65, 97), (31, 20)])
@pytest.mark.parametrize("name", ["voc_mnv2_os16", "voc_mnv2_os8_aspp"])
def test_logits_at_input_resolution(name: str, size) -> None:
    model = segkit.build_model(segkit.load_config(name, ["model.width_mult=0.35"])).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))
    assert list(out) == ["out"] and out["out"].shape == (1, 21, *size)


def test_aux_head_only_in_training() -> None:
    model = segkit.build_model(segkit.load_config("voc_mnv2_os16", ["model.aux_head=true", "model.num_classes=5"]))
    assert isinstance(model.aux_head, FCNHead) and model.aux_in == "layer_14"
    out = model.train()(torch.randn(2, 3, 64, 64))
    assert set(out) == {"out", "aux"} and out["aux"].shape == (2, 5, 64, 64)
    with torch.no_grad():
        assert set(model.eval()(torch.randn(1, 3, 64, 64))) == {"out"}


def test_align_corners_is_configurable() -> None:
    import torch.nn.functional as F

    # Training-mode BN (batch statistics) so that randomly initialised logits vary in space.
    common = ["model.width_mult=0.35", "model.dropout=0.0"]
    a = segkit.build_model(segkit.load_config("voc_mnv2_os16", common))
    b = segkit.build_model(segkit.load_config("voc_mnv2_os16", [*common, "model.align_corners=false"]))
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        low = a.head(a.backbone(x)["layer_18"])
        la, lb = a(x)["out"], b(x)["out"]
    assert torch.allclose(la, F.interpolate(low, size=(64, 64), mode="bilinear", align_corners=True), atol=1e-5)
    assert torch.allclose(lb, F.interpolate(low, size=(64, 64), mode="bilinear", align_corners=False), atol=1e-5)
    assert not torch.allclose(la, lb, atol=1e-4)


def test_segmentor_rejects_unknown_feature_names() -> None:
    backbone = MobileNetV2(final_conv=False, out_features=["layer_18"])
    with pytest.raises(
        ValueError, match=r"head_in='layer_19' is not a feature the backbone returns; it returns \['layer_18'\]"
    ):
        Segmentor(backbone, DeepLabV3Head(320, 21), head_in="layer_19")


def test_bn_settings_reach_backbone_and_head() -> None:
    model = segkit.build_model(segkit.load_config("voc_mnv2_os16"))
    backbone_bn = model.backbone.features[0][1]
    head_bn = model.head.project[1]
    assert (backbone_bn.eps, backbone_bn.momentum) == (1e-3, 0.003)
    assert (head_bn.eps, head_bn.momentum) == (1e-5, 0.0003)
