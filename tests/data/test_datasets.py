"""Data sets: VOC layout, train_aug, error messages naming files, skip_bad_samples, folder data, COCO."""

from __future__ import annotations

import ast
import json
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

import segkit.config
import segkit.data
from segkit.config import Config, DataConfig
from segkit.data import (
    DATASET_NAMES,
    DATASETS,
    VOC_PALETTE,
    COCOSegmentation,
    DatasetError,
    FolderDataset,
    VOCSegmentation,
    build_dataset,
    build_eval_transform,
    build_train_transform,
    collate_drop_bad,
    is_bad_sample,
    read_image,
    resolve_data_root,
)
from segkit.data.base import BadSampleWarning, DuplicateIdWarning
from segkit.data.coco import CAT_LIST, coco_voc_mask
from segkit.data.io import save_label_png
from segkit.data.verify import DEFAULT_SPLITS

VOC2012 = Path("VOCdevkit") / "VOC2012"


def label_map(seed: int, h: int = 24, w: int = 32, values: tuple[int, ...] = (0, 15, 255)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.choice(np.array(values, dtype=np.uint8), size=(h, w))


def write_voc(
    root: Path, splits: dict[str, list[str]], aug: list[str] | None = None, size: tuple[int, int] = (24, 32)
) -> dict[str, np.ndarray]:
    """A tiny VOC tree; returns the mask of every id (SegmentationClass)."""
    base = root / VOC2012
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (base / d).mkdir(parents=True, exist_ok=True)
    masks = {}
    all_ids = sorted({i for ids in splits.values() for i in ids} | set(aug or []))
    for n, sample_id in enumerate(all_ids):
        Image.fromarray(np.full((*size, 3), 40 + n, np.uint8)).save(base / "JPEGImages" / f"{sample_id}.jpg")
        masks[sample_id] = label_map(n, *size)
        save_label_png(base / "SegmentationClass" / f"{sample_id}.png", masks[sample_id], VOC_PALETTE)
    for split, ids in splits.items():
        (base / "ImageSets/Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    if aug is not None:
        (base / "SegmentationClassAug").mkdir()
        for sample_id in aug:
            save_label_png(base / "SegmentationClassAug" / f"{sample_id}.png", np.full(size, 7, np.uint8), VOC_PALETTE)
        (base / "ImageSets/Segmentation/train_aug.txt").write_text("\n".join(aug) + "\n")
    return masks


@pytest.fixture
def voc(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    masks = write_voc(tmp_path, {"train": ["a", "b", "c"], "val": ["d", "e"]}, aug=["a", "b", "c", "x"])
    return tmp_path, masks


# -- VOC ---------------------------------------------------------------------------------------
def test_voc_reads_palette_masks_as_indices(voc):
    root, masks = voc
    ds = VOCSegmentation(root, "train")
    assert ds.ids == ["a", "b", "c"] and len(ds) == 3
    assert ds.num_classes == 21 and ds.class_names[15] == "person" and ds.palette.shape == (21, 3)
    sample = ds[1]
    assert sample["id"] == "b"
    assert sample["mask"].dtype == torch.int64 and sample["mask"].shape == (24, 32)
    # palette indices (15, 255), not RGB colours
    assert np.array_equal(sample["mask"].numpy(), masks["b"])
    assert sample["image"].shape == (3, 24, 32)


def test_voc_eval_transform_normalises(voc):
    root, masks = voc
    mean, std = [10.0, 20.0, 30.0], [2.0, 4.0, 5.0]
    ds = VOCSegmentation(root, "val", transform=build_eval_transform(mean, std))
    sample = ds[0]
    raw = np.asarray(Image.open(root / VOC2012 / "JPEGImages/d.jpg").convert("RGB"), np.float32)
    expected = (raw - np.array(mean, np.float32)) / np.array(std, np.float32)
    assert sample["image"].dtype == torch.float32
    assert np.allclose(sample["image"].permute(1, 2, 0).numpy(), expected, atol=1e-5)
    assert np.array_equal(sample["mask"].numpy(), masks["d"])


def test_voc_train_aug_reads_augmented_masks(voc):
    root, _ = voc
    ds = VOCSegmentation(root, "train_aug")
    assert ds.ids == ["a", "b", "c", "x"]
    assert (ds[3]["mask"] == 7).all()  # from SegmentationClassAug, not SegmentationClass


def test_voc_missing_tree_says_where_and_how(tmp_path):
    with pytest.raises(DatasetError) as info:
        VOCSegmentation(tmp_path / "nowhere", "train")
    msg = str(info.value)
    assert str(tmp_path / "nowhere" / VOC2012) in msg
    assert "segkit prepare-data voc --download" in msg and "demo_mnv2_os16" in msg


def test_voc_missing_train_aug_points_to_sbd(tmp_path):
    write_voc(tmp_path, {"train": ["a"], "val": ["b"]})
    with pytest.raises(DatasetError, match=r"train_aug\.txt not found.*segkit prepare-data sbd"):
        VOCSegmentation(tmp_path, "train_aug")


def test_voc_unknown_split_lists_available(voc):
    with pytest.raises(DatasetError, match=r"trainn\.txt not found.*Available splits: train, train_aug, val"):
        VOCSegmentation(voc[0], "trainn")


def test_empty_split_list(voc):
    root, _ = voc
    path = root / VOC2012 / "ImageSets/Segmentation/val.txt"
    path.write_text("\n")
    with pytest.raises(DatasetError, match=re.escape(str(path)) + ".*empty"):
        VOCSegmentation(root, "val")


@pytest.mark.parametrize("kind", ["JPEGImages/b.jpg", "SegmentationClass/b.png"])
def test_missing_file_named(voc, kind):
    root, _ = voc
    path = root / VOC2012 / kind
    path.unlink()
    with pytest.raises(DatasetError, match=re.escape(str(path)) + ".*skip_bad_samples"):
        VOCSegmentation(root, "train")


def test_corrupt_image_named(voc):
    root, _ = voc
    path = root / VOC2012 / "JPEGImages/c.jpg"
    path.write_bytes(b"not a jpeg at all")
    ds = VOCSegmentation(root, "train")
    with pytest.raises(DatasetError, match="Cannot read image " + re.escape(str(path))):
        ds[2]


def test_mask_size_mismatch_named(voc):
    root, _ = voc
    path = root / VOC2012 / "SegmentationClass/a.png"
    save_label_png(path, np.zeros((10, 12), np.uint8), VOC_PALETTE)
    with pytest.raises(DatasetError, match=re.escape(str(path)) + r" is 12x10 \(WxH\).*is 32x24"):
        VOCSegmentation(root, "train")[0]


def test_labels_out_of_range_named(voc):
    root, _ = voc
    path = root / VOC2012 / "SegmentationClass/a.png"
    bad = np.zeros((24, 32), np.uint8)
    bad[3, 4] = 21
    bad[5, 5] = 255  # ignore is fine
    save_label_png(path, bad, VOC_PALETTE)
    with pytest.raises(DatasetError, match=re.escape(str(path)) + r" holds label values \[21\] outside 0\.\.20"):
        VOCSegmentation(root, "train")[0]


def test_rgb_mask_rejected(voc):
    root, _ = voc
    path = root / VOC2012 / "SegmentationClass/a.png"
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(path)
    with pytest.raises(DatasetError, match=re.escape(str(path)) + ".*mode 'RGB'"):
        VOCSegmentation(root, "train")[0]


def test_skip_bad_samples_replace_for_training(voc):
    root, _ = voc
    (root / VOC2012 / "SegmentationClass/a.png").unlink()  # missing: dropped at construction
    (root / VOC2012 / "JPEGImages/b.jpg").write_bytes(b"garbage")  # corrupt: skipped on access
    with pytest.warns(BadSampleWarning, match="a.png"):
        ds = VOCSegmentation(root, "train", skip_bad_samples=True)  # skip_mode="replace", the default
    assert ds.ids == ["b", "c"]
    with pytest.warns(BadSampleWarning, match="'b'.*b.jpg"):
        sample = ds[0]
    assert sample["id"] == "c"  # the next valid sample instead: training batches stay full
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second access does not warn again
        assert ds[0]["id"] == "c"
    assert [sid for sid, _ in ds.bad_samples] == ["a", "b"]
    assert "b.jpg" in ds.bad_samples[1][1]
    report = ds.bad_samples_report()
    assert "2 bad samples" in report and "a:" in report and "b:" in report


def test_skip_bad_samples_drop_for_evaluation(voc):
    root, _ = voc
    (root / VOC2012 / "JPEGImages/b.jpg").write_bytes(b"garbage")
    ds = VOCSegmentation(root, "train", skip_bad_samples=True, skip_mode="drop")
    with pytest.warns(BadSampleWarning, match="'b'.*b.jpg"):
        bad = ds[1]
    assert is_bad_sample(bad) and bad["id"] == "b" and "b.jpg" in bad["bad_reason"] and "image" not in bad
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # known bad: no second warning, still not replaced
        assert ds[1] == bad
    samples = [ds[i] for i in range(len(ds))]
    assert [s["id"] for s in samples] == ["a", "b", "c"]  # each index gives its own sample, none twice
    batch = collate_drop_bad(samples)
    assert batch["id"] == ["a", "c"] and batch["image"].shape == (2, 3, 24, 32) and batch["mask"].shape == (2, 24, 32)
    assert [sid for sid, _ in batch["bad"]] == ["b"]
    assert collate_drop_bad([bad]) == {"bad": [("b", bad["bad_reason"])]}
    loader = torch.utils.data.DataLoader(ds, batch_size=1)  # the default collate keeps the placeholder
    assert [b.get("bad_reason") for b in loader][1] == [bad["bad_reason"]]
    report = ds.bad_samples_report([("b", "again"), ("c", "from a worker")])
    assert "2 bad samples" in report and "b: " + bad["bad_reason"] in report and "again" not in report
    with pytest.raises(ValueError, match="skip_mode must be one of replace, drop"):
        VOCSegmentation(root, "train", skip_mode="keep")


def test_missing_files_warning_names_them_all(voc):
    root, _ = voc
    for name in ("SegmentationClass/a.png", "JPEGImages/c.jpg"):
        (root / VOC2012 / name).unlink()
    with pytest.warns(BadSampleWarning, match=r"skipping 2 of 3 samples.*a\.png.*c\.jpg"):
        ds = VOCSegmentation(root, "train", skip_bad_samples=True)
    assert ds.ids == ["b"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, r"data\.ignore_index=3 collides with class 3 \('bird'\).*21 classes.*21\.\.255"),
        (20, r"collides with class 20 \('tvmonitor'\)"),
        (256, r"data\.ignore_index=256 is not a mask value.*21\.\.255"),
    ],
    ids=["class-3", "class-20", "above-255"],
)
def test_bad_ignore_index_is_a_dataset_error(voc, value, expected):
    root, _ = voc
    with pytest.raises(DatasetError, match=expected):
        VOCSegmentation(root, "train", ignore_index=value)
    cfg = DataConfig(dataset="voc", root=str(root), ignore_index=value)
    with pytest.raises(DatasetError, match=expected):
        build_dataset(cfg, "val", None, num_classes=21)


def test_read_image_applies_exif_orientation(tmp_path):
    pixels = np.zeros((10, 30, 3), np.uint8)  # stored 30 wide, 10 high; a bright left edge
    pixels[:, :3] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.fromarray(pixels).save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    image = read_image(tmp_path / "rotated.jpg")
    assert image.shape == (30, 10, 3)  # as displayed: 10 wide, 30 high
    assert image[:3].mean() > 200 and image[5:].mean() < 30  # the stored left edge is now the top
    Image.fromarray(pixels[..., 0]).save(tmp_path / "plain.png")
    assert read_image(tmp_path / "plain.png").shape == (10, 30, 3)  # no EXIF: as stored


def test_skip_bad_samples_off_raises(voc):
    root, _ = voc
    (root / VOC2012 / "JPEGImages/b.jpg").write_bytes(b"garbage")
    with pytest.raises(DatasetError):
        VOCSegmentation(root, "train", skip_bad_samples=False)[1]


def test_build_dataset_dispatch_and_errors(voc):
    root, _ = voc
    cfg = DataConfig(dataset="voc", root=str(root), crop_size=16)
    ds = build_dataset(cfg, "train", build_train_transform(cfg, [0, 0, 0], [1, 1, 1]), num_classes=21)
    assert isinstance(ds, VOCSegmentation) and ds[0]["image"].shape == (3, 16, 16)
    with pytest.raises(DatasetError, match="has 21 classes.*model.num_classes=21"):
        build_dataset(cfg, "train", None, num_classes=5)
    cfg.dataset = "imagenet"  # type: ignore[assignment]
    with pytest.raises(KeyError, match="voc, coco, folder, synthetic"):
        build_dataset(cfg, "train", None)


def test_dataset_names_are_defined_once():
    """data.dataset's allowed values, the builders and every command's --dataset choices are one tuple."""
    import typing

    assert tuple(DATASETS) == DATASET_NAMES == typing.get_args(typing.get_type_hints(DataConfig)["dataset"])
    assert segkit.data.DATASET_NAMES is segkit.config.DATASET_NAMES
    assert set(DEFAULT_SPLITS) == set(DATASET_NAMES)  # verify's usual splits, one entry per data set


def test_resolve_data_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = Config(data=DataConfig(root="voc"))
    line = resolve_data_root(cfg)
    assert cfg.data.root == str(tmp_path / "voc")  # made absolute in place
    assert (
        line == f"data from {tmp_path / 'voc'} (data.root 'voc' is relative: read from the current folder {tmp_path})"
    )
    assert resolve_data_root(cfg) == f"data from {tmp_path / 'voc'}"  # already absolute: unchanged
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg.data.root = "~/data"
    assert resolve_data_root(cfg) == f"data from {tmp_path / 'data'}" and cfg.data.root == str(tmp_path / "data")


# -- folder ------------------------------------------------------------------------------------
def write_folder(root: Path, n: int = 12, classes: str | None = "bg 0 0 0\nroad 128 64 128\ncar 0 0 142\n") -> None:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        ext = "png" if i % 2 else "jpg"
        Image.fromarray(np.full((20, 30, 3), i, np.uint8)).save(root / "images" / f"img{i:02d}.{ext}")
        mask = np.full((20, 30), i % 3, np.uint8)
        mask[0, :] = 99  # the ignore label of this data set
        Image.fromarray(mask, mode="L").save(root / "masks" / f"img{i:02d}.png")
    if classes is not None:
        (root / "classes.txt").write_text(classes)


def test_folder_default_split_classes_and_ignore(tmp_path):
    write_folder(tmp_path)
    train = FolderDataset(tmp_path, "train", ignore_index=99)
    val = FolderDataset(tmp_path, "val", ignore_index=99)
    assert val.ids == ["img00", "img10"]  # every 10th by name
    assert len(train) == 10 and not set(train.ids) & set(val.ids)
    assert train.class_names == ["bg", "road", "car"]
    assert train.palette.tolist() == [[0, 0, 0], [128, 64, 128], [0, 0, 142]]
    sample = train[0]  # img01.png
    assert sample["id"] == "img01" and set(sample["mask"].unique().tolist()) == {1, 99}
    with pytest.raises(DatasetError, match=r"img01\.png holds label values \[99\] outside 0\.\.2 \(ignore index 255\)"):
        FolderDataset(tmp_path, "train")[0]  # default ignore 255: 99 is not a label


def test_folder_split_lists_and_build_dataset(tmp_path):
    write_folder(tmp_path)
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits/train.txt").write_text("img03\nimg04\n")
    cfg = DataConfig(dataset="folder", root=str(tmp_path), ignore_index=99, crop_size=40, scale_min=1.0,
                     scale_max=1.0, hflip=False)  # fmt: skip
    ds = build_dataset(cfg, "train", build_train_transform(cfg, [0, 0, 0], [1, 1, 1]), num_classes=3)
    assert ds.ids == ["img03", "img04"]
    mask = ds[0]["mask"].numpy()
    expected = np.full((40, 40), 99)  # padded with the data set's ignore index
    expected[1:20, :30] = 0  # img03: class 3 % 3, top row ignore
    assert np.array_equal(mask, expected)
    with pytest.raises(DatasetError, match=r"splits/val\.txt not found. Available: train"):
        FolderDataset(tmp_path, "val", ignore_index=99)


def test_folder_class_count(tmp_path):
    write_folder(tmp_path, classes=None)
    with pytest.raises(DatasetError, match="classes.txt not found.*model.num_classes"):
        FolderDataset(tmp_path, "train", ignore_index=99)
    ds = FolderDataset(tmp_path, "train", ignore_index=99, num_classes=3)
    assert ds.class_names == ["class_0", "class_1", "class_2"]
    (tmp_path / "classes.txt").write_text("a\nb\n")
    with pytest.raises(DatasetError, match="lists 2 classes but the model is built for 3"):
        FolderDataset(tmp_path, "train", ignore_index=99, num_classes=3)
    (tmp_path / "classes.txt").write_text("a 1 2\n")
    with pytest.raises(DatasetError, match=r"classes\.txt:1: expected 'name' or 'name r g b'"):
        FolderDataset(tmp_path, "train", ignore_index=99)


# -- COCO --------------------------------------------------------------------------------------
PERSON, CAT, DOG, TOOTHBRUSH = 1, 17, 18, 90  # COCO ids -> VOC 15, 8, 12, -
VOC = {c: i for i, c in enumerate(CAT_LIST)}


def box(x0: int, y0: int, x1: int, y1: int, h: int = 100, w: int = 100) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def uncompressed_rle(m: np.ndarray) -> dict:
    flat = m.flatten(order="F")
    counts, current, run = [], 0, 0
    for v in flat:
        if v != current:
            counts.append(run)
            current, run = v, 0
        run += 1
    counts.append(run)
    return {"counts": counts, "size": list(m.shape)}


def compressed_rle(m: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(m))
    return {"counts": rle["counts"].decode("ascii"), "size": list(m.shape)}


def write_coco(root: Path) -> np.ndarray:
    """Three images; returns the expected VOC mask of the only one kept."""
    (root / "annotations").mkdir(parents=True)
    (root / "train2017").mkdir()
    images = [
        {"id": 1, "file_name": "000000000001.jpg", "height": 100, "width": 100},
        {"id": 2, "file_name": "000000000002.jpg", "height": 100, "width": 100},  # < 1000 px: dropped
        {"id": 3, "file_name": "000000000003.jpg", "height": 100, "width": 100},  # no VOC class: dropped
    ]
    for img in images:
        Image.fromarray(np.zeros((100, 100, 3), np.uint8)).save(root / "train2017" / img["file_name"])
    anns = [
        # person: polygon covering x, y in 10..49
        {"id": 1, "image_id": 1, "category_id": PERSON, "iscrowd": 0, "area": 1600,
         "segmentation": [[10, 10, 50, 10, 50, 50, 10, 50]], "bbox": [10, 10, 40, 40]},
        # cat: uncompressed RLE x 40..69, y 40..69, overlapping the person at x, y 40..49
        {"id": 2, "image_id": 1, "category_id": CAT, "iscrowd": 0, "area": 900,
         "segmentation": uncompressed_rle(box(40, 40, 70, 70)), "bbox": [40, 40, 30, 30]},
        # another person overlapping the first: same class, stays person
        {"id": 3, "image_id": 1, "category_id": PERSON, "iscrowd": 0, "area": 400,
         "segmentation": compressed_rle(box(0, 0, 20, 20)), "bbox": [0, 0, 20, 20]},
        # crowd of dogs (compressed RLE) x 80..99, y 0..29
        {"id": 4, "image_id": 1, "category_id": DOG, "iscrowd": 1, "area": 600,
         "segmentation": compressed_rle(box(80, 0, 100, 30)), "bbox": [80, 0, 20, 30]},
        # a toothbrush (not a VOC class): background
        {"id": 5, "image_id": 1, "category_id": TOOTHBRUSH, "iscrowd": 0, "area": 100,
         "segmentation": [[0, 90, 10, 90, 10, 100, 0, 100]], "bbox": [0, 90, 10, 10]},
        {"id": 6, "image_id": 2, "category_id": DOG, "iscrowd": 0, "area": 100,
         "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]], "bbox": [0, 0, 10, 10]},
        {"id": 7, "image_id": 3, "category_id": TOOTHBRUSH, "iscrowd": 0, "area": 4900,
         "segmentation": [[0, 0, 70, 0, 70, 70, 0, 70]], "bbox": [0, 0, 70, 70]},
    ]  # fmt: skip
    categories = [{"id": c, "name": str(c)} for c in (PERSON, CAT, DOG, TOOTHBRUSH)]
    (root / "annotations/instances_train2017.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": categories})
    )
    expected = np.zeros((100, 100), np.uint8)
    expected[10:50, 10:50] = VOC[PERSON]
    expected[0:20, 0:20] = VOC[PERSON]
    expected[40:70, 40:70] = VOC[CAT]
    expected[40:50, 40:50] = 255  # person / cat overlap
    expected[0:30, 80:100] = 255  # crowd
    return expected


