"""Common base of every segmentation data set: validation, the one bad-sample mechanism, transforms.

A subclass supplies the sample ids and where each image and mask lives; this class reads the
image (RGB uint8) and the mask (palette or greyscale PNG -> uint8 label indices, never converted
to RGB) with :mod:`segkit.data.io`, checks them, and applies the joint transform. Each id is used
once: repeats in a split list are dropped with a :class:`DuplicateIdWarning`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from segkit.data.classes import VOC_PALETTE
from segkit.data.io import (
    DatasetError,
    check_ignore_index,
    check_labels,
    duplicate_ids,
    read_image,
    read_mask,
    read_split_file,
)
from segkit.errors import SegkitWarning

__all__ = [  # the readers are re-exported for code that imported them from here
    "BAD_REASON",
    "BadSampleWarning",
    "DatasetError",
    "DuplicateIdWarning",
    "SegmentationDataset",
    "check_ignore_index",
    "check_labels",
    "collate_drop_bad",
    "format_bad_samples",
    "is_bad_sample",
    "read_image",
    "read_mask",
    "read_split_file",
]

_SKIP_HINT = "set data.skip_bad_samples=true to skip such samples with a warning"
_SHOWN = 5  # files named in a message about many samples

SkipMode = Literal["replace", "drop"]
SKIP_MODES: tuple[str, ...] = ("replace", "drop")
BAD_REASON = "bad_reason"  # key of the placeholder a 'drop' data set returns for a bad sample


class BadSampleWarning(SegkitWarning):
    """A sample was skipped because ``skip_bad_samples`` is on."""


class DuplicateIdWarning(SegkitWarning):
    """A split list names an id more than once; the data set uses it once."""


def is_bad_sample(sample: Any) -> bool:
    """Whether ``sample`` is the placeholder a ``skip_mode='drop'`` data set returns for a bad sample."""
    return isinstance(sample, dict) and BAD_REASON in sample


def collate_drop_bad(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """DataLoader ``collate_fn`` for ``skip_mode='drop'`` data sets: leave bad samples out of the batch.

    Returns:
        The good samples collated as usual (no ``image``/``mask`` keys when every sample was bad),
        plus ``"bad": [(id, reason), ...]`` for the samples left out.
    """
    good = [s for s in batch if not is_bad_sample(s)]
    out: dict[str, Any] = dict(default_collate(good)) if good else {}
    out["bad"] = [(str(s["id"]), str(s[BAD_REASON])) for s in batch if is_bad_sample(s)]
    return out


def format_bad_samples(source: str, bad_samples: Iterable[tuple[str, str]]) -> str:
    """Report of skipped samples, each id once with its first reason ('' when none)."""
    unique: dict[str, str] = {}
    for sample_id, reason in bad_samples:
        unique.setdefault(sample_id, reason)
    if not unique:
        return ""
    lines = [f"{source}: {len(unique)} bad samples skipped:"]
    lines += [f"  {sid}: {reason}" for sid, reason in unique.items()]
    return "\n".join(lines)


class SegmentationDataset(Dataset):
    """Base class: subclasses pass the ids and implement :meth:`image_path` and :meth:`mask_path`.

    ``__getitem__`` returns ``{"image": FloatTensor[3, H, W] (normalised by the transform),
    "mask": LongTensor[H, W], "id": str}``. Without a transform the image is a uint8 tensor.

    Each id is used once: repeats in ``ids`` are dropped (kept in ``duplicate_ids``) with a
    :class:`DuplicateIdWarning`, so no image is trained on or scored twice per pass.

    With ``skip_bad_samples`` samples with missing files are dropped when the data set is built, and a
    sample that fails to load is reported once (``BadSampleWarning``) and recorded in ``bad_samples``
    as ``(id, reason)``. What ``__getitem__`` then returns depends on ``skip_mode``:

    - ``"replace"`` (training): the next good sample, so every batch stays full.
    - ``"drop"`` (evaluation): the placeholder ``{"id": id, "bad_reason": reason}``, which
      :func:`collate_drop_bad` and :func:`segkit.evaluation.evaluator.evaluate` leave out, so no image is counted
      twice and the reasons reach the main process even from DataLoader workers.

    With DataLoader workers each worker keeps its own ``bad_samples`` list; the warnings are printed
    either way.

    Args:
        ids: sample ids, in order.
        class_names: one name per class, class 0 first.
        palette: uint8 [K, 3] colours (default: the VOC colour map).
        transform: callable ``transform(image=HxWx3 uint8, mask=HxW uint8) -> {"image", "mask"}``.
        ignore_index: label of pixels excluded from training and evaluation (``num_classes..255``).
        skip_bad_samples: warn and skip bad samples instead of raising DatasetError.
        skip_mode: ``"replace"`` or ``"drop"`` a skipped sample (see above).
        source: what the ids come from (a split list path), used in error messages.

    Raises:
        DatasetError: no ids, every listed sample missing, or an ``ignore_index`` that is a class.
    """

    def __init__(
        self,
        ids: Sequence[str],
        *,
        class_names: Sequence[str],
        palette: np.ndarray | None = None,
        transform: Callable[..., dict[str, Any]] | None = None,
        ignore_index: int = 255,
        skip_bad_samples: bool = False,
        skip_mode: SkipMode = "replace",
        source: str = "",
    ) -> None:
        self.class_names: list[str] = list(class_names)
        self.num_classes: int = len(self.class_names)
        self.source = source or type(self).__name__
        if palette is None:
            palette = VOC_PALETTE[: self.num_classes]
        self.palette: np.ndarray = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
        if len(self.palette) < self.num_classes:
            raise DatasetError(
                f"{self.source}: the palette has {len(self.palette)} colours for {self.num_classes} classes; "
                "give one colour per class."
            )
        check_ignore_index(ignore_index, self.class_names, self.source)
        if skip_mode not in SKIP_MODES:
            raise ValueError(f"skip_mode must be one of {', '.join(SKIP_MODES)}, got {skip_mode!r}.")
        self.ignore_index = ignore_index
        self.transform = transform
        self.skip_bad_samples = skip_bad_samples
        self.skip_mode: SkipMode = skip_mode
        self.bad_samples: list[tuple[str, str]] = []
        self._bad_reasons: dict[int, str] = {}  # index -> why it failed (this process)
        if not ids:
            raise DatasetError(
                f"{self.source}: the split lists no samples; it must hold one sample id per line.",
                problem="missing split list",
            )
        self.duplicate_ids: list[str] = duplicate_ids(ids)  # listed more than once; used once
        self.ids: list[str] = list(dict.fromkeys(ids))
        self.num_listed = len(self.ids)  # distinct ids listed, before samples with missing files are dropped
        self.build_problems: list[DatasetError] = []  # why samples were dropped when the data set was built
        if self.duplicate_ids:
            self._warn_duplicates(len(ids))
        self._drop_missing_files()

    # -- to implement -------------------------------------------------------------------------
    def image_path(self, sample_id: str) -> Path:
        """Path of the image of ``sample_id``."""
        raise NotImplementedError

    def mask_path(self, sample_id: str) -> Path:
        """Path of the mask of ``sample_id``."""
        raise NotImplementedError

    # -- reading -------------------------------------------------------------------------------
    def load_mask(self, sample_id: str) -> np.ndarray:
        """uint8 label mask [H, W] of ``sample_id`` (override for non-PNG masks)."""
        return read_mask(self.mask_path(sample_id))

    def load_sample(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Read and check sample ``index``: RGB uint8 image [H, W, 3] and uint8 mask [H, W].

        Raises:
            DatasetError: unreadable files, mask size != image size, or labels out of range.
        """
        image, mask, problems = self._read_checked(index)
        if problems:
            raise problems[0]
        return image, mask  # type: ignore[return-value]

    def sample_problems(self, index: int) -> list[DatasetError]:
        """Every problem of sample ``index`` (image and mask are read independently); [] when it loads."""
        return self._read_checked(index)[2]

    def _read_checked(self, index: int) -> tuple[np.ndarray | None, np.ndarray | None, list[DatasetError]]:
        sample_id = self.ids[index]
        problems: list[DatasetError] = []
        image = mask = None
        try:
            image = read_image(self.image_path(sample_id))
        except DatasetError as exc:
            problems.append(exc)
        try:
            mask = self.load_mask(sample_id)
        except DatasetError as exc:
            problems.append(exc)
        if mask is not None:
            if image is not None and mask.shape != image.shape[:2]:
                problems.append(
                    DatasetError(
                        f"Mask {self.mask_path(sample_id)} is {mask.shape[1]}x{mask.shape[0]} (WxH) but image "
                        f"{self.image_path(sample_id)} is {image.shape[1]}x{image.shape[0]}; a mask must have "
                        "its image's size. Re-export the mask, or remove the id from the split list.",
                        problem="size mismatch",
                    )
                )
            try:
                check_labels(mask, self.num_classes, self.ignore_index, self.mask_path(sample_id))
            except DatasetError as exc:
                problems.append(exc)
        return image, mask, problems

    def missing_file(self, sample_id: str) -> DatasetError | None:
        """The error for ``sample_id``'s missing image (or else mask) file; None when both exist."""
        for kind, path in (("image", self.image_path(sample_id)), ("mask", self.mask_path(sample_id))):
            if not path.is_file():
                return DatasetError(f"missing {kind} file {path}", problem=f"missing {kind}")
        return None

    def _drop_missing_files(self) -> None:
        """Fail fast (or drop with a warning) on ids whose image or mask file does not exist."""
        missing = [(i, err) for i, sid in enumerate(self.ids) if (err := self.missing_file(sid)) is not None]
        if not missing:
            return
        shown = "; ".join(str(err) for _, err in missing[:_SHOWN])
        more = f" (and {len(missing) - _SHOWN} more)" if len(missing) > _SHOWN else ""
        if not self.skip_bad_samples:
            raise DatasetError(
                f"{self.source}: {len(missing)} of {len(self.ids)} samples have missing files: {shown}{more}. "
                f"Restore the files, remove the ids from the split list, or {_SKIP_HINT}.",
                problem="missing files",
                details=[err for _, err in missing],
            )
        drop = {i for i, _ in missing}
        for i, err in missing:
            self.build_problems.append(err)
            self._record_bad(self.ids[i], str(err))
        warnings.warn(
            f"{self.source}: skipping {len(missing)} of {len(self.ids)} samples with missing files: {shown}{more}.",
            BadSampleWarning,
            stacklevel=3,
        )
        self.ids = [sid for i, sid in enumerate(self.ids) if i not in drop]
        if not self.ids:
            raise DatasetError(
                f"{self.source}: every listed sample has missing files ({shown}{more}); nothing to load.",
                problem="missing files",
                details=self.build_problems,
            )

    # -- Dataset API ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not self.skip_bad_samples:
            return self._get(index)
        if self.skip_mode == "drop":
            if index not in self._bad_reasons:
                try:
                    return self._get(index)
                except DatasetError as exc:
                    self._mark_bad(index, exc)
            return {"id": self.ids[index], BAD_REASON: self._bad_reasons[index]}
        n = len(self.ids)
        for offset in range(n):
            j = (index + offset) % n
            if j in self._bad_reasons:
                continue
            try:
                return self._get(j)
            except DatasetError as exc:
                self._mark_bad(j, exc)
        raise DatasetError(f"{self.source}: every sample failed to load; see the warnings above.")

    def _mark_bad(self, index: int, exc: DatasetError) -> None:
        self._bad_reasons[index] = str(exc)
        self._record_bad(self.ids[index], str(exc))
        warnings.warn(f"Skipping sample '{self.ids[index]}': {exc}", BadSampleWarning, stacklevel=3)

    def _record_bad(self, sample_id: str, reason: str) -> None:
        """The one place a skipped sample is recorded (missing files at build time, load failures later)."""
        self.bad_samples.append((sample_id, reason))

    def _warn_duplicates(self, listed: int) -> None:
        shown = ", ".join(self.duplicate_ids[:_SHOWN]) + (" ..." if len(self.duplicate_ids) > _SHOWN else "")
        warnings.warn(
            f"{self.source}: {len(self.duplicate_ids)} ids are listed more than once ({shown}); each is used once "
            f"({len(self.ids)} samples from {listed} lines). Remove the repeated lines from the split list.",
            DuplicateIdWarning,
            stacklevel=4,
        )

    def _get(self, index: int) -> dict[str, Any]:
        image, mask = self.load_sample(index)
        if self.transform is None:
            image_t = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))  # [3, H, W] uint8
            mask_t = torch.from_numpy(mask).long()
        else:
            out = self.transform(image=image, mask=mask)
            image_t = out["image"]
            if not torch.is_tensor(image_t):  # a pipeline without ToTensorV2: HWC array -> CHW tensor
                image_t = torch.from_numpy(np.ascontiguousarray(np.asarray(image_t).transpose(2, 0, 1)))
            mask_t = torch.as_tensor(out["mask"]).long()
        return {"image": image_t, "mask": mask_t, "id": self.ids[index]}

    def bad_samples_report(self, more: Iterable[tuple[str, str]] = ()) -> str:
        """Human-readable list of the samples skipped so far ('' when none).

        Args:
            more: ``(id, reason)`` pairs found elsewhere, e.g. ``SegMetrics.bad_samples`` from
                :func:`segkit.evaluation.evaluator.evaluate`, which also sees the samples DataLoader workers skipped.
                Each id is listed once.
        """
        return format_bad_samples(self.source, [*self.bad_samples, *more])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.source}, {len(self)} samples, {self.num_classes} classes, "
            f"ignore_index={self.ignore_index})"
        )
