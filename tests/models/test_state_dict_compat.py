"""Old checkpoints keep loading: every shipped config builds the state dict recorded before the restructure.

``tests/data/state_dict_keys.json`` was committed before the code moved; it maps a config name to
``{key: shape}`` of ``build_model(load_config(name)).state_dict()`` (and ``classifier_mnv2_1001`` to
the ImageNet classifier of ``voc_mnv2_os16`` with 1001 classes). Configs added later (the decoder
ones) may be absent from it; every recorded entry must match exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from segkit import config as config_module
from segkit.config import load_config
from segkit.models.build import build_classifier, build_model

RECORDED = json.loads((Path(__file__).resolve().parents[1] / "data" / "state_dict_keys.json").read_text())
SHIPPED = sorted(p.stem for p in Path(config_module.CONFIG_DIR).glob("*.yaml"))


def _shapes(model: torch.nn.Module) -> dict[str, list[int]]:
    return {key: list(value.shape) for key, value in model.state_dict().items()}


def _build(entry: str) -> torch.nn.Module:
    with torch.device("meta"):
        if entry == "classifier_mnv2_1001":
            return build_classifier(load_config("voc_mnv2_os16", ["model.num_classes=1001"]))
        return build_model(load_config(entry))


def test_every_recorded_config_is_still_shipped() -> None:
    configs = [name for name in RECORDED if name != "classifier_mnv2_1001"]
    assert configs and set(configs) <= set(SHIPPED), sorted(set(configs) - set(SHIPPED))


@pytest.mark.parametrize("entry", sorted(RECORDED))
def test_state_dict_keys_and_shapes_unchanged(entry: str) -> None:
    built, recorded = _shapes(_build(entry)), RECORDED[entry]
    assert sorted(set(recorded) - set(built)) == [], "keys the old checkpoints hold are gone"
    assert sorted(set(built) - set(recorded)) == [], "new keys: old checkpoints would miss them"
    assert {k: v for k, v in built.items() if recorded[k] != v} == {}, "shapes changed"


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_config_builds(name: str) -> None:
    model = _build(name)
    assert model.state_dict(), name
