"""Training loss: cross-entropy at label size, ignore index, weighted auxiliary loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from segkit.engine.losses import SegmentationLoss


def test_aux_loss_is_added_with_its_weight() -> None:
    torch.manual_seed(0)
    out, aux = torch.randn(2, 4, 5, 5), torch.randn(2, 4, 5, 5)
    target = torch.randint(0, 4, (2, 5, 5))
    target[0, 0, :] = 255
    total, parts = SegmentationLoss(aux_weight=0.4)({"out": out, "aux": aux}, target)
    expected_out = F.cross_entropy(out, target, ignore_index=255)
    expected_aux = F.cross_entropy(aux, target, ignore_index=255)
    assert parts["loss_out"] == pytest.approx(expected_out.item())
    assert parts["loss_aux"] == pytest.approx(expected_aux.item())
    assert total.item() == pytest.approx(expected_out.item() + 0.4 * expected_aux.item())
    only_out, parts = SegmentationLoss(aux_weight=0.4)({"out": out}, target)
    assert set(parts) == {"loss_out"} and only_out.item() == pytest.approx(expected_out.item())


def test_ignored_pixels_do_not_count() -> None:
    out = torch.randn(1, 3, 2, 2)
    target = torch.tensor([[[0, 1], [255, 255]]])
    total, _ = SegmentationLoss()({"out": out}, target)
    assert total.item() == pytest.approx(F.cross_entropy(out[..., 0, :].reshape(1, 3, 1, 2), target[:, :1]).item())
