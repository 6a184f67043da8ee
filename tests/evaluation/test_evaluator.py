"""segkit.evaluation.evaluator.evaluate: the streaming loop, its protocol, dropped samples and ``on_batch`` writers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn

from segkit.config import EvalConfig
from segkit.evaluation.evaluator import evaluate
from segkit.evaluation.report import PredictionWriter

pytestmark = pytest.mark.usefixtures("one_thread")


class Oracle(nn.Module):
    """Reads the class off channel 0 of the image (label / 10): a perfect model for the batches below."""

    align_corners = False

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        label = (x[:, 0] * 10).round().long().clamp(0, self.num_classes - 1)
        return {"out": nn.functional.one_hot(label, self.num_classes).permute(0, 3, 1, 2).float()}


class RecordingOracle(Oracle):
    """The oracle, recording every input it is given."""

    def __init__(self, num_classes: int) -> None:
        super().__init__(num_classes)
        self.inputs: list[Tensor] = []

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        self.inputs.append(x.clone())
        return super().forward(x)


def oracle_batches(num_classes: int = 4) -> list[dict[str, Any]]:
    g = torch.Generator().manual_seed(0)
    batches = []
    for i, (h, w) in enumerate([(12, 20), (17, 9)]):
        mask = torch.randint(0, num_classes, (1, h, w), generator=g)
        image = torch.rand(1, 3, h, w, generator=g)
        image[:, 0] = mask / 10
        mask[0, 0, :] = 255
        batches.append({"image": image, "mask": mask, "id": [f"s{i}"]})
    return batches


def test_evaluate_perfect_model_streams_into_the_confusion_matrix_and_the_writer(tmp_path: Path) -> None:
    model = Oracle(4).train()
    batches = oracle_batches()
    writer = PredictionWriter(tmp_path, [0, 0, 0], [255, 255, 255], None, ["bg", "a", "b", "c"])
    metrics = evaluate(model, batches, 4, ignore_index=255, progress=False, on_batch=writer)
    assert metrics.miou == 1.0 and metrics.pixel_acc == 1.0 and metrics.mean_acc == 1.0
    gt = torch.cat([b["mask"].reshape(-1) for b in batches])
    assert np.array_equal(np.diag(metrics.confusion), np.bincount(gt[gt != 255].numpy(), minlength=4))
    assert model.training  # mode restored
    for b in batches:
        sid, mask = b["id"][0], b["mask"][0].numpy()
        png = Image.open(tmp_path / f"{sid}.png")
        pred = np.array(png)
        assert png.mode == "P" and np.array_equal(pred[mask != 255], mask[mask != 255])
        overlay = Image.open(tmp_path / f"{sid}_overlay.jpg")
        assert overlay.height >= mask.shape[0] and overlay.width > 2 * mask.shape[1]  # GT | prediction + legends


def test_evaluate_calls_on_batch_with_every_scored_batch() -> None:
    seen: list[tuple[tuple[int, ...], list[str]]] = []
    evaluate(
        Oracle(4), oracle_batches(), 4, progress=False, on_batch=lambda i, p, m, ids: seen.append((tuple(p.shape), ids))
    )
    assert seen == [((1, 12, 20), ["s0"]), ((1, 17, 9), ["s1"])]


def test_evaluate_protocol_and_distributed(tmp_path: Path) -> None:
    import torch.distributed as dist

    model = RecordingOracle(4)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        protocol = EvalConfig(scales=[1.0, 1.5], flip=True, resize_longer=32, pad_to=40)
        metrics = evaluate(model, oracle_batches(), 4, protocol=protocol, progress=True)
    finally:
        dist.destroy_process_group()
    assert metrics.pixel_acc > 0.5  # resampled, so not perfect; runs through all_reduce
    assert metrics.confusion.sum() == sum(int((b["mask"] != 255).sum()) for b in oracle_batches())
    assert metrics.num_images == 2 and metrics.bad_samples == []
    # Views per image: scale 1 and 1.5 of the longer side resized to 32, each also flipped, padded to >= 40.
    # 12x20 -> 19x32 (x1.5: 29x48); 17x9 -> 32x17 (x1.5: 48x26).
    shapes = [tuple(x.shape[-2:]) for x in model.inputs]
    assert shapes == [(40, 40), (40, 40), (40, 48), (40, 48), (40, 40), (40, 40), (48, 40), (48, 40)]
    for plain, flipped, (h, w) in ((0, 1, (19, 32)), (2, 3, (29, 48)), (4, 5, (32, 17)), (6, 7, (48, 26))):
        a, b = model.inputs[plain], model.inputs[flipped]
        assert torch.equal(b[..., :h, :w], a[..., :h, :w].flip(-1))  # the flip, padded on the right
        assert not a[..., h:, :].any() and not a[..., w:].any()  # padding: the mean pixel, 0 once normalised


def test_evaluate_leaves_dropped_samples_out() -> None:
    """Placeholders of a skip_mode='drop' data set are not scored and not counted, but reported."""
    good = oracle_batches()
    batches = [good[0], {"id": ["s9"], "bad_reason": ["Cannot read image s9.jpg"]},  # default collate, batch 1
               {**good[1], "bad": [("s7", "Mask s7.png is 3x4")]},  # collate_drop_bad: a mixed batch
               {"bad": [("s8", "missing")]}]  # collate_drop_bad: every sample bad  # fmt: skip
    metrics = evaluate(Oracle(4), batches, 4, progress=False)
    assert metrics.num_images == 2 and metrics.miou == 1.0
    assert metrics.bad_samples == [("s9", "Cannot read image s9.jpg"), ("s7", "Mask s7.png is 3x4"), ("s8", "missing")]
    assert metrics.confusion.sum() == sum(int((b["mask"] != 255).sum()) for b in good)


def test_evaluate_needs_two_classes() -> None:
    with pytest.raises(ValueError, match="num_classes must be >= 2"):
        evaluate(Oracle(4), oracle_batches(), 1, progress=False)
