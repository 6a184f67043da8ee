"""Where the public data sets come from and the defaults that name them, without importing numpy or torch (the
command-line parsers show them): download URLs and timeout, COCO's default evaluation split, the synthetic set's
config."""

from __future__ import annotations

__all__ = [
    "ADE20K_URL",
    "CITYSCAPES_URL",
    "COCO_DEFAULT_SPLIT",
    "DOWNLOAD_TIMEOUT",
    "SBD_URL",
    "SYNTHETIC_CONFIG",
    "VOC_URL",
]

VOC_URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar"
SBD_URL = "http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz"
ADE20K_URL = "http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip"  # SceneParsing, public
CITYSCAPES_URL = "https://www.cityscapes-dataset.com/downloads/"  # needs a registration: segkit never downloads it
DOWNLOAD_TIMEOUT = 60.0  # seconds the server may stay silent (connecting or mid-transfer) before giving up
COCO_DEFAULT_SPLIT = "val2017"  # what a COCO evaluation reads when the checkpoint's val_split is no COCO split
SYNTHETIC_CONFIG = "demo_mnv2_os16"  # the config whose synthetic set `prepare-data synthetic` generates by default
