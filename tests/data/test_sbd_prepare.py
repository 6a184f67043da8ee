"""SBD .mat masks, the train_aug build, downloads, and what ``segkit prepare-data`` does (``segkit.data.command``:
sbd / verify / synthetic); its exit codes and messages are tested in tests/cli/test_prepare_data_command.py."""

from __future__ import annotations

import io
import re
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.sparse
from PIL import Image

import segkit.data.synthetic as synthetic
from segkit.config import ConfigError, load_config
from segkit.data import VOC_PALETTE, DatasetError, VOCSegmentation, generate_synthetic_voc
from segkit.data.command import (
    SYNTHETIC_CONFIG,
    sbd_command,
    synthetic_command,
    verify_command,
    voc_command,
)
from segkit.data.io import save_label_png
from segkit.data.prepare import download, synthetic_settings
from segkit.data.sbd import SBD_URL, build_train_aug, load_sbd_mask, train_aug_ids
from segkit.data.voc import VOC_URL

H, W = 20, 24
VOC_TRAIN, VOC_VAL = ["a", "b", "c"], ["d", "e"]
SBD_TRAIN, SBD_VAL = ["b", "x", "y"], ["d", "z"]  # d is VOC val: excluded from train_aug
IDS = sorted(set(VOC_TRAIN + VOC_VAL + SBD_TRAIN + SBD_VAL))  # the n-th id gets class n % 20 + 1


def voc_mask(n: int) -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    m[2:10, 3:12] = n % 20 + 1
    m[2, 3:12] = 255  # VOC-style boundary
    return m


def sbd_mask(n: int) -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    m[5:15, 5:15] = n % 20 + 1
    return m


def write_tree(tmp_path: Path) -> tuple[Path, Path]:
    root, sbd = tmp_path / "data", tmp_path / "benchmark_RELEASE/dataset"
    base = root / "VOCdevkit/VOC2012"
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (base / d).mkdir(parents=True)
    (sbd / "cls").mkdir(parents=True)
    for n, sample_id in enumerate(IDS):
        Image.fromarray(np.full((H, W, 3), n * 10, np.uint8)).save(base / "JPEGImages" / f"{sample_id}.jpg")
        if sample_id in VOC_TRAIN + VOC_VAL:
            save_label_png(base / "SegmentationClass" / f"{sample_id}.png", voc_mask(n), VOC_PALETTE)
        if sample_id in SBD_TRAIN + SBD_VAL:  # the real struct layout: GTcls.Segmentation (+ other fields)
            boundaries = np.empty((20, 1), dtype=object)  # a cell array of sparse boundary maps
            for k in range(20):
                boundaries[k, 0] = scipy.sparse.csc_matrix((H, W), dtype=np.float64)
            gt = {"Segmentation": sbd_mask(n), "Boundaries": boundaries, "CategoriesPresent": np.array([n % 20 + 1])}
            scipy.io.savemat(sbd / "cls" / f"{sample_id}.mat", {"GTcls": gt})
    (base / "ImageSets/Segmentation/train.txt").write_text("\n".join(VOC_TRAIN) + "\n")
    (base / "ImageSets/Segmentation/val.txt").write_text("\n".join(VOC_VAL) + "\n")
    (sbd / "train.txt").write_text("\n".join(SBD_TRAIN) + "\n")
    (sbd / "val.txt").write_text("\n".join(SBD_VAL) + "\n")
    return root, sbd


COUNTS = "train=3,val=2,train_aug=6"


def test_train_aug_ids_rule():
    assert train_aug_ids(VOC_TRAIN, VOC_VAL, SBD_TRAIN + SBD_VAL) == ["a", "b", "c", "x", "y", "z"]


def test_load_sbd_mask(tmp_path):
    _, sbd = write_tree(tmp_path)
    mask = load_sbd_mask(sbd / "cls/x.mat")
    assert mask.dtype == np.uint8 and mask.shape == (H, W)
    assert np.array_equal(mask, sbd_mask(IDS.index("x")))
    scipy.io.savemat(tmp_path / "inst.mat", {"GTinst": {"Segmentation": np.zeros((2, 2))}})
    with pytest.raises(DatasetError, match=r"inst\.mat has no GTcls\.Segmentation"):
        load_sbd_mask(tmp_path / "inst.mat")


