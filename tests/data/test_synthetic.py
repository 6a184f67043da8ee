"""The synthetic VOC-layout set: layout, classes by shape, determinism, idempotent cache."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from scipy.spatial import ConvexHull

from segkit.config import DataConfig
from segkit.data import DatasetError, SyntheticVOC, VOCSegmentation, build_dataset
from segkit.data.synthetic import SYNTHETIC_CLASSES, generate_synthetic_voc, read_manifest

SMALL = dict(num_train=8, num_val=3, image_size=64, seed=0)


def files(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_classes(tmp_path):
    root = generate_synthetic_voc(tmp_path, **SMALL)
    base = root / "VOCdevkit/VOC2012"
    train = (base / "ImageSets/Segmentation/train.txt").read_text().split()
    val = (base / "ImageSets/Segmentation/val.txt").read_text().split()
    assert len(train) == 8 and len(val) == 3 and not set(train) & set(val)
    assert (base / "classes.txt").read_text().split("\n")[1].startswith("circle ")
    for sample_id in train + val:
        img = Image.open(base / "JPEGImages" / f"{sample_id}.jpg")
        mask = Image.open(base / "SegmentationClass" / f"{sample_id}.png")
        assert img.mode == "RGB" and img.size == (64, 64)
        assert mask.mode == "P" and mask.size == (64, 64)
        labels = np.array(mask)
        assert set(np.unique(labels).tolist()) <= {0, 1, 2, 3, 4, 255}
        objects = (labels > 0) & (labels != 255)
        assert objects.mean() > 0.03  # at least one sizeable object
        # a thin ignore band on object borders: few pixels, each near a labelled pixel
        ignore = labels == 255
        assert ignore.sum() < 0.5 * objects.sum()
        padded = np.pad(labels, 2, mode="edge")
        for y, x in zip(*np.nonzero(ignore)):
            assert (padded[y : y + 5, x : x + 5] != 255).any()
    ds = VOCSegmentation(root, "train")
    assert ds.class_names == list(SYNTHETIC_CLASSES) and ds.num_classes == 5
    assert ds.palette.shape == (5, 3)


def test_deterministic_by_seed(tmp_path):
    a = files(generate_synthetic_voc(tmp_path / "a", **SMALL) / "VOCdevkit/VOC2012")
    b = files(generate_synthetic_voc(tmp_path / "b", **SMALL) / "VOCdevkit/VOC2012")
    c = files(generate_synthetic_voc(tmp_path / "c", **{**SMALL, "seed": 1}) / "VOCdevkit/VOC2012")
    assert a == b
    masks = [k for k in a if k.endswith(".png")]
    assert sum(a[k] != c[k] for k in masks) >= len(masks) - 1


def shape_stats(component: np.ndarray) -> tuple[float, float]:
    """(fill of the smallest rotated bounding rectangle, fill of the convex hull) of a boolean mask.

    Circle ~0.79 / ~1, square ~1 / ~1, triangle ~0.5 / ~1, cross ~0.56 / ~0.71 (ideal shapes).
    """
    ys, xs = np.nonzero(component)
    angles = np.deg2rad(np.arange(0, 90, 3))[:, None]
    u = xs * np.cos(angles) + ys * np.sin(angles)
    v = ys * np.cos(angles) - xs * np.sin(angles)
    rect = ((np.ptp(u, axis=1) + 1) * (np.ptp(v, axis=1) + 1)).min()
    corners = np.concatenate([np.stack([xs + dx, ys + dy], 1) for dx in (0, 1) for dy in (0, 1)])
    return len(xs) / rect, len(xs) / ConvexHull(corners).volume


def test_class_is_shape_not_colour(tmp_path):
    """Each class has its shape's geometry; across images, its objects come in many colours."""
    root = generate_synthetic_voc(tmp_path, num_train=40, num_val=1, image_size=96, seed=3)
    ds = VOCSegmentation(root, "train")
    colours: dict[int, list[np.ndarray]] = {c: [] for c in range(1, 5)}
    stats: dict[int, list[tuple[float, float]]] = {c: [] for c in range(1, 5)}
    for i in range(len(ds)):
        image, mask = ds.load_sample(i)
        for c in colours:
            if (mask == c).sum() > 30:
                colours[c].append(image[mask == c].mean(axis=0))
            components, n = ndimage.label(mask == c)
            for k in range(1, n + 1):
                component = components == k
                ring = ndimage.binary_dilation(component, iterations=2) & ~component
                if component.sum() >= 150 and np.isin(mask[ring], (0, 255, c)).all():  # whole, unoccluded
                    stats[c].append(shape_stats(component))
    for c, values in colours.items():
        assert len(values) >= 5, f"class {c} too rare"
        assert np.std(np.array(values), axis=0).mean() > 25, f"class {c} has a fixed colour"
    assert all(len(v) >= 8 for v in stats.values()), {c: len(v) for c, v in stats.items()}
    (circle_rect, circle_hull), (square_rect, square_hull), (tri_rect, tri_hull), (cross_rect, cross_hull) = (
        np.median(np.array(stats[c]), axis=0) for c in range(1, 5))  # fmt: skip
    assert 0.72 < circle_rect < 0.85 and circle_hull > 0.88, (circle_rect, circle_hull)
    assert square_rect > 0.86 and square_hull > 0.88, (square_rect, square_hull)
    assert tri_rect < 0.6 and tri_hull > 0.8, (tri_rect, tri_hull)
    assert cross_hull < 0.76 and 0.5 < cross_rect < 0.7, (cross_rect, cross_hull)


