"""ADE20K's evaluation protocols: TF DeepLab's min/max resize (sides k * 16 + 1) and mmseg's shorter side 512."""

from __future__ import annotations

import pytest
import torch

from segkit.config import ConfigError, EvalConfig, load_config
from segkit.evaluation.evaluator import protocol_dict
from segkit.evaluation.predict import InferenceError, check_budget, predict, range_extent
from segkit.evaluation.protocol import protocol_name


@pytest.mark.parametrize(
    ("size", "resize_range", "factor", "expected"),
    [
        ((512, 683), (512, 2048), None, (512, 683)),  # mmseg: the shorter side is 512 already
        ((300, 500), (512, 2048), None, (512, 853)),  # shorter side up to 512
        ((256, 4000), (512, 2048), None, (131, 2048)),  # the longer side would pass 2048: longer to 2048
        ((375, 500), (513, 513), 16, (385, 513)),  # TF: longer side to 513, sides 16k + 1
        ((300, 500), (513, 513), 16, (321, 513)),  # 308 rounded up to 321
        ((1024, 2048), (513, 513), None, (257, 513)),
    ],
)
def test_range_extent(size, resize_range, factor, expected):
    assert range_extent(size, resize_range, factor) == expected


class Probe(torch.nn.Module):
    """Logits [N, 3, H, W] whose argmax is 1; records the input sizes it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[tuple[int, int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(tuple(x.shape[-2:]))
        out = torch.zeros(x.shape[0], 3, *x.shape[-2:])
        out[:, 1] = 1.0
        return out


def test_predict_runs_at_the_range_extent_and_returns_the_mask_size():
    probe = Probe()
    labels = predict(probe, torch.zeros(1, 3, 300, 500), resize_range=(513, 513), resize_factor=16, pad_to=513)
    assert probe.sizes == [(513, 513)] and labels.shape == (1, 300, 500) and (labels == 1).all()
    probe.sizes.clear()
    predict(probe, torch.zeros(1, 3, 300, 500), resize_range=(512, 2048))
    assert probe.sizes == [(512, 853)]


def test_protocol_names_and_json_record():
    tf = EvalConfig(resize_range=[513, 513], resize_factor=16, pad_to=513)
    assert protocol_name(tf) == "min/max resize to 513 (TF DeepLab), sides k*16+1 + pad to 513"
    assert protocol_name(EvalConfig(resize_range=[512, 2048])) == "shorter side 512, longer <= 2048 (mmseg)"
    assert protocol_dict(tf)["resize_range"] == [513, 513] and protocol_dict(tf)["resize_factor"] == 16
    assert "resize_range" not in protocol_dict(EvalConfig())


def test_budget_and_config_checks():
    with pytest.raises(InferenceError, match="over the budget"):
        check_budget(1, (100, 100), resize_range=(4096, 8192))  # enlarging past the pixel budget is refused
    with pytest.raises(ConfigError, match=r"eval.resize_range: got \[600, 513\]"):
        load_config("ade20k_mnv2_os16_plus", ["eval.resize_range=[600,513]"])
    with pytest.raises(ConfigError, match="eval.resize_factor"):
        load_config("cityscapes_mnv2_os16", ["eval.resize_factor=16"])
    with pytest.raises(ConfigError, match="one resize per protocol"):
        load_config("ade20k_mnv2_os16_plus", ["eval.resize_longer=513"])