def test_prepare_sbd_then_verify(tmp_path):
    root, sbd = write_tree(tmp_path)
    result = sbd_command(root, sbd, progress=False)
    assert result.ready and result.text.startswith("wrote 6 ids to ")
    base = root / "VOCdevkit/VOC2012"
    assert (base / "ImageSets/Segmentation/train_aug.txt").read_text().split() == ["a", "b", "c", "x", "y", "z"]
    aug = base / "SegmentationClassAug"
    assert Image.open(aug / "x.png").mode == "P"
    assert np.array_equal(np.array(Image.open(aug / "x.png")), sbd_mask(IDS.index("x")))  # from SBD
    assert np.array_equal(np.array(Image.open(aug / "b.png")), voc_mask(IDS.index("b")))  # VOC's own mask
    ds = VOCSegmentation(root, "train_aug")
    assert len(ds) == 6 and ds[3]["id"] == "x"
    result = verify_command(str(root), expect_counts=COUNTS, progress=False)
    assert result.ready and result.text.startswith("OK")


def test_verify_reports_every_problem(tmp_path):
    root, sbd = write_tree(tmp_path)
    build_train_aug(root, sbd, progress=False)
    base = root / "VOCdevkit/VOC2012"
    (base / "SegmentationClass/d.png").unlink()  # missing mask
    (base / "JPEGImages/e.jpg").unlink()  # missing image
    save_label_png(base / "SegmentationClassAug/x.png", np.zeros((H + 1, W), np.uint8), VOC_PALETTE)  # size
    bad = sbd_mask(0)
    bad[0, 0] = 40
    save_label_png(base / "SegmentationClassAug/y.png", bad, VOC_PALETTE)  # label 40
    (base / "SegmentationClass/a.png").write_bytes(b"broken")  # unreadable
    result = verify_command(str(root), progress=False)  # official counts too
    out = result.text
    assert not result.ready and out.startswith("FAILED")
    assert re.search(r"missing mask: 1\n.*SegmentationClass/d\.png", out)
    assert re.search(r"missing image: 1\n.*JPEGImages/e\.jpg", out)
    assert re.search(r"size mismatch: 1\n.*SegmentationClassAug/x\.png is 24x21 \(WxH\) but .*x\.jpg is 24x20", out)
    assert re.search(r"bad labels: 1\n.*SegmentationClassAug/y\.png holds label values \[40\]", out)
    assert re.search(r"unreadable mask: 1\n.*SegmentationClass/a\.png", out)
    assert "lists 3 ids, expected 1464" in out and "expected 10582" in out


def test_verify_missing_tree_and_lists(tmp_path):
    result = verify_command(str(tmp_path), progress=False)
    assert not result.ready and "segkit prepare-data voc --download" in result.text
    root, _ = write_tree(tmp_path)
    result = verify_command(str(root), expect_counts="off", progress=False)
    assert not result.ready
    assert re.search(r"missing split list: 1\n.*train_aug\.txt not found.*the 'sbd' subcommand", result.text)
    with pytest.raises(DatasetError, match=r"--expect-counts: expected 'auto', 'voc', 'off' or 'split=N,...'"):
        verify_command(str(root), expect_counts="many")


def test_missing_sbd_mat_leaves_no_list(tmp_path):
    root, sbd = write_tree(tmp_path)
    (sbd / "cls/z.mat").unlink()
    with pytest.raises(DatasetError, match=re.escape(str(sbd / "cls/z.mat"))):
        build_train_aug(root, sbd, progress=False)
    assert not (root / "VOCdevkit/VOC2012/ImageSets/Segmentation/train_aug.txt").exists()
    with pytest.raises(DatasetError, match=r"cls not found; --sbd-dir must point at"):
        build_train_aug(root, tmp_path, progress=False)


def test_synthetic_command_then_verify(tmp_path):
    result = synthetic_command(root=str(tmp_path), num_train=4, num_val=2, image_size=48)
    assert result.text == f"synthetic set (4 train, 2 val, 48px, seed 0) in {tmp_path / 'VOCdevkit/VOC2012'}"
    result = verify_command(str(tmp_path), splits=["train", "val"], num_classes=5, expect_counts="train=4,val=2",
                            progress=False)  # fmt: skip
    assert result.ready


