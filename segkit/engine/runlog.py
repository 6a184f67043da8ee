"""Run logs: TensorBoard scalars/images, a machine-readable ``metrics.jsonl``, and PNG curves."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from segkit.utils.io import atomic_path, atomic_write_text


class RunLogger:
    """Writes every record to ``metrics.jsonl`` (one JSON object a line) and to TensorBoard.

    Only the main process should create one with ``enabled=True``; others get a no-op logger.

    Args:
        work_dir: folder of ``metrics.jsonl`` and ``tensorboard/``.
        enabled: False for a no-op logger (non-main processes).
        tensorboard: also write TensorBoard events.
        resume_from: None starts a fresh ``metrics.jsonl`` (an old one is replaced); an iteration
            keeps the records up to it and drops later ones (logged after the checkpoint a resumed
            run continues from, so they would otherwise appear twice).
    """

    def __init__(
        self,
        work_dir: str | os.PathLike,
        *,
        enabled: bool = True,
        tensorboard: bool = True,
        resume_from: int | None = None,
    ) -> None:
        self.enabled = enabled
        self.jsonl_path = Path(work_dir) / "metrics.jsonl"
        self._writer = None
        if not enabled:
            return
        self.jsonl_path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if resume_from is not None and self.jsonl_path.exists():
            kept = [r for r in read_jsonl(self.jsonl_path) if r.get("iter", 0) <= resume_from]
        atomic_write_text(self.jsonl_path, "".join(json.dumps(r, default=_jsonable) + "\n" for r in kept))
        self._jsonl = open(self.jsonl_path, "a", buffering=1)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(Path(work_dir) / "tensorboard"))

    def log(self, kind: str, iteration: int, values: dict[str, Any]) -> None:
        """Record ``values`` of one ``kind`` ("train", "val") at ``iteration``."""
        if not self.enabled:
            return
        record = {"kind": kind, "iter": iteration, **values}
        self._jsonl.write(json.dumps(record, default=_jsonable) + "\n")
        if self._writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    self._writer.add_scalar(f"{kind}/{key}", value, iteration)
                elif isinstance(value, dict):
                    for sub, v in value.items():
                        if isinstance(v, (int, float)) and v is not None and math.isfinite(v):
                            self._writer.add_scalar(f"{kind}/{key}/{sub}", v, iteration)

    def image(self, tag: str, iteration: int, image_hwc: np.ndarray) -> None:
        if self.enabled and self._writer is not None:
            self._writer.add_image(tag, image_hwc, iteration, dataformats="HWC")

    def close(self) -> None:
        if self.enabled:
            self._jsonl.close()
            if self._writer is not None:
                self._writer.close()


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Records of a ``metrics.jsonl``; a half-written last line (a killed run) is skipped."""
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def plot_curves(records: Iterable[dict[str, Any]], out_png: str | os.PathLike) -> Path:
    """Draw loss, learning rate and validation mIoU against the iteration into one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = list(records)
    train = [r for r in records if r.get("kind") == "train"]
    val = [r for r in records if r.get("kind") == "val" and r.get("miou") is not None]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].plot([r["iter"] for r in train], [r["loss"] for r in train], label="total")
    if any("loss_aux" in r for r in train):
        axes[0].plot(
            [r["iter"] for r in train if "loss_aux" in r],
            [r["loss_aux"] for r in train if "loss_aux" in r],
            label="aux",
            alpha=0.7,
        )
    axes[0].set(title="training loss", xlabel="iteration", ylabel="loss (train.loss)")
    axes[0].legend()
    axes[1].plot([r["iter"] for r in train], [r["lr"] for r in train])
    axes[1].set(title="learning rate (poly)", xlabel="iteration")
    axes[2].plot([r["iter"] for r in val], [r["miou"] for r in val], marker="o")
    axes[2].set(title="validation mIoU", xlabel="iteration", ylim=(0, 1))
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return out_png
