"""segkit's MobileNetV2 drives a torchvision detector: FPN sized from ``feature_info`` (the recipe in docs/models.md)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool

from segkit.models.backbones import MobileNetV2


class BackboneWithFPN(nn.Module):
    """segkit backbone -> torchvision FPN; channels come from ``feature_info``."""

    def __init__(self, backbone: MobileNetV2, out_channels: int = 64) -> None:
        super().__init__()
        self.body = backbone
        self.fpn = FeaturePyramidNetwork(
            [i.channels for i in backbone.feature_info], out_channels, extra_blocks=LastLevelMaxPool()
        )
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.fpn(self.body(x))


@pytest.mark.slow
def test_faster_rcnn_with_fpn_over_segkit_mobilenetv2() -> None:
    torch.manual_seed(0)
    backbone = MobileNetV2(
        width_mult=0.5,
        output_stride=32,
        final_conv=False,
        out_features=["layer_7", "layer_14", "layer_18"],
        frozen_stages=0,
    )
    names = [i.name for i in backbone.feature_info]
    model = FasterRCNN(
        BackboneWithFPN(backbone),
        num_classes=3,
        rpn_anchor_generator=AnchorGenerator(((16,), (32,), (64,), (128,)), ((0.5, 1.0, 2.0),) * 4),
        box_roi_pool=MultiScaleRoIAlign(names, output_size=7, sampling_ratio=2),
        min_size=128,
        max_size=160,
    )
    images = [torch.rand(3, 120, 150), torch.rand(3, 128, 128)]
    targets = [
        {"boxes": torch.tensor([[10.0, 20.0, 70.0, 90.0]]), "labels": torch.tensor([1])},
        {"boxes": torch.tensor([[30.0, 30.0, 100.0, 110.0], [5.0, 5.0, 40.0, 30.0]]), "labels": torch.tensor([2, 1])},
    ]
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    stem_before = backbone.features[0][0].weight.clone()
    deep_before = backbone.features[10].conv[0][0].weight.clone()
    losses = model(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    total = sum(losses.values())
    assert torch.isfinite(total)
    optimizer.zero_grad()
    total.backward()
    optimizer.step()
    assert not torch.equal(backbone.features[10].conv[0][0].weight, deep_before)  # the backbone is trained
    assert torch.equal(backbone.features[0][0].weight, stem_before)  # frozen_stages=0 keeps the stem

    model.eval()
    with torch.no_grad():
        detections = model([torch.rand(3, 100, 140)])
    assert len(detections) == 1 and set(detections[0]) == {"boxes", "labels", "scores"}
    assert detections[0]["boxes"].shape[1] == 4
