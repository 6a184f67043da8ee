"""How many DataLoader worker processes to start: ``data.num_workers``, at most the CPUs this process may use.

More workers than CPUs only contend for them (and PyTorch warns about it once per loader, so twice a training run);
segkit starts as many as there are CPUs and says so once, in one line.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

from segkit.errors import SegkitWarning

__all__ = ["WorkersClampedWarning", "loader_workers", "usable_cpus"]

_warned: set[tuple[int, int]] = set()


class WorkersClampedWarning(SegkitWarning):
    """``data.num_workers`` exceeds the CPUs this process may use; fewer workers are started."""


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one, else the CPU count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def loader_workers(
    requested: int,
    log: Callable[[str], Any] | None = None,
    *,
    flag: str = "--set data.num_workers=N",
) -> int:
    """``requested`` DataLoader workers, or the number of usable CPUs when that is smaller, said once per process and
    count: a ``warning: ...`` line through ``log``, else a :class:`WorkersClampedWarning`; ``flag``: how the command
    sets the count (named in the message). A default of a config the user did not write (a foreign exported file's)
    is clamped by its caller, silently (:func:`segkit.export.cache.load_for_tools`)."""
    available = usable_cpus()
    if requested <= available:
        return requested
    if (requested, available) not in _warned:
        _warned.add((requested, available))
        message = (
            f"data.num_workers={requested} is more than the {available} CPU(s) this process may use: starting "
            f"{available} DataLoader worker(s); pass {flag} with N <= {available} to silence this."
        )
        if log is not None:
            log(f"warning: {message}")
        else:
            warnings.warn(message, WorkersClampedWarning, stacklevel=2)
    return available
