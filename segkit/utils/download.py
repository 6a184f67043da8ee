"""Downloads that resume and verify: ``download_file(url, dest, sha256=...)``.

A transfer writes ``DEST.part``; a cut connection leaves it there and the next call asks the server for the rest
(HTTP ``Range``); a server that ignores ``Range`` sends the whole file again. The finished file is checked
against its sha256 (a mismatch deletes it) and renamed onto ``dest`` only then. Every failure is one
:class:`DownloadError` line saying what happened and how to get the file by hand::

    download_file(url, Path("downloads") / name, sha256=digest)

Nothing here runs at import; only the functions reach the network (``urllib``, a timeout always set).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from segkit.errors import SegkitError

__all__ = ["DOWNLOAD_TIMEOUT", "DownloadError", "download_file", "sha256_file"]

DOWNLOAD_TIMEOUT = 60.0  # seconds the server may stay silent (connecting or mid-transfer) before giving up
_CHUNK = 1 << 20
_NETWORK_ERRORS = (OSError, http.client.HTTPException)  # URLError, HTTPError and timeouts are OSErrors


class DownloadError(SegkitError, OSError):
    """A download failed (offline, refused, cut, or a checksum mismatch); the message says how to get the file."""


def sha256_file(path: str | os.PathLike) -> str:
    """The file's sha256, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        exc = exc.reason
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _check(path: Path, sha256: str | None, url: str, dest: Path) -> None:
    """Delete ``path`` and raise when its sha256 is not ``sha256``."""
    if sha256 is None:
        return
    got = sha256_file(path)
    if got != sha256.lower():
        path.unlink()
        raise DownloadError(
            f"{url}: sha256 {got} is not the expected {sha256}; the file was deleted. Run again to download it anew; "
            f"if it fails again the file at the URL has changed (fetch a copy you trust to {dest})."
        )


def _progress(total: int | None, initial: int, name: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, desc=name, disable=not enabled)


def download_file(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    timeout: float = DOWNLOAD_TIMEOUT,
    progress: bool = True,
) -> Path:
    """Fetch ``url`` to ``dest`` (resuming ``dest.part``), check its sha256 and return ``dest``.

    An existing ``dest`` with the right sha256 is used as it is (a file put there by hand works); one with another
    sha256 is deleted and fetched again.

    Raises:
        DownloadError: the server cannot be reached (offline), answers with an error, stays silent for ``timeout``
            seconds, the transfer is cut (``dest.part`` is kept for the next call), or the sha256 differs.
    """
    dest = Path(dest)
    if dest.is_file():
        try:
            _check(dest, sha256, url, dest)
            return dest
        except DownloadError:
            pass  # a stale or damaged copy: deleted, fetch it again
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    by_hand = (
        f"Check the network connection and proxy settings and run again (a partial download resumes), or fetch "
        f"{url} by hand (curl -L -o {dest} {url}) and put it at {dest}"
    )
    received = 0
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) URLs from segkit
            status = getattr(response, "status", 200)
            if offset and status != 206:
                offset = 0  # the server ignored Range: it sends the whole file
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length else None
            with open(part, "ab" if offset else "wb") as f, _progress(total, offset, dest.name, progress) as bar:
                while chunk := response.read(_CHUNK):
                    f.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            if total is not None and offset + received != total:
                raise http.client.IncompleteRead(b"", total - offset - received)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # Range beyond the end: the .part holds the whole file already
            pass
        else:
            raise DownloadError(f"Cannot download {url}: HTTP {exc.code} {exc.reason}. {by_hand}.") from exc
    except _NETWORK_ERRORS as exc:
        kept = f" ({offset + received} bytes kept in {part})" if part.is_file() and part.stat().st_size else ""
        raise DownloadError(f"Cannot download {url}: {_reason(exc)} (timeout {timeout:g} s){kept}. {by_hand}.") from exc
    _check(part, sha256, url, dest)
    os.replace(part, dest)
    return dest
