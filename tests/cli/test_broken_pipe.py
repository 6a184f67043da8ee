"""``segkit zoo | head``: a reader that closes stdout early ends segkit quietly (exit 141, like a Unix tool killed by
SIGPIPE), without a BrokenPipeError traceback, also when the output is still buffered at exit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from segkit.cli import BROKEN_PIPE, main

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # spawns a process
def test_closed_pipe_exits_quietly():
    proc = subprocess.Popen(
        [sys.executable, "-m", "segkit", "zoo"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT
    )
    proc.stdout.close()  # the reader leaves before segkit writes (it is still importing)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=120) == BROKEN_PIPE == 141
    assert err == "", err  # no traceback, no "Exception ignored ... BrokenPipeError"


def test_broken_pipe_from_a_subcommand_is_exit_141(monkeypatch):
    """In process: a BrokenPipeError raised while a subcommand prints becomes exit 141."""
    import segkit.cli.zoo as zoo

    def broken(*args, **kwargs):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(zoo, "main", broken)
    assert main(["zoo"]) == BROKEN_PIPE
