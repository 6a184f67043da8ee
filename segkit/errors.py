"""The one base of every error a user can cause, and the exit codes of the ``segkit`` command.

A :class:`SegkitError` is a mistake in what the user passed (a path, a flag, a file, a config): its message
says what was wrong, what is allowed and how to fix it, in one line. ``segkit`` prints it without a traceback
and exits with :data:`USER_ERROR`; any other exception is a fault in segkit or its environment and exits
with :data:`INTERNAL_ERROR`.
"""

from __future__ import annotations

__all__ = ["INTERNAL_ERROR", "USER_ERROR", "SegkitError", "SegkitWarning"]

USER_ERROR = 2
INTERNAL_ERROR = 1


class SegkitError(Exception):
    """An error in the user's input: printed as one line by the command line, which exits with ``exit_code``."""

    exit_code: int = USER_ERROR


class SegkitWarning(UserWarning):
    """A warning about the user's input (a skipped sample, a duplicate id) that does not stop the run."""
