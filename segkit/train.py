"""Training: config -> data -> model -> loss -> SGD/poly loop -> validation -> checkpoints.

The loop is a few visible functions (``build_training``, ``train_step``, ``validate``,
``train``), no hooks. One process on CPU/GPU, or many under ``torchrun`` (DDP, gloo on CPU,
NCCL on CUDA). Iteration-based, resumable exactly: checkpoints hold the model, optimiser,
scheduler, GradScaler, RNG states and the data position, and every training sample's
augmentation is seeded from its position in the run.
"""

from __future__ import annotations

import math
import os
import random
import signal
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from segkit.checkpoint import CheckpointError, describe_mismatch, load_checkpoint, load_weights, save_checkpoint
from segkit.config import Config, ConfigError
from segkit.data import build_dataset, build_eval_transform, build_train_transform
from segkit.distributed import DistInfo, all_reduce_mean, barrier, cleanup, init_distributed
from segkit.evaluate import evaluate
from segkit.losses import SegmentationLoss
from segkit.metrics import format_metrics_table
from segkit.models import build_model
from segkit.models.backbones import MobileNetV2, load_backbone_state
from segkit.optim import build_optimizer, build_scheduler
from segkit.runlog import RunLogger, plot_curves, read_jsonl
from segkit.utils.io import atomic_write_text

BN_MIN_BATCH = 12  # the official recipe: fine-tuning BN needs more than 12 images per step


class TrainingDiverged(RuntimeError):
    """The loss became NaN/Inf; no checkpoint was overwritten."""


# ----------------------------------------------------------------------------- data order


class TrainSampler(Sampler):
    """Endless, resumable sample order: a fresh permutation per epoch, sharded over ranks.

    Yields ``(index, seed)``; the seed fixes that sample's augmentation, so the stream depends
    only on (``seed``, position) and a run resumed at ``start`` repeats the uninterrupted one.
    """

    def __init__(self, num_samples: int, *, seed: int, rank: int = 0, world_size: int = 1, start: int = 0) -> None:
        self.num_samples = num_samples
        self.seed, self.rank, self.world_size, self.start = seed, rank, world_size, start
        self.per_rank = math.ceil(num_samples / world_size)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, offset = divmod(self.start, self.per_rank)
        while True:
            gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            order = torch.randperm(self.num_samples, generator=gen).tolist()
            order += order[: self.per_rank * self.world_size - self.num_samples]  # equal shards
            shard = order[self.rank :: self.world_size]
            for pos in range(offset, self.per_rank):
                global_pos = (epoch * self.per_rank + pos) * self.world_size + self.rank
                yield shard[pos], (self.seed * 1_000_003 + global_pos) % 2**31
            epoch, offset = epoch + 1, 0


class SeededSamples(Dataset):
    """Reads ``(index, seed)`` keys: seeds the data set's transform, then returns the sample."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        index, seed = key
        transform = getattr(self.dataset, "transform", None)
        if hasattr(transform, "reseed"):
            transform.reseed(seed)
        return self.dataset[index]


class ShardSampler(Sampler):
    """Evaluation order: every sample exactly once over all ranks (no padding, unlike DistributedSampler)."""

    def __init__(self, num_samples: int, rank: int = 0, world_size: int = 1) -> None:
        self.indices = list(range(rank, num_samples, world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


# ----------------------------------------------------------------------------- state


@dataclass
class Training:
    """Everything the loop touches."""

    cfg: Config
    work_dir: Path
    device: torch.device
    dist: DistInfo
    model: nn.Module  # possibly DDP-wrapped
    criterion: SegmentationLoss
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    train_set: Dataset
    val_set: Dataset
    iteration: int = 0
    best_miou: float = -1.0
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def net(self) -> nn.Module:
        """The model without its DDP wrapper."""
        return getattr(self.model, "module", self.model)

    @property
    def amp_dtype(self) -> torch.dtype | None:
        if self.device.type != "cuda" or self.cfg.train.amp == "none":
            return None
        return torch.bfloat16 if self.cfg.train.amp == "bf16" else torch.float16


def resolve_device(name: str | None) -> torch.device:
    """``cpu``, ``cuda`` (``cuda:N``) or None for CUDA when available."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was requested but no CUDA device is available; use --device cpu.")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device {name!r} is not supported; use cpu or cuda.")
    return device


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_tuplify(state["python"]))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuplify(value: Any) -> Any:
    return tuple(_tuplify(v) for v in value) if isinstance(value, (list, tuple)) else value


