"""Evaluation: stream a data set through a prediction protocol into a confusion matrix.

``evaluate`` is what periodic validation during training, ``segkit test`` and the benchmarks call::

    metrics = evaluate(model, val_loader, 21, ignore_index=255, device="cuda")
    print(metrics.miou)

Predictions are never kept: each batch updates a confusion matrix on the device (all-reduced across
processes under ``torch.distributed``) and is handed to an optional ``on_batch`` callback (e.g. a
:class:`segkit.evaluation.report.PredictionWriter`, which saves the predictions as pictures). ``model`` is any
callable returning ``{"out": logits}`` or logits (a segkit model, or a runtime's runner).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm import tqdm

from segkit.data.base import BAD_REASON
from segkit.evaluation.metrics import ConfusionMatrix, SegMetrics
from segkit.evaluation.pipeline import BackgroundWriter, host_threads, prefetch
from segkit.evaluation.predict import (
    MAX_PIXELS,
    base_extent,
    check_budget,
    labels_of_pass,
    labels_pass_applies,
    predict,
    prepare_labels_pass,
    resize_label,
    run_model_pass,
)

__all__ = ["EvalProtocol", "evaluate", "protocol_dict"]

OnBatch = Callable[[Tensor, Tensor, Tensor, Sequence[str]], None]  # (images, preds, masks, ids)


class EvalProtocol(Protocol):
    """What :func:`evaluate` reads from a protocol: :class:`segkit.config.EvalConfig` satisfies it."""

    scales: list[float]
    flip: bool
    resize_longer: int | None
    pad_to: int | None
    # optional: slide, [crop, stride] of the sliding window; antialias, bool (shrinking low-passed)


def protocol_dict(protocol: EvalProtocol | None) -> dict[str, Any]:
    """The protocol as plain JSON values (whole image, single scale when ``protocol`` is None);
    ``slide`` appears only when a sliding window is used, ``antialias`` only when on."""
    if protocol is None:
        return {"scales": [1.0], "flip": False, "resize_longer": None, "pad_to": None}
    out = {
        "scales": [float(s) for s in protocol.scales],
        "flip": bool(protocol.flip),
        "resize_longer": protocol.resize_longer,
        "pad_to": protocol.pad_to,
    }
    if getattr(protocol, "slide", None) is not None:
        out["slide"] = [int(v) for v in protocol.slide]
    if getattr(protocol, "antialias", False):
        out["antialias"] = True
    if getattr(protocol, "resize_range", None) is not None:  # ADE20K's min/max resize (segkit.evaluation.predict)
        out["resize_range"] = [int(v) for v in protocol.resize_range]
        if getattr(protocol, "resize_factor", None):
            out["resize_factor"] = int(protocol.resize_factor)
    return out


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _skipped(batch: Any) -> list[tuple[str, str]]:
    """``(id, reason)`` of the bad samples a ``skip_mode='drop'`` data set put in ``batch``.

    Such a sample arrives either through :func:`segkit.data.collate_drop_bad` (under ``"bad"``) or,
    with the default collate and batch size 1, as ``{"id": [id], "bad_reason": [reason]}``.
    """
    if not isinstance(batch, Mapping):
        return []
    if BAD_REASON in batch:
        ids, reasons = batch["id"], batch[BAD_REASON]
        ids, reasons = ([ids], [reasons]) if isinstance(ids, str) else (ids, reasons)
        return [(str(i), str(r)) for i, r in zip(ids, reasons)]
    return [(str(i), str(r)) for i, r in batch.get("bad", ())]


def _gather_bad(bad: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The bad samples of every process (rank order), or ``bad`` itself without a process group."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return bad
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, bad)
    return [item for part in parts for item in part]


def _batch_parts(batch: Any, index: int) -> tuple[Tensor, Tensor, list[str]]:
    """(images [N, 3, H, W], masks [N, H, W], ids) from a dict batch (or an (image, mask) pair)."""
    if isinstance(batch, Mapping):
        images, masks, ids = batch["image"], batch["mask"], batch.get("id")
    else:
        images, masks, ids = batch[0], batch[1], None
    if masks.ndim == 2:  # an unbatched sample
        images, masks = images[None], masks[None]
    if ids is None:
        ids = [f"{index:06d}_{i}" for i in range(len(masks))]
    elif isinstance(ids, str):
        ids = [ids]
    return images, masks, [str(i) for i in ids]


def _score(
    confusion: ConfusionMatrix, on_batch: OnBatch | None, images: Tensor, preds: Tensor, masks: Tensor, ids: list[str]
) -> None:
    confusion.update(preds, masks)
    if on_batch is not None:
        on_batch(images, preds, masks, ids)


def _score_labels(
    model: Any,
    confusion: ConfusionMatrix,
    on_batch: OnBatch | None,
    images: Tensor,
    model_pass: tuple[Any, Any, tuple[int, int]],
    masks: Tensor,
    ids: list[str],
    device: torch.device,
) -> None:
    """Score a runner's pass ``(output, input, extent)``: its labels (a logits file's argmax) at the protocol's
    extent, resized to the masks (nearest neighbour)."""
    masks = masks.to(device).long()
    with torch.inference_mode():
        label = labels_of_pass(model, *model_pass)
        preds = resize_label(label, tuple(masks.shape[-2:])).long()
    _score(confusion, on_batch, images.to(device).float(), preds, masks, ids)


def _labels_pass_stage(
    model: Any, proto: Mapping[str, Any], max_pixels: int | None, device: torch.device
) -> Callable[[Any], tuple[Any, tuple[int, int]] | None]:
    """The reader thread's work on a batch for a runner's labels pass: its images checked against the pixel budget,
    resized to the protocol's base extent and padded (:func:`segkit.evaluation.predict.prepare_labels_pass`); None for
    a batch without images (every sample bad)."""

    def stage(batch: Any) -> tuple[Any, tuple[int, int]] | None:
        if _skipped(batch) and "mask" not in batch:
            return None
        images = _batch_parts(batch, 0)[0].to(device).float()
        size = (int(images.shape[-2]), int(images.shape[-1]))
        budget = {k: proto.get(k) for k in ("resize_longer", "pad_to", "slide", "resize_range", "resize_factor")}
        check_budget(len(images), size, scales=(1.0,), max_pixels=max_pixels, **budget)
        base = base_extent(size, proto.get("resize_longer"), proto.get("resize_range"), proto.get("resize_factor"))
        return prepare_labels_pass(
            model, images, base, pad_to=proto.get("pad_to"), antialias=bool(proto.get("antialias", False))
        )

    return stage


def evaluate(
    model: nn.Module | Callable[[Tensor], Any],
    loader: Iterable[Any],
    num_classes: int,
    *,
    ignore_index: int = 255,
    device: str | torch.device = "cpu",
    protocol: EvalProtocol | None = None,
    progress: bool = True,
    on_batch: OnBatch | None = None,
    max_pixels: int | None = MAX_PIXELS,
) -> SegMetrics:
    """Predict every batch of ``loader`` and return the data set's metrics.

    A module is put in eval mode for the run and restored to its previous mode afterwards. Under
    ``torch.distributed`` each process evaluates its shard (give the loader a DistributedSampler) and
    the confusion matrices, image counts and bad-sample lists are combined; every rank returns the
    same metrics.

    Bad samples of a data set built with ``skip_bad_samples`` and ``skip_mode="drop"`` (see
    :func:`segkit.data.build_dataset`) are left out: they are not scored, not counted in
    ``num_images`` and listed in ``bad_samples`` (load them with ``collate_fn=collate_drop_bad``, or
    with batch size 1 and the default collate).

    Args:
        model: segmentation model (or any callable) returning ``{"out": logits}`` or logits at its input size.
        loader: yields ``{"image": [N, 3, H, W] normalised, "mask": [N, H, W], "id": [str]}``.
        num_classes: number of classes of the ground truth.
        ignore_index: mask label excluded from the metrics.
        device: where the inputs go and the confusion matrix lives.
        protocol: scales, flip, resize_longer, pad_to and slide (e.g. ``cfg.eval``); None = whole image, one scale.
        progress: show a progress bar (rank 0 only).
        on_batch: called as ``on_batch(images, preds, masks, ids)`` after each scored batch, e.g. a
            :class:`segkit.evaluation.report.PredictionWriter` writing ``<id>.png`` and ``<id>_overlay.jpg``.
        max_pixels: pixel budget of one forward pass (:data:`segkit.evaluation.predict.MAX_PIXELS`); None: no limit.

    Returns:
        The metrics of the whole data set (``SegMetrics``), with ``num_images`` (the images scored) and
        ``bad_samples`` (``(id, reason)`` of the samples left out).
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}.")
    device = torch.device(device)
    proto = protocol_dict(protocol)

    confusion = ConfusionMatrix(num_classes, ignore_index=ignore_index, device=device)
    num_images = 0
    bad: list[tuple[str, str]] = []  # (id, reason) of the samples left out
    was_training = getattr(model, "training", None)
    if isinstance(model, nn.Module):
        model.eval()
    total = len(loader) if hasattr(loader, "__len__") else None
    batches = iter(loader)
    # a runtime's runner under a one-view protocol: the next batch is resized and padded on a thread while the
    # runtime runs this one, and torch keeps one thread (segkit.evaluation.pipeline.host_threads)
    labels_pass = labels_pass_applies(model, proto.get("scales", (1.0,)), proto.get("flip", False), proto.get("slide"))
    stage = _labels_pass_stage(model, proto, max_pixels, device) if labels_pass else None
    try:
        bar = tqdm(total=total, desc="eval", unit="batch", disable=not progress or _rank() != 0, dynamic_ncols=True)
        fetched_batches = prefetch(stage or (lambda batch: None), batches, workers=1 if stage else 0, depth=2)
        # the scoring (confusion matrix, on_batch) of a runner's batch runs on a thread behind the runtime, in order
        scorer = BackgroundWriter(depth=2) if labels_pass else None
        with host_threads(model, active=labels_pass), scorer or contextlib.nullcontext():
            for index, (batch, fetched) in enumerate(fetched_batches):
                bar.update()
                skipped = _skipped(batch)
                bad += skipped
                if skipped and "mask" not in batch:  # every sample of the batch was bad
                    continue
                if fetched.error is not None:  # the staging raised (e.g. over the pixel budget): as predict() would
                    raise fetched.error
                images, masks, ids = _batch_parts(batch, index)
                num_images += len(masks)
                if scorer is not None:  # staged: labels out of the runtime; resized to the masks and scored behind
                    x, extent = fetched.value
                    with torch.inference_mode():
                        out = run_model_pass(model, x, max_pixels)  # the runtime's work alone
                    scorer.submit(
                        _score_labels, model, confusion, on_batch, images, (out, x, extent), masks, ids, device
                    )
                    continue
                images = images.to(device, non_blocking=True).float()
                masks = masks.to(device, non_blocking=True).long()
                preds = predict(model, images, tuple(masks.shape[-2:]), max_pixels=max_pixels, **proto)  # [N, H, W]
                _score(confusion, on_batch, images, preds, masks, ids)
        bar.close()
    finally:
        if isinstance(model, nn.Module):
            model.train(bool(was_training))
        # On an error, stop DataLoader workers now: left to the traceback's garbage collection, their
        # shutdown waits out a 5 s timeout.
        shutdown = getattr(batches, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
    count = torch.tensor(num_images, dtype=torch.int64, device=device)
    if dist.is_available() and dist.is_initialized():
        confusion.all_reduce()
        dist.all_reduce(count, op=dist.ReduceOp.SUM)
    metrics = confusion.compute()
    metrics.num_images = int(count.item())
    metrics.bad_samples = _gather_bad(bad)
    return metrics
