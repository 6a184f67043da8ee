"""segkit.models.fuse: BN folding and channels_last give the same predictions as eval mode."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from segkit.config import load_config
from segkit.models import build_model
from segkit.models.backbones.resnet import ResNet
from segkit.models.fuse import fold_batchnorm, optimize_for_inference


def _randomize_bn(model: nn.Module) -> nn.Module:
    """Non-trivial BN statistics and affine parameters, so folding is really exercised."""
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=gen) * 0.1)
    return model.eval()


def _num_bn(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


@pytest.mark.parametrize(
    "name, overrides",
    [
        ("voc_mnv2_os16", []),
        ("voc_mnv2_os8_aspp", ["model.tf_same_padding=true"]),
        ("voc_mnv1_os16_aspp", []),
    ],
)
def test_optimized_predictions_equal_eval(name, overrides):
    torch.manual_seed(0)
    model = _randomize_bn(build_model(load_config(name, overrides)))
    fast = optimize_for_inference(model)
    assert _num_bn(fast) == 0 and _num_bn(model) > 0  # BN gone; the original is untouched
    assert all(not p.requires_grad for p in fast.parameters())
    x = torch.randn(2, 3, 66, 71)
    with torch.inference_mode():
        ref, out = model(x)["out"], fast(x)["out"]
    assert out.shape == ref.shape == (2, 21, 66, 71)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    assert torch.equal(out.argmax(1), ref.argmax(1))


def test_fold_batchnorm_attribute_pairs_resnet():
    # Bottleneck's conv1/bn1 are attributes, not Sequential neighbours: found on the fx graph.
    model = _randomize_bn(
        ResNet((("block1", 4, 2, 2), ("block2", 8, 2, 1)), stem_channels=(8, 8, 16), multi_grid=(1, 2))
    )
    x = torch.randn(1, 3, 37, 37)
    with torch.no_grad():
        ref = model(x)["block2"]
        assert fold_batchnorm(model) == 3 + 4 * 3 + 1  # stem convs, 3 per unit, block2's projection shortcut
        torch.testing.assert_close(model(x)["block2"], ref, rtol=1e-4, atol=1e-5)
    assert _num_bn(model) == 0


class _Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())

    def forward(self, x):
        return self.body(x) if x.sum() > -1e9 else x  # data-dependent branch: fx cannot trace it


def test_fold_batchnorm_falls_back_to_sequentials():
    model = _randomize_bn(_Untraceable())
    x = torch.randn(1, 3, 9, 9)
    with torch.no_grad():
        ref = model(x)
        assert fold_batchnorm(model) == 1
        torch.testing.assert_close(model(x), ref, rtol=1e-5, atol=1e-5)


def test_fold_batchnorm_needs_eval_mode():
    with pytest.raises(ValueError, match="needs a model in eval mode"):
        fold_batchnorm(_Untraceable().train())


def test_optimize_inplace_and_options():
    model = _randomize_bn(build_model(load_config("voc_mnv2_os16")))
    same = optimize_for_inference(model, inplace=True, channels_last=False)
    assert same is model and _num_bn(model) == 0
    kept = optimize_for_inference(build_model(load_config("voc_mnv2_os16")).train(), fold_bn=False)
    assert _num_bn(kept) > 0 and not kept.training
    conv = kept.backbone.features[1].conv[0][0]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
