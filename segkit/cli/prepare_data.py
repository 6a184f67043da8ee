"""Download, convert and check segmentation data sets.

Subcommands (``segkit prepare-data ...`` or ``python tools/prepare_data.py ...``)::

    voc --root data [--download]                  PASCAL VOC 2012 (verify, or fetch it)
    sbd --root data --sbd-dir PATH                SBD -> train_aug (or --download)
    verify --root data                            check every listed sample of a VOC tree
    verify --dataset folder --root my_data        ... of any data set (voc, folder, coco, synthetic)
    verify --config my_config                     ... of the data set a config trains on
    coco --root data/coco                         COCO -> VOC-class mask cache
    synthetic                                     the synthetic set the demo trains on

Every subcommand exits with 0 when the data is ready, 1 (with a report or a one-line error: a failed
download or extraction included) when it is not, and 2 for a usage error.
"""

from __future__ import annotations

import argparse
import sys

from segkit.config import DataConfig
from segkit.data.io import DatasetError
from segkit.data.prepare import DOWNLOAD_TIMEOUT, prepare_sbd, prepare_voc, synthetic_settings
from segkit.data.sbd import SBD_URL
from segkit.data.verify import format_report, parse_expected_counts, verify_dataset
from segkit.data.voc import TRAIN_AUG, VOC_URL, mask_dirname, split_file, voc_dir

SYNTHETIC_CONFIG = "demo_mnv2_os16"  # the config whose synthetic set `synthetic` generates by default
DATASET_NAMES = ("voc", "folder", "coco", "synthetic")
_SUMMARY, _, _DETAILS = __doc__.partition("\n\n")


def _error(exc: BaseException) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return 1


def cmd_voc(args: argparse.Namespace) -> int:
    try:
        prepare_voc(args.root, download=args.download, keep_archive=args.keep_archive, timeout=args.timeout)
    except (DatasetError, OSError) as exc:
        return _error(exc)
    problems = verify_dataset(
        DataConfig(dataset="voc", root=args.root),
        ["train", "val"],
        parse_expected_counts(args.expect_counts, "voc"),
        progress=not args.quiet,
    )
    print(format_report(problems, args.max_report))
    return 1 if problems else 0


def cmd_sbd(args: argparse.Namespace) -> int:
    if args.sbd_dir is None and not args.download:
        print("sbd: give --sbd-dir PATH (extracted benchmark_RELEASE/dataset) or --download.", file=sys.stderr)
        return 2
    try:
        ids = prepare_sbd(
            args.root,
            args.sbd_dir,
            download=args.download,
            keep_archive=args.keep_archive,
            overwrite=args.overwrite,
            timeout=args.timeout,
            progress=not args.quiet,
        )
    except (DatasetError, OSError) as exc:
        return _error(exc)
    print(
        f"wrote {len(ids)} ids to {split_file(args.root, TRAIN_AUG)} and masks to "
        f"{voc_dir(args.root) / mask_dirname(TRAIN_AUG)}"
    )
    return 0


def verify_config(args: argparse.Namespace) -> tuple[DataConfig, int | None]:
    """The data section verify checks and the class count: ``--config``'s (or the defaults), with the flags applied."""
    data, num_classes = DataConfig(), args.num_classes
    if args.config is not None:
        from segkit.config import load_config

        cfg = load_config(args.config)
        data = cfg.data
        num_classes = cfg.model.num_classes if num_classes is None else num_classes
    for flag, field in (("dataset", "dataset"), ("root", "root"), ("ignore_index", "ignore_index")):
        if getattr(args, flag) is not None:
            setattr(data, field, getattr(args, flag))
    return data, num_classes


