"""Thin helpers over torch.distributed for torchrun-launched runs (DDP; gloo on CPU, NCCL on CUDA)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

_CONTROL_GROUP: Any = None  # a gloo group for small host-side agreements (no GPU synchronisation)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group torchrun describes in the environment; a single process otherwise."""
    global _CONTROL_GROUP
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    _CONTROL_GROUP = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else None
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank)


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """Average a tensor over processes (no-op when not distributed); no host synchronisation."""
    if is_initialized():
        value = value.clone()
        dist.all_reduce(value)
        value /= dist.get_world_size()
    return value


def all_reduce_max_(value: torch.Tensor) -> torch.Tensor:
    """In place: the maximum over processes (no-op when not distributed); no host synchronisation."""
    if is_initialized():
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return value


def host_max(value: int) -> int:
    """The maximum of a small host-side integer over processes (e.g. "a signal arrived").

    Runs on the CPU (a gloo group under NCCL), so it never waits for the GPU.
    """
    if not is_initialized():
        return value
    tensor = torch.tensor([value], dtype=torch.int64)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX, group=_CONTROL_GROUP)
    return int(tensor[0])


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every process (returns ``obj`` when not distributed)."""
    if not is_initialized():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=src, group=_CONTROL_GROUP)
    return holder[0]


def cleanup() -> None:
    global _CONTROL_GROUP
    if is_initialized():
        dist.destroy_process_group()
    _CONTROL_GROUP = None
