"""Fetch a zoo model (download, check, convert) into segkit's cache; later calls use the cached checkpoint.

    path = fetch_checkpoint("deeplabv3_mnv2_voc_uint8")   # ~/.cache/segkit/zoo/deeplabv3_mnv2_voc_uint8.pth

TFLite files download with :func:`segkit.utils.download.download_file` (resumed, sha256-checked) into
``zoo/files/``; Hugging Face models with ``huggingface_hub`` into ``zoo/hf/ORG--NAME/``. A file or folder put
there by hand (offline machines) is used as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from segkit.utils.cache import zoo_checkpoint_path, zoo_dir
from segkit.utils.download import DOWNLOAD_TIMEOUT, download_file
from segkit.zoo.registry import ZooModel, get_model

__all__ = ["fetch_checkpoint", "source_path"]


def source_path(model: ZooModel) -> Path:
    """Where the model's downloaded file (tflite) or folder (hf) lives in the cache."""
    return zoo_dir() / ("files" if model.format == "tflite" else "hf") / model.filename


def _convert(model: ZooModel, out: Path, *, timeout: float, progress: bool) -> str:
    """Download what ``model`` needs and convert it to ``out``; returns the converter's summary."""
    src = source_path(model)
    if model.format == "tflite":
        from segkit.convert.tflite import convert_tflite

        download_file(str(model.url), src, sha256=model.sha256, timeout=timeout, progress=progress)
        labels = None
        if model.labels_url:
            labels = src.with_name(model.labels_url.rsplit("/", 1)[-1])
            download_file(model.labels_url, labels, sha256=model.labels_sha256, timeout=timeout, progress=progress)
        return convert_tflite(src, out, labels_file=labels).architecture.summary()
    from segkit.convert.hf import convert_hf

    # a folder already there (downloaded before, or by hand with `hf download ... --local-dir`) is read as it is
    source = src if (src / "config.json").is_file() else f"hf:{model.repo_id}@{model.revision}"
    return convert_hf(source, out, local_dir=src).summary()


def fetch_checkpoint(
    name: str,
    *,
    timeout: float = DOWNLOAD_TIMEOUT,
    progress: bool = True,
    log: Callable[[str], object] = print,
) -> Path:
    """The cached segkit checkpoint of zoo model ``name``, downloaded, checked and converted on first use.

    Raises:
        ZooError: an unknown name.
        DownloadError: offline, a cut download (run again: it resumes) or a sha256 mismatch (the file is deleted).
        HFConversionError: a Hugging Face model that cannot be downloaded (offline) or read.
        TFLiteConversionError: a file the converter cannot read.
    """
    model = get_model(name)
    out = zoo_checkpoint_path(name)
    if out.is_file():
        log(f"zoo:{name}: cached checkpoint {out}")
        return out
    log(f"zoo:{name}: fetching {model.source} ({model.pin})")
    summary = _convert(model, out, timeout=timeout, progress=progress)
    log(summary)
    log(f"zoo:{name}: converted and cached as {out}")
    return out