def load_initial_weights(model: nn.Module, path: str, log: Any = print) -> None:
    """Initialise from a segkit checkpoint (segmentor or classifier) or a torchvision MobileNetV2 file.

    Tensors whose name and shape match are loaded; the rest (e.g. a classifier for another
    number of classes) keep their initialisation. Loaded / missing / unexpected keys are reported.
    """
    if not Path(path).is_file():
        raise CheckpointError(f"train.init_weights file not found: {path}.")
    raw = torch.load(path, map_location="cpu", weights_only=True)
    is_segkit = isinstance(raw, dict) and raw.get("format") == "segkit"
    state = raw["model"] if is_segkit else raw.get("state_dict", raw.get("model", raw))
    if any(k.startswith("backbone.") for k in state):  # a segkit segmentor: load everything that fits
        own = model.state_dict()
        usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        if not any(k.startswith("backbone.") for k in usable):
            raise CheckpointError(f"{path} shares no backbone weights with this model ({describe_mismatch(model, state)}).")
        model.load_state_dict(usable, strict=False)
        missing, unexpected = sorted(set(own) - set(usable)), sorted(set(state) - set(usable))
        loaded = len(usable)
    else:  # ImageNet classifier: torchvision file or a converted segkit "classifier" checkpoint
        if not isinstance(model.backbone, MobileNetV2):
            raise CheckpointError(
                f"{path} is not a segkit segmentor checkpoint, so it is read as an ImageNet MobileNetV2 classifier, "
                f"but this model's backbone is {type(model.backbone).__name__}. ImageNet initialisation is supported "
                "for model.backbone=mobilenet_v2; for other backbones pass a segkit checkpoint of the same backbone.")
        missing, unexpected = load_backbone_state(model.backbone, state, strict=False, source=path)
        total = len(model.backbone.state_dict())
        loaded = total - len(missing)
        if loaded < total // 2:
            raise CheckpointError(
                f"{path}: only {loaded} of the backbone's {total} tensors fit (unexpected: {unexpected[:6]}); it is "
                "not a MobileNetV2 of this width. Check model.width_mult / model.round_nearest against the file.")
        missing = [f"backbone.{k}" for k in missing] + ["head.*, aux_head.* (not in an ImageNet file)"]
    log(f"init_weights {path}: loaded {loaded} tensors; missing {len(missing)}: {missing[:8]}"
        f"{' ...' if len(missing) > 8 else ''}; unexpected {len(unexpected)}: {unexpected[:8]}"
        f"{' ...' if len(unexpected) > 8 else ''}")


def convert_sync_bn(model: nn.Module, device_type: str, log: Any = print) -> nn.Module:
    """BatchNorm -> SyncBatchNorm (statistics over all processes). PyTorch supports it on CUDA only."""
    if device_type != "cuda":
        log("train.sync_bn: SyncBatchNorm runs on CUDA only; on CPU every process normalises its own batch.")
        return model
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def _ignore_sigint(worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C to the main process, which saves and stops the run cleanly."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _loader(dataset: Dataset, cfg: Config, *, sampler: Sampler, batch_size: int, device: torch.device,
            train: bool) -> DataLoader:
    workers = cfg.data.num_workers
    return DataLoader(
        SeededSamples(dataset) if train else dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        drop_last=train,
        persistent_workers=train and workers > 0,
        worker_init_fn=_ignore_sigint if workers > 0 else None,
        generator=torch.Generator().manual_seed(cfg.train.seed),  # keeps the global RNG untouched
    )


