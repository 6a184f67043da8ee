"""Pieces ``build_training`` puts together: initial weights, BatchNorm rules, SyncBN, data loaders."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from segkit.checkpoint.load import LoadReport, load_state_into
from segkit.config import Config, ConfigError
from segkit.data.build import resolve_data_root
from segkit.data.samplers import SeededSamples
from segkit.data.workers import loader_workers
from segkit.engine.signals import ignore_stop_signals
from segkit.utils.distributed import DistInfo

BN_MIN_BATCH = 12  # the official recipe: fine-tuning BN needs more than 12 images per step


def check_batch_norm(cfg: Config, device: torch.device, dist_info: DistInfo) -> None:
    """Refuse BN in training mode on one image per micro-batch; warn (rank 0) below ``BN_MIN_BATCH`` images.

    A BN layer sees the micro-batch of its process (``train.batch_size``; under ``train.grad_accum``
    each micro-batch on its own), or that of every process with SyncBatchNorm (CUDA only).
    """
    if cfg.model.norm_eval:
        return
    synced = cfg.train.sync_bn and device.type == "cuda" and dist_info.enabled
    bn_images = cfg.train.batch_size * (dist_info.world_size if synced else 1)
    if bn_images < 2:
        where = " per process (CPU processes have no SyncBatchNorm)" if dist_info.enabled else ""
        raise ConfigError(
            f"train.batch_size=1{where}: BatchNorm in training mode needs at least 2 images per micro-batch (the "
            "image-pooling branch's BN sees one value per channel per image); set model.norm_eval=true to keep BN "
            "statistics fixed, or raise train.batch_size (with train.sync_bn on several CUDA processes batch 1 "
            "per process is allowed)."
        )
    if bn_images < BN_MIN_BATCH and dist_info.is_main:
        warnings.warn(
            f"BatchNorm is trained with {bn_images} images per step (< {BN_MIN_BATCH}); its statistics will be "
            "noisy. Raise train.batch_size (or use more GPUs with train.sync_bn), or set model.norm_eval=true "
            "to keep pretrained BN statistics fixed.",
            UserWarning,
            stacklevel=3,
        )


def load_initial_weights(model: nn.Module, path: str, log: Any = print, *, exclude: Sequence[str] = ()) -> LoadReport:
    """``train.init_weights``: load the file's tensors whose name and shape match (``segkit.checkpoint.load``)."""
    return load_state_into(model, path, log=log, exclude=exclude)


def prepare_qat(
    model: nn.Module, cfg: Config, device: torch.device, dist_info: DistInfo, log: Any = print
) -> nn.Module:
    """``train.qat``: the float model (initial weights loaded) as a fake-quantized :class:`segkit.models.qat.QatModel`
    on ``device``; any other model unchanged. BN is functional in the exported graph, so no SyncBatchNorm."""
    if not cfg.train.qat:
        return model
    from segkit.models import qat

    qat.check_config(cfg)
    if dist_info.enabled and cfg.train.sync_bn:
        log(
            "train.qat: BatchNorm is part of the exported graph, so train.sync_bn does not apply; every process "
            "normalises its own batch (TF DeepLab quantizes with one clone)."
        )
    q = cfg.qat
    log(
        f"train.qat: exporting and preparing the model for quantization-aware training (int8, weights per "
        f"{'channel' if q.per_channel else 'tensor'}; BN statistics frozen {_from(q.freeze_bn_iter)}, ranges "
        f"frozen {_from(q.freeze_observer_iter)})."
    )
    return qat.prepare(model.to(device), cfg)


def _from(iteration: int | None) -> str:
    return "never" if iteration is None else f"from iteration {iteration}"


def convert_sync_bn(model: nn.Module, device_type: str, log: Any = print) -> nn.Module:
    """BatchNorm -> SyncBatchNorm (statistics over all processes). PyTorch supports it on CUDA only."""
    if device_type != "cuda":
        log("train.sync_bn: SyncBatchNorm runs on CUDA only; on CPU every process normalises its own batch.")
        return model
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def make_loader(
    dataset: Dataset, cfg: Config, *, sampler: Sampler, batch_size: int, device: torch.device, train: bool
) -> DataLoader:
    """Training loader (seeded samples, persistent workers) or evaluation loader; workers ignore SIGINT/SIGTERM."""
    workers = loader_workers(cfg.data.num_workers)  # at most the usable CPUs (one warning)
    return DataLoader(
        SeededSamples(dataset) if train else dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        drop_last=train,
        persistent_workers=train and workers > 0,
        worker_init_fn=ignore_stop_signals if workers > 0 else None,
        generator=torch.Generator().manual_seed(cfg.train.seed),  # keeps the global RNG untouched
    )


__all__ = [
    "BN_MIN_BATCH",
    "check_batch_norm",
    "convert_sync_bn",
    "load_initial_weights",
    "make_loader",
    "prepare_qat",
]


def absolute_data_root(cfg: Config, log: Any) -> Config:
    """A copy of ``cfg`` with an absolute ``data.root`` (:func:`segkit.data.build.resolve_data_root`), so the saved
    config finds the data from any folder; a relative root is logged with the folder it is read from."""
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data))
    relative = not Path(cfg.data.root).expanduser().is_absolute()
    line = resolve_data_root(cfg)
    if relative:
        log(f"{line}; saved with the run as that absolute path.")
    return cfg


def stop_workers(batches: Iterator[Any]) -> None:
    """Shut the persistent DataLoader workers down now (they ignore SIGTERM, so they must not be left to exit)."""
    shutdown = getattr(batches, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()
