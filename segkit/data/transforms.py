"""Joint image/mask transforms (albumentations): the DeepLab training recipe and the eval preset.

Train (official DeepLab): random scale (discrete steps) -> pad to the crop size with the mean pixel
(image) and the ignore label (mask) -> random crop -> horizontal flip; images are resized bilinearly,
masks always with nearest neighbour. Eval: the whole image, normalised.

Both return a :class:`SegTransform`: ``t(image=HxWx3 uint8, mask=HxW uint8)`` ->
``{"image": FloatTensor[3, H, W], "mask": LongTensor[H, W]}``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2

from segkit.config import DataConfig


def scale_choices(scale_min: float, scale_max: float, scale_step: float) -> list[float] | None:
    """The discrete scales ``scale_min, scale_min + step, ..., scale_max``; None when ``scale_step`` is 0."""
    if scale_step <= 0 or scale_min == scale_max:
        return None if scale_min != scale_max else [scale_min]
    num = int(round((scale_max - scale_min) / scale_step)) + 1
    return [round(float(s), 6) for s in np.linspace(scale_min, scale_min + (num - 1) * scale_step, num)]


class RandomScale(A.DualTransform):
    """Resize by a random factor: image bilinear, mask nearest neighbour (pixel-centre aligned).

    Args:
        scale_min: smallest factor.
        scale_max: largest factor.
        scale_step: step between the allowed factors; 0 samples uniformly in [scale_min, scale_max].
    """

    def __init__(self, scale_min: float, scale_max: float, scale_step: float = 0.0, p: float = 1.0) -> None:
        super().__init__(p=p)
        if not 0 < scale_min <= scale_max:
            raise ValueError(f"need 0 < scale_min <= scale_max, got {scale_min}, {scale_max}.")
        self.scale_min, self.scale_max, self.scale_step = scale_min, scale_max, scale_step
        self.scales = scale_choices(scale_min, scale_max, scale_step)

    def get_params(self) -> dict[str, float]:
        if self.scales is None:
            return {"scale": self.py_random.uniform(self.scale_min, self.scale_max)}
        return {"scale": self.py_random.choice(self.scales)}

    @staticmethod
    def _size(shape: Sequence[int], scale: float) -> tuple[int, int]:
        return max(1, int(shape[1] * scale + 0.5)), max(1, int(shape[0] * scale + 0.5))  # (W, H) for cv2

    def apply(self, img: np.ndarray, scale: float = 1.0, **params: Any) -> np.ndarray:
        if scale == 1.0:
            return img
        return cv2.resize(img, self._size(img.shape, scale), interpolation=cv2.INTER_LINEAR)

    def apply_to_mask(self, mask: np.ndarray, scale: float = 1.0, **params: Any) -> np.ndarray:
        if scale == 1.0:
            return mask
        # INTER_NEAREST_EXACT samples pixel centres like INTER_LINEAR, so mask and image stay aligned
        return cv2.resize(mask, self._size(mask.shape, scale), interpolation=cv2.INTER_NEAREST_EXACT)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("scale_min", "scale_max", "scale_step")


class RangeResize(A.DualTransform):
    """Resize into ``[min_side, max_side]``, aspect kept (TF DeepLab's ``resize_to_range``): the shorter side to
    ``min_side`` unless the longer would pass ``max_side``, else the longer side to ``max_side``; image bilinear,
    mask nearest neighbour."""

    def __init__(self, min_side: int, max_side: int, p: float = 1.0) -> None:
        super().__init__(p=p)
        self.min_side, self.max_side = min_side, max_side

    def _size(self, shape: Sequence[int]) -> tuple[int, int]:
        h, w = shape[0], shape[1]
        scale = min(self.min_side / min(h, w), self.max_side / max(h, w))
        return max(1, int(w * scale + 0.5)), max(1, int(h * scale + 0.5))  # (W, H) for cv2

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        return cv2.resize(img, self._size(img.shape), interpolation=cv2.INTER_LINEAR)

    def apply_to_mask(self, mask: np.ndarray, **params: Any) -> np.ndarray:
        return cv2.resize(mask, self._size(mask.shape), interpolation=cv2.INTER_NEAREST_EXACT)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("min_side", "max_side")


class SegTransform:
    """An albumentations pipeline returning a float image tensor and a LongTensor mask.

    Each process (DataLoader worker) reseeds the pipeline from ``torch.initial_seed()`` on its first
    call, so workers draw different augmentations and a run seeded with ``torch.manual_seed`` repeats.
    """

    def __init__(self, compose: A.Compose) -> None:
        self.compose = compose
        self._seeded_pid: int | None = None

    def __call__(self, *, image: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
        if self._seeded_pid != os.getpid():
            self.compose.set_random_seed(torch.initial_seed() % 2**32)
            self._seeded_pid = os.getpid()
        out = self.compose(image=image, mask=mask)
        return {"image": out["image"], "mask": torch.as_tensor(out["mask"]).long()}

    def reseed(self, seed: int) -> None:
        """Seed the pipeline for the next call (per-sample seeding makes resumed runs exact)."""
        self.compose.set_random_seed(seed % 2**32)
        self._seeded_pid = os.getpid()

    def __repr__(self) -> str:
        return f"SegTransform({self.compose!r})"


def _check_mean_std(mean: Sequence[float], std: Sequence[float]) -> None:
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(f"mean and std need three RGB values on the 0..255 scale, got {mean}, {std}.")
    if any(s <= 0 for s in std):
        raise ValueError(f"std values must be positive, got {std}.")


def build_train_transform(data_cfg: DataConfig, mean: Sequence[float], std: Sequence[float]) -> SegTransform:
    """The DeepLab training recipe from ``data_cfg`` (crop_size, scale_*, hflip, color_jitter, ignore_index).

    Args:
        data_cfg: data section of the config.
        mean: RGB mean on the 0..255 scale (also the padding colour).
        std: RGB std on the 0..255 scale.
    """
    _check_mean_std(mean, std)
    crop = data_cfg.crop_size
    steps: list[A.BasicTransform] = []
    if data_cfg.color_jitter > 0:
        s = data_cfg.color_jitter
        steps.append(A.ColorJitter(brightness=s, contrast=s, saturation=s, hue=0.0, p=1.0))
    if data_cfg.resize_range is not None:  # TF DeepLab's min/max resize, before the random scale
        steps.append(RangeResize(*data_cfg.resize_range))
    steps += [
        RandomScale(data_cfg.scale_min, data_cfg.scale_max, data_cfg.scale_step),
        # normalised before padding, so padding with 0 is exactly the mean pixel
        A.Normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=1.0),
        A.PadIfNeeded(
            min_height=crop,
            min_width=crop,
            position="top_left",  # as the official code: the image stays top-left, padding bottom/right
            border_mode=cv2.BORDER_CONSTANT,
            fill=0.0,
            fill_mask=data_cfg.ignore_index,
        ),
        A.RandomCrop(height=crop, width=crop),
    ]
    if data_cfg.hflip:
        steps.append(A.HorizontalFlip(p=0.5))
    steps.append(ToTensorV2())
    return SegTransform(A.Compose(steps))


def build_eval_transform(mean: Sequence[float], std: Sequence[float]) -> SegTransform:
    """Whole image, normalised (inference code does any resizing or padding itself).

    Args:
        mean: RGB mean on the 0..255 scale.
        std: RGB std on the 0..255 scale.
    """
    _check_mean_std(mean, std)
    return SegTransform(A.Compose([A.Normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=1.0), ToTensorV2()]))
