"""ADE20K: the 150-class table, reduce_zero_label, MLPerf's 31 classes + "other", the error paths, prepare-data."""

from __future__ import annotations

import http.server
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segkit.cli.prepare_data import main as prepare_main
from segkit.config import DataConfig
from segkit.data import DatasetError, build_dataset
from segkit.data.ade20k import (
    ADE20K_CLASSES,
    ADE20K_PALETTE,
    ADE20K_TOP31_CLASSES,
    ADE20K_TOP31_PALETTE,
    TOP31_SCORED,
    ADE20KSegmentation,
)
from segkit.data.command import ade20k_command, verify_command
from segkit.data.synthetic_trees import ADE20K_SHAPE_LABELS, generate_synthetic_ade20k
from segkit.data.verify import parse_expected_counts


@pytest.fixture(scope="module")
def ade_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ade")
    generate_synthetic_ade20k(root, num_train=4, num_val=3)
    return root


@pytest.fixture(scope="module")
def broken_root(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    root = tmp_path_factory.mktemp("ade_broken")
    return root, generate_synthetic_ade20k(root, num_train=2, num_val=1, broken=True)


def raw_mask(root: Path, split: str, sample_id: str) -> np.ndarray:
    return np.array(Image.open(root / "ADEChallengeData2016" / "annotations" / split / f"{sample_id}.png"))


def test_class_table_is_objectinfo150_with_mmsegs_palette():
    assert len(ADE20K_CLASSES) == 150 == len(ADE20K_PALETTE) == len(set(ADE20K_CLASSES))
    assert ADE20K_CLASSES[:3] == ("wall", "building", "sky") and ADE20K_CLASSES[-1] == "flag"
    assert ADE20K_CLASSES[12] == "person" and ADE20K_CLASSES[20] == "car"  # labels 13 and 21
    assert ADE20K_PALETTE[0].tolist() == [120, 120, 120] and ADE20K_PALETTE[-1].tolist() == [92, 0, 255]
    assert len(ADE20K_TOP31_CLASSES) == 32 == len(ADE20K_TOP31_PALETTE) and TOP31_SCORED == tuple(range(1, 32))


def test_top31_names_match_the_converted_mlperf_model():
    from segkit.convert.tflite.classes import ADE20K_TOP31_CLASSES as converted

    assert ADE20K_TOP31_CLASSES == converted


def test_150_classes_reduce_zero_label(ade_root):
    ds = ADE20KSegmentation(ade_root, "validation")
    assert ds.num_classes == 150 and len(ds) == 3 and ds.ids[0] == "ADE_val_00000001"
    raw = raw_mask(ade_root, "validation", ds.ids[0])
    mask = ds[0]["mask"].numpy()
    assert mask.shape == raw.shape == (75, 101)  # odd sizes, kept
    assert set(np.unique(raw)) <= set(ADE20K_SHAPE_LABELS)
    np.testing.assert_array_equal(mask[raw == 0], 255)  # "other" ignored
    np.testing.assert_array_equal(mask[raw > 0], raw[raw > 0].astype(int) - 1)  # label k -> class k - 1


def test_top31_keeps_1_to_31_and_maps_the_rest_to_other(ade_root):
    ds = build_dataset(DataConfig(dataset="ade20k_top31", root=str(ade_root)), "val", None, num_classes=32)
    assert ds.class_names[0] == "other" and ds.miou_classes == TOP31_SCORED
    for index, sample_id in enumerate(ds.ids):
        raw, mask = raw_mask(ade_root, "validation", sample_id), ds[index]["mask"].numpy()
        kept = (raw >= 1) & (raw <= 31)
        np.testing.assert_array_equal(mask[kept], raw[kept])
        np.testing.assert_array_equal(mask[~kept], 0)  # 0, 37 (lamp) and 150 (flag) -> "other"


def test_unknown_split_and_missing_tree_name_the_fix(tmp_path, ade_root):
    with pytest.raises(DatasetError, match=r"splits training, validation .*data.val_split=validation"):
        ADE20KSegmentation(ade_root, "test")
    with pytest.raises(DatasetError, match=r"ADEChallengeData2016\.zip.*prepare-data ade20k"):
        ADE20KSegmentation(tmp_path, "training")


def test_each_broken_file_is_one_line_naming_it(broken_root):
    root, broken = broken_root
    result = verify_command(str(root), dataset="ade20k", expect_counts="off", progress=False)
    assert not result.ready
    lines = result.text.splitlines()
    for kind, path in broken.items():
        hits = [line for line in lines if str(path) in line]
        assert len(hits) == 1, (kind, result.text)
    assert "re-extract annotations/training/" in result.text  # the missing mask's fix
    assert "above 150" in result.text and "[200]" in result.text  # the label out of range
    assert "is 95x71 (WxH) but image" in result.text  # the wrong size
    with pytest.raises(DatasetError, match=r"missing mask file .*ADE_train_90000001\.png"):
        ADE20KSegmentation(root, "training")


def test_official_counts_and_prepare_data_cli(ade_root, capsys):
    assert parse_expected_counts("auto", "ade20k") == {"training": 20210, "validation": 2000}
    assert prepare_main(["ade20k", "--root", str(ade_root), "--quiet", "--expect-counts", "off"]) == 0
    assert "OK" in capsys.readouterr().out
    assert prepare_main(["ade20k", "--root", str(ade_root), "--quiet"]) == 1  # 4 training images, not 20,210
    assert "lists 4 ids, expected 20210" in capsys.readouterr().out
    assert prepare_main(["verify", "--dataset", "ade20k_top31", "--root", str(ade_root), "--quiet",
                         "--expect-counts", "off"]) == 0  # fmt: skip


def test_download_from_a_local_server(tmp_path, ade_root, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    with zipfile.ZipFile(served / "ADEChallengeData2016.zip", "w") as archive:
        for path in sorted((ade_root / "ADEChallengeData2016").rglob("*")):
            archive.write(path, path.relative_to(ade_root))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/ADEChallengeData2016.zip"
        monkeypatch.setattr("segkit.data.sources.ADE20K_URL", url)
        out = tmp_path / "data"
        result = ade20k_command(out, download=True, expect_counts="off", progress=False)
    finally:
        server.shutdown()
    assert result.ready, result.text
    assert not (out / "ADEChallengeData2016.zip").exists()  # deleted after extraction
    assert len(ADE20KSegmentation(out, "validation")) == 3


def test_synthetic_tree_refuses_to_overwrite(ade_root):
    with pytest.raises(DatasetError, match="refusing to write"):
        generate_synthetic_ade20k(ade_root)
    assert len(ADE20KSegmentation(ade_root, "training")) == 4  # the tree is untouched
