"""segkit's cache folder and the model zoo's layout in it (no network here; :mod:`segkit.zoo` fills it).

``$SEGKIT_CACHE`` (else ``$XDG_CACHE_HOME/segkit``, else ``~/.cache/segkit``) holds ``zoo/files/`` (downloaded
source files), ``zoo/hf/`` (Hugging Face model folders) and ``zoo/NAME.pth`` (the converted checkpoints). The
layout lives this low so that ``train.init_weights: zoo:NAME`` can be read where checkpoints are read, while the
download and conversion stay in :mod:`segkit.zoo`, above the converters.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from segkit.errors import SegkitError

__all__ = ["CACHE_ENV", "ZOO_PREFIX", "ZooNameError", "cache_dir", "zoo_checkpoint_path", "zoo_dir"]

CACHE_ENV = "SEGKIT_CACHE"
ZOO_PREFIX = "zoo:"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ZooNameError(SegkitError, ValueError):
    """``zoo:NAME`` with a name that is not a plain model name."""


def cache_dir() -> Path:
    """segkit's cache folder: ``$SEGKIT_CACHE``, else ``$XDG_CACHE_HOME/segkit``, else ``~/.cache/segkit``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "segkit"


def zoo_dir() -> Path:
    """Where the model zoo keeps its downloads and converted checkpoints."""
    return cache_dir() / "zoo"


def zoo_checkpoint_path(name: str) -> Path:
    """The cached segkit checkpoint of zoo model ``name`` (it may not exist yet).

    Raises:
        ZooNameError: ``name`` is not a plain model name (letters, digits, ``_ . -``).
    """
    if not _NAME.match(name):
        raise ZooNameError(
            f"{name!r} is not a zoo model name (letters, digits, '_', '.', '-'); `segkit zoo` lists them."
        )
    return zoo_dir() / f"{name}.pth"
