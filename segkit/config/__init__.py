"""Typed, validated experiment configuration.

One YAML file per experiment (``configs/``, found by name or path), at most one level of
inheritance (``_base_: other.yaml``), dotted-key overrides; unknown keys and badly typed values
are rejected with the key, the allowed values and the closest valid key::

    cfg = load_config("voc_mnv2_os16", ["train.lr=0.01", "model.output_stride=8"])

``schema`` holds the dataclasses, ``checks`` the value ranges, ``files`` finding, merging and
overriding YAML files.
"""

from segkit.config.checks import validate_config
from segkit.config.files import (
    CONFIG_DIR,
    apply_overrides,
    available_configs,
    config_from_dict,
    load_config,
    parse_override,
    resolve_config_path,
)
from segkit.config.schema import (
    DATASET_NAMES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MAX_FROZEN_STAGES,
    SECTIONS,
    TF_MEAN,
    TF_STD,
    Config,
    ConfigError,
    DataConfig,
    EvalConfig,
    ModelConfig,
    TrainConfig,
)

__all__ = [
    "CONFIG_DIR",
    "DATASET_NAMES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MAX_FROZEN_STAGES",
    "SECTIONS",
    "TF_MEAN",
    "TF_STD",
    "Config",
    "ConfigError",
    "DataConfig",
    "EvalConfig",
    "ModelConfig",
    "TrainConfig",
    "apply_overrides",
    "available_configs",
    "config_from_dict",
    "load_config",
    "parse_override",
    "resolve_config_path",
    "validate_config",
]
