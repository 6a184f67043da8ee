"""``segkit.utils.download.download_file`` against a real HTTP server on 127.0.0.1: a plain download, a cut
transfer resumed with ``Range``, a server that ignores ``Range``, a sha256 mismatch, a closed port (offline)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from segkit.utils.download import DownloadError, download_file
from tests.helpers.http_server import FileServer, closed_port

DATA = bytes(range(256)) * 400  # 100 kB
SHA = hashlib.sha256(DATA).hexdigest()


def test_download_checks_and_keeps_the_file(tmp_path: Path) -> None:
    dest = tmp_path / "sub" / "model.bin"
    with FileServer({"/m": DATA}) as server:
        assert download_file(server.url("/m"), dest, sha256=SHA, progress=False) == dest
        assert dest.read_bytes() == DATA and not dest.with_name("model.bin.part").exists()
        download_file(server.url("/m"), dest, sha256=SHA, progress=False)  # present and right: no request
        assert len(server.requests) == 1


def test_cut_download_resumes_with_range(tmp_path: Path) -> None:
    dest = tmp_path / "model.bin"
    part = tmp_path / "model.bin.part"
    with FileServer({"/m": DATA}, cut_first=True) as server:
        with pytest.raises(DownloadError) as info:
            download_file(server.url("/m"), dest, sha256=SHA, progress=False, timeout=10)
        message = str(info.value)
        assert "\n" not in message and f"kept in {part}" in message and "run again" in message
        assert not dest.exists() and 0 < part.stat().st_size < len(DATA)
        kept = part.stat().st_size
        download_file(server.url("/m"), dest, sha256=SHA, progress=False, timeout=10)
        assert server.requests == [("/m", None), ("/m", f"bytes={kept}-")]
    assert dest.read_bytes() == DATA and not part.exists()


def test_server_ignoring_range_sends_everything_again(tmp_path: Path) -> None:
    (tmp_path / "model.bin.part").write_bytes(b"stale bytes of another try")
    with FileServer({"/m": DATA}, honour_range=False) as server:
        download_file(server.url("/m"), tmp_path / "model.bin", sha256=SHA, progress=False)
    assert (tmp_path / "model.bin").read_bytes() == DATA


def test_complete_part_file_is_finished_without_a_body(tmp_path: Path) -> None:
    (tmp_path / "model.bin.part").write_bytes(DATA)  # cut exactly at the end: the server answers 416
    with FileServer({"/m": DATA}) as server:
        download_file(server.url("/m"), tmp_path / "model.bin", sha256=SHA, progress=False)
    assert (tmp_path / "model.bin").read_bytes() == DATA


def test_checksum_mismatch_deletes_the_file(tmp_path: Path) -> None:
    dest = tmp_path / "model.bin"
    with FileServer({"/m": DATA}) as server:
        with pytest.raises(DownloadError) as info:
            download_file(server.url("/m"), dest, sha256="0" * 64, progress=False)
    message = str(info.value)
    assert "\n" not in message and f"sha256 {SHA} is not the expected {'0' * 64}" in message
    assert "deleted" in message and list(tmp_path.iterdir()) == []


def test_offline_and_http_errors_say_how_to_fetch_by_hand(tmp_path: Path) -> None:
    dest = tmp_path / "model.bin"
    url = f"http://127.0.0.1:{closed_port()}/m"
    with pytest.raises(DownloadError) as info:
        download_file(url, dest, sha256=SHA, progress=False, timeout=5)
    message = str(info.value)
    assert message.startswith(f"Cannot download {url}: ConnectionRefusedError") and "\n" not in message
    assert f"curl -L -o {dest} {url}" in message and f"put it at {dest}" in message
    with FileServer({}) as server, pytest.raises(DownloadError, match="HTTP 404"):
        download_file(server.url("/missing"), dest, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_wrong_file_already_there_is_fetched_again(tmp_path: Path) -> None:
    dest = tmp_path / "model.bin"
    dest.write_bytes(b"damaged")
    with FileServer({"/m": DATA}) as server:
        download_file(server.url("/m"), dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == DATA
