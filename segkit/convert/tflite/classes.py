"""Class names of official models whose files do not carry them.

``ADE20K_TOP31_CLASSES``: the 32 classes of the MLPerf Mobile ADE20K DeepLabV3+ model
(``deeplabv3_mnv2_ade20k_uint8.tflite``): 0 = "other" (every ADE20K class outside the 31), then
ADE20K's 31 most frequent classes with their ids 1..31 of ADE20K's ``objectInfo150`` order (the
first name of each entry: ``windowpane`` for "windowpane, window", ``earth`` for "earth, ground", ...).
"""

from __future__ import annotations

__all__ = ["ADE20K_TOP31_CLASSES"]

ADE20K_TOP31_CLASSES: tuple[str, ...] = (
    "other",
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair",
    "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair",
)  # fmt: skip
