"""Training loss: cross-entropy at label size, ignore index, weighted auxiliary loss; the ``train.loss`` options
(segmentation-models-pytorch's Dice, Lovasz, focal; weighted sums) equal smp's own values and train a tiny model."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from segmentation_models_pytorch import losses as smp_losses

from segkit.config import ConfigError, load_config
from segkit.config.losses import LOSS_NAMES, parse_loss
from segkit.engine import train
from segkit.engine.losses import SegmentationLoss
from segkit.engine.runlog import read_jsonl
from segkit.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")


def _batch(seed: int = 0, classes: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    logits, target = torch.randn(2, classes, 6, 6), torch.randint(0, classes, (2, 6, 6))
    target[0, :2, :] = 255  # ignored pixels
    return logits, target


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


SMP = {
    "dice": lambda: smp_losses.DiceLoss("multiclass", ignore_index=255),
    "lovasz": lambda: smp_losses.LovaszLoss("multiclass", ignore_index=255),
    "focal": lambda: smp_losses.FocalLoss("multiclass", ignore_index=255),
}


@pytest.mark.parametrize("name", sorted(SMP))
def test_smp_losses_equal_smps_own(name: str) -> None:
    logits, target = _batch()
    total, parts = SegmentationLoss(loss=name, aux_weight=0.0)({"out": logits}, target)
    expected = SMP[name]()(logits, target)
    assert total.item() == pytest.approx(expected.item(), rel=1e-6) and parts["loss_out"] == total
    scrambled = logits.clone()
    scrambled[0, :, :2, :] = (
        torch.randn(logits.shape[1], 2, logits.shape[3]) * 10
    )  # the ignored pixels' logits do not count ...
    assert SegmentationLoss(loss=name)({"out": scrambled}, target)[0].item() == pytest.approx(total.item(), rel=1e-6)
    changed = target.clone()
    changed[0, :2, :] = 0
    assert SMP[name]()(logits, changed).item() != pytest.approx(total.item())  # ... count once they are labelled


def test_weighted_sum_and_its_parts() -> None:
    logits, target = _batch(1)
    aux = torch.randn_like(logits)
    total, parts = SegmentationLoss(loss="ce+0.5*dice", aux_weight=0.4)({"out": logits, "aux": aux}, target)
    ce = F.cross_entropy(logits, target, ignore_index=255)
    dice = SMP["dice"]()(logits, target)
    aux_expected = F.cross_entropy(aux, target, ignore_index=255) + 0.5 * SMP["dice"]()(aux, target)
    assert parts["loss_ce"].item() == pytest.approx(ce.item()) and parts["loss_dice"].item() == pytest.approx(
        dice.item()
    )
    assert parts["loss_out"].item() == pytest.approx(ce.item() + 0.5 * dice.item())
    assert parts["loss_aux"].item() == pytest.approx(aux_expected.item(), rel=1e-6)
    assert total.item() == pytest.approx(parts["loss_out"].item() + 0.4 * aux_expected.item(), rel=1e-6)


@pytest.mark.parametrize("loss", [*LOSS_NAMES, "ce+dice"])
def test_each_loss_trains_a_tiny_model(loss: str, synth_root, tiny_cfg) -> None:
    cfg = tiny_cfg(synth_root, **{"train.loss": loss, "model.aux_head": True})
    torch.manual_seed(0)
    model = build_model(cfg).train()
    criterion = SegmentationLoss(ignore_index=255, aux_weight=cfg.train.aux_weight, loss=cfg.train.loss)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    images = torch.randn(2, 3, 48, 48).clamp(-1, 1)
    images[:, :, :, 24:] += 2.0
    target = torch.zeros(2, 48, 48, dtype=torch.long)
    target[:, :, 24:] = 1  # a bright right half: learnable in a few steps
    target[:, :4] = 255
    values = []
    for _ in range(6):  # the same batch: the loss must fall
        optimizer.zero_grad()
        total, parts = criterion(model(images), target)
        total.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        optimizer.step()
        values.append(total.item())
    assert "loss_aux" in parts and values[-1] < values[0], values


def test_training_run_logs_the_terms_of_a_sum(synth_root, tiny_cfg, tmp_path) -> None:
    cfg = tiny_cfg(synth_root, iterations=1, **{"train.loss": "ce+0.5*lovasz"})
    train(cfg, work_dir=tmp_path / "run", progress=False)
    (record,) = [r for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "train"]
    assert {"loss", "loss_out", "loss_ce", "loss_lovasz"} <= set(record)
    assert record["loss_out"] == pytest.approx(record["loss_ce"] + 0.5 * record["loss_lovasz"], rel=1e-4)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("dise", "unknown loss 'dise'; did you mean 'dice'?"),
        ("ce+lovas", "did you mean 'lovasz'?"),
        ("ce+x*dice", "weight 'x' of dice is no number"),
        ("ce+0*dice", "weight 0 of dice must be > 0"),
        ("ce+ce", "ce appears twice"),
        ("", "empty"),
    ],
)
def test_bad_loss_is_one_line_with_the_closest_name(spec: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config("demo_mnv2_os16", [f"train.loss={spec}"])
    text = str(info.value)
    assert "\n" not in text and "train.loss: got" in text and message in text
    assert "allowed: a '+'-separated sum of [WEIGHT*]NAME terms, NAME one of ce, dice, lovasz, focal" in text


def test_parse_loss() -> None:
    assert parse_loss("ce") == [(1.0, "ce")]
    assert parse_loss(" CE + 0.5*Dice ") == [(1.0, "ce"), (0.5, "dice")]
    assert load_config("demo_mnv2_os16").train.loss == "ce"