def test_coco_voc_masks_and_filtering(tmp_path):
    expected = write_coco(tmp_path)
    ds = COCOSegmentation(tmp_path, "train2017")
    assert ds.ids == ["000000000001"]  # tiny and non-VOC images dropped
    assert ds.num_classes == 21
    sample = ds[0]
    assert np.array_equal(sample["mask"].numpy(), expected)
    cache = tmp_path / "voc_masks/train2017"
    assert (cache / "000000000001.png").is_file() and not (cache / "000000000002.png").exists()
    assert Image.open(cache / "000000000001.png").mode == "P"


def test_coco_cache_reused_then_rebuilt(tmp_path, monkeypatch):
    write_coco(tmp_path)
    COCOSegmentation(tmp_path, "train2017")

    def no_rebuild(*args, **kwargs):
        raise AssertionError("cache should have been reused")

    with monkeypatch.context() as m:
        m.setattr(COCOSegmentation, "build_cache", no_rebuild)
        assert COCOSegmentation(tmp_path, "train2017").ids == ["000000000001"]
        with pytest.raises(AssertionError, match="reused"):  # other settings: rebuilt
            COCOSegmentation(tmp_path, "train2017", min_labelled_pixels=10)
    ds = COCOSegmentation(tmp_path, "train2017", min_labelled_pixels=50)
    assert ds.ids == ["000000000001", "000000000002"]  # the 100-px image is kept now
    ann = tmp_path / "annotations/instances_train2017.json"
    os.utime(ann, ns=(ann.stat().st_atime_ns, ann.stat().st_mtime_ns + 10**9))  # annotations changed
    with monkeypatch.context() as m:
        m.setattr(COCOSegmentation, "build_cache", no_rebuild)
        with pytest.raises(AssertionError, match="reused"):
            COCOSegmentation(tmp_path, "train2017", min_labelled_pixels=50)


