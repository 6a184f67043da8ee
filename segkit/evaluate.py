"""Evaluation: stream a data set through a prediction protocol into a confusion matrix.

``evaluate`` is what periodic validation during training, ``tools/test.py`` and the benchmarks call::

    metrics = evaluate(model, val_loader, 21, ignore_index=255, device="cuda")
    print(metrics.miou)

Predictions are never kept: each batch updates a confusion matrix on the device (all-reduced across
processes under ``torch.distributed``) and is optionally written to disk as a palette PNG and an overlay.
``load_eval_model`` builds a model from a segkit checkpoint (or a bare state dict plus a config) for the tools.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor, nn
from tqdm import tqdm

from segkit.checkpoint import CheckpointError, checkpoint_config, load_checkpoint, load_weights
from segkit.config import Config, ConfigError, apply_overrides, config_from_dict, load_config
from segkit.data.base import BAD_REASON
from segkit.data.classes import VOC_CLASSES, VOC_PALETTE
from segkit.inference import MF_SCALES, denormalize, predict
from segkit.metrics import ConfusionMatrix, SegMetrics
from segkit.utils.io import atomic_path
from segkit.viz import overlay, save_label_png

__all__ = [
    "EvalProtocol",
    "add_protocol_arguments",
    "error_message",
    "evaluate",
    "format_report_json",
    "load_eval_model",
    "protocol_dict",
    "protocol_overrides",
    "resolve_device",
    "safe_name",
]


class EvalProtocol(Protocol):
    """What :func:`evaluate` reads from a protocol: :class:`segkit.config.EvalConfig` satisfies it."""

    scales: list[float]
    flip: bool
    resize_longer: int | None
    pad_to: int | None


def protocol_dict(protocol: EvalProtocol | None) -> dict[str, Any]:
    """The protocol as plain JSON values (whole image, single scale when ``protocol`` is None)."""
    if protocol is None:
        return {"scales": [1.0], "flip": False, "resize_longer": None, "pad_to": None}
    return {
        "scales": [float(s) for s in protocol.scales],
        "flip": bool(protocol.flip),
        "resize_longer": protocol.resize_longer,
        "pad_to": protocol.pad_to,
    }


def safe_name(sample_id: Any) -> str:
    """A file name for a sample id (path separators replaced, so ids like ``a/b`` stay in one folder)."""
    name = str(sample_id).replace(os.sep, "_").replace("/", "_")
    return name if name not in ("", ".", "..") else f"_{name}"


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


def _save_prediction(
    out_dir: Path,
    sample_id: str,
    image: np.ndarray,
    pred: np.ndarray,
    mask: np.ndarray,
    palette: np.ndarray,
    class_names: Sequence[str],
    ignore_index: int,
) -> None:
    """``<id>.png`` (palette label map) and ``<id>_overlay.jpg`` (ground truth | prediction over the image)."""
    name = safe_name(sample_id)
    save_label_png(out_dir / f"{name}.png", pred, palette)
    panels = [overlay(image, label, palette, class_names, ignore_index=ignore_index) for label in (mask, pred)]
    try:
        font = ImageFont.load_default(size=14)  # scalable with FreeType (Pillow >= 10.1)
    except (TypeError, OSError):
        font = ImageFont.load_default()
    title_h, gap = 20, 8
    width = sum(p.width for p in panels) + gap
    canvas = Image.new("RGB", (width, title_h + max(p.height for p in panels)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    x = 0
    for title, panel in zip(("ground truth", "prediction"), panels):
        draw.text((x + 2, 2), title, fill=(0, 0, 0), font=font)
        canvas.paste(panel, (x, title_h))
        x += panel.width + gap
    with atomic_path(out_dir / f"{name}_overlay.jpg") as tmp:
        canvas.save(tmp, format="JPEG", quality=90)


_NUMBER_LIST = re.compile(r"\[\s*-?\d[\d.eE+-]*(?:\s*,\s*-?\d[\d.eE+-]*)*\s*\]")


def format_report_json(report: Mapping[str, Any]) -> str:
    """JSON text of a metrics report: indented, each list of numbers (a confusion row) on one line."""
    text = json.dumps(report, indent=2, allow_nan=False)

    def one_line(match: re.Match[str]) -> str:  # raw newlines occur only between JSON tokens, never in strings
        body = match.group(0)
        return "[" + ", ".join(v.strip() for v in body[1:-1].split(",")) + "]" if "\n" in body else body

    return _NUMBER_LIST.sub(one_line, text) + "\n"


def evaluate(
    model: nn.Module,
    loader: Iterable[Any],
    num_classes: int,
    *,
    ignore_index: int = 255,
    device: str | torch.device = "cpu",
    protocol: EvalProtocol | None = None,
    class_names: Sequence[str] | None = None,
    save_pred_dir: str | os.PathLike | None = None,
    palette: np.ndarray | Sequence[Sequence[int]] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    progress: bool = True,
) -> SegMetrics:
    """Predict every batch of ``loader`` and return the data set's metrics.

    The model is put in eval mode for the run and restored to its previous mode afterwards. Under
    ``torch.distributed`` each process evaluates its shard (give the loader a DistributedSampler) and
    the confusion matrices, image counts and bad-sample lists are combined; every rank returns the
    same metrics.

    Bad samples of a data set built with ``skip_bad_samples`` and ``skip_mode="drop"`` (see
    :func:`segkit.data.build_dataset`) are left out: they are not scored, not counted in
    ``num_images`` and listed in ``bad_samples`` (load them with ``collate_fn=collate_drop_bad``, or
    with batch size 1 and the default collate).

    Args:
        model: segmentation model returning ``{"out": logits}`` at its input size.
        loader: yields ``{"image": [N, 3, H, W] normalised, "mask": [N, H, W], "id": [str]}``.
        num_classes: number of classes of the ground truth.
        ignore_index: mask label excluded from the metrics.
        device: where the model runs and the confusion matrix lives.
        protocol: scales, flip, resize_longer and pad_to (e.g. ``cfg.eval``); None = whole image, one scale.
        class_names: for the overlays' legends (default: the data set's, else ``class <i>``).
        save_pred_dir: write ``<id>.png`` and ``<id>_overlay.jpg`` (ground truth | prediction) per image here.
        palette: class colours for saved predictions (default: the data set's, the model's, else VOC).
        mean: input normalisation mean (0..255) to recover the image for overlays (default: the model's
            ``segkit_config``, as set by ``load_model``); needed only with ``save_pred_dir``.
        std: input normalisation std, like ``mean``.
        progress: show a progress bar (rank 0 only).

    Returns:
        The metrics of the whole data set (``SegMetrics``), with ``num_images`` (the images scored) and
        ``bad_samples`` (``(id, reason)`` of the samples left out).
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}.")
    device = torch.device(device)
    proto = protocol_dict(protocol)
    dataset = getattr(loader, "dataset", None)
    out_dir: Path | None = None
    if save_pred_dir is not None:
        cfg = getattr(getattr(model, "module", model), "segkit_config", None)
        if mean is None or std is None:
            if cfg is None:
                raise ValueError(
                    "save_pred_dir needs the input normalisation to draw overlays: pass mean= and std= "
                    "(the config's model.input_mean / model.input_std), or a model from segkit.load_model."
                )
            mean, std = cfg.model.input_mean, cfg.model.input_std
        if palette is None:
            palette = getattr(dataset, "palette", None)
        if palette is None:
            palette = getattr(getattr(model, "module", model), "palette", None)
        if palette is None:
            palette = VOC_PALETTE
        palette = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
        if class_names is None:
            class_names = getattr(dataset, "class_names", None) or [f"class {i}" for i in range(num_classes)]
        out_dir = Path(save_pred_dir)
        out_dir.mkdir(parents=True, exist_ok=True)

    confusion = ConfusionMatrix(num_classes, ignore_index=ignore_index, device=device)
    num_images = 0
    bad: list[tuple[str, str]] = []  # (id, reason) of the samples left out
    was_training = model.training
    model.eval()
    total = len(loader) if hasattr(loader, "__len__") else None
    batches = iter(loader)
    try:
        bar = tqdm(batches, total=total, desc="eval", unit="batch", disable=not progress or _rank() != 0,
                   dynamic_ncols=True)
        for index, batch in enumerate(bar):
            skipped = _skipped(batch)
            bad += skipped
            if skipped and "mask" not in batch:  # every sample of the batch was bad
                continue
            images, masks, ids = _batch_parts(batch, index)
            num_images += len(masks)
            images = images.to(device, non_blocking=True).float()
            masks = masks.to(device, non_blocking=True).long()
            preds = predict(
                model,
                images,
                tuple(masks.shape[-2:]),
                scales=proto["scales"],
                flip=proto["flip"],
                resize_longer=proto["resize_longer"],
                pad_to=proto["pad_to"],
            )  # [N, H, W]
            confusion.update(preds, masks)
            if out_dir is not None:
                for image, pred, mask, sample_id in zip(images, preds, masks, ids):
                    _save_prediction(
                        out_dir, sample_id, denormalize(image, mean, std), pred.cpu().numpy().astype(np.uint8),
                        mask.cpu().numpy().astype(np.uint8), palette, class_names, ignore_index,
                    )
        bar.close()
    finally:
        model.train(was_training)
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