def test_synthetic_settings_are_the_configs(tmp_path):
    """Without arguments it generates exactly the set `segkit train --config demo_mnv2_os16` uses (no regeneration)."""
    assert SYNTHETIC_CONFIG == "demo_mnv2_os16"
    data = load_config(SYNTHETIC_CONFIG).data
    assert synthetic_settings(SYNTHETIC_CONFIG) == {
        "root": data.root,
        "num_train": data.synthetic_num_train,
        "num_val": 60,
        "image_size": data.synthetic_image_size,
        "seed": 0,
    }
    assert data.synthetic_num_train == 400  # the demo's own number, not the subcommand's old default
    settings = synthetic_settings(SYNTHETIC_CONFIG, str(tmp_path), num_train=7, num_val=None)  # given values win
    assert settings == {"root": str(tmp_path), "num_train": 7, "num_val": 60, "image_size": 160, "seed": 0}
    with pytest.raises(ConfigError, match="pass --root DIR"):  # a VOC config's root is real data
        synthetic_command("voc_mnv2_os16")
    with pytest.raises(ConfigError, match="no_such_config"):
        synthetic_command("no_such_config")
    with pytest.raises(ConfigError, match=r"synthetic num_train must be >= 1, got 0 .*--num-train"):
        synthetic_command(root=str(tmp_path), num_train=0)


def test_verify_reads_classes_txt(tmp_path):
    generate_synthetic_voc(tmp_path, num_train=3, num_val=1, image_size=48)  # classes.txt: 5 classes
    mask_path = tmp_path / "VOCdevkit/VOC2012/SegmentationClass/train_00001.png"
    mask = np.array(Image.open(mask_path))
    mask[0, 0] = 7  # a VOC class, but not one of the 5 listed in classes.txt
    save_label_png(mask_path, mask, VOC_PALETTE)
    options = dict(splits=["train"], expect_counts="off", progress=False)
    result = verify_command(str(tmp_path), **options)
    assert not result.ready
    assert re.search(r"bad labels: 1\n.*train_00001\.png holds label values \[7\] outside 0\.\.4", result.text)
    assert verify_command(str(tmp_path), num_classes=21, **options).ready  # an explicit count wins
    (tmp_path / "VOCdevkit/VOC2012/classes.txt").write_text("a 1 2\n")
    result = verify_command(str(tmp_path), **options)
    assert not result.ready
    assert re.search(r"bad classes\.txt: 1\n.*classes\.txt:1: expected 'name' or 'name r g b'", result.text)


# -- downloads ----------------------------------------------------------------------------------
def no_network(calls: list):
    def urlopen(url, *args, **kwargs):
        calls.append((url, kwargs))
        raise urllib.error.URLError(OSError(101, "Network is unreachable"))

    return urlopen


def test_download_failure_says_what_failed(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(urllib.request, "urlopen", no_network(calls))
    with pytest.raises(DatasetError) as info:
        voc_command(tmp_path, download=True, timeout=5, progress=False)
    message = str(info.value)
    assert message.startswith("Cannot download " + VOC_URL) and "\n" not in message
    assert "Network is unreachable" in message and "timeout 5 s" in message
    assert calls == [(VOC_URL, {"timeout": 5.0})]  # a timeout is always set
    assert list(tmp_path.iterdir()) == []  # no partial archive left behind


def test_download_timeout_and_truncation(tmp_path, monkeypatch):
    monkeypatch.setattr(
        urllib.request, "urlopen", lambda url, timeout: (_ for _ in ()).throw(TimeoutError("timed out"))
    )
    with pytest.raises(DatasetError, match=r"Cannot download http://x/a\.tar: TimeoutError: timed out"):
        download("http://x/a.tar", tmp_path / "a.tar", timeout=1)

    class Short(io.BytesIO):
        headers = {"Content-Length": "100"}

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Short(b"only 18 bytes here"))
    with pytest.raises(DatasetError, match="IncompleteRead"):
        download("http://x/a.tar", tmp_path / "a.tar")
    assert list(tmp_path.iterdir()) == []


def test_corrupt_archive_says_delete_it(tmp_path):
    archive = tmp_path / Path(VOC_URL).name
    archive.write_bytes(b"not a tar archive" * 100)  # an earlier, broken download
    with pytest.raises(DatasetError) as info:
        voc_command(tmp_path, download=True, progress=False)
    message = str(info.value)
    assert message.startswith(f"Cannot extract {archive}") and f"delete {archive}" in message and "\n" not in message