def test_coco_category_mapping_is_torchvisions():
    assert CAT_LIST == [0, 5, 2, 16, 9, 44, 6, 3, 17, 62, 21, 67, 18, 19, 4, 1, 64, 20, 63, 7, 72]


def test_coco_cache_writes_are_atomic(tmp_path, monkeypatch):
    """A mask PNG that fails half-way never appears under its final name (another DDP rank may read it)."""
    write_coco(tmp_path)

    def crash_half_way(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"\x89PNG half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", crash_half_way)
    with pytest.raises(DatasetError, match=r"Cannot write the COCO mask cache file .*000000000001\.png.*writable"):
        COCOSegmentation(tmp_path, "train2017")
    cache = tmp_path / "voc_masks/train2017"
    assert list(cache.iterdir()) == []  # no partial PNG, no temporary file, no manifest


def test_coco_bad_ignore_index_fails_before_building_the_cache(tmp_path):
    write_coco(tmp_path)
    with pytest.raises(DatasetError, match="data.ignore_index=7 collides with class 7 \\('car'\\)"):
        COCOSegmentation(tmp_path, "train2017", ignore_index=7)
    assert not (tmp_path / "voc_masks").exists()


def test_coco_missing_annotations(tmp_path):
    with pytest.raises(DatasetError, match=re.escape(str(tmp_path / "annotations/instances_val2017.json"))):
        COCOSegmentation(tmp_path, "val2017")