def build_training(cfg: Config, work_dir: Path, device: torch.device, dist_info: DistInfo,
                   log: Any = print, *, load_init_weights: bool = True) -> Training:
    """Data sets, model (+ initial weights, SyncBN, DDP), loss, optimiser, schedule.

    ``load_init_weights=False`` skips ``train.init_weights`` (a resumed run loads its checkpoint instead).
    """
    mean, std = cfg.model.input_mean, cfg.model.input_std
    # Rank 0 first: data sets that build a cache on first use (COCO masks, the synthetic set) are
    # written once, then the other ranks read them.
    if not dist_info.is_main:
        barrier()
    train_set = build_dataset(cfg.data, cfg.data.train_split, build_train_transform(cfg.data, mean, std),
                              num_classes=cfg.model.num_classes)
    # "drop": with data.skip_bad_samples a bad val sample is left out, never scored twice
    val_set = build_dataset(cfg.data, cfg.data.val_split, build_eval_transform(mean, std),
                            num_classes=cfg.model.num_classes, skip_mode="drop")
    if dist_info.is_main:
        barrier()
    if len(train_set) < cfg.train.batch_size:
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} is larger than the training set "
                          f"({len(train_set)} samples in '{cfg.data.train_split}'); lower it.")
    model = build_model(cfg)
    if cfg.train.init_weights and load_init_weights:
        load_initial_weights(model, cfg.train.init_weights, log)
    synced = cfg.train.sync_bn and device.type == "cuda"  # SyncBatchNorm exists on CUDA only
    bn_images = cfg.train.batch_size * (dist_info.world_size if synced else 1)
    if not cfg.model.norm_eval and bn_images < BN_MIN_BATCH:
        warnings.warn(
            f"BatchNorm is trained with {bn_images} images per step (< {BN_MIN_BATCH}); its statistics will be "
            "noisy. Raise train.batch_size (or use more GPUs with train.sync_bn), or set model.norm_eval=true "
            "to keep pretrained BN statistics fixed.", stacklevel=2)
    if dist_info.enabled and cfg.train.sync_bn:
        model = convert_sync_bn(model, device.type, log)
    model.to(device)
    if cfg.train.channels_last and device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    criterion = SegmentationLoss(ignore_index=cfg.data.ignore_index, aux_weight=cfg.train.aux_weight)
    optimizer = build_optimizer(model, cfg.train)
    scheduler = build_scheduler(optimizer, cfg.train)
    if dist_info.enabled:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[dist_info.local_rank] if device.type == "cuda" else None)
    if cfg.train.amp != "none" and device.type != "cuda":
        log(f"train.amp={cfg.train.amp} applies to CUDA only; training in float32 on {device}.")
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and cfg.train.amp == "fp16")
    return Training(cfg, work_dir, device, dist_info, model, criterion, optimizer, scheduler, scaler,
                    train_set, val_set)


# ----------------------------------------------------------------------------- checkpoints


def gather_rng_states() -> list[dict[str, Any]]:
    """Every process's RNG states, indexed by rank (a collective call under DDP)."""
    state = rng_state()
    if not (dist.is_available() and dist.is_initialized()):
        return [state]
    states: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(states, state)
    return states


def save_state(tr: Training, path: Path) -> None:
    """Write the full training state atomically (called on every rank; rank 0 writes)."""
    rng = gather_rng_states()
    if not tr.dist.is_main:
        return
    save_checkpoint(
        path, tr.net, tr.cfg,
        class_names=list(getattr(tr.train_set, "class_names", []) or []) or None,
        palette=np.asarray(tr.train_set.palette).tolist() if getattr(tr.train_set, "palette", None) is not None else None,
        optimizer=tr.optimizer.state_dict(),
        scheduler=tr.scheduler.state_dict(),
        scaler=tr.scaler.state_dict(),
        iteration=tr.iteration,
        best_miou=tr.best_miou,
        rng=rng,
        loader={"samples_per_rank": tr.iteration * tr.cfg.train.batch_size * tr.cfg.train.grad_accum,
                "world_size": tr.dist.world_size},
    )


