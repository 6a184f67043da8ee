"""Run an exported file next to its PyTorch model on real (or synthetic) images and compare."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

AGREE_MIN = 0.999
REL_MAX = 1e-3
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass
class VerifyReport:
    """max |logit diff| (None for a labels-output file), that relative to the PyTorch logit range, pixel agreement."""

    max_abs: float | None
    rel: float | None
    agreement: float
    num_images: int
    source: str
    runtime: str
    per_image: list[float] = field(default_factory=list)

    def passed(self, agree_min: float = AGREE_MIN, rel_max: float = REL_MAX) -> bool:
        return self.agreement >= agree_min and (self.rel is None or self.rel <= rel_max)

    def line(self) -> str:
        diff = (
            "labels output: no logits to compare"
            if self.max_abs is None
            else f"max |logit diff| {self.max_abs:.3g} ({self.rel:.2e} of the logit range)"
        )
        return (
            f"verified in {self.runtime} on {self.num_images} image(s) from {self.source}: {diff}, "
            f"pixel agreement {100 * self.agreement:.3f}%"
        )


@dataclass
class VerificationImages:
    """RGB uint8 images to verify on; ``where``: where they come from, in words; ``real``: photos (not synthetic)."""

    images: list[np.ndarray]
    where: str
    real: bool


def find_verification_images(
    root: str | os.PathLike | None, *, limit: int = 8, split: str = "val", synthetic_size: int = 160
) -> VerificationImages:
    """Up to ``limit`` images: a VOC root's ``split`` (or any images under ``root``), else segkit's synthetic shapes."""
    from segkit.data.io import read_image

    if root is not None and Path(root).exists():
        root = Path(root)
        voc = root / "VOCdevkit" / "VOC2012"
        split_file = voc / "ImageSets" / "Segmentation" / f"{split}.txt"
        if split_file.is_file():
            ids = [s.strip() for s in split_file.read_text().split() if s.strip()][:limit]
            paths, where = [voc / "JPEGImages" / f"{i}.jpg" for i in ids], f"the '{split}' split of {root}"
        else:
            paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
            where = f"the image files under {root}"
        if paths:
            return VerificationImages([read_image(p) for p in paths], where, real=True)
    from segkit.data.synthetic import render_sample

    rng = np.random.default_rng(0)
    images = [render_sample(rng, synthetic_size)[0] for _ in range(min(limit, 4))]
    return VerificationImages(images, f"segkit's synthetic shapes ({synthetic_size} px)", real=False)


def verification_images(
    root: str | os.PathLike | None, *, limit: int = 8, split: str = "val", synthetic_size: int = 160
) -> tuple[list[np.ndarray], str]:
    """``(images, where)`` of :func:`find_verification_images`, ``where`` saying real or synthetic."""
    found = find_verification_images(root, limit=limit, split=split, synthetic_size=synthetic_size)
    return found.images, f"{found.where} ({'real' if found.real else 'synthetic'} images)"


def _fit(image: np.ndarray, size: tuple[int, int] | None, mean: list[float], align_corners: bool) -> np.ndarray:
    """The image as the file gets it: resized (longer side) and padded with the mean pixel to ``size``, uint8.

    Both runs get exactly these pixels, so the comparison measures the file, not the rounding.
    """
    if size is None:
        return image
    h, w = image.shape[:2]
    H, W = size
    scale = min(H / h, W / w)
    nh, nw = max(1, min(H, int(h * scale + 0.5))), max(1, min(W, int(w * scale + 0.5)))
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float()
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=align_corners)
    out = torch.tensor(mean, dtype=torch.float32).round().view(1, 3, 1, 1).expand(1, 3, H, W).clone()
    out[..., :nh, :nw] = x
    return out.round().clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()


def verify(
    model: nn.Module,
    path: str | os.PathLike,
    images: list[np.ndarray] | None = None,
    *,
    runtime: str | None = None,
    source: str = "the given images",
    threads: int | None = None,
    progress: bool = True,
) -> VerifyReport:
    """Run ``path`` in its runtime and ``model`` in PyTorch on the same pixels; compare logits and label maps.

    A static file sees every image resized and padded to its size; a dynamic one sees the images as
    they are. ``model`` is the PyTorch model the file was exported from (eval mode). ``progress``: a bar on stderr
    over the images (a few seconds each at 513 x 513).
    """
    from tqdm import tqdm

    from segkit.evaluation.predict import normalize
    from segkit.runtimes.runner import load_exported

    runner = load_exported(path, runtime, threads=threads)
    if images is None:
        images, source = verification_images(None)
    max_abs, lo, hi, agree, total, per_image = 0.0, float("inf"), float("-inf"), 0, 0, []
    model = model.eval()
    bar = tqdm(images, desc=f"verifying in {runner.runtime}", unit="img", leave=False, disable=not progress)
    for image in bar:
        pixels = _fit(image, runner.input_size, runner.mean, runner.align_corners)
        x = normalize(pixels, runner.mean, runner.std)[None]
        with torch.inference_mode():
            ref = model(x)
            ref = (ref["out"] if isinstance(ref, dict) else ref).float()
        got = runner(x)
        ref_labels = ref.argmax(1)
        labels = got["labels"] if "labels" in got else got["out"].argmax(1)
        same = int((labels == ref_labels).sum())
        agree, total = agree + same, total + labels.numel()
        per_image.append(same / labels.numel())
        if runner.output_kind == "logits":
            max_abs = max(max_abs, float((got["out"] - ref).abs().max()))
        lo, hi = min(lo, float(ref.min())), max(hi, float(ref.max()))
    logits = runner.output_kind == "logits"
    rel = max_abs / max(hi - lo, 1e-12) if logits else None
    return VerifyReport(
        max_abs if logits else None, rel, agree / max(total, 1), len(images), source, runner.runtime, per_image
    )