def test_coco_overlap_rule_is_per_class():
    anns = [
        {"category_id": PERSON, "iscrowd": 0, "segmentation": compressed_rle(box(0, 0, 6, 6, 10, 10))},
        {"category_id": PERSON, "iscrowd": 0, "segmentation": compressed_rle(box(3, 3, 9, 9, 10, 10))},
        {"category_id": DOG, "iscrowd": 0, "segmentation": compressed_rle(box(8, 8, 10, 10, 10, 10))},
        {"category_id": DOG, "iscrowd": 1, "segmentation": compressed_rle(box(0, 0, 10, 2, 10, 10))},
    ]
    label = coco_voc_mask(anns, 10, 10)
    assert label[4, 4] == VOC[PERSON]  # two persons overlap: still person
    assert label[8, 8] == 255  # person and dog overlap
    assert label[9, 9] == VOC[DOG]
    assert label[0, 0] == VOC[PERSON]  # a regular instance wins over a crowd
    assert label[0, 9] == 255  # crowd elsewhere


def test_data_package_does_not_import_models():
    """Follow segkit imports from segkit/data (statically): segkit.models is never reached."""
    repo = Path(__file__).resolve().parents[2]

    def imports(path: Path) -> set[str]:
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        return {n for n in names if n.split(".")[0] == "segkit"}

    def module_file(name: str) -> Path | None:
        base = repo.joinpath(*name.split("."))
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
        return None

    todo = [f"segkit.data.{p.stem}" for p in (repo / "segkit/data").glob("*.py")]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        assert not name.startswith("segkit.models"), f"segkit.data reaches {name}"
        path = module_file(name)
        if name in seen or path is None:
            continue
        seen.add(name)
        todo += sorted(imports(path))
    assert "segkit.data.base" in seen and "segkit.utils.io" in seen  # the walk leaves segkit.data
    assert "segkit.evaluation.viz" not in seen  # label PNGs are data I/O (segkit.data.io); viz draws with them


