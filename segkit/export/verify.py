"""Run an exported file next to its PyTorch model on real (or synthetic) images and compare."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from segkit.export.wrapper import fused_labels

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
    fusion: FusionCost | None = None  # an argmax-fusion file: its cost against the official semantics

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
class FusionCost:
    """Argmax fusion against the official semantics (argmax of the upsampled logits) on the verification images:
    the share of pixels given the same class and, where the images have ground truth, the mIoU of each."""

    agreement: float
    num_images: int
    source: str
    miou_fused: float | None = None
    miou_official: float | None = None

    def line(self) -> str:
        """``argmax fusion: 97.78% of pixels as the official semantics; mIoU 71.87 vs 74.78 on 8 real images of ...``."""
        if self.miou_fused is None or self.miou_official is None:
            miou = " (no ground truth: no mIoU)"
        else:
            miou = f"; mIoU {100 * self.miou_fused:.2f} vs {100 * self.miou_official:.2f}"
        return (
            f"argmax fusion: {100 * self.agreement:.2f}% of pixels as the official semantics{miou} on "
            f"{self.num_images} image(s) from {self.source}"
        )


@dataclass
class VerificationImages:
    """RGB uint8 images to verify on; ``where``: where they come from, in words; ``real``: photos (not synthetic);
    ``masks``: their ground-truth label maps (a VOC split with ``SegmentationClass``), else None."""

    images: list[np.ndarray]
    where: str
    real: bool
    masks: list[np.ndarray] | None = None


def find_verification_images(
    root: str | os.PathLike | None, *, limit: int = 8, split: str = "val", synthetic_size: int = 160
) -> VerificationImages:
    """Up to ``limit`` images: a VOC root's ``split`` (or any images under ``root``), else segkit's synthetic shapes."""
    from segkit.data.io import read_image, read_mask

    if root is not None and Path(root).exists():
        root = Path(root)
        voc = root / "VOCdevkit" / "VOC2012"
        split_file = voc / "ImageSets" / "Segmentation" / f"{split}.txt"
        if split_file.is_file():
            ids = [s.strip() for s in split_file.read_text().split() if s.strip()][:limit]
            paths, where = [voc / "JPEGImages" / f"{i}.jpg" for i in ids], f"the '{split}' split of {root}"
            mask_paths = [voc / "SegmentationClass" / f"{i}.png" for i in ids]
            if paths and all(m.is_file() for m in mask_paths):
                masks = [read_mask(m) for m in mask_paths]
                return VerificationImages([read_image(p) for p in paths], where, real=True, masks=masks)
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


def _fitted_extent(shape: tuple[int, int], size: tuple[int, int] | None) -> tuple[int, int]:
    """The image's ``(h, w)`` inside the file's input ``size`` after :func:`_fit` (its own shape for a dynamic file)."""
    h, w = shape
    if size is None:
        return h, w
    H, W = size
    scale = min(H / h, W / w)
    return max(1, min(H, int(h * scale + 0.5))), max(1, min(W, int(w * scale + 0.5)))


def _fit(image: np.ndarray, size: tuple[int, int] | None, mean: list[float], align_corners: bool) -> np.ndarray:
    """The image as the file gets it: resized (longer side) and padded with the mean pixel to ``size``, uint8.

    Both runs get exactly these pixels, so the comparison measures the file, not the rounding.
    """
    if size is None:
        return image
    h, w = image.shape[:2]
    H, W = size
    nh, nw = _fitted_extent((h, w), size)
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
    masks: list[np.ndarray] | None = None,
    argmax_fusion: bool | None = None,
) -> VerifyReport:
    """Run ``path`` in its runtime and ``model`` in PyTorch on the same pixels; compare logits and label maps.

    A static file sees every image resized and padded to its size; a dynamic one sees the images as
    they are. ``model`` is the PyTorch model the file was exported from (eval mode). ``progress``: a bar on stderr
    over the images (a few seconds each at 513 x 513).

    ``argmax_fusion`` (default: what the file's metadata says): the file computes the argmax fusion
    (:func:`~segkit.export.wrapper.fused_labels`), so its labels are compared with the fused PyTorch labels, and the
    report's ``fusion`` gives the fusion's cost against the official semantics: pixel agreement and, with ``masks``
    (the images' ground truth), the mIoU of both.
    """
    from tqdm import tqdm

    from segkit.evaluation.predict import normalize
    from segkit.runtimes.runner import load_exported

    runner = load_exported(path, runtime, threads=threads)
    if images is None:
        images, source = verification_images(None)
        masks = None
    if argmax_fusion is None:
        argmax_fusion = bool((runner.metadata or {}).get("argmax_fusion", False))
    cost = _FusionTally(model, masks) if argmax_fusion else None
    max_abs, lo, hi, agree, total, per_image = 0.0, float("inf"), float("-inf"), 0, 0, []
    model = model.eval()
    bar = tqdm(images, desc=f"verifying in {runner.runtime}", unit="img", leave=False, disable=not progress)
    for index, image in enumerate(bar):
        pixels = _fit(image, runner.input_size, runner.mean, runner.align_corners)
        x = normalize(pixels, runner.mean, runner.std)[None]
        with torch.inference_mode():
            ref = model(x)
            ref = (ref["out"] if isinstance(ref, dict) else ref).float()
            official = ref.argmax(1)
            ref_labels = fused_labels(model, x).long() if argmax_fusion else official
        got = runner(x)
        labels = got["labels"] if "labels" in got else got["out"].argmax(1)
        same = int((labels == ref_labels).sum())
        agree, total = agree + same, total + labels.numel()
        per_image.append(same / labels.numel())
        if cost is not None:
            cost.add(index, ref_labels, official, _fitted_extent(image.shape[:2], runner.input_size))
        if runner.output_kind == "logits":
            max_abs = max(max_abs, float((got["out"] - ref).abs().max()))
        lo, hi = min(lo, float(ref.min())), max(hi, float(ref.max()))
    logits = runner.output_kind == "logits"
    rel = max_abs / max(hi - lo, 1e-12) if logits else None
    return VerifyReport(
        max_abs if logits else None,
        rel,
        agree / max(total, 1),
        len(images),
        source,
        runner.runtime,
        per_image,
        fusion=cost.result(len(images), source) if cost is not None else None,
    )


class _FusionTally:
    """Accumulates the argmax fusion's agreement with the official labels and, given masks, both confusion matrices
    (each prediction cropped to the image's extent and resized to its mask with nearest neighbour, as evaluated)."""

    def __init__(self, model: nn.Module, masks: list[np.ndarray] | None) -> None:
        from segkit.evaluation.metrics import ConfusionMatrix

        cfg = getattr(model, "segkit_config", None)
        num_classes = cfg.model.num_classes if cfg is not None else None
        self.masks = masks if num_classes is not None else None
        self.same = self.total = 0
        self.confusion = {k: ConfusionMatrix(num_classes or 1) for k in ("fused", "official")}

    def add(self, index: int, fused: torch.Tensor, official: torch.Tensor, extent: tuple[int, int]) -> None:
        h, w = extent
        fused, official = fused[0, :h, :w], official[0, :h, :w]
        self.same += int((fused == official).sum())
        self.total += fused.numel()
        if self.masks is None:
            return
        target = torch.from_numpy(np.asarray(self.masks[index]).astype(np.int64))
        try:
            for name, labels in (("fused", fused), ("official", official)):
                resized = F.interpolate(labels[None, None].float(), size=target.shape, mode="nearest")[0, 0].long()
                self.confusion[name].update(resized, target)
        except ValueError:  # mask values outside the model's classes: agreement only
            self.masks = None

    def result(self, num_images: int, source: str) -> FusionCost:
        miou = {k: float(c.compute().miou) for k, c in self.confusion.items()} if self.masks is not None else {}
        return FusionCost(self.same / max(self.total, 1), num_images, source, miou.get("fused"), miou.get("official"))
