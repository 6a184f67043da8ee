"""Training: config -> data -> model -> loss -> SGD/poly loop -> validation -> checkpoints.

The loop is four visible functions, read top to bottom: ``build_training`` (data sets, model,
optimiser), ``train_step`` (one optimiser step), ``validate`` and ``train``, whose ``_run`` is the
loop itself (a step, then logging, validation and checkpoints when due; named helpers below it).
One process on CPU/GPU, or many under ``torchrun`` (DDP, gloo on CPU, NCCL on CUDA).
Iteration-based and resumable exactly (see :mod:`segkit.engine.state`). ``train_step`` never waits
for the device: the step's losses stay on it, a non-finite step is skipped on it, and ``train``
reads both once per logging interval, before every validation and checkpoint.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from segkit.config import Config, ConfigError
from segkit.data import build_dataset, build_eval_transform, build_train_transform
from segkit.data.samplers import ShardSampler, TrainSampler
from segkit.engine.images import log_prediction_images
from segkit.engine.losses import SegmentationLoss
from segkit.engine.optim import build_optimizer, build_scheduler
from segkit.engine.runlog import RunLogger, plot_curves, read_jsonl
from segkit.engine.setup import (
    absolute_data_root,
    check_batch_norm,
    convert_sync_bn,
    load_initial_weights,
    make_loader,
    prepare_qat,
    stop_workers,
)
from segkit.engine.signals import StopFlag
from segkit.engine.state import (
    Training,
    check_resume_config,
    format_miou,
    last_good_checkpoint,
    restore_state,
    save_run_checkpoint,
    seed_everything,
)
from segkit.engine.workdir import WorkDirError, open_work_dir
from segkit.errors import SegkitError
from segkit.evaluation.evaluator import evaluate
from segkit.evaluation.metrics import format_metrics_table
from segkit.models import build_model, count_parameters
from segkit.models.build import init_exclude
from segkit.models.qat import apply_schedule
from segkit.utils.device import resolve_device
from segkit.utils.distributed import (
    DistInfo,
    all_reduce_max_,
    all_reduce_mean,
    barrier,
    broadcast_object,
    cleanup,
    host_max,
    init_distributed,
)
from segkit.utils.io import atomic_write_text


class TrainingDiverged(SegkitError, RuntimeError):
    """The loss or the gradients became NaN/Inf; the weights were not updated with that step."""

    exit_code = 1  # the run failed; its message says which setting to change


def build_training(
    cfg: Config,
    work_dir: Path,
    device: torch.device,
    dist_info: DistInfo,
    log: Any = print,
    *,
    load_init_weights: bool = True,
) -> Training:
    """Data sets, model (+ initial weights, SyncBN, DDP), loss, optimiser, schedule.

    ``load_init_weights=False`` skips ``train.init_weights`` (a resumed run loads its checkpoint instead).
    """
    check_batch_norm(cfg, device, dist_info)
    mean, std = cfg.model.input_mean, cfg.model.input_std
    # Rank 0 first: data sets that build a cache on first use (COCO masks, the synthetic set) are
    # written once, then the other ranks read them.
    if not dist_info.is_main:
        barrier()
    train_set = build_dataset(
        cfg.data, cfg.data.train_split, build_train_transform(cfg.data, mean, std), num_classes=cfg.model.num_classes
    )
    # "drop": with data.skip_bad_samples a bad val sample is left out, never scored twice
    val_set = build_dataset(
        cfg.data,
        cfg.data.val_split,
        build_eval_transform(mean, std),
        num_classes=cfg.model.num_classes,
        skip_mode="drop",
    )
    if dist_info.is_main:
        barrier()
    if len(train_set) < cfg.train.batch_size:
        raise ConfigError(
            f"train.batch_size={cfg.train.batch_size} is larger than the training set "
            f"({len(train_set)} samples in '{cfg.data.train_split}'); lower it."
        )
    model = build_model(cfg)
    if cfg.train.init_weights and load_init_weights:
        load_initial_weights(model, cfg.train.init_weights, log, exclude=init_exclude(cfg))
    model = prepare_qat(model, cfg, device, dist_info, log)  # train.qat: a fake-quantized QatModel
    if dist_info.enabled and cfg.train.sync_bn and not cfg.train.qat:
        model = convert_sync_bn(model, device.type, log)
    model.to(device)
    if cfg.train.channels_last and device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    criterion = SegmentationLoss(
        ignore_index=cfg.data.ignore_index, aux_weight=cfg.train.aux_weight, loss=cfg.train.loss
    )
    # fused: skips a non-finite step on the device; QAT: the float model's modules own the graph's parameters
    optimizer = build_optimizer(getattr(model, "float_model", model), cfg.train, fused=True)
    scheduler = build_scheduler(optimizer, cfg.train)
    if dist_info.enabled:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[dist_info.local_rank] if device.type == "cuda" else None
        )
    if cfg.train.amp != "none" and device.type != "cuda":
        log(f"train.amp={cfg.train.amp} applies to CUDA only; training in float32 on {device}.")
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and cfg.train.amp == "fp16")
    health = {k: torch.zeros((), device=device) for k in ("code", "own", "iteration", "loss")}
    return Training(
        cfg,
        work_dir,
        device,
        dist_info,
        model,
        criterion,
        optimizer,
        scheduler,
        scaler,
        train_set,
        val_set,
        health=health,
    )


def train_step(tr: Training, batches: Iterator[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """One optimiser step over ``grad_accum`` micro-batches, without a host synchronisation.

    Returns the step's losses (micro-batch means) as 0-dim tensors on the device. A step whose loss or
    gradients are not finite on any rank leaves the weights unchanged: the fused optimiser gets
    ``found_inf`` and skips it on the device, as it does every later step until :func:`check_finite`
    (called by ``train``) raises TrainingDiverged. With fp16 the GradScaler skips such steps itself.
    """
    apply_schedule(tr.model, tr.iteration)  # QAT: freeze BN / observers from their iterations on
    tr.model.train()
    tr.optimizer.zero_grad(set_to_none=True)
    totals = _forward_backward(tr, batches)
    skip = _record_health(tr, totals)
    _optimizer_step(tr, skip)
    tr.scheduler.step()
    tr.iteration += 1
    return totals


def _forward_backward(tr: Training, batches: Iterator[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Accumulate the gradients of ``grad_accum`` micro-batches; returns their mean losses (on the device)."""
    accum = tr.cfg.train.grad_accum
    totals: dict[str, torch.Tensor] = {}
    for micro in range(accum):
        images, masks = _next_batch(tr, batches)
        sync = micro == accum - 1 or not tr.dist.enabled  # DDP all-reduces gradients on the last micro-batch
        with (
            nullcontext() if sync else tr.model.no_sync(),
            torch.autocast(tr.device.type, dtype=tr.amp_dtype or torch.float32, enabled=tr.amp_dtype is not None),
        ):
            outputs = tr.model(images)
            loss, parts = tr.criterion(outputs, masks)
        tr.scaler.scale(loss / accum).backward()
        for key, value in {"loss": loss, **parts}.items():
            totals[key] = totals.get(key, 0.0) + value.detach().float() / accum
    return totals