# -- duplicate ids (issue 11, item 6) ----------------------------------------------------------
def test_split_listing_an_id_twice_uses_it_once(voc):
    """A repeated id is dropped with one warning naming the split file and the id: never scored twice."""
    from segkit.evaluation.evaluator import evaluate

    root, _ = voc
    split = root / VOC2012 / "ImageSets/Segmentation/val.txt"
    split.write_text("d\ne\nd\nd\n")
    with pytest.warns(DuplicateIdWarning, match=r"val\.txt.*1 ids are listed more than once \(d\).*2 samples from 4"):
        ds = VOCSegmentation(root, "val")
    assert ds.ids == ["d", "e"] and ds.duplicate_ids == ["d"] and ds.num_listed == 2

    class Constant(torch.nn.Module):  # predicts class 0 everywhere: only the image count matters
        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"out": torch.zeros(x.shape[0], 21, *x.shape[2:])}

    loader = torch.utils.data.DataLoader(ds, batch_size=1)
    metrics = evaluate(Constant(), loader, 21, progress=False)
    assert metrics.num_images == 2  # was 4: 'd' scored three times


def test_folder_split_with_repeats_and_clean_list_warns_nothing(tmp_path):
    write_folder(tmp_path)
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits/val.txt").write_text("img01\nimg02\nimg01\n")
    with pytest.warns(DuplicateIdWarning, match=r"splits/val\.txt.*\(img01\)"):
        assert FolderDataset(tmp_path, "val", ignore_index=99).ids == ["img01", "img02"]
    (tmp_path / "splits/val.txt").write_text("img01\nimg02\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert FolderDataset(tmp_path, "val", ignore_index=99).duplicate_ids == []
