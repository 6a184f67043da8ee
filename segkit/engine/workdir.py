"""The work dir of a run: checked writable, locked for the run's lifetime, never silently overwritten.

- One run per work dir: rank 0 holds an exclusive ``flock`` on ``WORK_DIR/.lock`` until the run
  ends. The kernel drops the lock when its process dies (even by SIGKILL), so a stale lock file of a
  dead run never blocks a new one; a second live run is refused with a line naming the holder.
- A new run (no ``--resume``) into a work dir that holds ``latest.pth`` / ``best.pth`` is refused
  unless ``--overwrite``; the message says what is there and the three choices.
- A work dir that cannot be written is refused before training starts; a checkpoint that cannot be
  written later names the last good one.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from segkit.checkpoint.format import CheckpointError, load_checkpoint
from segkit.errors import SegkitError

CHECKPOINTS = ("latest.pth", "best.pth")
LOCK_NAME = ".lock"


class WorkDirError(SegkitError, RuntimeError):
    """The work dir cannot be used for this run; the message says why and what to do."""


class CheckpointWriteError(SegkitError, OSError):
    """A checkpoint could not be written; the message names the last good checkpoint."""

    exit_code = 1  # the disk failed the run, not the user's input


def check_writable(work_dir: Path) -> None:
    """Create ``work_dir`` and write a probe file in it, or raise WorkDirError in one line."""
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=work_dir, prefix=".write-test-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise WorkDirError(
            f"work dir {work_dir} cannot be written ({reason}: {exc.filename or work_dir}); fix its "
            "permissions or free space, or choose another --work-dir."
        ) from None


def describe_run(work_dir: Path) -> str:
    """What the checkpoints in ``work_dir`` hold, e.g. ``latest.pth at iteration 50, best mIoU 0.1660``."""
    parts = []
    for name in CHECKPOINTS:
        path = work_dir / name
        if not path.exists():
            continue
        try:
            ckpt = load_checkpoint(path)
            best = float(ckpt.get("best_miou", -1.0))
            parts.append(
                f"{name} at iteration {ckpt.get('iteration', '?')}, best mIoU "
                f"{'none yet' if best < 0 else f'{best:.4f}'}"
            )
        except CheckpointError:
            parts.append(f"{name} (unreadable)")
    return "; ".join(parts)


class WorkDirLock:
    """Exclusive lock of a work dir for one run (``flock``; released by the kernel when the holder dies)."""

    def __init__(self, work_dir: Path) -> None:
        self.path = work_dir / LOCK_NAME
        self._file: Any = None

    def acquire(self) -> str | None:
        """Take the lock; returns a note when a dead run's lock file was taken over. WorkDirError when held."""
        import fcntl

        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            raise WorkDirError(
                f"work dir {self.path.parent} is in use by another run ({_describe_holder(holder)}); "
                "wait for it to end or stop it, or choose another --work-dir."
            ) from None
        handle.seek(0)
        previous = handle.read().strip()
        handle.seek(0)
        handle.truncate()
        handle.write(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "command": " ".join(sys.argv),
                }
            )
        )
        handle.flush()
        self._file = handle
        return (
            f"took over the lock of a run that ended without releasing it ({_describe_holder(previous)})"
            if previous
            else None
        )

    def release(self) -> None:
        if self._file is not None:
            self._file.seek(0)
            self._file.truncate()  # an empty lock file: the run ended normally
            self._file.close()  # closing drops the flock
            self._file = None


def _describe_holder(text: str) -> str:
    try:
        info = json.loads(text)
        return f"pid {info['pid']} on {info['host']}, started {info['started']}: {info['command']}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"


def open_work_dir(work_dir: Path, *, resume: Path | None, overwrite: bool, log: Any = print) -> WorkDirLock:
    """Check, lock and prepare ``work_dir`` for a run (main process only); returns the held lock.

    Args:
        work_dir: the run's folder.
        resume: the checkpoint the run continues from, or None for a new run.
        overwrite: a new run may replace the checkpoints already in ``work_dir`` (they are deleted).
    """
    check_writable(work_dir)
    lock = WorkDirLock(work_dir)
    note = lock.acquire()
    try:
        if note:
            log(f"work dir {work_dir}: {note}.")
        existing = [work_dir / n for n in CHECKPOINTS if (work_dir / n).exists()]
        own = resume is not None and resume.resolve().parent == work_dir.resolve()
        if existing and not own:
            if not overwrite:
                what = "a new run" if resume is None else f"a run resumed from {resume}"
                raise WorkDirError(
                    f"work dir {work_dir} holds another run's checkpoints ({describe_run(work_dir)}), which "
                    f"{what} would overwrite; continue that run with --resume, replace it with --overwrite, or "
                    "choose another --work-dir."
                )
            for path in existing:
                path.unlink()
            log(f"--overwrite: removed {', '.join(p.name for p in existing)} of the previous run in {work_dir}.")
    except BaseException:
        lock.release()
        raise
    return lock


__all__ = ["CheckpointWriteError", "WorkDirError", "WorkDirLock", "check_writable", "describe_run", "open_work_dir"]
