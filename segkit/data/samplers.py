"""Sample orders for training (endless, resumable, seeded per position) and evaluation (each sample once)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler


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


__all__ = ["SeededSamples", "ShardSampler", "TrainSampler"]
