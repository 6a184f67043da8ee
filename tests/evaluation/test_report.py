"""segkit.evaluation.report: the JSON report's text, what it records about a model, and the prediction writer."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from segkit.config import load_config
from segkit.data.classes import VOC_PALETTE
from segkit.evaluation.report import PredictionWriter, format_report_json, model_identity


def test_format_report_json_round_trips_with_one_row_per_line() -> None:
    report = {
        "miou": 0.5,
        "per_class_iou": {"a [1,  2]": None, "b": 0.25},
        "confusion": [[1, 2], [3, 4]],
        "protocol": {"scales": [0.5, 1.0], "flip": False},
    }
    text = format_report_json(report)
    assert json.loads(text) == report
    assert "    [1, 2],\n    [3, 4]\n" in text and '"a [1,  2]"' in text
    with pytest.raises(ValueError):
        format_report_json({"miou": float("nan")})  # NaN is not JSON; metrics_to_json writes null


def test_model_identity_defaults_and_model_attributes() -> None:
    cfg = load_config("voc_mnv2_os16", {"model.width_mult": 0.35})
    ident = model_identity(torch.nn.Identity(), cfg)
    assert ident == {
        "config": "voc_mnv2_os16",
        "model": {"backbone": cfg.model.backbone, "width_mult": 0.35, "output_stride": 16, "aspp": cfg.model.aspp,
                  "decoder": cfg.model.decoder, "num_classes": 21},
        "precision": "fp32",
        "runtime": "pytorch",
        "quantization": None,
    }  # fmt: skip
    qat = SimpleNamespace(precision="fake-int8")
    assert (model_identity(qat, cfg)["precision"], model_identity(qat, cfg)["quantization"]) == ("fake-int8", "qat")
    runner = SimpleNamespace(precision="int8", runtime="onnxruntime", metadata={"quantization": "ptq"})
    ident = model_identity(runner, cfg)
    assert (ident["precision"], ident["runtime"], ident["quantization"]) == ("int8", "onnxruntime", "ptq")
    assert "argmax_fusion" not in ident["model"]
    fused = SimpleNamespace(runtime="onnxruntime", metadata={"argmax_fusion": True})
    assert model_identity(fused, cfg)["model"]["argmax_fusion"] is True  # not the official semantics: said


def test_prediction_writer_default_palette_is_voc(tmp_path: Path) -> None:
    writer = PredictionWriter(tmp_path / "pred", [0, 0, 0], [1, 1, 1], None, ["a", "b", "c"])
    assert np.array_equal(writer.palette, VOC_PALETTE[:3])
    image = torch.zeros(1, 3, 4, 6)
    pred, mask = torch.ones(1, 4, 6, dtype=torch.long), torch.full((1, 4, 6), 255)
    writer(image, pred, mask, ["a/b"])  # an id with a separator stays in the folder
    png = Image.open(tmp_path / "pred" / "a_b.png")
    assert png.mode == "P" and png.getpalette()[:9] == VOC_PALETTE[:3].reshape(-1).tolist()
    assert (tmp_path / "pred" / "a_b_overlay.jpg").is_file()