def test_bad_expect_counts_fail_before_downloading(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(urllib.request, "urlopen", no_network(calls))
    with pytest.raises(DatasetError, match="--expect-counts"):
        voc_command(tmp_path, download=True, expect_counts="many")
    assert calls == []


def test_sbd_download_checks_voc_first(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(urllib.request, "urlopen", no_network(calls))
    with pytest.raises(DatasetError, match="PASCAL VOC 2012 not found"):
        sbd_command(tmp_path / "empty", download=True, progress=False)
    assert calls == []  # nothing fetched
    root, _ = write_tree(tmp_path)
    with pytest.raises(DatasetError, match="^Cannot download " + re.escape(SBD_URL)):  # VOC fine: fetches
        sbd_command(root, download=True, progress=False)
    assert calls and calls[0][0] == SBD_URL
    with pytest.raises(DatasetError, match=r"give --sbd-dir PATH .* or --download"):
        sbd_command(root)


def test_unwritable_root_is_a_dataset_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(DatasetError, match=r"Cannot write under .*file/sub: NotADirectoryError.*writable --root"):
        synthetic_command(root=str(tmp_path / "file" / "sub"), num_train=1, num_val=1, image_size=32)


# -- real VOC files -----------------------------------------------------------------------------
def test_verify_real_voc_sample(shared_data):
    result = verify_command(str(shared_data / "voc_sample"), splits=["val"], expect_counts="off", progress=False)
    assert result.ready and result.text.startswith("OK")


# -- verify walks any data set through its own loading ------------------------------------------
def test_verify_reports_ids_listed_twice(tmp_path):
    root, _ = write_tree(tmp_path)
    split = root / "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt"
    split.write_text("d\ne\nd\n")
    options = dict(splits=["train", "val"], expect_counts="train=3,val=2", progress=False)
    result = verify_command(str(root), **options)
    assert not result.ready  # the list is inconsistent, though each id is used once
    assert re.search(r"duplicate ids: 1\n.*val\.txt\) lists 1 ids more than once \(d\)", result.text)
    assert "wrong count" not in result.text  # 2 distinct ids, as expected
    split.write_text("d\ne\n")
    assert verify_command(str(root), **options).ready


def write_user_folder(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(4):
        Image.fromarray(np.full((12, 16, 3), 30 * i, np.uint8)).save(root / "images" / f"p{i}.png")
        mask = np.full((12, 16), i % 3, np.uint8)
        mask[0] = 99  # this data set's unlabelled value
        Image.fromarray(mask, mode="L").save(root / "masks" / f"p{i}.png")
    (root / "classes.txt").write_text("bg\nroad\ncar\n")
    (root / "splits").mkdir()
    (root / "splits/train.txt").write_text("p0\np1\np2\n")
    (root / "splits/val.txt").write_text("p3\n")
    return root


def test_verify_checks_a_users_folder(tmp_path):
    root = write_user_folder(tmp_path / "my_data")
    options = dict(dataset="folder", progress=False)
    result = verify_command(str(root), ignore_index=99, **options)
    assert result.ready and result.text.startswith("OK")  # splits/*.txt are checked; no official counts
    result = verify_command(str(root), **options)
    assert not result.ready  # the default ignore index 255: 99 is no label of 3 classes
    assert re.search(r"bad labels: 4\n.*p0\.png holds label values \[99\] outside 0\.\.2", result.text)
    mask = np.full((12, 16), 5, np.uint8)  # class 5 of 3
    Image.fromarray(mask, mode="L").save(root / "masks/p1.png")
    (root / "masks/p2.png").unlink()
    Image.fromarray(np.zeros((10, 16), np.uint8), mode="L").save(root / "masks/p3.png")
    result = verify_command(str(root), ignore_index=99, **options)
    out = result.text
    assert not result.ready
    assert re.search(r"bad labels: 1\n.*p1\.png holds label values \[5\]", out)
    assert re.search(r"missing mask: 1\n.*masks/p2\.png", out)
    assert re.search(r"size mismatch: 1\n.*p3\.png is 16x10 \(WxH\) but .*p3\.png is 16x12", out)
    result = verify_command(str(tmp_path / "nothing"), **options)
    assert not result.ready
    assert re.search(r"missing data: 1\n.*Folder data set: .*nothing/images not found", result.text)


def test_verify_takes_the_configs_data_and_splits(tmp_path):
    generate_synthetic_voc(tmp_path, num_train=3, num_val=2, image_size=48)
    result = verify_command(str(tmp_path), config="demo_mnv2_os16", progress=False)  # its train and val splits
    assert result.ready, result.text


def test_verify_synthetic_reads_the_set_without_regenerating(tmp_path, monkeypatch):
    generate_synthetic_voc(tmp_path, num_train=3, num_val=2, image_size=48)
    monkeypatch.setattr(synthetic, "_write_tree", lambda *a, **k: pytest.fail("verify must not (re)generate"))
    result = verify_command(str(tmp_path), dataset="synthetic", progress=False)
    assert result.ready and result.text.startswith("OK")
    result = verify_command(str(tmp_path / "none"), dataset="synthetic", progress=False)
    assert not result.ready and "No synthetic set under" in result.text
