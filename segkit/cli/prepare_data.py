"""Download, convert and check segmentation data sets.

Subcommands (``segkit prepare-data <subcommand> ...``)::

    voc --root data [--download]                  PASCAL VOC 2012 (verify, or fetch it)
    sbd --root data --sbd-dir PATH                SBD -> train_aug (or --download)
    ade20k --root data [--download]               ADE20K (ADEChallengeData2016: verify, or fetch it)
    cityscapes --root data/cityscapes             check an unpacked Cityscapes tree, write its train-id masks
    verify --root data                            check every listed sample of a VOC tree
    verify --dataset folder --root my_data        ... of any data set (voc, coco, folder, synthetic, ade20k, ...)
    verify --config my_config                     ... of the data set a config trains on
    coco --root data/coco                         COCO -> VOC-class mask cache
    synthetic                                     the synthetic set the demo trains on

Exit codes: 0 the data is ready; 1 `voc` or `verify` checked it and found problems (the report on stdout
lists them); 2 a user error: a bad flag or config, missing or unusable data, a failed download or
extraction, an unwritable folder (one line on stderr saying what to do).
"""

from __future__ import annotations

import argparse

from segkit.config import DATASET_NAMES
from segkit.data.sources import ADE20K_URL, DOWNLOAD_TIMEOUT, SBD_URL, SYNTHETIC_CONFIG, VOC_URL

_SUMMARY, _, _DETAILS = __doc__.partition("\n\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``segkit prepare-data`` argument parser; each subcommand's ``run`` names its :mod:`segkit.data.command`
    function (imported when it runs, not for ``--help``), called with the other arguments."""
    parser = argparse.ArgumentParser(
        description=_SUMMARY, epilog=_DETAILS, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def quiet(p: argparse.ArgumentParser) -> None:
        p.add_argument("--quiet", dest="progress", action="store_false", help="no progress bars")

    def common(p: argparse.ArgumentParser, root_help: str, default: str | None = "data") -> None:
        p.add_argument("--root", default=default, help=root_help)
        quiet(p)

    def checks(p: argparse.ArgumentParser, default: str) -> None:
        p.add_argument(
            "--expect-counts",
            default=default,
            help="'voc' (official sizes: train 1464, val 1449, train_aug 10582), 'ade20k', 'cityscapes', 'off', "
            "'split=N,...', or 'auto' (the official sizes of voc, ade20k and cityscapes, else none); "
            "default: %(default)s",
        )
        p.add_argument("--max-report", type=int, default=20, help="entries shown per problem kind")

    def fetching(p: argparse.ArgumentParser, archive: str) -> None:
        p.add_argument("--keep-archive", action="store_true", help=f"keep {archive} after extracting")
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
    fetching(p, "the .tar")
    checks(p, "voc")
    p.set_defaults(run="voc_command")

    p = sub.add_parser("sbd", help="build the train_aug split from SBD")
    common(p, "folder that holds VOCdevkit/VOC2012")
    p.add_argument("--sbd-dir", help="extracted SBD benchmark_RELEASE/dataset (cls/, train.txt, val.txt)")
    p.add_argument("--download", action="store_true", help=f"fetch and extract {SBD_URL} into ROOT/SBD")
    p.add_argument("--overwrite", action="store_true", help="rewrite masks that already exist")
    fetching(p, "benchmark.tgz")
    p.set_defaults(run="sbd_command")

    p = sub.add_parser("ade20k", help="verify ADE20K's ADEChallengeData2016 (or --download it)")
    common(p, "folder that holds (or will hold) ADEChallengeData2016")
    p.add_argument("--download", action="store_true", help=f"fetch and extract {ADE20K_URL} (about 1 GB)")
    fetching(p, "the .zip")
    checks(p, "auto")
    p.set_defaults(run="ade20k_command")

    p = sub.add_parser("cityscapes", help="check an unpacked Cityscapes tree and write its *_labelTrainIds.png masks")
    common(p, "folder holding leftImg8bit/ and gtFine/ (gtCoarse/ for train_extra)", default="data/cityscapes")
    p.add_argument(
        "--splits", nargs="+", default=["train", "val"], help="splits to prepare (train val test train_extra)"
    )
    p.add_argument("--overwrite", action="store_true", help="rewrite *_labelTrainIds.png masks that exist")
    checks(p, "auto")
    p.set_defaults(run="cityscapes_command")

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
        help="splits to check (default: voc: train val train_aug; coco: train2017 val2017; ade20k: training "
        "validation; cityscapes: train val; folder: its splits/*.txt, else train val)",
    )
    p.add_argument(
        "--num-classes",
        type=int,
        help="allowed labels 0..N-1 (default: the data set's classes: classes.txt where there is one, else 21)",
    )
    p.add_argument("--ignore-index", type=int, help="mask value of unlabelled pixels (default: 255)")
    checks(p, "auto")
    p.set_defaults(run="verify_command")

    p = sub.add_parser("coco", help="build the COCO -> VOC-class mask cache")
    common(p, "folder with annotations/instances_<split>.json and <split>/ images")
    p.add_argument(
        "--splits",
        nargs="+",
        default=["train2017", "val2017"],
        help="COCO splits to convert (default: train2017 val2017)",
    )
    p.set_defaults(run="coco_command")

    p = sub.add_parser("synthetic", help="generate the synthetic demo set")
    p.add_argument(
        "--config",
        default=SYNTHETIC_CONFIG,
        metavar="NAME",
        help="take data.root and data.synthetic_* from this config; the flags below override them "
        "(default: %(default)s, so the set is the one its training uses)",
    )
    p.add_argument("--root", help="cache folder for the synthetic VOCdevkit")
    quiet(p)
    p.add_argument("--num-train", type=int, help="training images")
    p.add_argument("--num-val", type=int, help="validation images")
    p.add_argument("--image-size", type=int, help="image side in pixels")
    p.add_argument("--seed", type=int, help="generation seed")
    p.set_defaults(run="synthetic_command")
    return parser


def run(args: argparse.Namespace) -> int:
    from segkit.data import command  # heavy (numpy, torch): not for --help

    options = vars(args)
    del options["command"]
    result = getattr(command, options.pop("run"))(**options)
    print(result.text)
    return 0 if result.ready else 1


def main(argv: list[str] | None = None) -> int:
    """Run ``segkit prepare-data``; returns the exit code."""
    from segkit.cli.common import run_main

    return run_main(run, build_parser().parse_args(argv))
