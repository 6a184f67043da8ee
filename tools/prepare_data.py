"""Download, convert and check segmentation data sets.

Subcommands::

    python tools/prepare_data.py voc --root data [--download]       # PASCAL VOC 2012 (verify, or fetch it)
    python tools/prepare_data.py sbd --root data --sbd-dir PATH     # SBD -> train_aug (or --download)
    python tools/prepare_data.py verify --root data                 # check every listed sample
    python tools/prepare_data.py coco --root data/coco              # COCO -> VOC-class mask cache
    python tools/prepare_data.py synthetic --root data/synthetic    # the synthetic demo set

Every subcommand exits with 0 when the data is ready and 1 (with a report) when it is not.
"""

from __future__ import annotations

import argparse
import os
import sys
import tarfile
import urllib.request
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from segkit.data.base import DatasetError, check_labels, read_image, read_mask, read_split_file  # noqa: E402
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


# -- downloading -------------------------------------------------------------------------------
def download(url: str, dest: Path) -> Path:
    """Fetch ``url`` to ``dest`` with a progress bar (kept if already there; atomic otherwise)."""
    if dest.is_file():
        print(f"{dest} already downloaded")
        return dest
    print(f"downloading {url} -> {dest}")
    with atomic_path(dest) as tmp, urllib.request.urlopen(url) as response:  # noqa: S310 (fixed official URLs)
        total = int(response.headers.get("Content-Length") or 0) or None
        with open(tmp, "wb") as f, tqdm(total=total, unit="B", unit_scale=True, desc=dest.name) as bar:
            while chunk := response.read(1 << 20):
                f.write(chunk)
                bar.update(len(chunk))
    return dest


def extract(archive: Path, dest: Path) -> None:
    """Extract a tar archive into ``dest`` (with the safe 'data' filter where Python has it)."""
    print(f"extracting {archive} -> {dest}")
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:  # pragma: no cover - Python without extraction filters
            tar.extractall(dest)  # noqa: S202


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
    num_classes: int = 21,
    ignore_index: int = 255,
    progress: bool = True,
) -> dict[str, list[str]]:
    """Check a VOC-layout tree: list sizes, and for every listed id its image and mask.

    Returns:
        Problems by category (empty when everything is fine).
    """
    expected = VOC_SPLIT_SIZES if expected is None else expected
    problems: dict[str, list[str]] = defaultdict(list)
    base = voc_dir(root)
    if not base.is_dir():
        problems["missing data"].append(str(voc_not_found_error(root)))
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
        root.mkdir(parents=True, exist_ok=True)
        archive = download(VOC_URL, root / Path(VOC_URL).name)
        extract(archive, root)
        if not args.keep_archive:
            archive.unlink()
    problems = verify_voc(root, ("train", "val"), parse_expected_counts(args.expect_counts), progress=not args.quiet)
    print(format_report(problems, args.max_report))
    return 1 if problems else 0


def cmd_sbd(args: argparse.Namespace) -> int:
    root = Path(args.root)
    if args.sbd_dir is None and not args.download:
        print("sbd: give --sbd-dir PATH (extracted benchmark_RELEASE/dataset) or --download.", file=sys.stderr)
        return 2
    sbd_dir = Path(args.sbd_dir) if args.sbd_dir else None
    if sbd_dir is None:
        archive = download(SBD_URL, root / "benchmark.tgz")
        extract(archive, root / "SBD")
        if not args.keep_archive:
            archive.unlink()
        sbd_dir = root / "SBD" / "benchmark_RELEASE" / "dataset"
    try:
        ids = build_train_aug(root, sbd_dir, overwrite=args.overwrite, progress=not args.quiet)
    except DatasetError as exc:
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


def cmd_synthetic(args: argparse.Namespace) -> int:
    from segkit.data.synthetic import generate_synthetic_voc

    root = generate_synthetic_voc(args.root, args.num_train, args.num_val, args.image_size, args.seed)
    print(f"synthetic set ({args.num_train} train, {args.num_val} val, {args.image_size}px) in {voc_dir(root)}")
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

    p = sub.add_parser("voc", help="verify PASCAL VOC 2012 (or --download it)")
    common(p, "folder that holds (or will hold) VOCdevkit/VOC2012")
    p.add_argument("--download", action="store_true", help=f"fetch and extract {VOC_URL} (about 2 GB)")
    p.add_argument("--keep-archive", action="store_true", help="keep the .tar after extracting")
    checks(p)
    p.set_defaults(func=cmd_voc)

    p = sub.add_parser("sbd", help="build the train_aug split from SBD")
    common(p, "folder that holds VOCdevkit/VOC2012")
    p.add_argument("--sbd-dir", help="extracted SBD benchmark_RELEASE/dataset (cls/, train.txt, val.txt)")
    p.add_argument("--download", action="store_true", help=f"fetch and extract {SBD_URL} into ROOT/SBD")
    p.add_argument("--keep-archive", action="store_true", help="keep benchmark.tgz after extracting")
    p.add_argument("--overwrite", action="store_true", help="rewrite masks that already exist")
    p.set_defaults(func=cmd_sbd)

    p = sub.add_parser("verify", help="check every listed image and mask of a VOC-layout tree")
    common(p, "folder that holds VOCdevkit/VOC2012")
    p.add_argument("--splits", nargs="+", default=list(DEFAULT_VERIFY_SPLITS), help="lists to check")
    p.add_argument("--num-classes", type=int, default=21)
    p.add_argument("--ignore-index", type=int, default=255)
    checks(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("coco", help="build the COCO -> VOC-class mask cache")
    common(p, "folder with annotations/instances_<split>.json and <split>/ images")
    p.add_argument("--splits", nargs="+", default=["train2017", "val2017"])
    p.set_defaults(func=cmd_coco)

    p = sub.add_parser("synthetic", help="generate the synthetic demo set")
    common(p, "cache folder for the synthetic VOCdevkit")
    p.add_argument("--num-train", type=int, default=300)
    p.add_argument("--num-val", type=int, default=60)
    p.add_argument("--image-size", type=int, default=160)
    p.add_argument("--seed", type=int, default=0)
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
