"""The run's resumable state: one ``state_dict()`` / ``load_state_dict()`` pair, written atomically.

A checkpoint holds the model, optimiser, LR scheduler, GradScaler, iteration, best mIoU, the RNG
states (python, numpy, torch, CUDA) of every rank and the data position. Together with the seeded
sample order (:class:`segkit.data.samplers.TrainSampler`) that makes ``--resume`` repeat the
uninterrupted run exactly.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset

from segkit.checkpoint.format import CheckpointError, load_checkpoint, load_weights, save_checkpoint
from segkit.config import Config
from segkit.engine.losses import SegmentationLoss
from segkit.engine.workdir import CheckpointWriteError
from segkit.models.qat import fit_observers
from segkit.utils.distributed import DistInfo, host_max, is_initialized


def format_miou(value: float) -> str:
    """``73.12%`` (a percentage, as every metrics table prints it), or ``none yet`` before the first validation
    (stored as -1)."""
    return "none yet" if value < 0 else f"{100 * value:.2f}%"


@dataclass
class Training:
    """Everything the loop touches; ``state_dict()`` / ``load_state_dict()`` own what a resume needs."""

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
    last_saved: tuple[Path, int] | None = None  # the newest latest.pth written (or resumed from)
    # On-device divergence record (see loop.train_step): 0 healthy, 1 loss, 2 gradients not finite.
    health: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def net(self) -> nn.Module:
        """The model without its DDP wrapper."""
        return getattr(self.model, "module", self.model)

    @property
    def amp_dtype(self) -> torch.dtype | None:
        if self.device.type != "cuda" or self.cfg.train.amp == "none":
            return None
        return torch.bfloat16 if self.cfg.train.amp == "bf16" else torch.float16

    def state_dict(self) -> dict[str, Any]:
        """The whole resumable state. A collective call under DDP (every rank's RNG is gathered)."""
        t = self.cfg.train
        return {
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "iteration": self.iteration,
            "best_miou": self.best_miou,
            "rng": gather_rng_states(),
            "loader": {
                "samples_per_rank": self.iteration * t.batch_size * t.grad_accum,
                "world_size": self.dist.world_size,
            },
        }

    def load_state_dict(self, state: dict[str, Any], log: Any = print) -> None:
        """Continue from ``state`` (a checkpoint): weights, optimiser, schedule, scaler, iteration, RNG."""
        check_qat_matches(self.cfg, state)
        fit_observers(self.net, state["model"])  # QAT: per-channel observer buffers take the saved shapes
        load_weights(self.net, state, self.cfg)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler.is_enabled() and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        elif self.scaler.is_enabled():
            log("The checkpoint was trained without fp16 loss scaling; the GradScaler starts afresh.")
        self.iteration = int(state["iteration"])
        self.best_miou = float(state.get("best_miou", -1.0))
        rng = state["rng"] if isinstance(state["rng"], list) else [state["rng"]]
        if len(rng) != self.dist.world_size:
            log(
                f"The checkpoint holds RNG states of {len(rng)} process(es), this run has {self.dist.world_size}: "
                "random streams (dropout) differ from the original run from here on."
            )
        set_rng_state(rng[self.dist.rank] if self.dist.rank < len(rng) else rng[0])
        saved_world = state.get("loader", {}).get("world_size", self.dist.world_size)
        if saved_world != self.dist.world_size:
            log(
                f"Resuming with {self.dist.world_size} processes instead of {saved_world}: the sample order differs "
                "from the original run from here on."
            )


def save_state(tr: Training, path: Path) -> None:
    """Write the full training state atomically (called on every rank; rank 0 writes)."""
    state = tr.state_dict()
    if not tr.dist.is_main:
        return
    del state["model"]  # save_checkpoint writes the weights itself
    palette = getattr(tr.train_set, "palette", None)
    save_checkpoint(
        path,
        tr.net,
        tr.cfg,
        class_names=list(getattr(tr.train_set, "class_names", []) or []) or None,
        palette=np.asarray(palette).tolist() if palette is not None else None,
        **state,
    )


def _yaml_bool(value: bool) -> str:
    return "true" if value else "false"


def check_qat_matches(cfg: Config, ckpt: dict[str, Any], path: str | os.PathLike | None = None) -> None:
    """CheckpointError naming ``train.qat`` when the checkpoint's run and ``cfg`` differ in it.

    A float model and its fake-quant one differ in every observer (1,120 tensors for MobileNetV2), which
    is what a strict load would list. The checkpoint's config says which it is; without one, its observers.
    """
    saved = None
    config = ckpt.get("config")
    if isinstance(config, dict) and isinstance(config.get("train"), dict) and "qat" in config["train"]:
        saved = bool(config["train"]["qat"])
    elif isinstance(ckpt.get("model"), dict):
        saved = any(str(k).startswith("activation_post_process_") for k in ckpt["model"])
    if saved is None or saved == bool(cfg.train.qat):
        return
    theirs, ours = _yaml_bool(saved), _yaml_bool(cfg.train.qat)
    what = f"{path}: the checkpoint" if path is not None else "The checkpoint"
    raise CheckpointError(
        f"{what} was trained with train.qat={theirs}, the config has train.qat={ours}; resume with --set "
        f"train.qat={theirs}, or start a new run (another --work-dir) from its weights with train.init_weights."
    )


def saved_iterations(ckpt: dict[str, Any]) -> int | None:
    """The ``train.iterations`` of the run that wrote ``ckpt`` (None for a checkpoint without its config)."""
    config = ckpt.get("config")
    train = config.get("train") if isinstance(config, dict) else None
    value = train.get("iterations") if isinstance(train, dict) else None
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def check_iterations_match(cfg: Config, ckpt: dict[str, Any], path: str | os.PathLike, *, reschedule: bool) -> None:
    """CheckpointError when ``cfg`` changes ``train.iterations`` of the run being resumed and ``reschedule`` is
    False (the poly LR schedule would change mid-run), or when the new total is below the checkpoint's iteration."""
    saved, wanted = saved_iterations(ckpt), cfg.train.iterations
    if saved is None or saved == wanted:
        return
    reached = ckpt.get("iteration")
    if isinstance(reached, int) and wanted < reached:
        raise CheckpointError(
            f"{path} is at iteration {reached}, above train.iterations={wanted}; resume with train.iterations >= "
            f"{reached} (the run's own total is {saved}), or start a new run from its weights with train.init_weights."
        )
    if not reschedule:
        raise CheckpointError(
            f"{path} was trained with train.iterations={saved}, the config has {wanted}: the poly LR schedule would "
            f"change mid-run; resume with --set train.iterations={saved}, or add --reschedule to continue on the "
            f"schedule of the new total (see docs/training.md)."
        )


def check_resume_config(cfg: Config, path: str | os.PathLike, *, reschedule: bool = False) -> None:
    """:func:`check_qat_matches` and :func:`check_iterations_match` on the checkpoint a run resumes from, before the
    run is built or its work dir written (memory-mapped: its tensors are not read). An unreadable file is left to
    :func:`restore_state`."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - missing, old format or not a checkpoint: restore_state says which
        return
    if isinstance(ckpt, dict):
        check_qat_matches(cfg, ckpt, path)
        check_iterations_match(cfg, ckpt, path, reschedule=reschedule)


def restore_state(tr: Training, path: Path, log: Any = print) -> None:
    """Continue the run from the checkpoint at ``path``."""
    ckpt = load_checkpoint(path)
    if "optimizer" not in ckpt or "iteration" not in ckpt:
        raise CheckpointError(
            f"{path} holds weights only (no optimiser/iteration state), so it cannot be resumed; "
            "use it as train.init_weights to start a new run from it."
        )
    tr.load_state_dict(ckpt, log)
    tr.last_saved = (Path(path), tr.iteration)
    log(f"Resumed from {path} at iteration {tr.iteration} (best mIoU so far {format_miou(tr.best_miou)}).")
    saved = saved_iterations(ckpt)
    if saved is not None and saved != tr.cfg.train.iterations:  # allowed by --reschedule (check_resume_config)
        reschedule_lr(tr, log, saved)


def reschedule_lr(tr: Training, log: Any, saved: int) -> None:
    """Put the optimiser on the schedule of the config's ``train.iterations`` from the resumed iteration on.

    The restored scheduler already computes the poly factor over the new total at its next step; this sets the LR
    of the first resumed step too (it was computed over the old total when the checkpoint was written).
    """
    factor = tr.scheduler.lr_lambdas[0](tr.iteration)
    for group, base in zip(tr.optimizer.param_groups, tr.scheduler.base_lrs):
        group["lr"] = base * factor
    log(
        f"Rescheduled: train.iterations {saved} -> {tr.cfg.train.iterations}; the poly LR is "
        f"{tr.cfg.train.lr * factor:.3g} at iteration {tr.iteration} and decays to 0 at {tr.cfg.train.iterations}."
    )


# ----------------------------------------------------------------------------- RNG


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def rng_state() -> dict[str, Any]:
    """This process's RNG states (python, numpy, torch, CUDA when available)."""
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


def gather_rng_states() -> list[dict[str, Any]]:
    """Every process's RNG states, indexed by rank (a collective call under DDP)."""
    state = rng_state()
    if not is_initialized():
        return [state]
    states: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(states, state)
    return states


def _tuplify(value: Any) -> Any:
    return tuple(_tuplify(v) for v in value) if isinstance(value, (list, tuple)) else value


__all__ = [
    "Training",
    "format_miou",
    "gather_rng_states",
    "last_good_checkpoint",
    "save_run_checkpoint",
    "reschedule_lr",
    "restore_state",
    "rng_state",
    "save_state",
    "seed_everything",
    "set_rng_state",
]


def save_run_checkpoint(tr: Training, name: str) -> None:
    """Save on rank 0; every rank learns when it failed, and the error names the last good checkpoint."""
    path = tr.work_dir / name
    error: OSError | None = None
    try:
        save_state(tr, path)
    except OSError as exc:
        error = exc
    if host_max(int(error is not None)):
        reason = f"{type(error).__name__}: {error}" if error else "see rank 0's error"
        raise CheckpointWriteError(
            f"could not write {path} at iteration {tr.iteration} ({reason}); the last good "
            f"checkpoint is {last_good_checkpoint(tr)}. Free space or fix the work dir, then --resume."
        )
    if name == "latest.pth":
        tr.last_saved = (path, tr.iteration)


def last_good_checkpoint(tr: Training) -> str:
    if tr.last_saved is None:
        return "none yet (no checkpoint was written by this run)"
    return f"{tr.last_saved[0]} (iteration {tr.last_saved[1]})"
