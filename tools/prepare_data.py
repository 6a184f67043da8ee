"""Download, convert and check segmentation data sets.

Subcommands::

    python tools/prepare_data.py voc --root data [--download]       # PASCAL VOC 2012 (verify, or fetch it)
    python tools/prepare_data.py sbd --root data --sbd-dir PATH     # SBD -> train_aug (or --download)
    python tools/prepare_data.py verify --root data                 # check every listed sample
    python tools/prepare_data.py coco --root data/coco              # COCO -> VOC-class mask cache
    python tools/prepare_data.py synthetic                          # the synthetic set the demo trains on

Every subcommand exits with 0 when the data is ready and 1 (with a report or a one-line error: a failed
download or extraction included) when it is not.
"""

from __future__ import annotations

import argparse
import http.client
import os
import sys
import tarfile
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from segkit.data.base import DatasetError, check_labels, read_image, read_mask, read_split_file  # noqa: E402
from segkit.data.classes import VOC_CLASSES, read_classes_file  # noqa: E402
from segkit.data.sbd import SBD_URL, build_train_aug  # noqa: E402
from segkit.data.voc import (  # noqa: E402
    TRAIN_AUG,
    VOC_SPLIT_SIZES,
    VOC_URL,
    mask_dirname,
    split_file,
    voc_dir,
    voc_not_found_error,
)
from segkit.utils.io import atomic_path  # noqa: E402

DEFAULT_VERIFY_SPLITS = ("train", "val", TRAIN_AUG)
SYNTHETIC_CONFIG = "demo_mnv2_os16"  # the config whose synthetic set `synthetic` generates by default
DOWNLOAD_TIMEOUT = 60.0  # seconds the server may stay silent (connecting or mid-transfer) before giving up
_NETWORK_ERRORS = (OSError, http.client.HTTPException)  # URLError, HTTPError and timeouts are OSErrors