def _next_batch(tr: Training, batches: Iterator[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    """The next (images, masks) on the device (images channels-last when configured on CUDA)."""
    batch = next(batches)
    images = batch["image"].to(tr.device, non_blocking=True)
    masks = batch["mask"].to(tr.device, non_blocking=True)
    if tr.cfg.train.channels_last and tr.device.type == "cuda":
        images = images.contiguous(memory_format=torch.channels_last)
    return images, masks


def _optimizer_step(tr: Training, skip: torch.Tensor) -> None:
    """Step the optimiser unless ``skip`` (1.0, on the device) says a step was not finite; update the scaler."""
    if tr.scaler.is_enabled():
        tr.scaler.step(tr.optimizer)
    elif tr.optimizer._step_supports_amp_scaling:
        tr.optimizer.grad_scale, tr.optimizer.found_inf = None, skip
        tr.optimizer.step()
        del tr.optimizer.grad_scale, tr.optimizer.found_inf
    elif not skip.item():  # an optimiser without fused kernels: one synchronisation
        tr.optimizer.step()
    tr.scaler.update()


def _record_health(tr: Training, totals: dict[str, torch.Tensor]) -> torch.Tensor:
    """Update ``tr.health`` on the device; returns 1.0 (skip) once any step so far was not finite."""
    h = tr.health
    finite_loss = torch.isfinite(torch.stack(list(totals.values()))).all()
    own = torch.where(finite_loss, 0.0, 1.0)
    grads = [p.grad for p in tr.net.parameters() if p.grad is not None]
    if grads and not tr.scaler.is_enabled():
        finite_grads = torch.isfinite(torch.stack(torch._foreach_norm(grads, math.inf))).all()
        own = torch.where((own == 0) & ~finite_grads, 2.0, own)
    code = all_reduce_max_(own.clone())  # any rank diverged: every rank skips
    new = (h["code"] == 0) & (code != 0)
    h["iteration"] = torch.where(new, float(tr.iteration + 1), h["iteration"])
    h["loss"] = torch.where(new, totals["loss"], h["loss"])
    h["own"] = torch.where(new, own, h["own"])
    h["code"] = torch.where(h["code"] == 0, code, h["code"])
    return (h["code"] != 0).float()


def check_finite(tr: Training) -> None:
    """Raise TrainingDiverged when a step since the start was not finite (one host synchronisation)."""
    code, own, iteration, loss = torch.stack([tr.health[k] for k in ("code", "own", "iteration", "loss")]).tolist()
    if code:
        problem = {1: f"loss is {loss}", 2: "gradients are not finite"}.get(int(own), "another process diverged")
        exc = TrainingDiverged(f"{problem} at iteration {int(iteration)}")
        exc.iteration = int(iteration)
        raise exc


def validate(tr: Training, logger: RunLogger, log: Any = print, *, progress: bool = True) -> float:
    """Evaluate on the validation split (sharded over ranks), log the table and the time taken, return mIoU.

    ``progress``: a ``validation`` bar on rank 0 (removed when done; the training bar stays). Under DDP every rank
    first takes rank 0's buffers (BN running statistics drift apart when BN is not synchronised), so the mIoU is that
    of the weights rank 0 saves.
    """
    start = time.perf_counter()
    if tr.dist.enabled:
        for buffer in tr.net.buffers():
            dist.broadcast(buffer, 0)
    loader = make_loader(
        tr.val_set,
        tr.cfg,
        sampler=ShardSampler(len(tr.val_set), tr.dist.rank, tr.dist.world_size),
        batch_size=1,
        device=tr.device,
        train=False,
    )
    bar = tqdm(
        total=len(loader),
        desc="validation",
        unit="img",
        leave=False,
        dynamic_ncols=True,
        disable=not (progress and tr.dist.is_main),
    )
    with bar:
        metrics = evaluate(
            tr.net,
            _CountedBatches(loader, bar),
            tr.cfg.model.num_classes,
            ignore_index=tr.cfg.data.ignore_index,
            device=tr.device,
            protocol=tr.cfg.eval,
            progress=False,
        )
    names = list(tr.val_set.class_names)
    if tr.dist.is_main:
        took = time.perf_counter() - start
        log(
            f"Validation at iteration {tr.iteration} ({metrics.num_images} images in {took:.1f} s):\n"
            f"{format_metrics_table(metrics, names)}"
        )
        if metrics.bad_samples:
            log(tr.val_set.bad_samples_report(metrics.bad_samples))
        per_class = {n: (None if math.isnan(v) else float(v)) for n, v in zip(names, metrics.per_class_iou)}
        logger.log(
            "val",
            tr.iteration,
            {
                "miou": float(metrics.miou),
                "pixel_acc": float(metrics.pixel_acc),
                "mean_acc": float(metrics.mean_acc),
                "per_class_iou": per_class,
            },
        )
        log_prediction_images(tr.net, tr.val_set, tr.cfg, logger, tr.iteration, device=tr.device)
    return float(metrics.miou)


class _CountedBatches:
    """``loader`` advancing ``bar`` by one per batch done; stops its DataLoader workers like the loader's iterator."""

    def __init__(self, loader: Any, bar: tqdm) -> None:
        self.loader, self.bar, self.batches, self.fetched = loader, bar, None, 0

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> _CountedBatches:
        self.batches, self.fetched = iter(self.loader), 0
        return self

    def __next__(self) -> Any:
        if self.fetched:  # the batch before this one has been scored
            self.bar.update(1)
        try:
            batch = next(self.batches)
        except StopIteration:
            self.fetched = 0
            raise
        self.fetched += 1
        return batch

    def _shutdown_workers(self) -> None:
        shutdown = getattr(self.batches, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()


def train(
    cfg: Config,
    *,
    work_dir: str | os.PathLike | None = None,
    resume: str | os.PathLike | bool | None = None,
    device: str | None = None,
    progress: bool = True,
    overwrite: bool = False,
    reschedule: bool = False,
) -> dict[str, Any]:
    """Train ``cfg``; write the config, logs, checkpoints and plots to ``work_dir``.

    Args:
        cfg: validated config (``segkit.load_config``).
        work_dir: output folder, default ``work_dirs/<cfg.name>``; locked for the run's lifetime.
        resume: a checkpoint to continue from, or True for ``work_dir/latest.pth``.
        device: ``cpu``, ``cuda``, ``cuda:N`` or None (CUDA when available).
        progress: show a tqdm bar (main process only).
        overwrite: a new run may replace the checkpoints of another run in ``work_dir``.
        reschedule: a resumed run may change ``train.iterations``: the poly schedule of the new total applies from the
            resumed iteration on (refused otherwise).

    Returns:
        ``{"iteration", "best_miou", "last_miou", "work_dir", "stopped_by_signal"}``.
    """
    device = resolve_device(device)
    dist_info = init_distributed(device.type)
    if device.type == "cuda":
        device = torch.device("cuda", dist_info.local_rank if dist_info.enabled else (device.index or 0))
    work_dir = Path(work_dir or Path("work_dirs") / cfg.name)
    resume_path = (work_dir / "latest.pth" if resume is True else Path(resume)) if resume else None
    log = (lambda msg: tqdm.write(str(msg))) if dist_info.is_main else (lambda msg: None)
    lock = None
    try:
        cfg = absolute_data_root(cfg, log)
        if resume_path is not None:  # train.qat or train.iterations changed: one line before the model is built
            check_resume_config(cfg, resume_path, reschedule=reschedule)
        seed_everything(cfg.train.seed + dist_info.rank, cfg.train.deterministic)
        tr = build_training(cfg, work_dir, device, dist_info, log, load_init_weights=not resume)
        error = None
        if dist_info.is_main:  # after the data and model were built: a config error leaves no work dir behind
            try:
                lock = open_work_dir(work_dir, resume=resume_path, overwrite=overwrite, log=log)
                atomic_write_text(work_dir / "config.yaml", cfg.to_yaml())
            except (WorkDirError, OSError) as exc:
                error = exc
        message = broadcast_object(str(error) if error else None)
        if message:
            raise error if error is not None else WorkDirError(message)
        if resume_path:
            restore_state(tr, resume_path, log)
        result = _run(tr, resumed=bool(resume), progress=progress, log=log)
        barrier()  # every rank leaves together, after rank 0 wrote its files (torchrun stops the rest otherwise)
        return result
    finally:
        if lock is not None:
            lock.release()
        cleanup()


def _run(tr: Training, *, resumed: bool, progress: bool, log: Any) -> dict[str, Any]:
    """The loop itself: steps, logs, validations, checkpoints and stopping on a signal."""
    logger = _open_run_log(tr, resumed)
    stop = StopFlag().install()  # before the loader forks its workers (they inherit it, then ignore signals)
    batches = _train_batches(tr)
    bar = _progress_bar(tr, progress)
    # until the first step ends the bar shows no rate: say what it waits for (one step of the demo config: ~5-15 s on
    # a busy 2-core CPU, the data workers' start and first batches included)
    bar.set_postfix_str("first step: starting the data workers, loading a batch, forward + backward", refresh=True)
    first_step = True
    speed = _Throughput(tr)
    last_miou, signum = float("nan"), 0
    try:
        while tr.iteration < tr.cfg.train.iterations:
            values = train_step(tr, batches)
            if first_step:
                bar.set_postfix_str("", refresh=False)
                first_step = False
            bar.update(1)
            logging, validating, saving = _due(tr)
            signum = host_max(stop.signum or 0)  # every rank stops after the same step
            if not (logging or validating or saving or signum):
                continue
            _check_finite_or_explain(tr)  # the host waits for the device here, not in train_step
            if logging:
                _log_train(tr, values, logger, bar, speed.images_per_s(tr.iteration))
            if validating:
                last_miou = _validate_and_keep_best(tr, logger, log, progress)
            if saving or signum:
                save_run_checkpoint(tr, "latest.pth")
            speed.restart(tr.iteration)
            if signum:
                _log_resume_hint(tr, log)
                break
        barrier()
    finally:
        _close_run(tr, batches, bar, stop, logger)
    _log_end(tr, stopped=bool(signum), log=log)
    return {
        "iteration": tr.iteration,
        "best_miou": tr.best_miou,
        "last_miou": last_miou,
        "work_dir": str(tr.work_dir),
        "stopped_by_signal": signum or None,
    }


def _open_run_log(tr: Training, resumed: bool) -> RunLogger:
    """The run's metrics log (appended to on resume), opened with a ``setup`` record."""
    logger = RunLogger(tr.work_dir, enabled=tr.dist.is_main, resume_from=tr.iteration if resumed else None)
    logger.log(
        "setup",
        tr.iteration,
        {
            "world_size": tr.dist.world_size,
            "device": str(tr.device),
            "train_samples": len(tr.train_set),
            "val_samples": len(tr.val_set),
            "data_root": tr.cfg.data.root,
            "params": count_parameters(tr.net),
            "sync_bn_layers": sum(isinstance(m, nn.SyncBatchNorm) for m in tr.net.modules()),
            "amp": str(tr.amp_dtype).replace("torch.", "") if tr.amp_dtype else "none",
        },
    )
    return logger


def _train_batches(tr: Training) -> Iterator[dict[str, Any]]:
    """This rank's endless stream of training batches, from the sample ``tr.iteration`` left off at."""
    t = tr.cfg.train
    sampler = TrainSampler(
        len(tr.train_set),
        seed=t.seed,
        rank=tr.dist.rank,
        world_size=tr.dist.world_size,
        start=tr.iteration * t.batch_size * t.grad_accum,
    )
    return iter(
        make_loader(tr.train_set, tr.cfg, sampler=sampler, batch_size=t.batch_size, device=tr.device, train=True)
    )


def _progress_bar(tr: Training, progress: bool) -> tqdm:
    return tqdm(
        total=tr.cfg.train.iterations,
        initial=tr.iteration,
        desc=tr.cfg.name,
        unit="it",
        dynamic_ncols=True,
        disable=not (progress and tr.dist.is_main),
    )


class _Throughput:
    """Training images per second (all ranks) since the last ``restart``."""

    def __init__(self, tr: Training) -> None:
        t = tr.cfg.train
        self.images_per_step = t.batch_size * t.grad_accum * tr.dist.world_size
        self.restart(tr.iteration)

    def restart(self, iteration: int) -> None:
        self.clock, self.iteration = time.perf_counter(), iteration

    def images_per_s(self, iteration: int) -> float:
        return self.images_per_step * (iteration - self.iteration) / max(time.perf_counter() - self.clock, 1e-9)


def _due(tr: Training) -> tuple[bool, bool, bool]:
    """(log, validate, save): what the iteration just finished owes besides the step itself."""
    t, it = tr.cfg.train, tr.iteration
    is_last = it == t.iterations
    return (
        it % t.log_interval == 0 or it == 1,
        it % t.val_interval == 0 or is_last,
        it % t.ckpt_interval == 0 or is_last,
    )


def _log_train(tr: Training, values: dict[str, torch.Tensor], logger: RunLogger, bar: tqdm, speed: float) -> None:
    """Log the step's losses (averaged over ranks), the base LR and the speed; show them on the bar."""
    names = list(values)
    means = all_reduce_mean(torch.stack([values[k] for k in names])).tolist()
    record = {**dict(zip(names, means)), "lr": _base_lr(tr), "images_per_s": speed}
    bar.set_postfix(loss=f"{record['loss']:.3f}", lr=f"{record['lr']:.2e}", img_s=f"{speed:.1f}")
    logger.log("train", tr.iteration, record)


def _validate_and_keep_best(tr: Training, logger: RunLogger, log: Any, progress: bool) -> float:
    """Validate; a new best mIoU is saved to ``best.pth``. Returns the mIoU."""
    miou = validate(tr, logger, log, progress=progress)
    if miou > tr.best_miou:
        tr.best_miou = miou
        save_run_checkpoint(tr, "best.pth")
    return miou


def _log_resume_hint(tr: Training, log: Any) -> None:
    work_dir, dist_info = tr.work_dir, tr.dist
    launcher = f"torchrun --nproc_per_node {dist_info.world_size} -m segkit.cli" if dist_info.enabled else "segkit"
    log(
        f"Stopped by signal at iteration {tr.iteration}; saved {work_dir / 'latest.pth'}. Resume with:\n"
        f"  {launcher} train --config {work_dir / 'config.yaml'} --work-dir {work_dir} --resume"
    )


def _close_run(tr: Training, batches: Iterator[dict[str, Any]], bar: tqdm, stop: StopFlag, logger: RunLogger) -> None:
    """Stop the loader workers, close the bar, restore the signal handlers, close the log and plot its curves."""
    stop_workers(batches)
    bar.close()
    stop.restore()
    logger.close()
    if tr.dist.is_main and logger.jsonl_path.exists():
        plot_curves(read_jsonl(logger.jsonl_path), tr.work_dir / "curves.png")


def _log_end(tr: Training, *, stopped: bool, log: Any) -> None:
    """Report skipped bad samples and, unless stopped by a signal, where the results are."""
    skipped = tr.train_set.bad_samples_report()
    if skipped:
        log(f"Training skipped bad samples (seen by the main process; DataLoader workers warn as they go):\n{skipped}")
    if not stopped:
        log(
            f"Done: {tr.iteration} iterations, best val mIoU {format_miou(tr.best_miou)}. Checkpoints, logs and "
            f"curves.png in {tr.work_dir}."
        )


def _check_finite_or_explain(tr: Training) -> None:
    try:
        check_finite(tr)
    except TrainingDiverged as exc:
        lr = tr.cfg.train.lr * tr.scheduler.lr_lambdas[0](exc.iteration - 1)
        raise TrainingDiverged(
            f"Training diverged: {exc} (LR {lr:.3g}). Weights were not updated with it and no checkpoint was "
            f"overwritten; last good checkpoint: {last_good_checkpoint(tr)}. Lower train.lr, add train.warmup_iters, "
            "or check the data."
        ) from None


def _base_lr(tr: Training) -> float:
    """The current base learning rate (the param groups carry multiples of it)."""
    group = tr.optimizer.param_groups[0]
    return group["lr"] / group.get("lr_mult", 1.0)


def exit_code(result: dict[str, Any]) -> int:
    """128 + signal number for a run stopped by a signal, else 0."""
    return 128 + int(result["stopped_by_signal"]) if result.get("stopped_by_signal") else 0


__all__ = [
    "Training",
    "TrainingDiverged",
    "build_training",
    "check_finite",
    "exit_code",
    "train",
    "train_step",
    "validate",
]
