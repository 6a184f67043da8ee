"""A step that takes long without reporting progress of its own (an ONNX export): say what it does, tick the elapsed
time while it runs, then say how long it took."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tqdm import tqdm


@contextmanager
def timed_step(
    what: str, note: str = "", *, log: Callable[[str], Any] | None = None, enabled: bool = True
) -> Iterator[None]:
    """Say ``<what><note>...``, tick ``<what>: <elapsed> elapsed`` every second while the block runs, then say
    ``<what>: done in N s``. Default: on stderr, with the ticking line; ``log``: the two lines go to ``log`` (no
    ticking line). Nothing more is said when the block raises; nothing at all when not ``enabled`` (a step of a
    second or two)."""
    if not enabled:
        yield
        return
    if log is not None:
        log(f"{what}{note}...")
        start = time.perf_counter()
        yield
        log(f"{what}: done in {time.perf_counter() - start:.1f} s")
        return
    print(f"{what}{note}...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    bar = tqdm(total=None, desc=what, bar_format="{desc}: {elapsed} elapsed", leave=False, file=sys.stderr)
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(1.0):
            bar.refresh()

    ticker = threading.Thread(target=tick, name="segkit-elapsed", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        stop.set()
        ticker.join()
        bar.close()
    print(f"{what}: done in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