# -- downloading -------------------------------------------------------------------------------
def _one_line(exc: BaseException) -> str:
    """``Type: message`` of ``exc`` on one line (tarfile's messages span several)."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def download(url: str, dest: Path, timeout: float = DOWNLOAD_TIMEOUT) -> Path:
    """Fetch ``url`` to ``dest`` with a progress bar (kept if already there; atomic otherwise).

    Raises:
        DatasetError: the server cannot be reached, answers with an error, stays silent for ``timeout``
            seconds, or the transfer ends early; nothing is left at ``dest`` then.
    """
    if dest.is_file():
        print(f"{dest} already downloaded")
        return dest
    print(f"downloading {url} -> {dest}")
    try:
        with atomic_path(dest) as tmp, urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            total = int(response.headers.get("Content-Length") or 0) or None
            received = 0
            with open(tmp, "wb") as f, tqdm(total=total, unit="B", unit_scale=True, desc=dest.name) as bar:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            if total is not None and received != total:
                raise http.client.IncompleteRead(b"", total - received)
    except _NETWORK_ERRORS as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException) else exc
        raise DatasetError(
            f"Cannot download {url}: {_one_line(reason)} (timeout {timeout:g} s). Check the network "
            f"connection and proxy settings and run again (--timeout for a slow server), or fetch the file by "
            f"hand into {dest.parent} (an existing {dest.name} is used as is)."
        ) from exc
    return dest


def extract(archive: Path, dest: Path) -> None:
    """Extract a tar archive into ``dest`` (with the safe 'data' filter where Python has it).

    Raises:
        DatasetError: the archive is corrupt or truncated, or ``dest`` cannot be written.
    """
    print(f"extracting {archive} -> {dest}")
    try:
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, filter="data")
            else:  # pragma: no cover - Python without extraction filters
                tar.extractall(dest)  # noqa: S202
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DatasetError(
            f"Cannot extract {archive} into {dest}: {_one_line(exc)}. A corrupt or incomplete "
            f"archive: delete {archive} and run again (or check that {dest} is writable with free space)."
        ) from exc


def fetch(url: str, archive: Path, dest: Path, *, keep_archive: bool, timeout: float) -> None:
    """Download ``url`` to ``archive``, extract it into ``dest``, and delete it unless ``keep_archive``."""
    download(url, archive, timeout)
    extract(archive, dest)
    if not keep_archive:
        archive.unlink()


# -- verification ------------------------------------------------------------------------------
def parse_expected_counts(text: str) -> dict[str, int]:
    """``voc`` -> the official VOC sizes, ``off`` -> none, ``train=1464,val=1449`` -> those."""
    if text == "voc":
        return dict(VOC_SPLIT_SIZES)
    if text == "off":
        return {}
    counts = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        if not name or not value.isdigit():
            raise argparse.ArgumentTypeError(
                f"--expect-counts: expected 'voc', 'off' or 'split=N,...', got {text!r}."
            )
        counts[name.strip()] = int(value)
    return counts


def verify_voc(
    root: str | os.PathLike,
    splits: Sequence[str] = DEFAULT_VERIFY_SPLITS,
    expected: dict[str, int] | None = None,
    *,
    num_classes: int | None = None,
    ignore_index: int = 255,
    progress: bool = True,
) -> dict[str, list[str]]:
    """Check a VOC-layout tree: list sizes, and for every listed id its image and mask.

    Args:
        root: folder holding ``VOCdevkit/VOC2012``.
        splits: the lists to check.
        expected: list sizes to check (default: the official VOC sizes).
        num_classes: labels allowed are ``0..num_classes-1`` and ``ignore_index``; None = the number of
            classes in ``VOC2012/classes.txt`` when there is one, else the 21 VOC classes.
        ignore_index: the mask value of unlabelled pixels.
        progress: show progress bars.

    Returns:
        Problems by category (empty when everything is fine).
    """
    expected = VOC_SPLIT_SIZES if expected is None else expected
    problems: dict[str, list[str]] = defaultdict(list)
    base = voc_dir(root)
    if not base.is_dir():
        problems["missing data"].append(str(voc_not_found_error(root)))
        return problems
    if num_classes is None:
        num_classes = len(VOC_CLASSES)
        if (base / "classes.txt").is_file():
            try:
                num_classes = len(read_classes_file(base / "classes.txt")[0])
            except ValueError as exc:
                problems["bad classes.txt"].append(str(exc))
                return problems
    image_sizes: dict[str, tuple[int, int] | None] = {}  # id -> (H, W) of a readable image
    for split in splits:
        list_path = split_file(root, split)
        if not list_path.is_file():
            hint = " (build it with the 'sbd' subcommand)" if split == TRAIN_AUG else ""
            problems["missing split list"].append(f"{list_path}{hint}")
            continue
        try:
            ids = read_split_file(list_path)
        except DatasetError as exc:
            problems["missing split list"].append(str(exc))
            continue
        if split in expected and len(ids) != expected[split]:
            problems["wrong count"].append(
                f"{list_path} lists {len(ids)} ids, expected {expected[split]} "
                "(use --expect-counts off for partial data)"
            )
        mask_dir = base / mask_dirname(split)
        for sample_id in tqdm(ids, desc=f"verify {split}", unit="img", disable=not progress):
            image_path = base / "JPEGImages" / f"{sample_id}.jpg"
            mask_path = mask_dir / f"{sample_id}.png"
            if sample_id not in image_sizes:
                image_sizes[sample_id] = None
                if not image_path.is_file():
                    problems["missing image"].append(f"{image_path} (listed in {split})")
                else:
                    try:
                        image_sizes[sample_id] = read_image(image_path).shape[:2]
                    except DatasetError as exc:
                        problems["unreadable image"].append(str(exc))
            if not mask_path.is_file():
                problems["missing mask"].append(f"{mask_path} (listed in {split})")
                continue
            try:
                mask = read_mask(mask_path)
            except DatasetError as exc:
                problems["unreadable mask"].append(str(exc))
                continue
            size = image_sizes[sample_id]
            if size is not None and mask.shape != size:
                problems["size mismatch"].append(
                    f"{mask_path} is {mask.shape[1]}x{mask.shape[0]} but {image_path} is {size[1]}x{size[0]}"
                )
            try:
                check_labels(mask, num_classes, ignore_index, mask_path)
            except DatasetError as exc:
                problems["bad labels"].append(str(exc))
    return problems


def format_report(problems: dict[str, list[str]], max_items: int = 20) -> str:
    """Readable report: per category the count and the first ``max_items`` entries."""
    if not problems:
        return "OK: every listed sample has a readable image and a matching mask with valid labels."
    total = sum(len(v) for v in problems.values())
    lines = [f"FAILED: {total} problems"]
    for category, items in problems.items():
        lines.append(f"  {category}: {len(items)}")
        lines += [f"    {item}" for item in items[:max_items]]
        if len(items) > max_items:
            lines.append(f"    ... and {len(items) - max_items} more")
    return "\n".join(lines)


# -- subcommands -------------------------------------------------------------------------------
def cmd_voc(args: argparse.Namespace) -> int:
    root = Path(args.root)
    if args.download:
        try:
            root.mkdir(parents=True, exist_ok=True)
            fetch(VOC_URL, root / Path(VOC_URL).name, root, keep_archive=args.keep_archive, timeout=args.timeout)
        except (DatasetError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    problems = verify_voc(root, ("train", "val"), parse_expected_counts(args.expect_counts), progress=not args.quiet)
    print(format_report(problems, args.max_report))
    return 1 if problems else 0


def voc_ready_for_sbd(root: Path) -> None:
    """Raise DatasetError unless ``root`` holds VOC's images and train/val lists (train_aug builds on them)."""
    if not (voc_dir(root) / "JPEGImages").is_dir():
        raise DatasetError(f"SBD's train_aug extends VOC, so VOC comes first. {voc_not_found_error(root)}")
    for split in ("train", "val"):
        if not split_file(root, split).is_file():
            raise DatasetError(
                f"VOC split list {split_file(root, split)} not found; train_aug is built from VOC's train and val "
                f"lists. Re-extract VOC (`python tools/prepare_data.py voc --download --root {root}`) first."
            )


