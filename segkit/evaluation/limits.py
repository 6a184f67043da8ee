"""The limits of a prediction request (scales, pixel budget, static input sides), without importing torch: the
command-line parsers show and check them (:mod:`segkit.evaluation.predict` enforces them)."""

from __future__ import annotations

__all__ = ["MAX_PIXELS", "MAX_SCALE", "MAX_SIDE", "MF_SCALES", "MIN_SCALE", "MIN_SIDE"]

MF_SCALES: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)  # the paper's multi-scale inputs
MIN_SCALE, MAX_SCALE = 0.125, 4.0  # the range of accepted input scales
# Pixels (N x H x W) of one forward pass: 2048 x 2048 admits a Cityscapes image whole and VOC's MF at OS8
# (500 x 500 at scale 1.75, about 875 x 875); larger inputs need slide, resize_longer or a larger budget.
MAX_PIXELS = 2048 * 2048
MIN_SIDE, MAX_SIDE = 16, 8192  # the sides of a static input (export/quantize --input-size)
