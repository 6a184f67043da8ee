"""``segkit train`` as a library function: the config it trains with and the checks before it starts."""

from __future__ import annotations

import pytest

from segkit.config import ConfigError, load_config
from segkit.engine import WorkDirError, train_command, training_config


def test_training_config_applies_overrides_then_data_root_and_seed() -> None:
    cfg = training_config("voc_mnv2_os16", ["train.seed=1", "data.root=a", "train.lr=0.01"], data_root="b", seed=7)
    assert (cfg.data.root, cfg.train.seed, cfg.train.lr) == ("b", 7, 0.01)
    assert training_config("voc_mnv2_os16") == load_config("voc_mnv2_os16")
    with pytest.raises(ConfigError, match="Unknown config key 'train.lrr'"):
        training_config("voc_mnv2_os16", ["train.lrr=1"])


def test_resume_and_overwrite_together_are_refused_first(tmp_path) -> None:
    with pytest.raises(WorkDirError, match="--resume continues the run in the work dir and --overwrite replaces it"):
        train_command("no_such_config", resume=True, overwrite=True, work_dir=tmp_path / "w")
    assert not (tmp_path / "w").exists()