def restore_state(tr: Training, path: Path, log: Any = print) -> None:
    """Continue from ``path``: weights, optimiser, scheduler, scaler, iteration, RNG, data position."""
    ckpt = load_checkpoint(path)
    if "optimizer" not in ckpt or "iteration" not in ckpt:
        raise CheckpointError(f"{path} holds weights only (no optimiser/iteration state), so it cannot be resumed; "
                              "use it as train.init_weights to start a new run from it.")
    load_weights(tr.net, ckpt, tr.cfg)
    tr.optimizer.load_state_dict(ckpt["optimizer"])
    tr.scheduler.load_state_dict(ckpt["scheduler"])
    if tr.scaler.is_enabled() and ckpt.get("scaler"):
        tr.scaler.load_state_dict(ckpt["scaler"])
    elif tr.scaler.is_enabled():
        log("The checkpoint was trained without fp16 loss scaling; the GradScaler starts afresh.")
    tr.iteration = int(ckpt["iteration"])
    tr.best_miou = float(ckpt.get("best_miou", -1.0))
    rng = ckpt["rng"] if isinstance(ckpt["rng"], list) else [ckpt["rng"]]
    if len(rng) != tr.dist.world_size:
        log(f"The checkpoint holds RNG states of {len(rng)} process(es), this run has {tr.dist.world_size}: "
            "random streams (dropout) differ from the original run from here on.")
    set_rng_state(rng[tr.dist.rank] if tr.dist.rank < len(rng) else rng[0])
    saved_world = ckpt.get("loader", {}).get("world_size", tr.dist.world_size)
    if saved_world != tr.dist.world_size:
        log(f"Resuming with {tr.dist.world_size} processes instead of {saved_world}: the sample order differs "
            "from the original run from here on.")
    log(f"Resumed from {path} at iteration {tr.iteration} (best mIoU so far {tr.best_miou:.4f}).")


# ----------------------------------------------------------------------------- loop


def train_step(tr: Training, batches: Iterator[dict[str, Any]]) -> dict[str, float]:
    """One optimiser step over ``grad_accum`` micro-batches; raises TrainingDiverged on NaN/Inf."""
    tr.model.train()
    tr.optimizer.zero_grad(set_to_none=True)
    accum = tr.cfg.train.grad_accum
    totals: dict[str, float] = {}
    for micro in range(accum):
        batch = next(batches)
        images = batch["image"].to(tr.device, non_blocking=True)
        masks = batch["mask"].to(tr.device, non_blocking=True)
        if tr.cfg.train.channels_last and tr.device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        sync = micro == accum - 1 or not tr.dist.enabled
        ctx = tr.model.no_sync() if not sync else _null()
        with ctx, torch.autocast(tr.device.type, dtype=tr.amp_dtype or torch.float32, enabled=tr.amp_dtype is not None):
            outputs = tr.model(images)
            loss, parts = tr.criterion(outputs, masks)
        tr.scaler.scale(loss / accum).backward()
        for key, value in {"loss": loss, **parts}.items():
            totals[key] = totals.get(key, 0.0) + value.detach() / accum
    problem = None
    if not all(torch.isfinite(v) for v in totals.values()):
        problem = f"loss is {float(totals['loss'])}"
    elif not tr.scaler.is_enabled() and not _gradients_finite(tr.model):  # fp16's GradScaler skips such steps
        problem = "gradients are not finite"
    healthy = torch.tensor([float(problem is None)], device=tr.device)
    if all_reduce_mean(healthy).item() != 1.0:
        raise TrainingDiverged(f"{problem or 'another process diverged'} at iteration {tr.iteration + 1}")
    tr.scaler.step(tr.optimizer)
    tr.scaler.update()
    tr.scheduler.step()
    tr.iteration += 1
    return {k: float(all_reduce_mean(v)) for k, v in totals.items()}