def _bare_state_dict(obj: Any, path: Path) -> dict[str, Tensor]:
    """The weights of a bare state dict file (``{name: tensor}``, possibly under 'state_dict'/'model')."""
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(torch.is_tensor(v) for v in obj.values()):
        raise CheckpointError(f"{path} holds neither a segkit checkpoint nor a state dict ({{name: tensor}}).")
    prefix = "module."  # saved from a DDP-wrapped model
    if all(k.startswith(prefix) for k in obj):
        obj = {k[len(prefix):]: v for k, v in obj.items()}
    return obj


def load_eval_model(
    checkpoint: str | os.PathLike,
    *,
    config: str | os.PathLike | None = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    device: str | torch.device = "cpu",
    fast: bool = False,
) -> tuple[nn.Module, Config]:
    """Build a model for evaluation or inference from a checkpoint.

    A segkit checkpoint carries its config, class names and palette; ``overrides`` (dotted keys, e.g.
    ``data.root=...``) are applied to that config. A bare state dict needs ``config`` (a name in
    ``configs/`` or a YAML path) to know the architecture.

    Args:
        checkpoint: path of a segkit checkpoint or a bare state dict.
        config: config for a bare state dict; must be None for a segkit checkpoint.
        overrides: ``["section.key=value", ...]`` or ``{"section.key": value}``.
        device: where to put the model.
        fast: run it through :func:`segkit.optimize_for_inference` (BN folded into the convs,
            channels_last): the same predictions, about twice as fast on a CPU.

    Returns:
        ``(model, cfg)``: the model in eval mode with attributes ``segkit_config``, ``class_names`` and
        ``palette`` (None when unknown), and the effective config.

    Raises:
        CheckpointError: missing or unreadable file, or weights that do not fit the architecture.
        ConfigError: a bad config name or override, or ``config`` given for a segkit checkpoint.
    """
    from segkit.models import build_model

    path = Path(checkpoint)
    if config is None:
        ckpt = load_checkpoint(path)
        cfg = checkpoint_config(ckpt)
        if overrides:
            try:
                cfg = config_from_dict(apply_overrides(ckpt["config"], overrides))
            except ConfigError as exc:
                raise ConfigError(f"Overriding the config stored in {path}: {exc}") from None
        if ckpt.get("kind", "segmentor") != "segmentor":
            raise CheckpointError(f"{path} holds a '{ckpt.get('kind')}' checkpoint, not a segmentation model.")
        class_names, palette = ckpt.get("class_names"), ckpt.get("palette")
    else:
        if not path.is_file():
            load_checkpoint(path)  # raises the standard 'not found' message
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated file, not a torch file, or pickled code
            raise CheckpointError(f"Cannot read {path} as a state dict: {type(exc).__name__}: {exc}") from exc
        if isinstance(obj, dict) and obj.get("format") == "segkit":
            raise ConfigError(
                f"{path} is a segkit checkpoint that carries its own config; drop --config "
                "(change data or eval settings with --set section.key=value)."
            )
        ckpt = {"model": _bare_state_dict(obj, path)}
        cfg = load_config(config, overrides or None)
        class_names = palette = None
        if cfg.model.num_classes == len(VOC_CLASSES):
            class_names = list(VOC_CLASSES)
    model = build_model(cfg)
    load_weights(model, ckpt, cfg)
    model = model.to(device).eval()
    if fast:
        from segkit.optimize import optimize_for_inference

        model = optimize_for_inference(model, inplace=True)
    model.segkit_config = cfg
    model.class_names = class_names
    model.palette = palette
    return model, cfg


