"""segkit checkpoints, the file format: one dict holding the model config, preprocessing, class names and weights.

Every checkpoint is self-describing, so evaluation and inference need no ``--config``::

    {"format": "segkit", "version": 1, "kind": "segmentor" | "classifier",
     "config": Config.to_dict(), "class_names": [...], "palette": [[r, g, b], ...] | None,
     "model": state_dict, ...training state (optimizer, scheduler, iteration, RNG, ...)}

Written atomically; read with ``torch.load(weights_only=True)`` so a file never runs code. Building a
model from a file is :mod:`segkit.checkpoint.load`'s job.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segkit.config import Config, ConfigError, config_from_dict
from segkit.errors import SegkitError
from segkit.utils.io import atomic_torch_save

FORMAT = "segkit"
VERSION = 1
ACCEPTED = (
    "segkit reads files written by torch.save holding tensors only: segkit checkpoints (segkit train, "
    "segkit convert), bare state dicts {name: tensor} and torchvision mobilenet_v2 ImageNet files"
)

__all__ = [
    "ACCEPTED",
    "CheckpointError",
    "checkpoint_config",
    "describe_mismatch",
    "load_checkpoint",
    "load_weights",
    "read_torch_file",
    "save_checkpoint",
]


class CheckpointError(SegkitError, RuntimeError):
    """A checkpoint is missing, unreadable, or does not fit the model it is loaded into."""


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    cfg: Config,
    *,
    class_names: list[str] | None = None,
    palette: list[list[int]] | None = None,
    kind: str = "segmentor",
    **extra: Any,
) -> None:
    """Write a checkpoint atomically (temporary file + rename). ``extra`` holds training state."""
    model = getattr(model, "module", model)  # unwrap DDP
    state = {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind,
        "config": cfg.to_dict(),
        "class_names": list(class_names) if class_names is not None else None,
        "palette": [list(map(int, c)) for c in palette] if palette is not None else None,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **extra,
    }
    atomic_torch_save(state, path)


def _what_went_wrong(path: Path, exc: BaseException) -> str:
    """What an unreadable file is, in words (PyTorch's own advice to retry with weights_only=False is dropped)."""
    text = str(exc)
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        return "the file is empty"
    pickled = re.search(r"[Uu]nsupported [Gg][Ll][Oo][Bb][Aa][Ll]:? (?:GLOBAL )?([\w.]+)", text)
    if pickled:
        return (
            f"it is a pickle holding Python objects ({pickled.group(1)}), not only tensors; it was refused "
            "unread (weights_only=True runs no code from a file)"
        )
    if head == b"PK\x03\x04":
        return "it is a torch.save zip archive that is truncated or damaged (copy or download it again)"
    if head[:1] == b"\x80" and not text.startswith("Weights only load failed"):
        return "it is a legacy torch.save file that is truncated or damaged (copy or download it again)"
    return f"it is not a PyTorch file (it starts with bytes {head.hex(' ')}; torch.save files start with 50 4b 03 04)"


def read_torch_file(path: str | os.PathLike, *, what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with a one-line error saying what a bad file is.

    Args:
        path: the file.
        what: what the file is for, named in the errors (e.g. ``"train.init_weights file"``).

    Raises:
        CheckpointError: the file is missing, empty, truncated, not a PyTorch file, or pickles objects.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"{what[:1].upper()}{what[1:]} not found: {path}. Pass the path of a .pth file ({ACCEPTED})."
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, random bytes, or pickled code: nothing ran
        raise CheckpointError(f"Cannot read {what} {path}: {_what_went_wrong(path, exc)}. {ACCEPTED}.") from exc


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a segkit checkpoint (``weights_only=True``) and check its format."""
    ckpt = read_torch_file(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a segkit checkpoint (no 'format': 'segkit' entry). For a bare state dict, pass "
            "--config NAME so segkit knows the architecture; for torchvision ImageNet MobileNetV2 weights use "
            "train.init_weights."
        )
    return ckpt


def checkpoint_config(ckpt: dict[str, Any]) -> Config:
    """The validated config stored in a checkpoint."""
    try:
        return config_from_dict(ckpt["config"])
    except (ConfigError, KeyError) as exc:
        raise CheckpointError(f"The checkpoint's config is invalid for this segkit version: {exc}") from exc


def describe_mismatch(model: nn.Module, state: dict[str, torch.Tensor]) -> str:
    """A readable list of missing / unexpected / mis-shaped keys between a model and a state dict."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if own[k].shape != state[k].shape
    ]
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
        if keys:
            parts.append(f"{len(keys)} {label}: {', '.join(keys[:6])}{' ...' if len(keys) > 6 else ''}")
    return "; ".join(parts)


def load_weights(model: nn.Module, ckpt: dict[str, Any], cfg: Config | None = None) -> None:
    """Load a checkpoint's weights strictly, explaining an architecture mismatch.

    Args:
        model: the model to fill.
        ckpt: a checkpoint from :func:`load_checkpoint`, or a bare state dict.
        cfg: the config ``model`` was built from, to name differing model settings in the error.
    """
    state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else ckpt
    problems = describe_mismatch(model, state)
    if problems:
        hint = ""
        if cfg is not None and isinstance(ckpt.get("config"), dict):
            theirs = ckpt["config"].get("model", {})
            ours = cfg.to_dict()["model"]
            diffs = [
                f"model.{k}: checkpoint {theirs[k]!r} vs config {ours[k]!r}"
                for k in ours
                if k in theirs
                and theirs[k] != ours[k]
                and k not in ("bn_momentum", "head_bn_momentum", "frozen_stages", "norm_eval", "dropout")
            ]
            if diffs:
                hint = " Differing model settings: " + "; ".join(diffs) + "."
        raise CheckpointError(
            f"The checkpoint was made for another architecture ({problems}).{hint} Use a config that matches "
            "the checkpoint (or --set the differing keys), or start from the checkpoint's own config."
        )
    model.load_state_dict(state, strict=True)
