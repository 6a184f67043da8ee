"""benchmarks/dataloader.py: the VOC tree it writes, and a --quick run end to end (timing is not asserted)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import dataloader as bench


def test_written_tree_is_a_valid_voc_split_with_photo_like_jpegs(tmp_path):
    from segkit.config import load_config
    from segkit.data import build_dataset, read_image, read_mask

    bench.write_voc_tree(tmp_path, 3, num_val=1, size=(500, 375))
    cfg = load_config("voc_mnv2_os16", [f"data.root={tmp_path}"])
    train = build_dataset(cfg.data, "train", None, num_classes=21)
    assert len(train) == 3 and len(build_dataset(cfg.data, "val", None, num_classes=21)) == 1
    voc = tmp_path / "VOCdevkit" / "VOC2012"
    jpeg = voc / "JPEGImages" / f"{train.ids[0]}.jpg"
    image, mask = read_image(jpeg), read_mask(voc / "SegmentationClass" / f"{train.ids[0]}.png")
    assert image.shape == (375, 500, 3) and mask.shape == (375, 500)
    assert 255 in np.unique(mask) and set(np.unique(mask)) - {255} <= set(range(21))
    assert jpeg.stat().st_size > 20_000  # textured like a photo, not a flat image that decodes for free


@pytest.mark.slow  # runs the benchmark (DataLoader worker processes)
def test_quick_run_writes_rows_for_every_requested_worker_count(tmp_path, capsys):
    out_json, out_md = tmp_path / "dl.json", tmp_path / "dl.md"
    assert (
        bench.main(
            [
                "--quick",
                "--workers",
                "0",
                "1",
                "16",
                "--max-workers",
                "1",
                "--json",
                str(out_json),
                "--markdown",
                str(out_md),
            ]
        )
        == 0
    )
    result = json.loads(out_json.read_text())
    rows = {r["workers"]: r for r in result["rows"]}
    assert list(rows) == [0, 1, 16]
    assert rows[0]["measured"] and rows[1]["measured"] and rows[1]["images_per_s"] > 0
    assert not rows[16]["measured"] and "--max-workers 1" in rows[16]["note"]
    assert rows[16]["projected_images_per_s"] == 16 * rows[1]["images_per_s"]
    stages = {s["stage"]: s for s in result["stages"]}
    for name in (
        "decode (JPEG + PNG)",
        "RandomScale",
        "PadIfNeeded",
        "RandomCrop",
        "HorizontalFlip",
        "Normalize",
        "transform, whole call",
        "collate",
        "pin memory",
        "host -> device copy",
    ):
        assert name in stages, name
    assert stages["decode (JPEG + PNG)"]["ms_per_image"] > 0
    if not result["settings"]["pin_memory"]:
        assert "needs CUDA" in stages["pin memory"]["note"]
    assert result["data"]["source"] == "synthetic" and result["settings"]["crop_size"] == 129
    text = out_md.read_text()
    assert "| workers | img/s |" in text and "projected" in text and "CPUs" in text
    assert "ms/image" in capsys.readouterr().out
