"""Cityscapes: the label-id -> train-id table, *_labelTrainIds.png, gtCoarse, the error paths, prepare-data."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segkit.cli.prepare_data import main as prepare_main
from segkit.config import DataConfig
from segkit.data import DatasetError, build_dataset
from segkit.data.cityscapes import (
    CITYSCAPES_CLASSES,
    CITYSCAPES_PALETTE,
    LABEL_TO_TRAIN_ID,
    CityscapesSegmentation,
)
from segkit.data.command import cityscapes_command, verify_command
from segkit.data.synthetic_trees import generate_synthetic_cityscapes
from segkit.data.verify import parse_expected_counts


@pytest.fixture
def cs_root(tmp_path) -> Path:
    generate_synthetic_cityscapes(tmp_path, num_train=3, num_val=2)
    return tmp_path


def test_train_id_table_is_cityscapesscripts():
    assert len(CITYSCAPES_CLASSES) == 19 and CITYSCAPES_CLASSES[0] == "road" and CITYSCAPES_CLASSES[-1] == "bicycle"
    assert len(LABEL_TO_TRAIN_ID) == 34
    mapped = {label: int(t) for label, t in enumerate(LABEL_TO_TRAIN_ID) if t != 255}
    assert mapped == {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
                      26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}  # fmt: skip
    assert CITYSCAPES_PALETTE[0].tolist() == [128, 64, 128] and CITYSCAPES_PALETTE[13].tolist() == [0, 0, 142]


def test_label_ids_are_mapped_and_ids_name_the_city(cs_root):
    ds = CityscapesSegmentation(cs_root, "val")
    assert ds.ids == ["frankfurt/frankfurt_000000_000019", "frankfurt/frankfurt_000001_000020"]
    raw = np.array(Image.open(ds.label_ids_path(ds.ids[0])))
    mask = ds[0]["mask"].numpy()
    assert mask.shape == (65, 129) and ds[0]["image"].shape == (3, 65, 129)
    np.testing.assert_array_equal(mask, LABEL_TO_TRAIN_ID[raw])
    assert {0, 255}.issubset(np.unique(mask).tolist())  # road and the ignored ego vehicle / unlabeled


def test_prepare_writes_train_ids_atomically_and_they_are_preferred(cs_root, capsys):
    before = [CityscapesSegmentation(cs_root, "train")[i]["mask"].numpy() for i in range(3)]
    assert prepare_main(["cityscapes", "--root", str(cs_root), "--quiet", "--expect-counts", "off"]) == 0
    assert "wrote 5 *_labelTrainIds.png masks" in capsys.readouterr().out
    written = sorted(cs_root.glob("gtFine/*/*/*_labelTrainIds.png"))
    assert len(written) == 5 and not list(cs_root.rglob("*.tmp*"))
    ds = CityscapesSegmentation(cs_root, "train")
    assert ds.mask_path(ds.ids[0]).name.endswith("_gtFine_labelTrainIds.png")
    for i, mask in enumerate(before):
        np.testing.assert_array_equal(ds[i]["mask"].numpy(), mask)
    assert "wrote 0 " in cityscapes_command(cs_root, expect_counts="off", progress=False).text  # kept
    assert "wrote 5 " in cityscapes_command(cs_root, overwrite=True, expect_counts="off", progress=False).text


def test_prepare_says_exactly_what_is_missing(cs_root):
    shutil.rmtree(cs_root / "gtFine" / "val")
    (cs_root / "gtFine" / "train" / "aachen" / "aachen_000000_000019_gtFine_labelIds.png").unlink()
    with pytest.raises(DatasetError) as info:
        cityscapes_command(cs_root, progress=False)
    message = str(info.value)
    assert "\n" not in message
    assert f"{cs_root / 'gtFine' / 'val'} (unzip gtFine_trainvaltest.zip)" in message
    assert "1 of 3 train masks, e.g. " in message and "aachen_000000_000019_gtFine_labelIds.png" in message
    assert "after registering" in message
    assert prepare_main(["cityscapes", "--root", str(cs_root), "--quiet"]) == 2


def test_train_extra_reads_gtcoarse(tmp_path):
    images, masks = (
        tmp_path / "leftImg8bit" / "train_extra" / "bochum",
        tmp_path / "gtCoarse" / "train_extra" / "bochum",
    )
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    Image.fromarray(np.zeros((9, 17, 3), np.uint8)).save(images / "bochum_000000_000313_leftImg8bit.png")
    Image.fromarray(np.full((9, 17), 26, np.uint8), mode="L").save(masks / "bochum_000000_000313_gtCoarse_labelIds.png")
    ds = build_dataset(DataConfig(dataset="cityscapes", root=str(tmp_path)), "train_extra", None, num_classes=19)
    assert (ds[0]["mask"] == 13).all()  # car
    assert parse_expected_counts("auto", "cityscapes")["train_extra"] == 19998
    with pytest.raises(DatasetError, match=r"splits train, val, test, train_extra"):
        CityscapesSegmentation(tmp_path, "trainval")


def test_each_broken_file_is_one_line_naming_it(tmp_path):
    broken = generate_synthetic_cityscapes(tmp_path, num_train=2, num_val=1, broken=True)
    result = verify_command(str(tmp_path), dataset="cityscapes", expect_counts="off", progress=False)
    assert not result.ready
    lines = result.text.splitlines()
    assert set(broken) == {"missing mask", "wrong size", "label out of range", "empty city folder"}
    for kind, path in broken.items():
        assert len([line for line in lines if str(path) in line]) == 1, (kind, result.text)
    assert "label ids [40] above 33" in result.text and "or delete the empty folder" in result.text
    with pytest.raises(DatasetError, match=r"city folder .*emptycity holds no \*_leftImg8bit.png"):
        CityscapesSegmentation(tmp_path, "train")
    with pytest.raises(DatasetError, match=r"missing: 1 of 5 train masks, e.g. .*broken_000000_000001_gtFine"):
        cityscapes_command(tmp_path, splits=["train"], expect_counts="off", progress=False)
    image = tmp_path / "leftImg8bit" / "train" / "broken" / "broken_000000_000001_leftImg8bit.png"
    image.unlink()  # the image whose mask is missing
    with pytest.raises(DatasetError, match=r"label ids \[40\]"):  # prepare-data refuses to write a wrong mask
        cityscapes_command(tmp_path, splits=["train"], expect_counts="off", progress=False)


def test_missing_folder_names_the_archive(tmp_path):
    with pytest.raises(DatasetError, match=r"leftImg8bit/val not found; unzip leftImg8bit_trainvaltest.zip"):
        CityscapesSegmentation(tmp_path, "val")


def test_cityscapes_configs_and_their_complexity():
    from segkit.analysis.complexity import DATASET_ROWS, count_config
    from segkit.config import load_config

    os16, os8 = load_config("cityscapes_mnv2_os16"), load_config("cityscapes_mnv2_os8")
    assert (os16.data.dataset, os16.data.crop_size, os16.model.num_classes, os16.train.iterations) == (
        "cityscapes",
        769,
        19,
        90000,
    )
    assert (os8.model.output_stride, os8.eval.scales, os8.eval.flip) == (8, [0.75, 1.0, 1.25], True)
    row = next(r for r in DATASET_ROWS if r.config == "cityscapes_mnv2_os16")
    report = count_config("cityscapes_mnv2_os16", row.input_size)  # TF's eval crop 1025x2049
    assert report.madds_tf1 == pytest.approx(21.27e9, rel=0.005)  # model_zoo.md: 21.27B
    assert report.params == pytest.approx(2.11e6, rel=0.01)
