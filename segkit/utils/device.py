"""``resolve_device``: one meaning of ``--device`` for every command (train, test, infer, export)."""

from __future__ import annotations

import torch

from segkit.errors import SegkitError


class DeviceError(SegkitError, ValueError):
    """A requested device does not exist or is not available; the message names the fix."""


def resolve_device(name: str | torch.device | None = None) -> torch.device:
    """The torch device called ``name``.

    Args:
        name: ``cpu``, ``cuda``, ``cuda:N``, a ``torch.device``, or None / ``"auto"`` for CUDA when
            available, else the CPU.

    Raises:
        DeviceError: ``name`` is not a device, is neither CPU nor CUDA, or CUDA (that index) is not
            available here.
    """
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise DeviceError(f"--device {name!r} is not a device ({exc}); use cpu, cuda or cuda:N.") from None
    if device.type not in ("cpu", "cuda"):
        raise DeviceError(f"--device {name}: segkit runs on cpu or cuda only; use --device cpu or --device cuda.")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {name}: CUDA is not available on this machine; use --device cpu.")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(
                f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                f"(cuda:0..cuda:{torch.cuda.device_count() - 1}); pick one of them."
            )
    return device


__all__ = ["DeviceError", "resolve_device"]