def cmd_verify(args: argparse.Namespace) -> int:
    from segkit.config import ConfigError

    try:
        data, num_classes = verify_config(args)
    except ConfigError as exc:
        return _error(exc)
    splits = args.splits
    if splits is None and args.config is not None:
        splits = list(dict.fromkeys([data.train_split, data.val_split]))
    problems = verify_dataset(
        data,
        splits,
        parse_expected_counts(args.expect_counts, data.dataset),
        num_classes=num_classes,
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
            return _error(exc)
        print(f"{split}: {len(ds)} images with VOC classes; masks in {ds.cache_dir}")
    return 0


def cmd_synthetic(args: argparse.Namespace) -> int:
    from segkit.config import ConfigError
    from segkit.data import synthetic

    try:
        settings = synthetic_settings(
            args.config,
            args.root,
            num_train=args.num_train,
            num_val=args.num_val,
            image_size=args.image_size,
            seed=args.seed,
        )
        root = synthetic.generate_synthetic_voc(settings.pop("root"), **settings)
    except (ConfigError, DatasetError, ValueError) as exc:
        return _error(exc)
    print(
        f"synthetic set ({settings['num_train']} train, {settings['num_val']} val, {settings['image_size']}px, "
        f"seed {settings['seed']}) in {voc_dir(root)}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``segkit prepare-data`` argument parser."""
    parser = argparse.ArgumentParser(
        description=_SUMMARY, epilog=_DETAILS, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, root_help: str, default: str | None = "data") -> None:
        p.add_argument("--root", default=default, help=root_help)
        p.add_argument("--quiet", action="store_true", help="no progress bars")

    def checks(p: argparse.ArgumentParser, default: str) -> None:
        p.add_argument(
            "--expect-counts",
            default=default,
            help="'voc' (official sizes: train 1464, val 1449, train_aug 10582), 'off', 'split=N,...', "
            "or 'auto' (VOC's sizes for the voc data set, else none); default: %(default)s",
        )
        p.add_argument("--max-report", type=int, default=20, help="entries shown per problem kind")

    def fetching(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--timeout",
            type=float,
            default=DOWNLOAD_TIMEOUT,
            metavar="SECONDS",
            help="give up when the server stays silent this long (default: %(default)g)",
        )

    p = sub.add_parser("voc", help="verify PASCAL VOC 2012 (or --download it)")
    common(p, "folder that holds (or will hold) VOCdevkit/VOC2012")
    p.add_argument("--download", action="store_true", help=f"fetch and extract {VOC_URL} (about 2 GB)")
    p.add_argument("--keep-archive", action="store_true", help="keep the .tar after extracting")
    fetching(p)
    checks(p, "voc")
    p.set_defaults(func=cmd_voc)

    p = sub.add_parser("sbd", help="build the train_aug split from SBD")
    common(p, "folder that holds VOCdevkit/VOC2012")
    p.add_argument("--sbd-dir", help="extracted SBD benchmark_RELEASE/dataset (cls/, train.txt, val.txt)")
    p.add_argument("--download", action="store_true", help=f"fetch and extract {SBD_URL} into ROOT/SBD")
    p.add_argument("--keep-archive", action="store_true", help="keep benchmark.tgz after extracting")
    p.add_argument("--overwrite", action="store_true", help="rewrite masks that already exist")
    fetching(p)
    p.set_defaults(func=cmd_sbd)

    p = sub.add_parser("verify", help="check every listed image and mask of a data set, through its own loading")
    common(p, "the data set's data.root (default: data, or --config's)", default=None)
    p.add_argument("--dataset", choices=DATASET_NAMES, help="data.dataset (default: voc, or --config's)")
    p.add_argument(
        "--config",
        metavar="NAME",
        help="take data.dataset, data.root, data.ignore_index and the "
        "train/val splits from this config; flags override them",
    )
    p.add_argument(
        "--splits",
        nargs="+",
        help="splits to check (default: voc: train val train_aug; coco: "
        "train2017 val2017; folder: its splits/*.txt, else train val)",
    )
    p.add_argument(
        "--num-classes",
        type=int,
        help="allowed labels 0..N-1 (default: the data set's classes: classes.txt where there is one, else 21)",
    )
    p.add_argument("--ignore-index", type=int, help="mask value of unlabelled pixels (default: 255)")
    checks(p, "auto")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("coco", help="build the COCO -> VOC-class mask cache")
    common(p, "folder with annotations/instances_<split>.json and <split>/ images")
    p.add_argument("--splits", nargs="+", default=["train2017", "val2017"])
    p.set_defaults(func=cmd_coco)

    p = sub.add_parser("synthetic", help="generate the synthetic demo set")
    p.add_argument(
        "--config",
        default=SYNTHETIC_CONFIG,
        metavar="NAME",
        help="take data.root and data.synthetic_* from this config; the flags below override them "
        "(default: %(default)s, so the set is the one its training uses)",
    )
    p.add_argument("--root", help="cache folder for the synthetic VOCdevkit")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--num-train", type=int, help="training images")
    p.add_argument("--num-val", type=int, help="validation images")
    p.add_argument("--image-size", type=int, help="image side in pixels")
    p.add_argument("--seed", type=int, help="generation seed")
    p.set_defaults(func=cmd_synthetic)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``segkit prepare-data``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if hasattr(args, "expect_counts"):
        try:
            parse_expected_counts(args.expect_counts)
        except ValueError as exc:
            parser.error(str(exc))
    return args.func(args)
