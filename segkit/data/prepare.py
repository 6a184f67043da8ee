"""Download and prepare the public data sets: PASCAL VOC 2012, SBD's train_aug, the synthetic set.

Downloads are atomic (nothing half-written is left under the archive's name), give up after a
silence of ``timeout`` seconds, and fail with a one-line :class:`DatasetError` saying what to do::

    prepare_voc("data", download=True)             # fetch + extract VOCtrainval_11-May-2012.tar
    prepare_sbd("data", download=True)             # fetch SBD, build SegmentationClassAug + train_aug.txt
    synthetic_settings("demo_mnv2_os16")           # root and parameters of the demo's synthetic set

Nothing is downloaded at import or at training time; only these functions (``segkit prepare-data``)
reach the network.
"""

from __future__ import annotations

import http.client
import os
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

from tqdm import tqdm

from segkit.data.io import DatasetError
from segkit.data.sbd import build_train_aug
from segkit.data.sources import DOWNLOAD_TIMEOUT, SBD_URL, VOC_URL
from segkit.data.voc import split_file, voc_dir, voc_not_found_error
from segkit.utils.io import atomic_path

__all__ = [
    "DOWNLOAD_TIMEOUT",
    "download",
    "extract",
    "fetch",
    "prepare_sbd",
    "prepare_voc",
    "synthetic_settings",
    "voc_ready_for_sbd",
]

_NETWORK_ERRORS = (OSError, http.client.HTTPException)  # URLError, HTTPError and timeouts are OSErrors


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
    """Extract a tar archive (with the safe 'data' filter where Python has it) or a zip archive into ``dest``.

    Raises:
        DatasetError: the archive is corrupt or truncated, or ``dest`` cannot be written.
    """
    print(f"extracting {archive} -> {dest}")
    try:
        if zipfile.is_zipfile(archive):  # ADE20K's archive; zipfile drops absolute paths and '..' from names
            with zipfile.ZipFile(archive) as zipped:
                zipped.extractall(dest)
            return
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, filter="data")
            else:  # pragma: no cover - Python without extraction filters
                tar.extractall(dest)  # noqa: S202
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise DatasetError(
            f"Cannot extract {archive} into {dest}: {_one_line(exc)}. A corrupt or incomplete "
            f"archive: delete {archive} and run again (or check that {dest} is writable with free space)."
        ) from exc


def fetch(url: str, archive: Path, dest: Path, *, keep_archive: bool, timeout: float = DOWNLOAD_TIMEOUT) -> None:
    """Download ``url`` to ``archive``, extract it into ``dest``, and delete it unless ``keep_archive``."""
    download(url, archive, timeout)
    extract(archive, dest)
    if not keep_archive:
        archive.unlink()


def prepare_voc(
    root: str | os.PathLike, *, download: bool = False, keep_archive: bool = False, timeout: float = DOWNLOAD_TIMEOUT
) -> Path:
    """Fetch and extract PASCAL VOC 2012 into ``root`` (when ``download``); returns ``root``.

    Raises:
        DatasetError: the download or the extraction failed (one line saying what to do).
    """
    root = Path(root)
    if download:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatasetError(f"Cannot create {root}: {_one_line(exc)}; pass a writable --root.") from exc
        fetch(VOC_URL, root / Path(VOC_URL).name, root, keep_archive=keep_archive, timeout=timeout)
    return root


def voc_ready_for_sbd(root: Path) -> None:
    """Raise DatasetError unless ``root`` holds VOC's images and train/val lists (train_aug builds on them)."""
    if not (voc_dir(root) / "JPEGImages").is_dir():
        raise DatasetError(f"SBD's train_aug extends VOC, so VOC comes first. {voc_not_found_error(root)}")
    for split in ("train", "val"):
        if not split_file(root, split).is_file():
            raise DatasetError(
                f"VOC split list {split_file(root, split)} not found; train_aug is built from VOC's train and val "
                f"lists. Re-extract VOC (`segkit prepare-data voc --download --root {root}`) first."
            )


def prepare_sbd(
    root: str | os.PathLike,
    sbd_dir: str | os.PathLike | None = None,
    *,
    download: bool = False,
    keep_archive: bool = False,
    overwrite: bool = False,
    timeout: float = DOWNLOAD_TIMEOUT,
    progress: bool = True,
) -> list[str]:
    """Build VOC's ``train_aug`` split from SBD: an extracted ``sbd_dir``, or fetched into ``root/SBD``.

    VOC is checked first (before fetching 1.4 GB). Returns the train_aug ids.

    Raises:
        DatasetError: VOC is not ready, the download failed, or SBD files are missing.
    """
    root = Path(root)
    if sbd_dir is None and not download:
        raise ValueError("give sbd_dir (the extracted benchmark_RELEASE/dataset) or download=True.")
    voc_ready_for_sbd(root)
    if sbd_dir is None:
        fetch(SBD_URL, root / "benchmark.tgz", root / "SBD", keep_archive=keep_archive, timeout=timeout)
        sbd_dir = root / "SBD" / "benchmark_RELEASE" / "dataset"
    return build_train_aug(root, sbd_dir, overwrite=overwrite, progress=progress)


def synthetic_settings(config: str, root: str | None = None, **overrides: int | None) -> dict[str, Any]:
    """Root and generation parameters of a synthetic set: ``overrides`` that are not None, else ``config``'s.

    Args:
        config: a config name or path whose ``data.root`` and ``data.synthetic_*`` are the defaults.
        root: the cache folder (default: the config's ``data.root``).
        overrides: ``num_train``, ``num_val``, ``image_size``, ``seed``.

    Raises:
        ConfigError: an unknown or invalid config, or one whose data set is not the synthetic one
            while ``root`` is not given.
    """
    from segkit.config import ConfigError, load_config

    data = load_config(config).data
    if data.dataset != "synthetic" and root is None:
        raise ConfigError(
            f"--config {config} uses data.dataset={data.dataset}, so its data.root ('{data.root}') is no "
            "place for the synthetic set; pass --root DIR, or a synthetic config such as demo_mnv2_os16."
        )
    from_config: dict[str, Any] = {"root": data.root, "num_train": data.synthetic_num_train,
                                   "num_val": data.synthetic_num_val, "image_size": data.synthetic_image_size,
                                   "seed": data.synthetic_seed}  # fmt: skip
    given = {"root": root, **overrides}
    unknown = set(given) - set(from_config)
    if unknown:
        raise TypeError(f"synthetic_settings: unknown settings {sorted(unknown)}; valid: {sorted(from_config)}.")
    return {key: value if given.get(key) is None else given[key] for key, value in from_config.items()}
