"""The official models segkit reads, by name: where each comes from, what it is, and how close segkit's port is.

Figures: published = the source's own evaluation (VOC 2012 val mIoU, ADE20K val mIoU over 31 classes, ImageNet
top-1); agreement = segkit's measurement against the source's own runtime (docs/official_weights.md,
benchmarks/results/official_conversion.md). TFLite files are pinned by sha256; Hugging Face models by repo id and
revision (the Hub checks its own files' hashes).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal

from segkit.errors import SegkitError

__all__ = ["ZOO", "ZooError", "ZooModel", "get_model"]

CORAL = "https://github.com/google-coral/test_data/raw/master/"
MLPERF = "https://github.com/mlcommons/mobile_models/raw/562065f917c78513f1134ae397456cca3f0ba62f/v0_7/tflite/"
HUB = "https://huggingface.co/"


class ZooError(SegkitError, KeyError):
    """An unknown zoo model name; the message lists the names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class ZooModel:
    """One official model.

    Attributes:
        name: what ``zoo:NAME`` names.
        format: ``tflite`` (a file at ``url``, checked against ``sha256``) or ``hf`` (Hub repo ``repo_id``).
        kind: ``segmentor`` or ``classifier`` (a classifier initialises a backbone via ``train.init_weights``).
        architecture: what segkit builds from it.
        published: the source's own accuracy figure.
        agreement: segkit's measured agreement with the source's runtime.
    """

    name: str
    format: Literal["tflite", "hf"]
    kind: Literal["segmentor", "classifier"]
    architecture: str
    published: str
    agreement: str
    url: str | None = None
    sha256: str | None = None
    labels_url: str | None = None
    labels_sha256: str | None = None
    repo_id: str | None = None
    revision: str = "main"

    @property
    def source(self) -> str:
        """The URL a user can open: the file, or the Hub page."""
        return self.url if self.format == "tflite" else f"{HUB}{self.repo_id}"  # type: ignore[return-value]

    @property
    def filename(self) -> str:
        """The downloaded file's name (tflite) or the Hub repo's folder name (hf)."""
        if self.format == "tflite":
            return str(self.url).rsplit("/", 1)[-1]
        return str(self.repo_id).replace("/", "--")

    @property
    def pin(self) -> str:
        """What pins the download: the sha256, or the Hub revision."""
        return f"sha256 {self.sha256}" if self.format == "tflite" else f"revision {self.revision}"


_HF_FIGURES = "logits = transformers' within 1e-4 (tests with random weights; the real file not run here)"
_HF_CLASSIFIER = "MobileNetV2 width {w}, {s}x{s}, 1001 ImageNet classes (0 = background), float"

ZOO: dict[str, ZooModel] = {
    m.name: m
    for m in (
        ZooModel(
            name="deeplabv3_mnv2_voc_uint8",
            format="tflite",
            kind="segmentor",
            architecture="DeepLabV3 MobileNetV2 1.0, OS16, light head, 21 VOC classes, 513x513, uint8 QAT",
            published="74.26% mIoU VOC12 val",
            agreement="99.76% of pixels = TFLite interpreter (8 VOC images)",
            url=CORAL + "deeplabv3_mnv2_pascal_quant.tflite",
            sha256="350af47fd346ea6d74b58833a351f583ba860e9806ec5bd292ff8d8f1f249398",
        ),
        ZooModel(
            name="deeplabv3_mnv2_voc_float",
            format="hf",
            kind="segmentor",
            architecture="DeepLabV3 MobileNetV2 1.0, OS8, light head, 21 VOC classes, float (TF DeepLab checkpoint)",
            published="75.32% mIoU VOC12 val (OS8; see docs/zoo.md)",
            agreement=_HF_FIGURES,
            repo_id="google/deeplabv3_mobilenet_v2_1.0_513",
        ),
        ZooModel(
            name="deeplabv3_mnv2_ade20k_uint8",
            format="tflite",
            kind="segmentor",
            architecture="DeepLabV3+ MobileNetV2 1.0, OS16, light head + decoder (OS4), 32 classes, 512x512, uint8",
            published="54.83% mIoU ADE20K val (31 classes; float 55.28%)",
            agreement="98.29% of pixels = TFLite interpreter (10 ADE20K images; docs/official_weights.md)",
            url=MLPERF + "deeplabv3_mnv2_ade20k_uint8.tflite",
            sha256="2d58c681d81b5e181816b81cc815b82edf3daad905b4d7d35afade80aee93b5f",
        ),
        ZooModel(
            name="mobilenet_v2_1.0_224_uint8",
            format="tflite",
            kind="classifier",
            architecture="MobileNetV2 1.0, 224x224, 1001 ImageNet classes, uint8 QAT",
            published="-",
            agreement="top-1 = TFLite interpreter on 3/3 photos, softmax within 0.021",
            url=CORAL + "mobilenet_v2_1.0_224_quant.tflite",
            sha256="7aad0c74c5e3c06e5eb3c827e13304fdd68a83da6087d92ee169c24ff9fd4776",
            labels_url=CORAL + "imagenet_labels.txt",
            labels_sha256="b8aaeb5630c62626a7d124a05c0e14230a7ffdd2136a31d0190a4fb71c1d82f1",
        ),
        *(
            ZooModel(
                name=f"mobilenet_v2_{w}_{s}",
                format="hf",
                kind="classifier",
                architecture=_HF_CLASSIFIER.format(w=w, s=s),
                published=f"{top1} top-1 ImageNet val",
                agreement=_HF_FIGURES,
                repo_id=f"google/mobilenet_v2_{w}_{s}",
            )
            for w, s, top1 in (
                ("1.4", 224, "75.0%"),
                ("1.0", 224, "71.8%"),
                ("0.75", 160, "66.4%"),
                ("0.35", 96, "45.5%"),
            )
        ),
    )
}


def get_model(name: str) -> ZooModel:
    """The zoo model called ``name``.

    Raises:
        ZooError: no such model (the closest name is suggested).
    """
    if name in ZOO:
        return ZOO[name]
    close = difflib.get_close_matches(name, ZOO, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ZooError(f"no zoo model {name!r}; `segkit zoo` lists them: {', '.join(ZOO)}.{hint}")
