"""SBD .mat masks, the train_aug build and ``tools/prepare_data.py`` (sbd / verify / synthetic)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.sparse
from PIL import Image

from segkit.data import DatasetError, VOC_PALETTE, VOCSegmentation
from segkit.data.sbd import build_train_aug, load_sbd_mask, train_aug_ids
from segkit.viz import save_label_png

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("prepare_data", REPO / "tools/prepare_data.py")
prepare_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(prepare_data)

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
    assert prepare_data.main(["sbd", "--root", str(root), "--sbd-dir", str(sbd), "--quiet"]) == 0
    base = root / "VOCdevkit/VOC2012"
    assert (base / "ImageSets/Segmentation/train_aug.txt").read_text().split() == ["a", "b", "c", "x", "y", "z"]
    aug = base / "SegmentationClassAug"
    assert Image.open(aug / "x.png").mode == "P"
    assert np.array_equal(np.array(Image.open(aug / "x.png")), sbd_mask(IDS.index("x")))  # from SBD
    assert np.array_equal(np.array(Image.open(aug / "b.png")), voc_mask(IDS.index("b")))  # VOC's own mask
    ds = VOCSegmentation(root, "train_aug")
    assert len(ds) == 6 and ds[3]["id"] == "x"
    capsys.readouterr()
    assert prepare_data.main(["verify", "--root", str(root), "--expect-counts", COUNTS, "--quiet"]) == 0
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
    assert prepare_data.main(["verify", "--root", str(root), "--quiet"]) == 1  # official counts too
    out = capsys.readouterr().out
    assert out.startswith("FAILED")
    assert re.search(r"missing mask: 1\n.*SegmentationClass/d\.png", out)
    assert re.search(r"missing image: 1\n.*JPEGImages/e\.jpg", out)
    assert re.search(r"size mismatch: 1\n.*SegmentationClassAug/x\.png is 24x21 but .*x\.jpg is 24x20", out)
    assert re.search(r"bad labels: 1\n.*SegmentationClassAug/y\.png holds label values \[40\]", out)
    assert re.search(r"unreadable mask: 1\n.*SegmentationClass/a\.png", out)
    assert "lists 3 ids, expected 1464" in out and "expected 10582" in out


def test_verify_missing_tree_and_lists(tmp_path, capsys):
    assert prepare_data.main(["verify", "--root", str(tmp_path), "--quiet"]) == 1
    assert "prepare_data.py voc --download" in capsys.readouterr().out
    root, _ = write_tree(tmp_path)
    assert prepare_data.main(["verify", "--root", str(root), "--expect-counts", "off", "--quiet"]) == 1
    assert re.search(r"missing split list: 1\n.*train_aug\.txt \(build it with the 'sbd' subcommand\)",
                     capsys.readouterr().out)  # fmt: skip
    with pytest.raises(SystemExit):
        prepare_data.main(["verify", "--expect-counts", "many"])


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
    assert prepare_data.main(args) == 0
    counts = "train=4,val=2"
    assert prepare_data.main(["verify", "--root", str(tmp_path), "--splits", "train", "val", "--num-classes", "5",
                              "--expect-counts", counts, "--quiet"]) == 0  # fmt: skip