def _gradients_finite(model: nn.Module) -> bool:
    grads = [p.grad.abs().max() for p in model.parameters() if p.grad is not None]
    return not grads or bool(torch.isfinite(torch.stack(grads)).all())


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def validate(tr: Training, logger: RunLogger, log: Any = print) -> float:
    """Evaluate on the validation split (sharded over ranks), log the table, return mIoU.

    Under DDP every rank first takes rank 0's buffers (BN running statistics drift apart when BN is
    not synchronised), so the mIoU is that of the weights rank 0 saves.
    """
    if tr.dist.enabled:
        for buffer in tr.net.buffers():
            dist.broadcast(buffer, 0)
    loader = _loader(tr.val_set, tr.cfg, sampler=ShardSampler(len(tr.val_set), tr.dist.rank, tr.dist.world_size),
                     batch_size=1, device=tr.device, train=False)
    metrics = evaluate(tr.net, loader, tr.cfg.model.num_classes, ignore_index=tr.cfg.data.ignore_index,
                       device=tr.device, protocol=tr.cfg.eval, progress=False)
    names = list(tr.val_set.class_names)
    if tr.dist.is_main:
        log(f"Validation at iteration {tr.iteration}:\n{format_metrics_table(metrics, names)}")
        if metrics.bad_samples:
            log(tr.val_set.bad_samples_report(metrics.bad_samples))
        per_class = {n: (None if math.isnan(v) else float(v)) for n, v in zip(names, metrics.per_class_iou)}
        logger.log("val", tr.iteration, {"miou": float(metrics.miou), "pixel_acc": float(metrics.pixel_acc),
                                         "mean_acc": float(metrics.mean_acc), "per_class_iou": per_class})
        _log_prediction_images(tr, logger)
    return float(metrics.miou)


def _log_prediction_images(tr: Training, logger: RunLogger, count: int = 3) -> None:
    """A few validation images as image | ground truth | prediction strips in TensorBoard."""
    from segkit.inference import denormalize, predict
    from segkit.viz import colorize

    palette = np.asarray(tr.val_set.palette)
    net = tr.net.eval()
    for i in range(min(count, len(tr.val_set))):
        sample = tr.val_set[i]
        image = sample["image"].unsqueeze(0).to(tr.device)
        pred = predict(net, image, tuple(sample["mask"].shape)).squeeze(0).cpu().numpy()
        rgb = denormalize(sample["image"], tr.cfg.model.input_mean, tr.cfg.model.input_std)
        strip = np.concatenate([rgb, colorize(sample["mask"].numpy(), palette), colorize(pred, palette)], axis=1)
        logger.image(f"val/prediction_{i}", tr.iteration, strip)


