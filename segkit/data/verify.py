"""Check a data set through its own loading: every listed sample of every split, one report.

``verify_dataset`` builds the data set named by ``data.dataset`` (VOC, folder, COCO, synthetic) exactly
as training and evaluation do, then reads every sample with the data set's own reader and checks
(:meth:`SegmentationDataset.sample_problems`), so a user's folder is checked by the same code that
will load it. It reports, grouped by kind: a missing tree, split list or ``classes.txt`` problem,
ids listed more than once, list sizes that differ from the expected ones, missing or unreadable
images and masks, size mismatches and labels outside ``0..K-1`` / the ignore index::

    problems = verify_dataset(DataConfig(dataset="folder", root="my_data"), ["train", "val"])
    print(format_report(problems))
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from segkit.config import DataConfig
from segkit.data.ade20k import ADE20K_SPLIT_SIZES
from segkit.data.base import BadSampleWarning, DuplicateIdWarning, SegmentationDataset
from segkit.data.build import DATASETS
from segkit.data.cityscapes import CITYSCAPES_SPLIT_SIZES
from segkit.data.io import DatasetError
from segkit.data.synthetic import read_manifest
from segkit.data.voc import TRAIN_AUG, VOC_SPLIT_SIZES

__all__ = ["DEFAULT_SPLITS", "default_splits", "format_report", "parse_expected_counts", "verify_dataset"]

DEFAULT_SPLITS: dict[str, tuple[str, ...]] = {
    "voc": ("train", "val", TRAIN_AUG),
    "coco": ("train2017", "val2017"),
    "synthetic": ("train", "val"),
    "folder": ("train", "val"),  # or every list in splits/
    "ade20k": ("training", "validation"),
    "ade20k_top31": ("training", "validation"),
    "cityscapes": ("train", "val"),
}
OFFICIAL_SIZES: dict[str, dict[str, int]] = {  # what --expect-counts auto (or the data set's name) checks
    "voc": dict(VOC_SPLIT_SIZES),
    "ade20k": dict(ADE20K_SPLIT_SIZES),
    "ade20k_top31": dict(ADE20K_SPLIT_SIZES),
    "cityscapes": dict(CITYSCAPES_SPLIT_SIZES),
}
_SHOWN_IDS = 10


def default_splits(data: DataConfig) -> list[str]:
    """The splits checked when none are named: a folder's ``splits/*.txt``, else the data set's usual ones."""
    if data.dataset == "folder":
        lists = sorted(p.stem for p in (Path(data.root) / "splits").glob("*.txt"))
        if lists:
            return lists
    return list(DEFAULT_SPLITS.get(data.dataset, (data.train_split, data.val_split)))


def parse_expected_counts(text: str, dataset: str = "voc") -> dict[str, int]:
    """``auto`` -> the official sizes of ``dataset`` (VOC, ADE20K, Cityscapes; none for the others); a data set's
    name (``voc``, ``ade20k``, ``cityscapes``) -> its sizes; ``off``; ``train=1464,val=1449``.

    Raises:
        DatasetError: any other text (``problem="usage"``).
    """
    if text in OFFICIAL_SIZES:
        return dict(OFFICIAL_SIZES[text])
    if text == "auto" and dataset in OFFICIAL_SIZES:
        return dict(OFFICIAL_SIZES[dataset])
    if text in ("off", "auto"):
        return {}
    counts = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        if not name.strip() or not value.strip().isdigit():
            raise DatasetError(
                f"--expect-counts: expected 'auto', 'voc', 'off' or 'split=N,...' (or 'ade20k', 'cityscapes'), got {text!r}.",
                problem="usage",
            )
        counts[name.strip()] = int(value)
    return counts


def _build(data: DataConfig, split: str, num_classes: int | None) -> SegmentationDataset:
    """The data set of ``split`` as training builds it, with bad samples recorded instead of raised."""
    if data.dataset == "synthetic":  # read the set that is there; never (re)generate it
        manifest = read_manifest(data.root)
        if manifest is None:
            raise DatasetError(
                f"No synthetic set under {data.root} (no VOCdevkit/synthetic_manifest.json); generate it with "
                f"`segkit prepare-data synthetic --root {data.root}` (or train once with its config).",
                problem="missing data",
            )
        data = dataclasses.replace(
            data,
            synthetic_num_train=manifest["num_train"],
            synthetic_num_val=manifest["num_val"],
            synthetic_image_size=manifest["image_size"],
            synthetic_seed=manifest["seed"],
        )
    try:
        builder = DATASETS[data.dataset]
    except KeyError:
        raise DatasetError(
            f"Unknown data set '{data.dataset}'; valid names: {', '.join(DATASETS)}.", problem="usage"
        ) from None
    dataset = builder(dataclasses.replace(data, skip_bad_samples=True), split, None, num_classes, "drop")
    if num_classes is not None:  # an explicit class count sets the allowed labels, whatever the data set lists
        dataset.num_classes = num_classes
    return dataset


def verify_dataset(
    data: DataConfig,
    splits: Sequence[str] | None = None,
    expected: dict[str, int] | None = None,
    *,
    num_classes: int | None = None,
    progress: bool = True,
) -> dict[str, list[str]]:
    """Check every listed sample of ``splits`` of the data set ``data`` describes.

    Args:
        data: the data section of a config (``dataset``, ``root``, ``ignore_index``, ...).
        splits: the splits to check (default: :func:`default_splits`).
        expected: list sizes to check, by split (distinct ids); None: VOC's official sizes for ``voc``.
        num_classes: labels allowed are ``0..num_classes-1`` and the ignore index; None: the data set's
            classes (``classes.txt`` where there is one; VOC and COCO: 21).
        progress: show progress bars.

    Returns:
        Problems by kind, each message once (empty when everything is fine).
    """
    splits = list(splits) if splits else default_splits(data)
    expected = parse_expected_counts("auto", data.dataset) if expected is None else expected
    found: dict[str, dict[str, None]] = {}

    def add(kind: str, message: str) -> None:
        found.setdefault(kind or "bad sample", {})[message] = None

    for split in splits:
        with warnings.catch_warnings():  # the report lists what the warnings would
            warnings.simplefilter("ignore", BadSampleWarning)
            warnings.simplefilter("ignore", DuplicateIdWarning)
            try:
                dataset = _build(data, split, num_classes)
            except DatasetError as exc:
                for err in exc.details or [exc]:
                    add(err.problem or "unusable data set", str(err))
                continue
        if dataset.duplicate_ids:
            shown = ", ".join(dataset.duplicate_ids[:_SHOWN_IDS])
            more = " ..." if len(dataset.duplicate_ids) > _SHOWN_IDS else ""
            add(
                "duplicate ids",
                f"{dataset.source} lists {len(dataset.duplicate_ids)} ids more than once "
                f"({shown}{more}); each is used once: remove the repeated lines",
            )
        if split in expected and dataset.num_listed != expected[split]:
            add(
                "wrong count",
                f"{dataset.source} lists {dataset.num_listed} ids, expected {expected[split]} "
                "(use --expect-counts off for partial data)",
            )
        for exc in dataset.build_problems:
            add(exc.problem, str(exc))
        for index in tqdm(range(len(dataset)), desc=f"verify {split}", unit="img", disable=not progress):
            for exc in dataset.sample_problems(index):
                add(exc.problem, str(exc))
    return {kind: list(messages) for kind, messages in found.items()}


def format_report(problems: dict[str, list[str]], max_items: int = 20) -> str:
    """Readable report: per kind the count and the first ``max_items`` entries."""
    if not problems:
        return "OK: every listed sample has a readable image and a matching mask with valid labels."
    total = sum(len(v) for v in problems.values())
    lines = [f"FAILED: {total} problems"]
    for kind, items in problems.items():
        lines.append(f"  {kind}: {len(items)}")
        lines += [f"    {item}" for item in items[:max_items]]
        if len(items) > max_items:
            lines.append(f"    ... and {len(items) - max_items} more")
    return "\n".join(lines)