def test_ignore_index_other_than_255(tmp_path):
    """The ignore border is stored as 255 (VOC) and read as the configured data.ignore_index."""
    cfg = DataConfig(dataset="synthetic", root=str(tmp_path), synthetic_num_train=3, synthetic_num_val=1,
                     synthetic_image_size=48, ignore_index=200)  # fmt: skip
    ds = build_dataset(cfg, "train", None, num_classes=5)
    stored = np.array(Image.open(tmp_path / "VOCdevkit/VOC2012/SegmentationClass/train_00000.png"))
    mask = ds[0]["mask"].numpy()
    assert (stored == 255).any() and np.array_equal(mask == 200, stored == 255)
    assert set(np.unique(mask).tolist()) <= {0, 1, 2, 3, 4, 200}


def test_idempotent_cache(tmp_path, monkeypatch):
    generate_synthetic_voc(tmp_path, **SMALL)
    manifest = tmp_path / "VOCdevkit/synthetic_manifest.json"
    stamp = manifest.stat().st_mtime_ns
    import segkit.data.synthetic as synthetic

    with monkeypatch.context() as m:
        m.setattr(synthetic, "_write_tree", lambda *a: pytest.fail("regenerated an up-to-date set"))
        generate_synthetic_voc(tmp_path, **SMALL)
    assert manifest.stat().st_mtime_ns == stamp
    generate_synthetic_voc(tmp_path, **{**SMALL, "num_train": 5})  # other parameters: replaced
    assert read_manifest(tmp_path)["num_train"] == 5
    assert len((tmp_path / "VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt").read_text().split()) == 5
    assert not (tmp_path / "VOCdevkit/VOC2012/JPEGImages/train_00007.jpg").exists()
    assert not list(tmp_path.glob(".synthetic-*"))  # no temporary folders left


def test_refuses_to_overwrite_real_data(tmp_path):
    (tmp_path / "VOCdevkit/VOC2012").mkdir(parents=True)
    with pytest.raises(DatasetError, match="not a synthetic set"):
        generate_synthetic_voc(tmp_path, **SMALL)
    assert (tmp_path / "VOCdevkit/VOC2012").is_dir()


def test_build_dataset_generates_on_demand(tmp_path):
    cfg = DataConfig(dataset="synthetic", root=str(tmp_path / "syn"), synthetic_num_train=6, synthetic_num_val=2,
                     synthetic_image_size=48)  # fmt: skip
    train = build_dataset(cfg, "train", None, num_classes=5)
    val = build_dataset(cfg, "val", None, num_classes=5)
    assert isinstance(train, SyntheticVOC) and len(train) == 6 and len(val) == 2
    sample = train[0]
    assert sample["image"].shape == (3, 48, 48) and sample["mask"].shape == (48, 48)
    with pytest.raises(DatasetError, match="splits 'train' and 'val'"):
        build_dataset(cfg, "train_aug", None)


def test_generating_says_so_with_a_bar_then_stays_quiet(tmp_path, capfd):
    """The demo's first run generates the set (~20 s for 460 images): one line naming where, and a bar; a set
    already there is reused without a word."""
    generate_synthetic_voc(tmp_path, num_train=3, num_val=2, image_size=48)
    err = capfd.readouterr().err
    assert f"generating the synthetic set at {tmp_path} (once)..." in err
    assert "synthetic images:" in err and "/5 [" in err  # the bar over train + val
    generate_synthetic_voc(tmp_path, num_train=3, num_val=2, image_size=48)
    assert capfd.readouterr().err == ""
    generate_synthetic_voc(tmp_path / "quiet", num_train=3, num_val=2, image_size=48, progress=False)
    assert capfd.readouterr().err == ""
