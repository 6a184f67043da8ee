"""``--model`` files a runtime cannot load or run are refused in one line when they are opened (issue 20, item 4).

Empty, truncated or random ``.onnx``, random ``.tflite``, random ``.xml`` or one without its ``.bin``, an ONNX of
another kind (an ``nn.Linear``, a classifier, a one-channel input, logits at another size), external data outside the
model's folder, and a ``segkit`` metadata entry of the wrong JSON type: each is an :class:`ExportedModelError` naming the file and the fix, in ``segkit test``,
``segkit infer`` and export's verification (:func:`segkit.export.verify`), never the runtime's traceback.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from segkit.runtimes import ExportedModelError, load_exported

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 32


def _save(path: Path, nodes, inputs, outputs, inits=(), meta: str | None = None) -> Path:
    graph = helper.make_graph(nodes, path.stem, inputs, outputs, initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if meta is not None:
        prop = model.metadata_props.add()
        prop.key, prop.value = "segkit", meta
    onnx.save(model, str(path))
    return path


def _weight(name: str, *shape: int):
    return numpy_helper.from_array(np.random.default_rng(0).standard_normal(shape).astype(np.float32), name)


def conv(path: Path, in_ch: int = 3, classes: int = 5, stride: int = 1, meta: str | None = None) -> Path:
    """A 1x1 convolution: [1, in_ch, SIZE, SIZE] float in, [1, classes, SIZE/stride, SIZE/stride] out."""
    out = SIZE // stride
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[1, 1], strides=[stride, stride])
    return _save(
        path,
        [node],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, in_ch, SIZE, SIZE])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, classes, out, out])],
        [_weight("w", classes, in_ch, 1, 1)],
        meta,
    )


def linear(path: Path) -> Path:
    """An ``nn.Linear(4, 3)``: [1, 4] in, [1, 3] out."""
    node = helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)
    return _save(
        path,
        [node],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [_weight("w", 3, 4)],
    )


def classifier(path: Path) -> Path:
    """An image classifier: [1, 3, SIZE, SIZE] in, [1, 10] class scores out."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["f"], kernel_shape=[1, 1]),
        helper.make_node("GlobalAveragePool", ["f"], ["g"]),
        helper.make_node("Flatten", ["g"], ["y"]),
    ]
    return _save(
        path,
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        [_weight("w", 10, 3, 1, 1)],
    )


