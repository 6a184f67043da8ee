"""Stopping a run cleanly on SIGINT / SIGTERM, also when the whole process group gets the signal.

The main process of every rank installs :class:`StopFlag`; the training loop reads it after each
step, the ranks agree (the largest signal number wins), rank 0 saves ``latest.pth`` and every rank
exits with 128 + the signal number. DataLoader workers ignore both signals
(:func:`ignore_stop_signals` as ``worker_init_fn``, and they are forked after the flag is installed),
so ``kill -TERM -- -PGID``, ``docker stop`` or torchrun forwarding a signal to each rank's process
group cannot kill them under the main process. A second signal exits at once with the same code.
"""

from __future__ import annotations

import os
import signal
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def ignore_stop_signals(worker_id: int = 0) -> None:
    """DataLoader ``worker_init_fn``: leave SIGINT/SIGTERM to the main process, which saves and stops."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


class StopFlag:
    """SIGINT/SIGTERM: the first sets ``signum`` (finish the step, save, exit); a second exits at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}
        self._pid = os.getpid()

    def install(self) -> StopFlag:
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def __enter__(self) -> StopFlag:
        return self.install()

    def __exit__(self, *exc: Any) -> None:
        self.restore()

    def _handle(self, signum: int, frame: Any) -> None:
        if os.getpid() != self._pid:  # a forked DataLoader worker before its worker_init_fn ran
            return
        if self.signum is None:
            self.signum = signum
            return
        name = signal.Signals(signum).name
        os.write(2, f"\n{name} again: stopping at once without saving; the last checkpoint written is kept.\n".encode())
        os._exit(128 + self.signum)


__all__ = ["STOP_SIGNALS", "StopFlag", "ignore_stop_signals"]
