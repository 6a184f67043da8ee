"""The error of the analysis commands (``segkit complexity``, ``summary``, ``tradeoff``)."""

from __future__ import annotations

from segkit.errors import SegkitError

__all__ = ["AnalysisError"]


class AnalysisError(SegkitError, ValueError):
    """An input of an analysis command that cannot work (a missing or malformed file, a size too small); the
    one-line message says what to pass instead."""
