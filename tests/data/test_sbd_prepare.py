"""SBD .mat masks, the train_aug build and ``segkit prepare-data`` (downloads / sbd / verify / synthetic)."""

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
from segkit.cli.prepare_data import main
from segkit.config import load_config
from segkit.data import VOC_PALETTE, DatasetError, VOCSegmentation, generate_synthetic_voc
from segkit.data.io import save_label_png
from segkit.data.prepare import download
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


def test_prepare_sbd_then_verify(tmp_path, capsys):
    root, sbd = write_tree(tmp_path)
    assert main(["sbd", "--root", str(root), "--sbd-dir", str(sbd), "--quiet"]) == 0
    base = root / "VOCdevkit/VOC2012"
    assert (base / "ImageSets/Segmentation/train_aug.txt").read_text().split() == ["a", "b", "c", "x", "y", "z"]
    aug = base / "SegmentationClassAug"
    assert Image.open(aug / "x.png").mode == "P"
    assert np.array_equal(np.array(Image.open(aug / "x.png")), sbd_mask(IDS.index("x")))  # from SBD
    assert np.array_equal(np.array(Image.open(aug / "b.png")), voc_mask(IDS.index("b")))  # VOC's own mask
    ds = VOCSegmentation(root, "train_aug")
    assert len(ds) == 6 and ds[3]["id"] == "x"
    capsys.readouterr()
    assert main(["verify", "--root", str(root), "--expect-counts", COUNTS, "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("OK")


def test_verify_reports_every_problem(tmp_path, capsys):
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
    assert main(["verify", "--root", str(root), "--quiet"]) == 1  # official counts too
    out = capsys.readouterr().out
    assert out.startswith("FAILED")
    assert re.search(r"missing mask: 1\n.*SegmentationClass/d\.png", out)
    assert re.search(r"missing image: 1\n.*JPEGImages/e\.jpg", out)
    assert re.search(r"size mismatch: 1\n.*SegmentationClassAug/x\.png is 24x21 \(WxH\) but .*x\.jpg is 24x20", out)
    assert re.search(r"bad labels: 1\n.*SegmentationClassAug/y\.png holds label values \[40\]", out)
    assert re.search(r"unreadable mask: 1\n.*SegmentationClass/a\.png", out)
    assert "lists 3 ids, expected 1464" in out and "expected 10582" in out


def test_verify_missing_tree_and_lists(tmp_path, capsys):
    assert main(["verify", "--root", str(tmp_path), "--quiet"]) == 1
    assert "prepare_data.py voc --download" in capsys.readouterr().out
    root, _ = write_tree(tmp_path)
    assert main(["verify", "--root", str(root), "--expect-counts", "off", "--quiet"]) == 1
    assert re.search(r"missing split list: 1\n.*train_aug\.txt not found.*the 'sbd' subcommand",
                     capsys.readouterr().out)  # fmt: skip
    with pytest.raises(SystemExit):
        main(["verify", "--expect-counts", "many"])


def test_missing_sbd_mat_leaves_no_list(tmp_path):
    root, sbd = write_tree(tmp_path)
    (sbd / "cls/z.mat").unlink()
    with pytest.raises(DatasetError, match=re.escape(str(sbd / "cls/z.mat"))):
        build_train_aug(root, sbd, progress=False)
    assert not (root / "VOCdevkit/VOC2012/ImageSets/Segmentation/train_aug.txt").exists()
    with pytest.raises(DatasetError, match=r"cls not found; --sbd-dir must point at"):
        build_train_aug(root, tmp_path, progress=False)


def test_synthetic_subcommand(tmp_path, capsys):
    args = ["synthetic", "--root", str(tmp_path), "--num-train", "4", "--num-val", "2", "--image-size", "48"]
    assert main(args) == 0
    counts = "train=4,val=2"
    assert main(["verify", "--root", str(tmp_path), "--splits", "train", "val", "--num-classes", "5",
                              "--expect-counts", counts, "--quiet"]) == 0  # fmt: skip


def test_synthetic_subcommand_takes_the_configs_settings(tmp_path, capsys, monkeypatch):
    """Without flags it generates exactly the set `train --config demo_mnv2_os16` uses (no regeneration)."""
    cfg = load_config("demo_mnv2_os16")
    made = []
    monkeypatch.setattr(synthetic, "generate_synthetic_voc", lambda root, **kw: made.append((root, kw)) or Path(root))
    assert main(["synthetic"]) == 0
    assert made[-1] == (
        cfg.data.root,
        {
            "num_train": cfg.data.synthetic_num_train,
            "num_val": 60,
            "image_size": cfg.data.synthetic_image_size,
            "seed": 0,
        },
    )
    assert cfg.data.synthetic_num_train == 400  # the demo's own number, not the subcommand's old default
    assert (
        main(["synthetic", "--config", "demo_mnv2_os16", "--root", str(tmp_path), "--num-train", "7"]) == 0
    )  # flags override the config
    assert made[-1] == (str(tmp_path), {"num_train": 7, "num_val": 60, "image_size": 160, "seed": 0})
    capsys.readouterr()
    assert main(["synthetic", "--config", "voc_mnv2_os16"]) == 1  # a VOC config's root is real data
    assert "pass --root DIR" in capsys.readouterr().err
    assert main(["synthetic", "--config", "no_such_config"]) == 1
    assert capsys.readouterr().err.startswith("error: ")


def test_verify_reads_classes_txt(tmp_path, capsys):
    generate_synthetic_voc(tmp_path, num_train=3, num_val=1, image_size=48)  # classes.txt: 5 classes
    mask_path = tmp_path / "VOCdevkit/VOC2012/SegmentationClass/train_00001.png"
    mask = np.array(Image.open(mask_path))
    mask[0, 0] = 7  # a VOC class, but not one of the 5 listed in classes.txt
    save_label_png(mask_path, mask, VOC_PALETTE)
    argv = ["verify", "--root", str(tmp_path), "--splits", "train", "--expect-counts", "off", "--quiet"]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert re.search(r"bad labels: 1\n.*train_00001\.png holds label values \[7\] outside 0\.\.4", out)
    assert main([*argv, "--num-classes", "21"]) == 0  # an explicit count wins
    (tmp_path / "VOCdevkit/VOC2012/classes.txt").write_text("a 1 2\n")
    assert main(argv) == 1
    assert re.search(r"bad classes\.txt: 1\n.*classes\.txt:1: expected 'name' or 'name r g b'", capsys.readouterr().out)


# -- downloads ----------------------------------------------------------------------------------
def no_network(calls: list):
    def urlopen(url, *args, **kwargs):
        calls.append((url, kwargs))
        raise urllib.error.URLError(OSError(101, "Network is unreachable"))

    return urlopen


def test_download_failure_is_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    calls: list = []
    monkeypatch.setattr(urllib.request, "urlopen", no_network(calls))
    assert main(["voc", "--download", "--root", str(tmp_path), "--quiet", "--timeout", "5"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Cannot download " + VOC_URL) and err.count("\n") == 1
    assert "Network is unreachable" in err and "timeout 5 s" in err and "Traceback" not in err
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


def test_corrupt_archive_is_one_line_and_exit_1(tmp_path, capsys):
    archive = tmp_path / Path(VOC_URL).name
    archive.write_bytes(b"not a tar archive" * 100)  # an earlier, broken download
    assert main(["voc", "--download", "--root", str(tmp_path), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: Cannot extract {archive}") and f"delete {archive}" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_sbd_download_checks_voc_first(tmp_path, capsys, monkeypatch):
    calls: list = []
    monkeypatch.setattr(urllib.request, "urlopen", no_network(calls))
    assert main(["sbd", "--download", "--root", str(tmp_path / "empty"), "--quiet"]) == 1
    assert "PASCAL VOC 2012 not found" in capsys.readouterr().err and calls == []  # nothing fetched
    root, _ = write_tree(tmp_path)
    assert main(["sbd", "--download", "--root", str(root), "--quiet"]) == 1  # VOC fine: fetches
    assert calls and calls[0][0] == SBD_URL
    assert capsys.readouterr().err.startswith("error: Cannot download " + SBD_URL)


# -- real VOC files -----------------------------------------------------------------------------
def test_verify_real_voc_sample(shared_data, capsys):
    root = shared_data / "voc_sample"
    assert main(["verify", "--root", str(root), "--splits", "val", "--expect-counts", "off",
                              "--quiet"]) == 0  # fmt: skip
    assert capsys.readouterr().out.startswith("OK")


# -- verify walks any data set through its own loading ------------------------------------------
def test_verify_reports_ids_listed_twice(tmp_path, capsys):
    root, _ = write_tree(tmp_path)
    split = root / "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt"
    split.write_text("d\ne\nd\n")
    argv = ["verify", "--root", str(root), "--splits", "train", "val", "--expect-counts", "train=3,val=2", "--quiet"]
    assert main(argv) == 1  # the list is inconsistent, though each id is used once
    out = capsys.readouterr().out
    assert re.search(r"duplicate ids: 1\n.*val\.txt\) lists 1 ids more than once \(d\)", out)
    assert "wrong count" not in out  # 2 distinct ids, as expected
    split.write_text("d\ne\n")
    assert main(argv) == 0


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


def test_verify_checks_a_users_folder(tmp_path, capsys):
    root = write_user_folder(tmp_path / "my_data")
    argv = ["verify", "--dataset", "folder", "--root", str(root), "--quiet"]
    assert main([*argv, "--ignore-index", "99"]) == 0  # splits/*.txt are checked; no official counts
    assert capsys.readouterr().out.startswith("OK")
    assert main(argv) == 1  # the default ignore index 255: 99 is no label of 3 classes
    assert re.search(r"bad labels: 4\n.*p0\.png holds label values \[99\] outside 0\.\.2", capsys.readouterr().out)
    mask = np.full((12, 16), 5, np.uint8)  # class 5 of 3
    Image.fromarray(mask, mode="L").save(root / "masks/p1.png")
    (root / "masks/p2.png").unlink()
    Image.fromarray(np.zeros((10, 16), np.uint8), mode="L").save(root / "masks/p3.png")
    assert main([*argv, "--ignore-index", "99"]) == 1
    out = capsys.readouterr().out
    assert re.search(r"bad labels: 1\n.*p1\.png holds label values \[5\]", out)
    assert re.search(r"missing mask: 1\n.*masks/p2\.png", out)
    assert re.search(r"size mismatch: 1\n.*p3\.png is 16x10 \(WxH\) but .*p3\.png is 16x12", out)
    assert main(["verify", "--dataset", "folder", "--root", str(tmp_path / "nothing"), "--quiet"]) == 1
    assert re.search(r"missing data: 1\n.*Folder data set: .*nothing/images not found", capsys.readouterr().out)


def test_verify_synthetic_reads_the_set_without_regenerating(tmp_path, capsys, monkeypatch):
    generate_synthetic_voc(tmp_path, num_train=3, num_val=2, image_size=48)
    monkeypatch.setattr(synthetic, "_write_tree", lambda *a, **k: pytest.fail("verify must not (re)generate"))
    argv = ["verify", "--dataset", "synthetic", "--root", str(tmp_path), "--quiet"]
    assert main(argv) == 0 and capsys.readouterr().out.startswith("OK")
    assert main(["verify", "--dataset", "synthetic", "--root", str(tmp_path / "none"), "--quiet"]) == 1
    assert "No synthetic set under" in capsys.readouterr().out