def cmd_sbd(args: argparse.Namespace) -> int:
    root = Path(args.root)
    if args.sbd_dir is None and not args.download:
        print("sbd: give --sbd-dir PATH (extracted benchmark_RELEASE/dataset) or --download.", file=sys.stderr)
        return 2
    try:
        voc_ready_for_sbd(root)  # before fetching 1.4 GB
        sbd_dir = Path(args.sbd_dir) if args.sbd_dir else None
        if sbd_dir is None:
            fetch(SBD_URL, root / "benchmark.tgz", root / "SBD", keep_archive=args.keep_archive, timeout=args.timeout)
            sbd_dir = root / "SBD" / "benchmark_RELEASE" / "dataset"
        ids = build_train_aug(root, sbd_dir, overwrite=args.overwrite, progress=not args.quiet)
    except (DatasetError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    masks = voc_dir(root) / mask_dirname(TRAIN_AUG)
    print(f"wrote {len(ids)} ids to {split_file(root, TRAIN_AUG)} and masks to {masks}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    problems = verify_voc(
        args.root,
        args.splits,
        parse_expected_counts(args.expect_counts),
        num_classes=args.num_classes,
        ignore_index=args.ignore_index,
        progress=not args.quiet,
    )
    print(format_report(problems, args.max_report))
    return 1 if problems else 0


def cmd_coco(args: argparse.Namespace) -> int:
    from segkit.data.coco import COCOSegmentation

    for split in args.splits:
        try:
            ds = COCOSegmentation(args.root, split, progress=not args.quiet)
        except DatasetError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"{split}: {len(ds)} images with VOC classes; masks in {ds.cache_dir}")
    return 0


