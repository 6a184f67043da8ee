"""Checkpoints the tests derive from the tiny one."""

from __future__ import annotations

from pathlib import Path

import torch


def decisive_checkpoint(tiny_ckpt: Path, path: Path) -> Path:
    """The tiny model with a large random classifier (x50, seed 0), saved at ``path``: its label maps hold several
    classes (the random model otherwise predicts one class everywhere) with logits far apart (int8 keeps them), so an
    argmax fusion differs from the official labels on some pixels."""
    from segkit.checkpoint.format import save_checkpoint
    from segkit.checkpoint.load import load_model

    model = load_model(tiny_ckpt)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        weight = model.head.classifier.weight
        weight.copy_(torch.randn(weight.shape, generator=generator) * 50)
        model.head.classifier.bias.zero_()
    save_checkpoint(path, model, model.segkit_config)
    return path
