"""Atomic file writes: a crash mid-write never leaves a half-written file behind; outputs checked against the
command's inputs and for writability before any work (:func:`check_output`), and written beside their target, checked
there, and moved into place only on success (:func:`staged_output`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segkit.errors import SegkitError


def _umask() -> int:
    """The process umask (read by setting it and putting it back: there is no getter before Python 3.13's os)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    Whatever is written to the yielded path replaces ``path`` in one ``os.replace``
    (atomic on POSIX and Windows). The file ends up with the mode a plain ``open(path, "w")`` gives
    (``0o666`` minus the umask), or the replaced file's mode. On an exception the temporary file is removed and
    the previous content of ``path``, if any, is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    # mkstemp makes 0600: give the file the mode open() would (umask honoured), or keep the replaced file's mode
    os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask())
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:  # flush to disk before the rename
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path`` atomically (temporary file + rename)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


# -- outputs: checked before the work, written beside their target and moved into place ----------------------------


class OutputPathError(SegkitError, ValueError):
    """An output path that would replace one of the command's inputs, or that cannot be written."""


InputPaths = Mapping[str, "str | os.PathLike | Sequence[str | os.PathLike] | None"]


def _resolved(path: str | os.PathLike) -> Path:
    return Path(os.path.abspath(os.fspath(path))).resolve()


def _same(a: Path, b: Path) -> bool:
    if a == b:
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _inputs(inputs: InputPaths | None) -> Iterator[tuple[str, Path, Path]]:
    """``(label, path as given, resolved path)`` of every input named (None entries skipped; a path not on disk counts)."""
    for label, value in (inputs or {}).items():
        if value is None:
            continue
        values = [value] if isinstance(value, (str, os.PathLike)) else list(value)
        for item in values:
            if item is not None and str(item) != "":
                yield label, Path(item), _resolved(item)


def _probe_writable(folder: Path) -> str | None:
    """None when a file can be created in the existing folder ``folder``, else why not (checked by creating one: the
    permission bits do not tell for root, a read-only mount or a full disk)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".segkit-probe-", dir=folder)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    os.close(fd)
    os.unlink(probe)
    return None


def check_output(
    path: str | os.PathLike,
    *,
    inputs: InputPaths | None = None,
    kind: str = "file",
    flag: str = "--out",
    beside_inputs: bool = True,
) -> Path:
    """Refuse, before any work, an output that resolves to one of the command's inputs or that cannot be written.

    Args:
        path: the output: a file (``kind="file"``) or a folder the command writes files into (``kind="folder"``).
        inputs: ``{"--checkpoint": path, "--verify": folder, ...}``: what the command reads, by the flag (or
            argument name) that names it; a folder counts with everything under it, a value may be a list.
        flag: how the user named the output, for the message.
        beside_inputs: False: an output folder may not be a folder holding an input file either (``segkit infer``:
            its label maps would land among, and replace, the images it reads).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OutputPathError: the output is an input, lies inside an input folder, is a folder where a file is wanted
            (or a file where a folder is), has a file as an ancestor, or lies where nothing can be written.
    """
    if kind not in ("file", "folder"):
        raise ValueError(f"kind must be 'file' or 'folder', got {kind!r}")
    out = Path(path)
    target = _resolved(out)
    what = "file" if kind == "file" else "folder"
    for label, given, source in _inputs(inputs):
        if _same(target, source):
            raise OutputPathError(
                f"{flag} {out} is the {label} {given} this command reads: writing it would destroy that input; "
                f"name another {what}."
            )
        if source.is_dir() and target.is_relative_to(source):
            raise OutputPathError(
                f"{flag} {out} lies inside {label} {given}, which this command reads: its files would be replaced "
                f"or read back as inputs; write the {what} outside that folder."
            )
        if not beside_inputs and kind == "folder" and not source.is_dir() and _same(target, source.parent):
            raise OutputPathError(
                f"{flag} {out} holds the {label} {given} this command reads: the outputs would replace or mix with "
                "the inputs; name another folder."
            )
    if kind == "file" and out.is_dir():
        raise OutputPathError(f"{flag} {out} is an existing folder; name a file (e.g. {out / 'name'}...).")
    if kind == "folder" and out.exists() and not out.is_dir():
        raise OutputPathError(f"{flag} {out} is an existing file; {flag} takes a folder: name a folder.")
    folder = target if kind == "folder" else target.parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputPathError(
            f"{flag} {out} cannot be created: {existing} is a file, not a folder; choose a path in a folder."
        )
    why = _probe_writable(existing)
    if why is not None:
        raise OutputPathError(
            f"{flag} {out} cannot be written: {existing} is not writable ({why}); choose another place."
        )
    return out


@dataclass
class Staged:
    """The file a :func:`staged_output` block writes (``path``, inside the hidden stage folder); set ``keep`` False
    to leave the target alone after all (a verification that did not pass)."""

    path: Path
    keep: bool = True


@contextlib.contextmanager
def staged_output(path: str | os.PathLike) -> Iterator[Staged]:
    """Write ``path`` in a hidden folder beside it and move it into place only when the block succeeds.

    The block writes ``staged.path`` (``path``'s name inside the stage folder: runtimes that pick by extension
    open it as they will open ``path``) and checks it there. On success, with ``staged.keep`` left True, what was
    written in the stage folder moves into ``path``'s folder, companion files (an OpenVINO ``.bin``) first and the
    named file last, each in one rename; the stage folder is removed in every case. So ``path`` is left as it was
    (absent, or its previous content) by an exception, by ``staged.keep = False``, and by an interruption (SIGINT,
    or SIGTERM, which :func:`stop_on_sigterm` turns into an exception here).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        with stop_on_sigterm():
            staged = Staged(stage / path.name)
            yield staged
            if staged.keep:
                written = sorted(stage.iterdir(), key=lambda p: (p.name == path.name, p.name))
                mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask()
                for item in written:
                    if item.is_file():
                        os.chmod(item, mode)
                        os.replace(item, path.parent / item.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


class Terminated(SystemExit):
    """SIGTERM, raised in the main thread by :func:`stop_on_sigterm` so that ``finally`` blocks clean up; exits 143."""


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (exit status 143) instead of killing the process where it
    stands, so temporary files are removed on the way out (SIGINT already raises KeyboardInterrupt). Only in the
    main thread, and only where SIGTERM has its default action (an application's own handler is left alone)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) not in (
        signal.SIG_DFL,
        None,
    ):
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
