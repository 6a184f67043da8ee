"""Which images calibrate an int8 file and which verify it: kept apart, and said in words.

Verification prefers held-out real images: ``--verify ROOT`` (its split), else the calibration root's verification
split (``val``) when it is another split than the calibration's, else the calibration split divided into two disjoint
parts. An image calibrated on is never verified on when both come from one root (the same id). A quantization-aware
training checkpoint converted to LiteRT calibrates on nothing and is verified on its own validation split when it is
here, else on random images.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from segkit.quantize.calib import calibration_images, split_ids, synthetic_images
from segkit.quantize.formats import QuantizeError


@dataclass
class QuantizeImages:
    """The calibration and verification images of one quantization, and where each set comes from."""

    calibration: list[dict[str, Any]] = field(default_factory=list)
    verification: list[dict[str, Any]] = field(default_factory=list)
    calibrated_on: str = "no images (a quantization-aware training checkpoint keeps its trained ranges)"
    verified_on: str = ""


def _has_split(model: nn.Module, root: str | os.PathLike, split: str, dataset: str | None) -> bool:
    from segkit.data import DatasetError

    try:
        return len(split_ids(model, root, split, dataset)) > 0
    except (DatasetError, OSError):
        return False


CALIB_SPLITS = ("train", "trainval", "val")  # the calibration split when none is given: the first one there


def resolve_calib_split(model: nn.Module, root: str | os.PathLike, split: str | None, dataset: str | None) -> str:
    """``split`` when ``root`` has it; None: the first of :data:`CALIB_SPLITS` there (``train``, else ...).

    Raises:
        QuantizeError: ``split`` is not under ``root``; the message names the splits that are and ``--calib-split``.
    """
    if split is not None and _has_split(model, root, split, dataset):
        return split
    available = [name for name in CALIB_SPLITS if _has_split(model, root, name, dataset)]
    if split is None and available:
        return available[0]
    if not available:  # none of the usual names: the data set's own error names what is there
        split_ids(model, root, split or CALIB_SPLITS[0], dataset)
        raise QuantizeError(
            f"--calib-data {root} holds no images in '{split}'; pass --calib-split with a split it has."
        )
    raise QuantizeError(
        f"--calib-data {root} has no '{split}' split (it has {', '.join(available)}); pass --calib-split "
        f"{available[0]} (calibration and verification then divide it, disjoint), or --calib-data with a '{split}' split."
    )


def _kind(model: nn.Module, dataset: str | None) -> str:
    """``synthetic`` for segkit's generated set (shapes, not photos), else ``real``."""
    return "synthetic" if (dataset or model.segkit_config.data.dataset) == "synthetic" else "real"


def _same_root(a: str | os.PathLike, b: str | os.PathLike | None) -> bool:
    return b is not None and Path(a).resolve() == Path(b).resolve()


def _divided_counts(total: int, num_calib: int, num_verify: int, root: Any, split: str) -> tuple[int, int]:
    """``(calibration, verification)`` counts when one split of ``total`` images gives both, disjoint."""
    if total < 2:
        raise QuantizeError(
            f"--calib-data {root} holds {total} image(s) in '{split}' and no other split to verify on: calibration and "
            "verification need one image each, kept apart; add images, or pass --verify ROOT for the verification."
        )
    if total >= num_calib + num_verify:
        return num_calib, num_verify
    verify = min(total - 1, max(1, round(total * num_verify / (num_calib + num_verify))))
    return min(num_calib, total - verify), verify


def choose_images(
    model: nn.Module,
    *,
    calib_data: str | os.PathLike | None,
    calib_split: str | None,
    num_calib: int,
    verify: str | os.PathLike | None,
    verify_split: str,
    num_verify: int,
    dataset: str | None,
    input_size: tuple[int, int],
    progress: bool,
) -> QuantizeImages:
    """The calibration images (none when ``calib_data`` is None) and the verification images, disjoint by id.
    ``calib_split`` None: ``train``, else the first split of :data:`CALIB_SPLITS` ``calib_data`` has (said in
    ``calibrated_on``).

    Raises:
        QuantizeError: a split too small to give both, or no verification image left once the calibration images
            are left out.
    """
    chosen = QuantizeImages()
    chosen_split = ""
    if calib_data is not None:
        given, calib_split = calib_split, resolve_calib_split(model, calib_data, calib_split, dataset)
        if given is None and calib_split != CALIB_SPLITS[0]:
            chosen_split = f" (it has no '{CALIB_SPLITS[0]}' split; --calib-split chooses another)"
    calib_split = calib_split or CALIB_SPLITS[0]
    common = {"input_size": input_size, "dataset": dataset, "progress": progress}
    divide = (
        calib_data is not None
        and verify is None
        and (verify_split == calib_split or not _has_split(model, calib_data, verify_split, dataset))
    )
    n_calib, n_verify = num_calib, num_verify
    if calib_data is not None:
        if divide:
            total = len(split_ids(model, calib_data, calib_split, dataset))
            n_calib, n_verify = _divided_counts(total, num_calib, num_verify, calib_data, calib_split)
        chosen.calibration = calibration_images(model, calib_data, split=calib_split, num=n_calib, **common)
        chosen.calibrated_on = (
            f"{len(chosen.calibration)} {_kind(model, dataset)} images of '{calib_split}' under {calib_data}"
            f"{chosen_split}"
        )
    calibrated = [item["id"] for item in chosen.calibration]
    if verify is not None or calib_data is not None:
        root, split = (
            (verify, verify_split) if verify is not None else (calib_data, calib_split if divide else verify_split)
        )
        exclude = calibrated if _same_root(root, calib_data) else []
        chosen.verification = calibration_images(
            model, root, split=split, num=n_verify, with_masks=True, exclude=exclude, purpose="verification", **common
        )
        n = len(chosen.verification)
        if n == 0:
            raise QuantizeError(
                f"no verification images left in '{split}' under {root}: all {len(calibrated)} were calibrated on; "
                "pass --verify ROOT with other images, or a smaller --num-calib."
            )
        if verify is not None:
            apart = "none of them calibrated on" if exclude else "another data-set root than the calibration's"
            how = f"--verify; held out: {apart}"
        elif divide:
            how = (
                f"held out: '{split}' divided, {len(calibrated)} calibrate and {n} verify, disjoint; --verify ROOT "
                "verifies on other images"
            )
        else:
            how = f"held out: another split than the calibration's '{calib_split}', none of them calibrated on"
        chosen.verified_on = f"{n} {_kind(model, dataset)} images of '{split}' under {root} ({how})"
        return chosen
    chosen.verification, chosen.verified_on = _own_val_images(model, num_verify, input_size, progress)
    return chosen


def _own_val_images(
    model: nn.Module, num: int, size: tuple[int, int], progress: bool
) -> tuple[list[dict[str, Any]], str]:
    """The checkpoint's validation split (its config's data.root) when present, else random images."""
    from segkit.data import DatasetError

    data = model.segkit_config.data
    try:
        images = calibration_images(
            model, data.root, split=data.val_split, num=num, input_size=size, progress=progress, purpose="verification"
        )
    except (DatasetError, OSError):
        where = (
            f"{num} synthetic random images (no --verify and the checkpoint's data root {data.root} is absent; "
            "pass --verify ROOT to verify on real images)"
        )
        return synthetic_images(model, num, size), where
    kind = _kind(model, None)
    return (
        images,
        f"{len(images)} {kind} images of '{data.val_split}' under {data.root} (the checkpoint's validation split)",
    )
