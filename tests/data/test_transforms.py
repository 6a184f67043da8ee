"""Joint transforms: image and mask stay aligned, masks are resampled with nearest neighbour only,
padding uses the mean pixel / ignore label, scales follow the configured steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from segkit.config import DataConfig
from segkit.data.transforms import build_eval_transform, build_train_transform, scale_choices

MEAN, STD = [10.0, 20.0, 30.0], [1.0, 1.0, 1.0]  # std 1: the output image is pixel - mean
COLOURS = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200], [200, 200, 30]], np.uint8)


def blocks(h: int = 60, w: int = 80) -> np.ndarray:
    """Label map of large rectangles (4 classes, no ignore)."""
    label = np.zeros((h, w), np.uint8)
    label[: h // 2, w // 3 :] = 1
    label[h // 2 :, : w // 2] = 2
    label[h // 3 : 2 * h // 3, 2 * w // 3 :] = 3
    return label


def interior(mask: np.ndarray) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood has a single label (away from label edges and the crop border)."""
    ok = np.ones_like(mask, dtype=bool)
    padded = np.pad(mask.astype(np.int64), 1, constant_values=-1)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            ok &= padded[dy : dy + mask.shape[0], dx : dx + mask.shape[1]] == mask
    return ok


def cfg(**kw) -> DataConfig:
    return DataConfig(**{"crop_size": 64, "scale_min": 0.5, "scale_max": 2.0, "scale_step": 0.25, **kw})


@pytest.mark.parametrize("hflip", [True, False])
@pytest.mark.parametrize("crop", [48, 200])  # crop inside the image, and padding around it
def test_image_and_mask_stay_aligned(hflip, crop):
    torch.manual_seed(0)
    label = blocks()
    image = COLOURS[label]
    t = build_train_transform(cfg(crop_size=crop, hflip=hflip), MEAN, STD)
    for _ in range(25):
        out = t(image=image, mask=label)
        img = out["image"].permute(1, 2, 0).numpy() + np.array(MEAN, np.float32)  # back to pixels
        mask = out["mask"].numpy()
        assert img.shape == (crop, crop, 3) and mask.shape == (crop, crop)
        assert out["mask"].dtype == torch.int64 and out["image"].dtype == torch.float32
        sel = interior(mask) & (mask != 255)
        assert sel.any()
        assert np.abs(img[sel] - COLOURS[mask[sel]]).max() < 1.0  # the image colour encodes the mask label
        pad = mask == 255  # the label map has no ignore pixels: 255 is padding only
        assert np.allclose(img[pad], MEAN)  # padded with the mean pixel (0 after normalisation)
        assert np.all(out["image"].permute(1, 2, 0).numpy()[pad] == 0)


def test_masks_use_nearest_neighbour_only():
    torch.manual_seed(1)
    rng = np.random.default_rng(0)
    label = rng.choice(np.array([0, 5, 9], np.uint8), size=(37, 53))  # worst case: every pixel an edge
    image = rng.integers(0, 255, (37, 53, 3), dtype=np.uint8)
    t = build_train_transform(cfg(crop_size=40, scale_min=0.6, scale_max=1.9, scale_step=0.0), MEAN, STD)
    for _ in range(30):
        values = set(np.unique(t(image=image, mask=label)["mask"].numpy()).tolist())
        assert values <= {0, 5, 9, 255}  # no interpolated labels such as 2 or 7


def scaled_extent(t, label: np.ndarray) -> float:
    mask = t(image=COLOURS[label], mask=label)["mask"].numpy()
    rows = np.nonzero((mask != 255).any(axis=1))[0]
    return (rows.max() + 1) / label.shape[0]


