"""Data sets (VOC, SBD train_aug, COCO->VOC, own folders, synthetic), data I/O, checks and joint transforms.

``io`` reads images, masks and split lists and writes label PNGs; ``verify`` checks any data set
through its own loading; ``prepare`` downloads and extracts the public data sets; ``command`` is what
``segkit prepare-data`` does, one function per subcommand. ``DATASET_NAMES`` (defined with the config
schema, which validates ``data.dataset``) are the names ``build_dataset`` builds.

This package never imports ``segkit.models``.
"""

from __future__ import annotations

from segkit.config import DATASET_NAMES
from segkit.data.base import BadSampleWarning, DuplicateIdWarning, SegmentationDataset, collate_drop_bad, is_bad_sample
from segkit.data.build import DATASETS, build_dataset, resolve_data_root
from segkit.data.classes import VOC_CLASSES, VOC_PALETTE, read_classes_file
from segkit.data.coco import COCOSegmentation
from segkit.data.folder import FolderDataset
from segkit.data.io import DatasetError, read_image, read_mask, read_split_file, save_label_png
from segkit.data.synthetic import SYNTHETIC_CLASSES, SyntheticVOC, generate_synthetic_voc
from segkit.data.transforms import SegTransform, build_eval_transform, build_train_transform
from segkit.data.voc import VOCSegmentation

__all__ = [
    "BadSampleWarning",
    "COCOSegmentation",
    "DATASETS",
    "DATASET_NAMES",
    "DatasetError",
    "DuplicateIdWarning",
    "FolderDataset",
    "SYNTHETIC_CLASSES",
    "SegTransform",
    "SegmentationDataset",
    "SyntheticVOC",
    "VOCSegmentation",
    "VOC_CLASSES",
    "VOC_PALETTE",
    "build_dataset",
    "build_eval_transform",
    "build_train_transform",
    "collate_drop_bad",
    "generate_synthetic_voc",
    "is_bad_sample",
    "read_classes_file",
    "read_image",
    "read_mask",
    "read_split_file",
    "resolve_data_root",
    "save_label_png",
]
