"""Keep the model busy: read the next images while it runs, write the outputs behind it.

``segkit infer`` and ``segkit test --save-pred`` spend, per image, a decode and a normalisation before the model and a
PNG (and JPEG) encoding after it. PIL's decoders and encoders and numpy/torch's kernels release the GIL, so threads
overlap them with the model's forward pass::

    for path, result in prefetch(read_image, paths, workers=2):   # in order; at most ``depth`` images held
        label = model_step(result.value)                            # result.error: what read_image raised
        writer.submit(save, path, label)                           # BackgroundWriter: one thread, bounded queue
    writer.close()                                                   # waits; re-raises a failed write

Both are bounded (memory stays a few images whatever the folder's size) and keep the input order.

:func:`host_threads` gives torch one thread while a runtime (ONNX Runtime, OpenVINO, LiteRT, ExecuTorch) runs the
model: the host work (normalise, resize, labels) is small, and torch's OpenMP pool, spinning after each op, would take
the cores from the runtime's own threads (measured: ONNX Runtime int8 at 513, ``segkit infer`` 0.75x -> 0.82x of the
model-only rate; the official LiteRT file 0.71x -> 0.85x).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["DEFAULT_DEPTH", "BackgroundWriter", "Fetched", "ThreadLoader", "host_threads", "prefetch"]

DEFAULT_DEPTH = 4  # images read ahead of the model (each a decoded photo: ~0.6 MB at VOC's size, 36 MB at 12 MP)

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Fetched(Generic[R]):
    """What ``fn(item)`` gave: ``value``, or the exception it raised (``error``; ``value`` is then None)."""

    value: R | None = None
    error: BaseException | None = None


def prefetch(
    fn: Callable[[T], R], items: Iterable[T], *, workers: int = 1, depth: int = DEFAULT_DEPTH
) -> Iterator[tuple[T, Fetched[R]]]:
    """``(item, Fetched(fn(item)))`` for each item in order, ``fn`` running on ``workers`` threads up to ``depth``
    items ahead of the consumer. ``workers`` 0: no thread, ``fn`` runs when the item is asked for. An exception of
    ``fn`` comes back in :attr:`Fetched.error` (the caller decides: skip the item or raise); a KeyboardInterrupt in
    the consumer stops the workers after the item they are on."""
    if workers < 0 or depth < 1:
        raise ValueError(f"workers must be >= 0 and depth >= 1, got workers={workers}, depth={depth}.")

    def call(item: T) -> Fetched[R]:
        try:
            return Fetched(value=fn(item))
        except Exception as exc:  # noqa: BLE001 - handed to the consumer with its item
            return Fetched(error=exc)

    if workers == 0:
        for item in items:
            yield item, call(item)
        return
    pending: queue.SimpleQueue[tuple[T, Future[Fetched[R]]]] = queue.SimpleQueue()
    held = 0
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="segkit-prefetch") as pool:
        try:
            for item in items:
                pending.put((item, pool.submit(call, item)))
                held += 1
                if held >= depth:
                    head, future = pending.get()
                    held -= 1
                    yield head, future.result()
            while held:
                head, future = pending.get()
                held -= 1
                yield head, future.result()
        finally:  # the consumer stopped early (an error, Ctrl-C): drop what was not started
            pool.shutdown(wait=True, cancel_futures=True)


class BackgroundWriter:
    """Runs write jobs on one thread, in submission order, at most ``depth`` waiting: the model does not wait for
    PNG/JPEG encoding. The first failed job's exception is re-raised by the next :meth:`submit` or by :meth:`close`
    (the jobs after it are dropped). Use as a context manager, or call :meth:`close`."""

    def __init__(self, depth: int = DEFAULT_DEPTH) -> None:
        self._jobs: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]] | None] = queue.Queue(depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="segkit-writer", daemon=True)
        self._thread.start()
        self._closed = False

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            if self._error is not None:
                continue
            fn, args, kwargs = job
            try:
                fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the submitting thread
                self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Queue ``fn(*args, **kwargs)``; blocks while ``depth`` jobs wait; raises an earlier job's error."""
        if self._closed:
            raise RuntimeError("BackgroundWriter.submit after close().")
        self._raise()
        self._jobs.put((fn, args, kwargs))

    def close(self) -> None:
        """Wait for the queued jobs; re-raise the first failure. Idempotent."""
        if not self._closed:
            self._closed = True
            self._jobs.put(None)
            self._thread.join()
        self._raise()

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.close()
            return
        self._closed = True  # an error in the consumer: finish quietly, the consumer's error wins
        self._jobs.put(None)
        self._thread.join()


@contextlib.contextmanager
def host_threads(model: Any, *, active: bool = True) -> Iterator[None]:
    """Within the block, torch runs on one thread when ``model`` is not a torch module (a runtime's runner, whose
    runtime has its own threads) and ``active`` (the callers pass whether the runtime does the work: a one-view
    protocol; multi-scale and sliding-window protocols do their softmax and averaging in torch, on torch's threads);
    a torch model keeps torch's threads. The previous count is restored."""
    import torch

    if not active or isinstance(model, torch.nn.Module) or torch.get_num_threads() == 1:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class ThreadLoader:
    """Batches of one sample of ``dataset``, read by ``workers`` threads ahead of the consumer (:func:`prefetch`), in
    order, collated by ``collate``: ``segkit test`` with a runtime's runner on a CPU uses it instead of a DataLoader's
    worker processes, which cost a start-up and a shared-memory hand-over per sample that the runtime's cores pay
    for (measured at 257: 46-56 images/s in the main thread, 31-37 with 1-2 worker processes). A sample that raises
    re-raises in the consumer."""

    def __init__(self, dataset: Any, collate: Callable[[list[Any]], Any], workers: int = 1) -> None:
        self.dataset, self.collate, self.workers = dataset, collate, max(1, int(workers))

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self) -> Iterator[Any]:
        def read(index: int) -> Any:
            return self.collate([self.dataset[index]])

        for _, fetched in prefetch(read, range(len(self.dataset)), workers=self.workers):
            if fetched.error is not None:
                raise fetched.error
            yield fetched.value