def test_discrete_scales():
    assert scale_choices(0.5, 2.0, 0.25) == [0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    assert scale_choices(0.5, 2.0, 0.0) is None
    torch.manual_seed(2)
    label = blocks(40, 40)
    # crop larger than the largest scaled image: the non-padded extent is the scale (image top-left)
    t = build_train_transform(cfg(crop_size=100, hflip=False), MEAN, STD)
    seen = {round(scaled_extent(t, label), 3) for _ in range(60)}
    assert seen <= {0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0} and len(seen) >= 5
    t = build_train_transform(cfg(crop_size=100, hflip=False, scale_step=0.0), MEAN, STD)
    seen = {round(scaled_extent(t, label), 3) for _ in range(30)}
    assert len(seen) >= 15 and min(seen) >= 0.5 - 1e-6 and max(seen) <= 2.0 + 1e-6


def test_hflip_switch():
    torch.manual_seed(3)
    label = np.zeros((20, 20), np.uint8)
    label[:, 10:] = 1
    image = COLOURS[label]
    kw = dict(crop_size=20, scale_min=1.0, scale_max=1.0)
    flipped = lambda t: t(image=image, mask=label)["mask"][0, 0].item() == 1  # noqa: E731
    on = build_train_transform(cfg(hflip=True, **kw), MEAN, STD)
    assert 5 < sum(flipped(on) for _ in range(40)) < 35
    off = build_train_transform(cfg(hflip=False, **kw), MEAN, STD)
    assert not any(flipped(off) for _ in range(20))


def test_color_jitter_changes_image_not_mask():
    torch.manual_seed(4)
    label = blocks(60, 60)
    image = COLOURS[label]
    kw = dict(crop_size=60, scale_min=1.0, scale_max=1.0, hflip=False)
    plain = build_train_transform(cfg(color_jitter=0.0, **kw), MEAN, STD)(image=image, mask=label)
    jitter = build_train_transform(cfg(color_jitter=0.5, **kw), MEAN, STD)
    outs = [jitter(image=image, mask=label) for _ in range(5)]
    assert all(torch.equal(o["mask"], plain["mask"]) for o in outs)
    assert torch.equal(plain["mask"], torch.from_numpy(label).long())
    assert any((o["image"] - plain["image"]).abs().max() > 5 for o in outs)


def test_eval_transform_is_whole_image_normalised():
    label = blocks(33, 47)
    image = COLOURS[label]
    out = build_eval_transform([100.0, 50.0, 25.0], [2.0, 4.0, 5.0])(image=image, mask=label)
    assert out["image"].shape == (3, 33, 47) and out["mask"].dtype == torch.int64
    expected = (image.astype(np.float32) - [100.0, 50.0, 25.0]) / [2.0, 4.0, 5.0]
    assert np.allclose(out["image"].permute(1, 2, 0).numpy(), expected, atol=1e-5)
    assert np.array_equal(out["mask"].numpy(), label)


def test_bad_mean_std():
    with pytest.raises(ValueError, match="three RGB values"):
        build_eval_transform([0.0, 0.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="positive"):
        build_train_transform(cfg(), MEAN, [1.0, 0.0, 1.0])


def test_seeded_runs_repeat():
    label = blocks()
    image = COLOURS[label]

    def run(seed: int) -> list[torch.Tensor]:
        t = build_train_transform(cfg(), MEAN, STD)
        torch.manual_seed(seed)
        return [t(image=image, mask=label)["mask"] for _ in range(4)]

    a, b, c = run(7), run(7), run(8)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))


class _Same(Dataset):
    def __init__(self, transform):
        self.transform, self.label = transform, blocks()

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(image=COLOURS[self.label], mask=self.label)["mask"]


def test_dataloader_workers_draw_different_augmentations():
    t = build_train_transform(cfg(scale_step=0.0), MEAN, STD)
    t(image=COLOURS[blocks()], mask=blocks())  # seeded in the parent before the workers fork
    torch.manual_seed(0)
    batches = list(DataLoader(_Same(t), batch_size=1, num_workers=2))
    # worker 0 gets items 0 and 2, worker 1 items 1 and 3: same input, so equal outputs would mean
    # both workers replay the parent's random state
    assert not torch.equal(batches[0], batches[1])