# -- shared by tools/test.py and tools/infer.py ---------------------------------------------------------


def _scales_arg(text: str) -> list[float]:
    try:
        scales = [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        scales = []
    if not scales or any(not s > 0 for s in scales):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive factors such as 0.5,1,1.5, got '{text}'")
    return scales


def _pixels_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0 or 0 < value < 16:
        raise argparse.ArgumentTypeError(f"expected 0 (off) or a number of pixels >= 16, got '{text}'")
    return value


def add_protocol_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--ms-flip --scales --flip --resize-longer --pad-to`` (defaults: the checkpoint's ``eval``) and ``--fast``."""
    parser.add_argument("--fast", action="store_true",
                        help="segkit.optimize_for_inference: BN folded into the convs, channels_last; same "
                             "predictions, about 2x faster on CPU")
    group = parser.add_argument_group("prediction protocol (default: the checkpoint's eval section)")
    group.add_argument("--ms-flip", action="store_true",
                       help=f"the paper's MF: softmax averaged over scales {','.join(map(str, MF_SCALES))} "
                            "(or --scales) and their horizontal flips")
    group.add_argument("--scales", type=_scales_arg, metavar="S1,S2,...", help="input scales, e.g. 0.75,1,1.25")
    group.add_argument("--flip", action="store_true", help="add horizontal flips (implied by --ms-flip)")
    group.add_argument("--resize-longer", type=_pixels_arg, metavar="N",
                       help="resize the longer side to N pixels, keeping the aspect ratio (0: off)")
    group.add_argument("--pad-to", type=_pixels_arg, metavar="N",
                       help="pad bottom/right to at least NxN with the mean pixel (0: off)")


def protocol_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Config overrides (``eval.*``) from the arguments of :func:`add_protocol_arguments`."""
    overrides: dict[str, Any] = {}
    if args.ms_flip:
        overrides["eval.scales"] = list(MF_SCALES)
        overrides["eval.flip"] = True
    if args.scales is not None:
        overrides["eval.scales"] = args.scales
    if args.flip:
        overrides["eval.flip"] = True
    for value, key in ((args.resize_longer, "eval.resize_longer"), (args.pad_to, "eval.pad_to")):
        if value is not None:
            overrides[key] = value or None
    return overrides


def resolve_device(name: str) -> torch.device:
    """The torch device called ``name``; ConfigError when it is not one or is not available here."""
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"--device {name!r} is not a device ({exc}); use cpu, cuda or cuda:N.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine; use --device cpu.")
    return device


def error_message(exc: BaseException) -> str:
    """The message of a segkit error, without the traceback a DataLoader worker adds to it."""
    text = str(exc)
    if "Original Traceback" in text:  # re-raised from a worker: keep the original exception's message
        last = text.rstrip().splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return text