class StopFlag:
    """SIGINT/SIGTERM: finish the current step, save, and exit."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:  # second signal: give up immediately
            raise KeyboardInterrupt
        self.signum = signum


def train(
    cfg: Config,
    *,
    work_dir: str | os.PathLike | None = None,
    resume: str | os.PathLike | bool | None = None,
    device: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``cfg``; write the config, logs, checkpoints and plots to ``work_dir``.

    Args:
        cfg: validated config (``segkit.load_config``).
        work_dir: output folder, default ``work_dirs/<cfg.name>``.
        resume: a checkpoint to continue from, or True for ``work_dir/latest.pth``.
        device: ``cpu``, ``cuda`` or None (CUDA when available).
        progress: show a tqdm bar (main process only).

    Returns:
        ``{"iteration", "best_miou", "last_miou", "work_dir", "stopped_by_signal"}``.
    """
    device = resolve_device(device)
    dist_info = init_distributed(device.type)
    if device.type == "cuda":
        device = torch.device("cuda", dist_info.local_rank if dist_info.enabled else (device.index or 0))
    work_dir = Path(work_dir or Path("work_dirs") / cfg.name)
    log = (lambda msg: tqdm.write(str(msg))) if dist_info.is_main else (lambda msg: None)
    seed_everything(cfg.train.seed + dist_info.rank, cfg.train.deterministic)
    tr = build_training(cfg, work_dir, device, dist_info, log, load_init_weights=not resume)
    if dist_info.is_main:  # after the data and model were built: a config error leaves no work dir behind
        work_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(work_dir / "config.yaml", cfg.to_yaml())
    if resume:
        restore_state(tr, work_dir / "latest.pth" if resume is True else Path(resume), log)
    logger = RunLogger(work_dir, enabled=dist_info.is_main, resume_from=tr.iteration if resume else None)
    t = cfg.train
    logger.log("setup", tr.iteration, {
        "world_size": dist_info.world_size, "device": str(device), "train_samples": len(tr.train_set),
        "val_samples": len(tr.val_set), "params": sum(p.numel() for p in tr.net.parameters() if p.requires_grad),
        "sync_bn_layers": sum(isinstance(m, nn.SyncBatchNorm) for m in tr.net.modules()),
        "amp": str(tr.amp_dtype).replace("torch.", "") if tr.amp_dtype else "none"})
    sampler = TrainSampler(len(tr.train_set), seed=t.seed, rank=dist_info.rank, world_size=dist_info.world_size,
                           start=tr.iteration * t.batch_size * t.grad_accum)
    batches = iter(_loader(tr.train_set, cfg, sampler=sampler, batch_size=t.batch_size, device=device, train=True))
    stop = StopFlag()
    stop.install()
    last_miou, status = float("nan"), "finished"
    bar = tqdm(total=t.iterations, initial=tr.iteration, desc=cfg.name, unit="it", dynamic_ncols=True,
               disable=not (progress and dist_info.is_main))
    images_per_step = t.batch_size * t.grad_accum * dist_info.world_size
    try:
        while tr.iteration < t.iterations:
            start = time.perf_counter()
            try:
                values = train_step(tr, batches)
            except TrainingDiverged as exc:
                last_good = work_dir / "latest.pth"
                raise TrainingDiverged(
                    f"Training diverged: {exc} (LR {_base_lr(tr):.3g}). Weights were not "
                    f"updated with it and no checkpoint was overwritten; last good checkpoint: "
                    f"{last_good if last_good.exists() else 'none yet'}. Lower train.lr, add train.warmup_iters, "
                    f"or check the data."
                ) from None
            speed = images_per_step / max(time.perf_counter() - start, 1e-9)
            lr = _base_lr(tr)
            bar.update(1)
            bar.set_postfix(loss=f"{values['loss']:.3f}", lr=f"{lr:.2e}", img_s=f"{speed:.1f}")
            if tr.iteration % t.log_interval == 0 or tr.iteration == 1:
                logger.log("train", tr.iteration, {**values, "lr": lr, "images_per_s": speed})
            is_last = tr.iteration == t.iterations
            if tr.iteration % t.val_interval == 0 or is_last:
                last_miou = validate(tr, logger, log)
                if last_miou > tr.best_miou:
                    tr.best_miou = last_miou
                    save_state(tr, work_dir / "best.pth")
            if tr.iteration % t.ckpt_interval == 0 or is_last:
                save_state(tr, work_dir / "latest.pth")
            requested = torch.tensor([float(stop.signum is not None)], device=device)
            if all_reduce_mean(requested).item() > 0:
                save_state(tr, work_dir / "latest.pth")
                status = "stopped"
                launcher = (f"torchrun --nproc_per_node {dist_info.world_size}" if dist_info.enabled else "python")
                log(f"Stopped by signal at iteration {tr.iteration}; saved {work_dir / 'latest.pth'}. Resume with:\n"
                    f"  {launcher} tools/train.py --config {work_dir / 'config.yaml'} --work-dir {work_dir} --resume")
                break
        barrier()
    finally:
        bar.close()
        stop.restore()
        logger.close()
        if dist_info.is_main and logger.jsonl_path.exists():
            plot_curves(read_jsonl(logger.jsonl_path), work_dir / "curves.png")
        cleanup()
    skipped = tr.train_set.bad_samples_report()
    if skipped:
        log(f"Training skipped bad samples (seen by the main process; DataLoader workers warn as they go):\n{skipped}")
    result = {"iteration": tr.iteration, "best_miou": tr.best_miou, "last_miou": last_miou,
              "work_dir": str(work_dir), "stopped_by_signal": stop.signum}
    if status == "finished":
        log(f"Done: {tr.iteration} iterations, best val mIoU {tr.best_miou:.4f}. Checkpoints, logs and curves.png "
            f"in {work_dir}.")
    return result


def _base_lr(tr: Training) -> float:
    """The current base learning rate (the param groups carry multiples of it)."""
    group = tr.optimizer.param_groups[0]
    return group["lr"] / group.get("lr_mult", 1.0)


def exit_code(result: dict[str, Any]) -> int:
    """128 + signal number for a run stopped by a signal, else 0."""
    return 128 + int(result["stopped_by_signal"]) if result.get("stopped_by_signal") else 0


__all__ = ["TrainSampler", "Training", "TrainingDiverged", "build_training", "exit_code", "train", "train_step",
           "validate"]

if __name__ == "__main__":  # pragma: no cover - use tools/train.py
    sys.exit("Run training with: python tools/train.py --config NAME")
