"""What ``segkit prepare-data`` does, one function per subcommand (``voc``, ``sbd``, ``ade20k``, ``cityscapes``,
``verify``, ``coco``, ``synthetic``)::

    result = verify_command(root="my_data", dataset="folder")
    print(result.text)          # the report
    result.ready                # False: the check found problems (the report lists them)

A user's mistake (a bad value, a missing or unusable data set, a failed download or extraction, a folder that
cannot be written) raises a :class:`~segkit.errors.SegkitError` with a one-line message instead; the keyword
arguments are the subcommand's flags (``progress`` is the opposite of ``--quiet``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from segkit.config import DataConfig
from segkit.data.io import DatasetError
from segkit.data.prepare import prepare_sbd, prepare_voc, synthetic_settings
from segkit.data.sources import DOWNLOAD_TIMEOUT, SYNTHETIC_CONFIG
from segkit.data.verify import format_report, parse_expected_counts, verify_dataset
from segkit.data.voc import TRAIN_AUG, mask_dirname, split_file, voc_dir

__all__ = [
    "SYNTHETIC_CONFIG",
    "Prepared",
    "ade20k_command",
    "cityscapes_command",
    "coco_command",
    "sbd_command",
    "synthetic_command",
    "verify_command",
    "verify_settings",
    "voc_command",
]


@dataclass(frozen=True)
class Prepared:
    """What a subcommand did: the text to print, and whether the data is ready (False: a check found problems)."""

    text: str
    ready: bool = True


def _report(problems: dict[str, list[str]], max_report: int) -> Prepared:
    return Prepared(format_report(problems, max_report), ready=not problems)


@contextlib.contextmanager
def _writing(root: str | os.PathLike) -> Iterator[None]:
    """A folder that cannot be created or written is the user's to fix: one line, not a traceback."""
    try:
        yield
    except OSError as exc:
        raise DatasetError(
            f"Cannot write under {root}: {type(exc).__name__}: {' '.join(str(exc).split())}. Pass a writable "
            "--root with free space."
        ) from exc


def voc_command(
    root: str | os.PathLike = "data",
    *,
    download: bool = False,
    keep_archive: bool = False,
    timeout: float = DOWNLOAD_TIMEOUT,
    expect_counts: str = "voc",
    max_report: int = 20,
    progress: bool = True,
) -> Prepared:
    """Fetch PASCAL VOC 2012 into ``root`` (when ``download``), then check its train and val splits."""
    expected = parse_expected_counts(expect_counts, "voc")  # a bad value fails before a 2 GB download
    with _writing(root):
        prepare_voc(root, download=download, keep_archive=keep_archive, timeout=timeout)
    problems = verify_dataset(DataConfig(dataset="voc", root=str(root)), ["train", "val"], expected, progress=progress)
    return _report(problems, max_report)


def sbd_command(
    root: str | os.PathLike = "data",
    sbd_dir: str | os.PathLike | None = None,
    *,
    download: bool = False,
    **options: Any,
) -> Prepared:
    """Build VOC's train_aug split under ``root`` from an extracted SBD (``sbd_dir``) or a fetched one (``download``);
    ``options``: :func:`~segkit.data.prepare.prepare_sbd`'s ``keep_archive``, ``overwrite``, ``timeout``, ``progress``."""
    if sbd_dir is None and not download:
        raise DatasetError(
            "give --sbd-dir PATH (the extracted benchmark_RELEASE/dataset) or --download.", problem="usage"
        )
    with _writing(root):
        ids = prepare_sbd(root, sbd_dir, download=download, **options)
    return Prepared(
        f"wrote {len(ids)} ids to {split_file(root, TRAIN_AUG)} and masks to {voc_dir(root) / mask_dirname(TRAIN_AUG)}"
    )


def verify_settings(
    config: str | None = None,
    *,
    dataset: str | None = None,
    root: str | None = None,
    ignore_index: int | None = None,
    num_classes: int | None = None,
) -> tuple[DataConfig, int | None]:
    """The data section ``verify`` checks and the class count: ``config``'s (else the defaults), with the other
    arguments, where given, in place of its values."""
    data = DataConfig()
    if config is not None:
        from segkit.config import load_config

        cfg = load_config(config)
        data = cfg.data
        num_classes = cfg.model.num_classes if num_classes is None else num_classes
    for field, value in (("dataset", dataset), ("root", root), ("ignore_index", ignore_index)):
        if value is not None:
            setattr(data, field, value)
    return data, num_classes


def verify_command(
    root: str | None = None,
    *,
    config: str | None = None,
    dataset: str | None = None,
    splits: Sequence[str] | None = None,
    num_classes: int | None = None,
    ignore_index: int | None = None,
    expect_counts: str = "auto",
    max_report: int = 20,
    progress: bool = True,
) -> Prepared:
    """Check every listed sample of a data set (``config``'s, or ``dataset`` at ``root``) through its own loading.

    ``splits`` defaults to the config's train and val splits, else the data set's usual ones
    (:func:`segkit.data.verify.default_splits`).
    """
    data, num_classes = verify_settings(
        config, dataset=dataset, root=root, ignore_index=ignore_index, num_classes=num_classes
    )
    expected = parse_expected_counts(expect_counts, data.dataset)
    if splits is None and config is not None:
        splits = list(dict.fromkeys([data.train_split, data.val_split]))
    problems = verify_dataset(data, splits, expected, num_classes=num_classes, progress=progress)
    return _report(problems, max_report)


