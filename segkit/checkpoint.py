"""segkit checkpoints: one dict holding the model config, preprocessing, class names and weights.

Every checkpoint is self-describing, so evaluation and inference need no ``--config``::

    {"format": "segkit", "version": 1, "kind": "segmentor" | "classifier",
     "config": Config.to_dict(), "class_names": [...], "palette": [[r, g, b], ...] | None,
     "model": state_dict, ...training state (optimizer, scheduler, iteration, RNG, ...)}

Written atomically; read with ``torch.load(weights_only=True)`` so a checkpoint never runs code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segkit.config import Config, ConfigError, config_from_dict
from segkit.utils.io import atomic_torch_save

FORMAT = "segkit"
VERSION = 1


class CheckpointError(RuntimeError):
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


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a segkit checkpoint (``weights_only=True``) and check its format."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint not found: {path}. Pass the path of a .pth written by segkit "
                              "(tools/train.py work dir, or tools/convert_tflite.py).")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated file, not a torch file, or pickled code
        raise CheckpointError(
            f"Cannot read checkpoint {path}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. "
            "segkit loads checkpoints with weights_only=True; the file may be corrupt or contain pickled objects."
        ) from exc
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
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(state)) if own[k].shape != state[k].shape]
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
            diffs = [f"model.{k}: checkpoint {theirs[k]!r} vs config {ours[k]!r}"
                     for k in ours if k in theirs and theirs[k] != ours[k]
                     and k not in ("bn_momentum", "head_bn_momentum", "frozen_stages", "norm_eval", "dropout")]
            if diffs:
                hint = " Differing model settings: " + "; ".join(diffs) + "."
        raise CheckpointError(
            f"The checkpoint was made for another architecture ({problems}).{hint} Use a config that matches "
            "the checkpoint (or --set the differing keys), or start from the checkpoint's own config."
        )
    model.load_state_dict(state, strict=True)


def load_model(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> nn.Module:
    """Build the model a segkit checkpoint describes, load its weights, and return it in eval mode.

    A ``"segmentor"`` checkpoint (training, or a converted DeepLab model) gives a
    :class:`~segkit.models.Segmentor`; a ``"classifier"`` one (a converted ImageNet model) a
    :class:`~segkit.models.classifier.MobileNetV2Classifier`. The returned module carries
    ``segkit_config`` (the :class:`Config`) and ``class_names``. torchvision's ImageNet
    ``mobilenet_v2`` files initialise a backbone instead: ``train.init_weights`` or
    :func:`segkit.models.backbones.load_torchvision_weights`.
    """
    ckpt = load_checkpoint(path)
    kind = ckpt.get("kind", "segmentor")
    if kind == "classifier":
        from segkit.models.classifier import load_classifier

        return load_classifier(path, device=device)
    if kind != "segmentor":
        raise CheckpointError(f"{path} holds a checkpoint of unknown kind {kind!r}; segkit writes 'segmentor' "
                              "and 'classifier' checkpoints.")
    from segkit.models import build_model  # models import config only; keep this module light

    cfg = checkpoint_config(ckpt)
    model = build_model(cfg)
    load_weights(model, ckpt, cfg)
    model.segkit_config = cfg
    model.class_names = ckpt.get("class_names")
    model.palette = ckpt.get("palette")
    return model.to(device).eval()