def fixed_reshape(path: Path) -> Path:
    """Declares a dynamic image input but reshapes to SIZE x SIZE inside: loads, then cannot run at 48x48."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["f"], kernel_shape=[1, 1]),
        helper.make_node("Reshape", ["f", "shape"], ["y"]),
    ]
    shape = numpy_helper.from_array(np.array([1, 5, SIZE, SIZE], np.int64), "shape")
    return _save(
        path,
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5, "H", "W"])],
        [_weight("w", 5, 3, 1, 1), shape],
    )


def external_outside(folder: Path) -> Path:
    """A 1x1 convolution whose weights are external data in ``../outside.bin``, outside the model's folder."""
    (folder / "model").mkdir(parents=True)
    (folder / "outside.bin").write_bytes(np.ones(15, np.float32).tobytes())
    weight = numpy_helper.from_array(np.ones((5, 3, 1, 1), np.float32), "w")
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "../outside.bin"), ("offset", "0"), ("length", "60")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    return _save(
        folder / "model" / "outside.onnx",
        [helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[1, 1])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5, SIZE, SIZE])],
        [weight],
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Every bad file (and one good one), written once."""
    d = tmp_path_factory.mktemp("bad_models")
    rng = np.random.default_rng(0)
    good = conv(d / "good.onnx")
    out = {"good": good}
    (d / "empty.onnx").write_bytes(b"")
    out["empty"] = d / "empty.onnx"
    (d / "truncated.onnx").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    out["truncated"] = d / "truncated.onnx"
    for name, suffix in (("random_onnx", ".onnx"), ("random_tflite", ".tflite"), ("random_xml", ".xml")):
        out[name] = d / f"random{suffix}"
        out[name].write_bytes(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    (d / "random.bin").write_bytes(b"\0" * 64)  # the random .xml has a .bin: it is the .xml that is wrong
    ir = d / "ir" / "model.xml"
    ir.parent.mkdir()
    ir.write_text('<?xml version="1.0"?>\n<net name="model" version="11">\n<layers/>\n</net>\n')
    out["xml_without_bin"] = ir
    out["linear"] = linear(d / "linear.onnx")
    out["classifier"] = classifier(d / "classifier.onnx")
    out["one_channel"] = conv(d / "one_channel.onnx", in_ch=1)
    out["half_size"] = conv(d / "half_size.onnx", stride=2)
    out["fixed_reshape"] = fixed_reshape(d / "fixed_reshape.onnx")
    out["meta_list"] = conv(d / "meta_list.onnx", meta=json.dumps([1, 2, 3]))
    out["meta_string"] = conv(d / "meta_string.onnx", meta=json.dumps("segkit"))
    out["meta_field"] = conv(d / "meta_field.onnx", meta=json.dumps({"mean": "0.5", "std": [1, 1, 1]}))
    out["meta_no_std"] = conv(d / "meta_no_std.onnx", meta=json.dumps({"mean": [0, 0, 0]}))
    out["meta_not_json"] = conv(d / "meta_not_json.onnx", meta="{mean: [0, 0, 0]")
    out["external_outside"] = external_outside(d / "external")
    return out


# case -> what the one-line message says (a regex), besides the file's name
CASES = {
    "empty": r"is empty \(0 bytes\): not a model; re-export it",
    "truncated": r"onnxruntime cannot load .*: it is truncated, corrupt or not an ONNX model, .*; re-export it",
    "random_onnx": r"onnxruntime cannot load .*: it is truncated, corrupt or not an ONNX model",
    "random_tflite": r"litert cannot load .*: it is truncated, corrupt or not a LiteRT \(\.tflite\) model",
    "external_outside": r"onnxruntime cannot load .*External data path.*escapes.*or its external data is refused",
    "random_xml": r"is not an OpenVINO IR \.xml file .*beside its \.bin",
    "xml_without_bin": r"OpenVINO IR without its weights: model\.bin is not beside it; keep the \.xml and its \.bin",
    "linear": r"takes a 2-D input \[1, 4\] .*segkit runs files that take images",
    "classifier": r"returns a 2-D output \[1, 10\], not logits \[N, C, H, W\].*a classifier",
    "one_channel": r"takes a 4-D input \[1, 1, 32, 32\] \(NCHW image layout, 1 colour channel",
    "half_size": r"returns 16x16 outputs for 32x32 inputs; segkit needs logits at the input size",
    "meta_list": r"its 'segkit' metadata entry is a JSON list, not an object; .*re-export it with segkit export",
    "meta_string": r"its 'segkit' metadata entry is a JSON str, not an object",
    "meta_field": r"'segkit' metadata field 'mean' is '0\.5', expected three numbers",
    "meta_no_std": r"'segkit' metadata has no 'std'",
    "meta_not_json": r"its 'segkit' metadata entry is not valid JSON",
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_file_is_refused_in_one_line_when_opened(files, case):
    path = files[case]
    with pytest.raises(ExportedModelError, match=CASES[case]) as exc:
        load_exported(path)
    message = str(exc.value)
    assert "\n" not in message and path.name in message and len(message) < 600, message


def test_the_good_file_runs(files):
    model = load_exported(files["good"])
    assert model.input_size == (SIZE, SIZE) and model.output_kind == "logits"
    assert model(torch.zeros(1, 3, SIZE, SIZE))["out"].shape == (1, 5, SIZE, SIZE)


def test_a_file_that_fails_when_run_is_one_line(files):
    model = load_exported(files["fixed_reshape"])  # declares [1, 3, H, W] -> [1, 5, H, W]: opens
    with pytest.raises(ExportedModelError, match=r"onnxruntime cannot run fixed_reshape\.onnx on a \[1, 3, 48, 48\]"):
        model(torch.zeros(1, 3, 48, 48))


def test_openvino_refuses_a_random_onnx_in_one_line(files):
    pytest.importorskip("openvino")
    with pytest.raises(ExportedModelError, match=r"openvino cannot load .*random\.onnx") as exc:
        load_exported(files["random_onnx"], "openvino")
    assert "\n" not in str(exc.value)


def test_export_verification_refuses_a_bad_file(files, tiny_ckpt):
    """Export's verification opens the file as test and infer do: the same one line."""
    from segkit.checkpoint.load import load_model
    from segkit.export import verify

    model = load_model(tiny_ckpt, device="cpu")
    with pytest.raises(ExportedModelError, match="returns a 2-D output"):
        verify(model, files["classifier"])
    with pytest.raises(ExportedModelError, match="is empty"):
        verify(model, files["empty"])


def _one_line_error(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: ") and "Traceback" not in err, err
    return lines[-1]


def test_segkit_test_and_infer_refuse_bad_model_files(files, synth_root, tmp_path, capsys):
    from segkit.cli import main

    code = main(["test", "--model", str(files["random_onnx"]), "--data-root", str(synth_root), "--no-progress"])
    line = _one_line_error(capsys.readouterr().err)
    assert code == 2 and "random.onnx" in line and "re-export it" in line
    image = tmp_path / "img.png"
    from PIL import Image

    Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(image)
    argv = ["infer", "--model", str(files["classifier"]), "--input", str(image), "--output", str(tmp_path / "out")]
    code = main([*argv, "--no-progress"])
    line = _one_line_error(capsys.readouterr().err)
    assert code == 2 and "classifier.onnx returns a 2-D output" in line
    assert not (tmp_path / "out" / "img.png").exists()
    code = main([*argv[:2], str(files["xml_without_bin"]), *argv[3:], "--no-progress"])
    assert code == 2 and "model.bin is not beside it" in _one_line_error(capsys.readouterr().err)
    assert os.path.exists(image)