def synthetic_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Root and generation parameters: the flags given, else those of ``--config`` (``data.root`` and
    ``data.synthetic_*``).

    Raises:
        ConfigError: an unknown or invalid ``--config``, or one whose data set is not the synthetic one
            while ``--root`` is not given.
    """
    from segkit.config import ConfigError, load_config

    data = load_config(args.config).data
    if data.dataset != "synthetic" and args.root is None:
        raise ConfigError(
            f"--config {args.config} uses data.dataset={data.dataset}, so its data.root ('{data.root}') is no "
            "place for the synthetic set; pass --root DIR, or a synthetic config such as demo_mnv2_os16."
        )
    given = {"root": args.root, "num_train": args.num_train, "num_val": args.num_val,
             "image_size": args.image_size, "seed": args.seed}  # fmt: skip
    from_config = {"root": data.root, "num_train": data.synthetic_num_train, "num_val": data.synthetic_num_val,
                   "image_size": data.synthetic_image_size, "seed": data.synthetic_seed}  # fmt: skip
    return {key: from_config[key] if value is None else value for key, value in given.items()}


def cmd_synthetic(args: argparse.Namespace) -> int:
    from segkit.config import ConfigError
    from segkit.data.synthetic import generate_synthetic_voc

    try:
        settings = synthetic_settings(args)
        root = generate_synthetic_voc(settings.pop("root"), **settings)
    except (ConfigError, DatasetError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"synthetic set ({settings['num_train']} train, {settings['num_val']} val, {settings['image_size']}px, "
          f"seed {settings['seed']}) in {voc_dir(root)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, root_help: str) -> None:
        p.add_argument("--root", default="data", help=root_help)
        p.add_argument("--quiet", action="store_true", help="no progress bars")

    def checks(p: argparse.ArgumentParser) -> None:
        p.add_argument("--expect-counts", default="voc",
                       help="'voc' (official sizes: train 1464, val 1449, train_aug 10582), 'off', or 'split=N,...'")
        p.add_argument("--max-report", type=int, default=20, help="entries shown per problem category")

    def fetching(p: argparse.ArgumentParser) -> None:
        p.add_argument("--timeout", type=float, default=DOWNLOAD_TIMEOUT, metavar="SECONDS",
                       help="give up when the server stays silent this long (default: %(default)g)")

    p = sub.add_parser("voc", help="verify PASCAL VOC 2012 (or --download it)")
    common(p, "folder that holds (or will hold) VOCdevkit/VOC2012")
    p.add_argument("--download", action="store_true", help=f"fetch and extract {VOC_URL} (about 2 GB)")
    p.add_argument("--keep-archive", action="store_true", help="keep the .tar after extracting")
    fetching(p)
    checks(p)
    p.set_defaults(func=cmd_voc)

    p = sub.add_parser("sbd", help="build the train_aug split from SBD")
    common(p, "folder that holds VOCdevkit/VOC2012")
    p.add_argument("--sbd-dir", help="extracted SBD benchmark_RELEASE/dataset (cls/, train.txt, val.txt)")
    p.add_argument("--download", action="store_true", help=f"fetch and extract {SBD_URL} into ROOT/SBD")
    p.add_argument("--keep-archive", action="store_true", help="keep benchmark.tgz after extracting")
    p.add_argument("--overwrite", action="store_true", help="rewrite masks that already exist")
    fetching(p)
    p.set_defaults(func=cmd_sbd)

    p = sub.add_parser("verify", help="check every listed image and mask of a VOC-layout tree")
    common(p, "folder that holds VOCdevkit/VOC2012")
    p.add_argument("--splits", nargs="+", default=list(DEFAULT_VERIFY_SPLITS), help="lists to check")
    p.add_argument("--num-classes", type=int, help="default: the classes in VOC2012/classes.txt, else 21")
    p.add_argument("--ignore-index", type=int, default=255)
    checks(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("coco", help="build the COCO -> VOC-class mask cache")
    common(p, "folder with annotations/instances_<split>.json and <split>/ images")
    p.add_argument("--splits", nargs="+", default=["train2017", "val2017"])
    p.set_defaults(func=cmd_coco)

    p = sub.add_parser("synthetic", help="generate the synthetic demo set")
    p.add_argument("--config", default=SYNTHETIC_CONFIG, metavar="NAME",
                   help="take data.root and data.synthetic_* from this config; the flags below override them "
                        "(default: %(default)s, so the set is the one its training uses)")
    p.add_argument("--root", help="cache folder for the synthetic VOCdevkit")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--num-train", type=int, help="training images")
    p.add_argument("--num-val", type=int, help="validation images")
    p.add_argument("--image-size", type=int, help="image side in pixels")
    p.add_argument("--seed", type=int, help="generation seed")
    p.set_defaults(func=cmd_synthetic)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if hasattr(args, "expect_counts"):
        try:
            parse_expected_counts(args.expect_counts)
        except argparse.ArgumentTypeError as exc:
            parser.error(str(exc))
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
