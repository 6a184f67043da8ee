"""Keep other libraries' log chatter off segkit's output: TensorFlow/LiteRT's C++ (absl) lines and the Python loggers
of torch.export, NNCF and OpenVINO. What segkit prints, progress bars, warnings and errors pass through.

- :func:`quiet_native_logs` sets what the native libraries read when they load (``TF_CPP_MIN_LOG_LEVEL=2`` unless the
  user set it); :func:`quiet_logs` also raises the chatty Python loggers to ERROR while a block runs;
- :func:`filtered_stderr` drops the lines C++ code writes to file descriptor 2 that no setting silences
  (absl's "WARNING: All log messages before absl::InitializeLog() ...", absl/glog ``I0000 ...`` info lines, LiteRT's
  "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."); every other byte goes on to stderr as it comes;
- :func:`quiet_libraries` is both, around segkit's calls into LiteRT, litert-torch, NNCF and OpenVINO.
"""

from __future__ import annotations

import codecs
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

__all__ = ["NATIVE_NOISE", "NOISY_LOGGERS", "filtered_stderr", "quiet_libraries", "quiet_logs", "quiet_native_logs"]

# Lines native libraries print that say nothing to a segkit user (matched at the start of a line).
NATIVE_NOISE: tuple[re.Pattern[str], ...] = (
    re.compile(r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"),
    re.compile(r"I\d{4} [\d:. ]+\s*\d+ [\w./-]+:\d+\] "),  # absl/glog INFO lines (warnings and errors pass)
    re.compile(r"INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."),
    re.compile(r"INFO: Initialized TensorFlow Lite runtime\."),
    re.compile(r"\[cpuinfo_utils\.cpp:\d+\] "),  # ExecuTorch's runtime as XNNPACK starts
)
# Python loggers that report internals at INFO/WARNING while segkit converts or quantizes.
NOISY_LOGGERS = (
    "absl",
    "nncf",
    "openvino",
    "tensorflow",
    "torch._export",
    "torch.export",
    "torch.utils._pytree",
    "torch.utils.cpp_extension",
)


def quiet_native_logs() -> None:
    """``TF_CPP_MIN_LOG_LEVEL=2`` (TensorFlow/LiteRT C++ errors only) unless set; call before those libraries load."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextmanager
def quiet_logs(names: Sequence[str] = NOISY_LOGGERS, level: int = logging.ERROR) -> Iterator[None]:
    """Run the block with the Python loggers ``names`` at ``level`` at least (restored afterwards), absl-py's
    verbosity included."""
    quiet_native_logs()
    loggers = [logging.getLogger(name) for name in names]
    saved = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(level, logger.getEffectiveLevel()))
    absl = sys.modules.get("absl.logging")
    absl_saved = absl.get_verbosity() if absl is not None else None
    if absl is not None:
        absl.set_verbosity(absl.ERROR)
    try:
        yield
    finally:
        for logger, old in zip(loggers, saved):
            logger.setLevel(old)
        if absl is not None and absl_saved is not None:
            absl.set_verbosity(absl_saved)


# How a noise line starts: text from one of these on is held back until its line is complete.
_NOISE_START = re.compile(r"WARNING: All log|INFO: |I\d{4} ")
_START_TOKENS = ("WARNING: All log", "INFO: ")


def _drop_noise(line: str, noise: Sequence[re.Pattern[str]]) -> str:
    """``line`` (ending in a newline) without the noise in it: from where a noise line starts (on its own or after a
    progress bar's text without a newline) to the end of the line."""
    starts = [m.start() for pattern in noise if (m := pattern.search(line))]
    return line[: min(starts)] if starts else line


def _hold_from(partial: str) -> int:
    """Where the part of an incomplete line that may be the start of a noise line begins (``len`` when none)."""
    if m := _NOISE_START.search(partial):
        return m.start()
    for k in range(min(len(partial), len(_START_TOKENS[0])), 0, -1):
        tail = partial[-k:]
        if any(token.startswith(tail) for token in _START_TOKENS) or re.fullmatch(r"I\d{0,4}", tail):
            return len(partial) - k
    return len(partial)


def _split(pending: str, noise: Sequence[re.Pattern[str]]) -> tuple[str, str]:
    """``(to write now, to hold)`` of the text read so far: complete lines without their noise, and the incomplete
    last line up to where a noise line might be starting."""
    *lines, partial = pending.split("\n")
    out = "".join(_drop_noise(line + "\n", noise) for line in lines)
    cut = _hold_from(partial)
    return out + partial[:cut], partial[cut:]


@contextmanager
def filtered_stderr(noise: Sequence[re.Pattern[str]] = NATIVE_NOISE, poll: float = 0.05) -> Iterator[None]:
    """Run the block with file descriptor 2 (what C++ code writes to, and Python's ``sys.stderr``) going through a
    filter that drops the lines ``noise`` matches; the rest reaches the real stderr within ``poll`` seconds of being
    written (progress bars included). Does nothing where fd 2 cannot be redirected.

    fd 2 is pointed at an unlinked temporary file, which a thread reads on (never a pipe: a library writing much while
    it holds the GIL would block on a full pipe that the thread, needing the GIL, could not drain).
    """
    try:
        sys.stderr.flush()
        target = os.dup(2)
    except (OSError, AttributeError, ValueError):
        yield
        return
    if not hasattr(os, "pread"):  # pragma: no cover - Windows
        os.close(target)
        yield
        return
    buffer = tempfile.TemporaryFile()
    os.dup2(buffer.fileno(), 2)
    stop = threading.Event()

    def forward() -> None:
        offset, pending = 0, ""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while True:
            done = stop.wait(poll)  # read once more after the block ended
            while chunk := os.pread(buffer.fileno(), 1 << 20, offset):
                offset += len(chunk)
                out, pending = _split(pending + decoder.decode(chunk), noise)
                if out:
                    os.write(target, out.encode())
            if done:
                break
        rest = _drop_noise(pending + "\n", noise).rstrip("\n")  # the block's last, incomplete line
        if rest:
            os.write(target, rest.encode())

    reader = threading.Thread(target=forward, name="segkit-stderr-filter", daemon=True)
    reader.start()
    try:
        yield
    finally:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(target, 2)
        stop.set()
        reader.join()
        os.close(target)
        buffer.close()


@contextmanager
def quiet_libraries() -> Iterator[None]:
    """:func:`quiet_logs` and :func:`filtered_stderr` for the block: what segkit calls into LiteRT, litert-torch,
    NNCF or OpenVINO with (imports included: some print at load time)."""
    with quiet_logs(), filtered_stderr():
        yield
