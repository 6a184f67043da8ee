"""``segkit prepare-data`` end to end: exit codes (0 ready, 1 the check found problems, 2 a user error) and one-line
errors. What each subcommand does is tested through its library function in tests/data/test_sbd_prepare.py."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segkit.cli import main
from segkit.data import DATASET_NAMES
from segkit.data.voc import VOC_URL


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(["prepare-data", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_help_says_what_the_exit_codes_mean(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["prepare-data", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "Exit codes: 0 the data is ready; 1 `voc` or `verify` checked it and found problems" in out
    assert "2 a user error" in out


def test_synthetic_then_verify_exit_0_then_1_with_a_report(tmp_path, capsys):
    root = str(tmp_path)
    code, out, err = run(capsys, "synthetic", "--root", root, "--num-train", "3", "--num-val", "1",
                         "--image-size", "32")  # fmt: skip
    assert code == 0 and out == f"synthetic set (3 train, 1 val, 32px, seed 0) in {tmp_path / 'VOCdevkit/VOC2012'}\n"
    verify = ["verify", "--dataset", "synthetic", "--root", root, "--quiet"]
    code, out, err = run(capsys, *verify)
    assert code == 0 and out.startswith("OK") and err == ""
    mask = tmp_path / "VOCdevkit/VOC2012/SegmentationClass/val_00000.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(mask)  # another size than its image
    code, out, err = run(capsys, *verify)
    assert code == 1 and out.startswith("FAILED: 1 problems") and "size mismatch: 1" in out and err == ""


@pytest.mark.parametrize(
    "argv, message",
    [
        (["verify", "--expect-counts", "many"], "--expect-counts: expected 'auto', 'voc', 'off' or 'split=N,...'"),
        (["sbd", "--root", "data"], "give --sbd-dir PATH (the extracted benchmark_RELEASE/dataset) or --download."),
        (["synthetic", "--config", "voc_mnv2_os16"], "pass --root DIR, or a synthetic config such as demo_mnv2_os16"),
        (["synthetic", "--config", "no_such_config"], "Config 'no_such_config' not found"),
        (["verify", "--config", "voc_mnv2_os61"], "Did you mean 'voc_mnv2_os16'?"),
    ],
)
def test_user_errors_exit_2_with_one_line(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and message in one_line_error(err) and out == ""


def test_missing_voc_for_sbd_exits_2_before_downloading(tmp_path, capsys, monkeypatch):
    calls: list = []
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, *a, **k: calls.append(url))
    code, _, err = run(capsys, "sbd", "--download", "--root", str(tmp_path / "empty"), "--quiet")
    assert code == 2 and "PASCAL VOC 2012 not found" in one_line_error(err)
    assert "segkit prepare-data voc --download" in err and calls == []


def test_failed_download_and_corrupt_archive_exit_2_with_one_line(tmp_path, capsys, monkeypatch):
    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError(OSError(101, "Network is unreachable"))

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    code, _, err = run(capsys, "voc", "--download", "--root", str(tmp_path), "--quiet", "--timeout", "5")
    assert code == 2 and one_line_error(err).startswith("error: Cannot download " + VOC_URL)
    assert "Network is unreachable" in err and "timeout 5 s" in err
    archive = tmp_path / Path(VOC_URL).name
    archive.write_bytes(b"not a tar archive" * 100)  # an earlier, broken download
    code, _, err = run(capsys, "voc", "--download", "--root", str(tmp_path), "--quiet")
    assert code == 2 and one_line_error(err).startswith(f"error: Cannot extract {archive}")


def test_unwritable_root_exits_2_with_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    code, _, err = run(capsys, "synthetic", "--root", str(tmp_path / "file" / "sub"), "--image-size", "32")
    assert code == 2 and "Cannot write under" in one_line_error(err) and "writable --root" in err


def test_a_bad_flag_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["prepare-data", "verify", "--dataset", "imagenet"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'imagenet'" in err and all(name in err for name in DATASET_NAMES)
