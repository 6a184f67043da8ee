"""Models: backbones -> heads -> the Segmentor, and ``build_model(cfg)``.

``build_model`` (which reads configs) is imported lazily so that importing
``segkit.models.backbones`` never pulls in config or data code.
"""

from __future__ import annotations

from typing import Any

from segkit.models.backbones import count_parameters
from segkit.models.segmentor import Segmentor

__all__ = ["Segmentor", "build_backbone", "build_classifier", "build_model", "count_parameters"]


def __getattr__(name: str) -> Any:
    if name in ("build_backbone", "build_classifier", "build_model"):
        from segkit.models import build

        return getattr(build, name)
    raise AttributeError(f"module 'segkit.models' has no attribute {name!r}")
