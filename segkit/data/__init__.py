"""Data sets (VOC, SBD train_aug, COCO->VOC, ADE20K, Cityscapes, own folders, synthetic), data I/O, checks and
joint transforms.

``io`` reads images, masks and split lists and writes label PNGs; ``verify`` checks any data set
through its own loading; ``prepare`` downloads and extracts the public data sets; ``command`` is what
``segkit prepare-data`` does, one function per subcommand. ``DATASET_NAMES`` (defined with the config
schema, which validates ``data.dataset``) are the names ``build_dataset`` builds.

This package never imports ``segkit.models``.
"""

from __future__ import annotations

from segkit.utils.lazy import lazy_exports

# public name -> defining module, imported on first use: light modules (segkit.data.sources) stay light
_EXPORTS = {
    "ADE20KSegmentation": "segkit.data.ade20k",
    "BadSampleWarning": "segkit.data.base",
    "COCOSegmentation": "segkit.data.coco",
    "CityscapesSegmentation": "segkit.data.cityscapes",
    "DATASETS": "segkit.data.build",
    "DATASET_NAMES": "segkit.config",
    "DatasetError": "segkit.data.io",
    "DuplicateIdWarning": "segkit.data.base",
    "FolderDataset": "segkit.data.folder",
    "SYNTHETIC_CLASSES": "segkit.data.synthetic",
    "SegTransform": "segkit.data.transforms",
    "SegmentationDataset": "segkit.data.base",
    "SyntheticVOC": "segkit.data.synthetic",
    "VOCSegmentation": "segkit.data.voc",
    "VOC_CLASSES": "segkit.data.classes",
    "VOC_PALETTE": "segkit.data.classes",
    "build_dataset": "segkit.data.build",
    "build_eval_transform": "segkit.data.transforms",
    "build_train_transform": "segkit.data.transforms",
    "collate_drop_bad": "segkit.data.base",
    "generate_synthetic_voc": "segkit.data.synthetic",
    "is_bad_sample": "segkit.data.base",
    "read_classes_file": "segkit.data.classes",
    "read_image": "segkit.data.io",
    "read_mask": "segkit.data.io",
    "read_split_file": "segkit.data.io",
    "resolve_data_root": "segkit.data.build",
    "save_label_png": "segkit.data.io",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
