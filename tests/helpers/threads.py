"""Torch intra-op thread count for small CPU workloads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread inside the block (restored after): small CPU workloads gain nothing from threads
    and slow down 10-30x when two OpenMP threads compete for busy cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
