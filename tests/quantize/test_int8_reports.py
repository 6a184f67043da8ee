"""Int8 results in reports and in the trade-off: ``segkit test --json`` records precision / runtime / quantization,
``segkit tradeoff`` places a result by (row, precision, runtime), int8 beside the float one, with the latency of
its runtime from the runtime latency JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from segkit.analysis.plot import points
from segkit.analysis.tradeoff import CONFIG_NAMES, load_results, load_runtime_latency, tradeoff_markdown
from segkit.cli import main as segkit_main
from segkit.evaluation.metrics import MIOU_DEFINITION, metrics_from_confusion

SINGLE = {"scales": [1.0], "flip": False}
FLOAT_ROW = "| MNet V2* | 16 |  |  | 2.75B | 5.00B | 75.32 | 70.00 |"


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory, synth_root, tiny_cfg) -> dict[str, Path]:
    """A tiny checkpoint, its float ONNX export and its int8 PTQ ONNX file (4 calibration images, 65x65)."""
    pytest.importorskip("onnxruntime")
    import torch

    from segkit.checkpoint.format import save_checkpoint
    from segkit.checkpoint.load import load_model
    from segkit.export import export_onnx
    from segkit.models import build_model
    from segkit.quantize import quantize_checkpoint

    torch.manual_seed(0)
    cfg = tiny_cfg(synth_root)
    folder = tmp_path_factory.mktemp("int8_reports")
    ckpt = folder / "tiny.pth"
    save_checkpoint(ckpt, build_model(cfg).eval(), cfg)
    export_onnx(load_model(ckpt), folder / "float.onnx", input_size=(65, 65))
    q = folder / "int8.onnx"
    options = dict(calib_data=str(synth_root), num_calib=4, input_size=(65, 65), num_verify=2, progress=False)
    report = quantize_checkpoint(ckpt, q, format="onnx", verify=str(synth_root), **options)
    assert report.n_images == 2 and q.is_file()  # (an untrained model's ties may disagree with the float one)
    return {"ckpt": ckpt, "float": folder / "float.onnx", "int8": q}


def _report(tmp_path: Path, capsys, *args: str) -> tuple[dict, str]:
    out = tmp_path / f"r{len(list(tmp_path.iterdir()))}.json"
    rc = segkit_main(["test", *args, "--json", str(out), "--no-progress", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 0, err
    return json.loads(out.read_text()), err


@pytest.mark.slow
def test_segkit_test_reports_precision_and_runtime(tiny_files, tmp_path, capsys):
    report, err = _report(tmp_path, capsys, "--model", str(tiny_files["int8"]))
    assert (report["precision"], report["runtime"], report["quantization"]) == ("int8", "onnxruntime", "ptq")
    assert report["config"] == "demo_mnv2_os16" and report["model"]["width_mult"] == 0.35
    assert "(int8, onnxruntime, ptq)" in err  # the summary line says what runs
    # one mIoU definition for int8 as for float: over the classes in the ground truth, the other one beside it
    metrics = metrics_from_confusion(np.asarray(report["confusion"]))
    assert report["miou_definition"] == MIOU_DEFINITION and report["miou"] == pytest.approx(metrics.miou)
    assert report["miou_gt_or_pred"] == pytest.approx(metrics.miou_gt_or_pred)
    report, err = _report(tmp_path, capsys, "--model", str(tiny_files["float"]))
    assert (report["precision"], report["runtime"], report["quantization"]) == ("fp32", "onnxruntime", None)
    report, err = _report(tmp_path, capsys, "--checkpoint", str(tiny_files["ckpt"]))
    assert (report["precision"], report["runtime"], report["quantization"]) == ("fp32", "pytorch", None)
    assert "(fp32, pytorch)" in err


@pytest.mark.slow
def test_segkit_test_reports_a_qat_model_as_fake_int8(tiny_files):
    """A model carrying ``precision = "fake-int8"`` (a QAT checkpoint's) is reported as such."""
    from segkit.evaluation.command import evaluate_model
    from segkit.export.source import ModelSource, report_identity

    model, cfg = ModelSource(tiny_files["ckpt"]).load("cpu")
    model.precision = "fake-int8"
    ident = report_identity(model, cfg)
    report = evaluate_model(model, cfg, device="cpu", identity=ident, progress=False, log=lambda line: None).report
    assert (report["precision"], report["runtime"], report["quantization"]) == ("fake-int8", "pytorch", "qat")


def test_official_uint8_tflite_is_an_official_int8_result(shared_data):
    """The official uint8 file (no segkit metadata) is named like its converted checkpoint and reads as int8."""
    pytest.importorskip("ai_edge_litert")
    from segkit.export.source import report_identity
    from segkit.runtimes import load_exported

    model = load_exported(shared_data / "tflite" / "deeplabv3_mnv2_pascal_quant.tflite")
    ident = report_identity(model, model.segkit_config)
    assert ident["config"] == "tflite_deeplabv3_mnv2_pascal_quant"
    assert (ident["precision"], ident["runtime"]) == ("int8", "litert")
    assert ident["model"]["output_stride"] == 16 and ident["model"]["aspp"] is False
    assert ident["scheme"] == "uint8"  # what `Evaluating ... (uint8, litert)` says; the JSON precision enum: int8


def _write(folder: Path, name: str, **data) -> None:
    (folder / f"{name}.json").write_text(json.dumps({"protocol": SINGLE, "decoder": "none", **data}))


def _runtimes(path: Path) -> Path:
    rows = [
        {"row": "PyTorch eval", "latency_ms": 100.0},
        {"row": "optimize_for_inference fp32", "latency_ms": 50.0},  # same (fp32, pytorch): the fastest is kept
        {"row": "optimize_for_inference bf16 autocast", "latency_ms": 40.0, "fp32": False},
        {"row": "ONNX Runtime", "latency_ms": 35.0},
        {"row": "ONNX Runtime int8", "latency_ms": 20.0},  # by name
        {"row": "OpenVINO QDQ", "latency_ms": 18.0, "runtime": "openvino", "precision": "int8"},  # by its keys
        {"row": "LiteRT (segkit fp32 export)", "latency_ms": 39.0},
    ]
    official = [
        {"row": "official uint8 TFLite (LiteRT)", "latency_ms": 36.0},
        {"row": "LiteRT (segkit fp32 export)", "latency_ms": 38.0},
        {"row": "LiteRT int8", "latency_ms": 30.0, "runtime": "litert", "precision": "int8"},
    ]
    models = [
        {"model": "voc_mnv2_os16", "input_size": 513, "rows": rows},
        {"model": "voc_mnv2_os16", "input_size": 257, "rows": [{"row": "ONNX Runtime int8", "latency_ms": 5.0}]},
        {"model": "official (converted)", "input_size": 513, "rows": official},
        {"model": "voc_mnv2_os8 w0.5", "input_size": 513, "rows": rows},  # on no row
    ]
    path.write_text(json.dumps({"machine": {}, "models": models}))
    return path


def test_runtime_latency_by_config_precision_runtime(tmp_path):
    lat = load_runtime_latency(_runtimes(tmp_path / "runtimes.json"))
    assert lat == {
        ("voc_mnv2_os16", False, "fp32", "pytorch", False): 50.0,
        ("voc_mnv2_os16", False, "bf16", "pytorch", False): 40.0,
        ("voc_mnv2_os16", False, "fp32", "onnxruntime", False): 35.0,
        ("voc_mnv2_os16", False, "int8", "onnxruntime", False): 20.0,
        ("voc_mnv2_os16", False, "int8", "openvino", False): 18.0,
        ("voc_mnv2_os16", False, "fp32", "litert", False): 39.0,
        ("voc_mnv2_os16", True, "int8", "litert", True): 36.0,  # the official uint8 file itself
        ("voc_mnv2_os16", True, "int8", "litert", False): 30.0,  # segkit's PTQ of the converted weights
        ("voc_mnv2_os16", True, "fp32", "litert", False): 38.0,
    }
    assert load_runtime_latency(tmp_path / "absent.json") == {}
    (tmp_path / "bad.json").write_text('{"rows": []}')
    with pytest.raises(ValueError, match="no 'models' list"):
        load_runtime_latency(tmp_path / "bad.json")


def test_int8_results_sit_beside_the_float_one(tmp_path):
    res = tmp_path / "results"
    res.mkdir()
    int8_ort = {"config": "voc_mnv2_os16", "precision": "int8", "runtime": "onnxruntime"}
    mnv2 = {"backbone": "mobilenet_v2", "width_mult": 1.0, "output_stride": 16, "aspp": False, "decoder": "none"}
    official = {"config": "tflite_deeplabv3_mnv2_pascal_quant", "model": mnv2}  # placed by its architecture
    _write(res, "float", config="voc_mnv2_os16", miou=0.70)
    _write(res, "ptq", config="voc_mnv2_os16", miou=0.69, precision="int8", runtime="onnxruntime", quantization="ptq")
    _write(res, "a_ptq_again", **int8_ort, miou=0.60, quantization="ptq")  # the same (row, precision, runtime)
    _write(res, "qat_ort", **int8_ort, miou=0.699, quantization="qat")  # a QAT file: a row of its own
    _write(res, "ptq_ov", config="voc_mnv2_os16", miou=0.685, precision="int8", runtime="openvino")
    _write(res, "qat", config="voc_mnv2_os16", miou=0.698, precision="fake-int8", runtime="pytorch")
    _write(res, "uint8", **official, miou=0.7474, precision="int8", runtime="litert")  # the official file
    _write(res, "official_ptq", **official, miou=0.74, precision="int8", runtime="litert", quantization="ptq")
    found, notes = load_results(res)
    placed = sorted((r.config, r.converted, r.precision, r.runtime, round(r.miou, 2)) for r in found)
    assert placed == [
        ("voc_mnv2_os16", False, "fake-int8", "pytorch", 69.8),
        ("voc_mnv2_os16", False, "fp32", "pytorch", 70.0),
        ("voc_mnv2_os16", False, "int8", "onnxruntime", 69.0),  # a_ptq_again.json is read first (sorted names)
        ("voc_mnv2_os16", False, "int8", "onnxruntime", 69.9),
        ("voc_mnv2_os16", False, "int8", "openvino", 68.5),
        ("voc_mnv2_os16", True, "int8", "litert", 74.0),
        ("voc_mnv2_os16", True, "int8", "litert", 74.74),
    ]
    assert len(notes) == 1 and "second result" in notes[0] and "int8 PTQ (ONNX Runtime)" in notes[0]
    lat = load_runtime_latency(_runtimes(tmp_path / "runtimes.json"))
    table = tradeoff_markdown({c: 5e9 for c in CONFIG_NAMES}, found, {"voc_mnv2_os16": 54.0}, lat)
    lines = table.splitlines()
    i = lines.index(f"{FLOAT_ROW} 54 |")  # the float result keeps its row and PyTorch latency
    assert lines[i + 1 : i + 5] == [
        "| MNet V2*, fake-int8 (PyTorch) | 16 |  |  | 2.75B | 5.00B | 75.32 | 69.80 | - |",
        "| MNet V2*, int8 PTQ (ONNX Runtime) | 16 |  |  | 2.75B | 5.00B | 75.32 | 69.00 | 20 (fp32 35) |",
        "| MNet V2*, int8 QAT (ONNX Runtime) | 16 |  |  | 2.75B | 5.00B | 75.32 | 69.90 | 20 (fp32 35) |",
        "| MNet V2*, int8 (OpenVINO) | 16 |  |  | 2.75B | 5.00B | 75.32 | 68.50 | 18 |",
    ]
    j = lines.index(
        "| MNet V2*, official weights, int8 (LiteRT) | 16 |  |  | 2.75B | 5.00B | 74.26 | 74.74 | 36 (fp32 38) |"
    )
    assert lines[j + 1] == (  # segkit's PTQ of the official weights: its own line, its own LiteRT latency
        "| MNet V2*, official weights, int8 PTQ (LiteRT) | 16 |  |  | 2.75B | 5.00B | - | 74.00 | 30 (fp32 38) |"
    )
    assert not any(line.startswith("| MNet V2*, official weights converted |") for line in lines)  # no float one

    pts = points({c: 5e9 for c in CONFIG_NAMES}, found, {"voc_mnv2_os16": 54.0}, lat)
    madds = {(p.kind, p.y) for p in pts if p.panel == "madds" and p.y < 75}
    assert {("segkit", 70.0), ("int8", 69.0), ("int8", 68.5), ("fake-int8", 69.8)} <= madds
    on_latency = {(p.kind, p.x, round(p.y, 2)) for p in pts if p.panel == "latency"}
    assert {("segkit", 54.0, 70.0), ("int8", 20.0, 69.0)} <= on_latency
    assert {("int8", 36.0, 74.74), ("int8", 30.0, 74.0)} <= on_latency  # the official file, segkit's PTQ of it
    # exactly the measured pairs: no fp32 ORT / LiteRT point at another result's mIoU (no such result was given)
    assert not {x for _, x, _ in on_latency} & {35.0, 38.0, 39.0}
    assert all(p.link is None for p in pts if p.panel == "latency")  # no fp32 result in those runtimes to link to
    assert not any(p.kind == "fake-int8" for p in pts if p.panel == "latency")  # no latency measured for it


def test_the_latency_panel_draws_the_measured_pairs(tmp_path):
    """The converted model's PyTorch fp32 result is on the latency panel at its runtimes.json latency (the table's
    figure); an int8 file is linked to the fp32 result of its runtime only when that one was evaluated."""
    res = tmp_path / "results"
    res.mkdir()
    mnv2 = {"backbone": "mobilenet_v2", "width_mult": 1.0, "output_stride": 16, "aspp": False, "decoder": "none"}
    official = {"config": "tflite_deeplabv3_mnv2_pascal_quant", "model": mnv2}
    _write(res, "conv_fp32", **official, miou=0.7478)
    _write(res, "conv_ort", **official, miou=0.7477, precision="fp32", runtime="onnxruntime")
    _write(res, "conv_ort_int8", **official, miou=0.7463, precision="int8", runtime="onnxruntime", quantization="ptq")
    _write(res, "uint8", **official, miou=0.7476, precision="int8", runtime="litert")
    found, _ = load_results(res)
    row = "voc_mnv2_os16"
    lat = {
        (row, True, "fp32", "onnxruntime", False): 35.0,
        (row, True, "int8", "onnxruntime", False): 20.0,
        (row, True, "int8", "litert", True): 36.0,
        (row, True, "fp32", "litert", False): 38.0,  # a latency without an mIoU: not drawn
    }
    madds, latency = {c: 5e9 for c in CONFIG_NAMES}, {row: 54.0}  # --latency: the network's PyTorch latency
    assert "| 74.26 | 74.78 | 54 |" in tradeoff_markdown(madds, found, latency, lat)  # the table's converted line
    pts = points(madds, found, latency, lat)
    on_latency = {(p.kind, p.x, round(p.y, 2)): p for p in pts if p.panel == "latency" and p.kind != "paper"}
    assert set(on_latency) == {
        ("official", 54.0, 74.78),  # the converted model in PyTorch: the table's 54 ms
        ("float-variant", 35.0, 74.77),
        ("int8", 20.0, 74.63),
        ("int8", 36.0, 74.76),
    }
    assert on_latency[("int8", 20.0, 74.63)].link == pytest.approx((35.0, 74.77))  # to the fp32 ONNX Runtime result
    assert on_latency[("int8", 36.0, 74.76)].link is None  # no fp32 LiteRT result was given


@pytest.mark.slow
def test_tradeoff_cli_with_runtimes_json(tmp_path, capsys):
    res = tmp_path / "results"
    res.mkdir()
    _write(res, "float", config="voc_mnv2_os16", miou=0.70)
    _write(res, "ptq", config="voc_mnv2_os16", miou=0.69, precision="int8", runtime="onnxruntime", quantization="ptq")
    runtimes = _runtimes(tmp_path / "runtimes.json")
    out = tmp_path / "out"
    assert segkit_main(["tradeoff", "--results", str(res), "--runtimes-json", str(runtimes), "--out", str(out)]) == 0
    table = (out / "tradeoff.md").read_text()
    assert "| MNet V2* | 16 |  |  | 2.75B | 2.74B | 75.32 | 70.00 | - |" in table
    assert "| MNet V2*, int8 PTQ (ONNX Runtime) | 16 |  |  | 2.75B | 2.74B | 75.32 | 69.00 | 20 (fp32 35) |" in table
    assert (out / "tradeoff.png").read_bytes()[:4] == b"\x89PNG"
    assert "1 of them int8" in capsys.readouterr().out
    (tmp_path / "bad.json").write_text("{")
    assert segkit_main(["tradeoff", "--runtimes-json", str(tmp_path / "bad.json"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: --runtimes-json") and '{"models": [' in err
    assert segkit_main(["tradeoff", "--runtimes-json", str(tmp_path / "absent.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file" in err and '{"models": [' in err