def coco_command(
    root: str | os.PathLike = "data", splits: Sequence[str] = ("train2017", "val2017"), *, progress: bool = True
) -> Prepared:
    """Build the COCO -> VOC-class mask cache of each of ``splits`` under ``root``."""
    from segkit.data.coco import COCOSegmentation

    lines = []
    for split in splits:
        with _writing(root):
            ds = COCOSegmentation(root, split, progress=progress)
        lines.append(f"{split}: {len(ds)} images with VOC classes; masks in {ds.cache_dir}")
    return Prepared("\n".join(lines))


def synthetic_command(
    config: str = SYNTHETIC_CONFIG,
    root: str | None = None,
    *,
    num_train: int | None = None,
    num_val: int | None = None,
    image_size: int | None = None,
    seed: int | None = None,
    progress: bool = True,  # generating shows no progress bar; accepted like every subcommand's
) -> Prepared:
    """Generate the synthetic set of ``config`` (its ``data.root`` and ``data.synthetic_*``; arguments given win)."""
    from segkit.data.synthetic import generate_synthetic_voc

    settings = synthetic_settings(config, root, num_train=num_train, num_val=num_val, image_size=image_size, seed=seed)
    with _writing(settings["root"]):
        out = generate_synthetic_voc(settings.pop("root"), **settings)
    return Prepared(
        f"synthetic set ({settings['num_train']} train, {settings['num_val']} val, {settings['image_size']}px, "
        f"seed {settings['seed']}) in {voc_dir(out)}"
    )


def ade20k_command(
    root: str | os.PathLike = "data",
    *,
    download: bool = False,
    keep_archive: bool = False,
    timeout: float = DOWNLOAD_TIMEOUT,
    expect_counts: str = "auto",
    max_report: int = 20,
    progress: bool = True,
) -> Prepared:
    """Fetch ADE20K's ``ADEChallengeData2016.zip`` into ``root`` (when ``download``), then check both splits
    (every image with its mask, labels 0..150; ``expect_counts`` ``auto``: 20,210 training, 2,000 validation)."""
    from pathlib import Path

    from segkit.data.ade20k import ADE20K_SPLITS, ade20k_dir
    from segkit.data.prepare import fetch
    from segkit.data.sources import ADE20K_URL

    expected = parse_expected_counts(expect_counts, "ade20k")
    if download:
        with _writing(root):
            Path(root).mkdir(parents=True, exist_ok=True)
            fetch(
                ADE20K_URL, Path(root) / Path(ADE20K_URL).name, Path(root), keep_archive=keep_archive, timeout=timeout
            )
    if not (ade20k_dir(root) / "images").is_dir():
        raise DatasetError(
            f"No ADE20K under {root} ({ade20k_dir(root)}/images missing): unzip {ADE20K_URL} there, or run "
            f"`segkit prepare-data ade20k --download --root {root}` (about 1 GB).",
            problem="missing data",
        )
    problems = verify_dataset(DataConfig(dataset="ade20k", root=str(root)), ADE20K_SPLITS, expected, progress=progress)
    return _report(problems, max_report)


def cityscapes_command(
    root: str | os.PathLike = "data/cityscapes",
    *,
    splits: Sequence[str] = ("train", "val"),
    overwrite: bool = False,
    expect_counts: str = "auto",
    max_report: int = 20,
    progress: bool = True,
) -> Prepared:
    """Check a Cityscapes tree the user unpacked under ``root`` (one line naming every missing folder and archive),
    write ``*_labelTrainIds.png`` beside each ``*_labelIds.png`` of ``splits`` (atomically; existing ones kept unless
    ``overwrite``), then check every sample (``expect_counts`` ``auto``: 2,975 train, 500 val, 19,998 train_extra).

    Raises:
        DatasetError: folders or masks are missing (the message lists them and the archives to unzip), or a mask
            holds a label id above 33.
    """
    from segkit.data.cityscapes import check_cityscapes_tree, write_train_ids
    from segkit.data.sources import CITYSCAPES_URL

    expected = parse_expected_counts(expect_counts, "cityscapes")
    missing = check_cityscapes_tree(root, splits)
    if missing:
        raise DatasetError(
            f"The Cityscapes tree under {root} is incomplete; missing: {'; '.join(missing)}. Download the archives "
            f"from {CITYSCAPES_URL} (after registering) and unzip them into {root}.",
            problem="missing data",
        )
    with _writing(root):
        written = write_train_ids(root, splits, overwrite=overwrite, progress=progress)
    problems = verify_dataset(DataConfig(dataset="cityscapes", root=str(root)), splits, expected, progress=progress)
    report = _report(problems, max_report)
    return Prepared(f"wrote {written} *_labelTrainIds.png masks under {root}\n{report.text}", ready=report.ready)
