"""Typed config: loading by name/path, one-level inheritance, overrides, clear errors."""

from __future__ import annotations

import pytest

import segkit
from segkit.config import CONFIG_DIR, ConfigError, available_configs, load_config

TABLE7_MNV2 = ["voc_mnv2_os16", "voc_mnv2_os8", "voc_mnv2_os16_aspp", "voc_mnv2_os8_aspp"]


@pytest.mark.parametrize("name", TABLE7_MNV2)
def test_table7_configs_carry_the_official_recipe(name: str) -> None:
    cfg = segkit.load_config(name)
    assert cfg.name == name
    assert cfg.model.aspp == name.endswith("_aspp")
    assert cfg.model.output_stride == (8 if "os8" in name else 16)
    assert not cfg.model.final_conv  # MNet V2*: head on the 320-channel features
    t, d = cfg.train, cfg.data
    assert (t.lr, t.momentum, t.weight_decay, t.poly_power, t.iterations, t.batch_size) == (
        0.007,
        0.9,
        4e-5,
        0.9,
        30000,
        16,
    )
    assert t.bias_lr_mult == 2.0 and not t.decay_depthwise
    assert (d.crop_size, d.scale_min, d.scale_max, d.scale_step, d.train_split) == (513, 0.5, 2.0, 0.25, "train_aug")
    assert cfg.model.input_mean == [127.5] * 3 and cfg.model.input_std == [127.5] * 3
    if "os8" in name:
        assert cfg.eval.scales == [0.5, 0.75, 1.0, 1.25, 1.5, 1.75] and cfg.eval.flip


def test_every_config_file_loads() -> None:
    files = sorted(CONFIG_DIR.glob("*.yaml"))
    assert {*TABLE7_MNV2, "demo_mnv2_os16", "voc_mnv1_os16_aspp", "voc_r101_os16_aspp"} <= {p.stem for p in files}
    for path in files:
        assert load_config(path).name == path.stem


def test_overrides_are_typed_and_applied() -> None:
    cfg = load_config(
        "voc_mnv2_os16",
        [
            "train.lr=0.01",
            "model.output_stride=8",
            "model.aspp=true",
            "model.aspp_rates=[3,6,9]",
            "train.init_weights=null",
            "data.hflip=false",
            "train.weight_decay=1",
            "train.momentum=9e-1",
        ],
    )
    assert cfg.train.lr == 0.01 and cfg.model.output_stride == 8 and cfg.model.aspp_rates == [3, 6, 9]
    assert cfg.train.momentum == 0.9  # YAML 1.1 reads '9e-1' as a string; float keys accept it
    assert cfg.data.hflip is False and cfg.train.init_weights is None
    assert isinstance(cfg.train.weight_decay, float)  # int widened to float
    assert load_config("voc_mnv2_os16", {"train.iterations": 5}).train.iterations == 5


def test_resolved_config_round_trips_through_yaml(tmp_path) -> None:
    cfg = load_config("voc_mnv2_os8_aspp", ["train.lr=0.02"])
    path = tmp_path / "resolved.yaml"
    path.write_text(cfg.to_yaml())
    assert load_config(path) == cfg


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.lrr=0.1"], r"Unknown config key 'train.lrr'. Did you mean 'lr'\?.*Valid keys in 'train'"),
        (["trian.lr=0.1"], r"section one of model, data, train, eval.*Did you mean 'train'"),
        (["model.output_stride=4"], r"model.output_stride: got 4; allowed values are 8, 16, 32"),
        (["train.lr=fast"], r"train.lr: got 'fast' \(str\); expected float"),
        (["train.iterations=1.5"], r"train.iterations: got 1.5 \(float\); expected int"),
        (["data.hflip=3"], r"data.hflip: got 3 \(int\); expected bool"),
        (["model.width_mult=0"], r"model.width_mult: got 0.0; allowed: a number > 0"),
        (["model.aspp=true", "model.aspp_rates=[6,12]"], r"model.aspp_rates.*three rates"),
        (["model.aspp_rates=[6,12,18]"], r"model.aspp_rates.*null when model.aspp is false.*set model.aspp=true"),
        (
            ["model.frozen_stages=9"],
            r"model.frozen_stages: got 9; allowed: -1 \(none\) or 0..8 for backbone 'mobilenet_v2'",
        ),
        (["train.lr=1e-x"], r"train.lr: got '1e-x' \(str\); expected float"),
        (["lr"], r"must look like section.key=value"),
    ],
)
def test_bad_overrides_name_key_and_allowed_values(overrides, message) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config("voc_mnv2_os16", overrides)


def test_unknown_key_in_file_and_inheritance_depth(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  output_strid: 16\n")
    with pytest.raises(
        ConfigError, match=r"bad.yaml: Unknown config key 'model.output_strid'. Did you mean 'output_stride'"
    ):
        load_config(bad)
    child = tmp_path / "child.yaml"
    (tmp_path / "mid.yaml").write_text(f"_base_: {CONFIG_DIR / 'voc_mnv2_os16.yaml'}\n")
    child.write_text("_base_: mid.yaml\n")
    with pytest.raises(ConfigError, match="one level of inheritance"):
        load_config(child)


def test_missing_explicit_path_is_an_error_not_a_fallback(tmp_path) -> None:
    # A path with a folder never falls back to the config of the same name in configs/.
    with pytest.raises(ConfigError, match=r"Config file '.*nowhere/voc_mnv2_os16.yaml' not found"):
        load_config(tmp_path / "nowhere" / "voc_mnv2_os16.yaml")
    assert load_config("voc_mnv2_os16.yaml").name == "voc_mnv2_os16"  # a bare file name is looked up in configs/


def test_unknown_config_name_lists_available() -> None:
    with pytest.raises(ConfigError, match=r"Did you mean 'voc_mnv2_os16'.*Available configs:.*voc_mnv2_os8_aspp"):
        load_config("voc_mnv2_os61")


def test_synthetic_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"data.synthetic_image_size: got 16; allowed: an integer >= 32"):
        load_config("demo_mnv2_os16", ["data.synthetic_image_size=16"])
    with pytest.raises(ConfigError, match=r"data.synthetic_num_val: got 0; allowed: an integer >= 1"):
        load_config("demo_mnv2_os16", ["data.synthetic_num_val=0"])


def test_available_configs_are_the_shipped_files() -> None:
    names = available_configs()
    assert "voc_mnv2_os16" in names and "demo_mnv2_os16" in names and names == sorted(names)
    assert all(load_config(name).name == name for name in names[:2])
