"""Labels, not logits, out of the runtime (issue 25, goal 2): a labels-output file and ``predict_labels`` on a logits
file give exactly the labels of today's logits path, and the opt-in argmax fusion is measured, not assumed equal.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from segkit.data import read_image
from segkit.evaluation.predict import normalize, predict

pytest.importorskip("onnxruntime", reason="the deploy extra is not installed (pip install 'segkit-deeplab[deploy]')")
pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 65


class LogitsOnly:
    """Today's path: the runner seen through its ``__call__`` only (logits, or a labels file's one-hot)."""

    def __init__(self, runner) -> None:
        self.runner = runner
        self.align_corners = runner.align_corners

    def __call__(self, x):
        return self.runner(x)


@pytest.fixture(scope="module")
def tiny(tiny_ckpt):
    from segkit.checkpoint.load import load_model

    model = load_model(tiny_ckpt)
    with torch.no_grad():  # a decisive classifier: label maps with several classes, not one
        model.head.classifier.weight.mul_(20)
    return model


@pytest.fixture(scope="module")
def files(tiny, tmp_path_factory):
    from segkit.export import export_onnx
    from segkit.export.wrapper import ExportWrapper

    out = tmp_path_factory.mktemp("labels")
    paths = {name: out / f"{name}.onnx" for name in ("logits", "labels", "dynamic_labels", "fused")}
    quick = {"input_size": (SIZE, SIZE), "exporter": "torchscript"}  # the quicker exporter; the graphs are the same
    export_onnx(tiny, paths["logits"], **quick)
    export_onnx(tiny, paths["labels"], output="labels", **quick)
    export_onnx(tiny, paths["dynamic_labels"], output="labels", dynamic=True, **quick)
    fused = ExportWrapper(tiny, output="labels", argmax_fusion=True)
    export_onnx(tiny, paths["fused"], output="labels", module=fused, **quick)
    return paths


def _images(synth_root: Path, tiny) -> list[torch.Tensor]:
    cfg = tiny.segkit_config
    jpgs = sorted((synth_root / "VOCdevkit" / "VOC2012" / "JPEGImages").glob("*.jpg"))[:4]
    images = [normalize(read_image(p), cfg.model.input_mean, cfg.model.input_std)[None] for p in jpgs]
    return images + [torch.randn(1, 3, 50, 61), torch.randn(1, 3, 65, 40)]  # other sizes: padding and cropping


@pytest.mark.slow  # exports (module fixture: four ONNX files)
@pytest.mark.parametrize("name", ["logits", "labels", "dynamic_labels"])
def test_label_paths_equal_the_logits_path(name, files, tiny, synth_root):
    from segkit.runtimes import load_exported

    reference = load_exported(files["logits"])
    runner = load_exported(files[name])
    assert runner.output_kind == ("logits" if name == "logits" else "labels")
    for x in _images(synth_root, tiny):
        for protocol in ({"pad_to": SIZE}, {"resize_longer": 60, "pad_to": SIZE}):
            before = predict(LogitsOnly(reference), x, **protocol)
            got = predict(runner, x, **protocol)  # through predict_labels: no logits in torch
            assert got.dtype == torch.int64
            assert torch.equal(got, before), (name, tuple(x.shape), protocol)
        assert len(before.unique()) >= 1


@pytest.mark.slow
def test_predict_uses_labels_only_for_single_view(files, tiny, monkeypatch):
    from segkit.runtimes import load_exported

    runner = load_exported(files["logits"])
    calls = []
    original = runner.run_prepared  # the runtime's pass on the prepared input; its labels are taken from the output
    monkeypatch.setattr(runner, "run_prepared", lambda x: calls.append(tuple(x.shape)) or original(x))
    x = torch.randn(1, 3, 40, 50)
    predict(runner, x, pad_to=SIZE)
    assert calls == [(1, 3, SIZE, SIZE)]
    flipped = predict(runner, x, pad_to=SIZE, flip=True)  # needs logits: the softmax of both views
    assert len(calls) == 1 and flipped.shape == (1, 40, 50)


@pytest.mark.slow
def test_predict_labels_matches_argmax_with_ties(files):
    from segkit.runtimes import load_exported

    runner = load_exported(files["logits"])
    runner.session.run = lambda a: np.zeros((1, 21, SIZE, SIZE), dtype=np.float32)  # every class tied
    labels = runner.predict_labels(torch.zeros(1, 3, SIZE, SIZE))
    assert labels.dtype == torch.uint8 and int(labels.max()) == 0  # argmax's choice: the first class


@pytest.mark.slow
def test_evaluation_with_labels_file_scores_the_same(files, tiny, synth_root):
    from segkit.data import build_dataset, build_eval_transform
    from segkit.evaluation.evaluator import evaluate
    from segkit.runtimes import load_exported

    cfg = tiny.segkit_config
    data = build_dataset(cfg.data, "val", build_eval_transform(cfg.model.input_mean, cfg.model.input_std))
    loader = torch.utils.data.DataLoader(data, batch_size=1)
    kw = {"ignore_index": 255, "progress": False, "protocol": None}
    before = evaluate(LogitsOnly(load_exported(files["logits"])), loader, cfg.model.num_classes, **kw)
    after = evaluate(load_exported(files["labels"]), loader, cfg.model.num_classes, **kw)
    assert np.array_equal(np.asarray(before.confusion), np.asarray(after.confusion))


@pytest.mark.slow
def test_argmax_fusion_file_computes_fused_labels(files, tiny, synth_root):
    from segkit.export.wrapper import fused_labels
    from segkit.runtimes import load_exported

    runner = load_exported(files["fused"])
    for x in _images(synth_root, tiny)[:4]:
        got = predict(runner, x, pad_to=SIZE)
        with torch.inference_mode():
            xp = torch.nn.functional.pad(x, (0, SIZE - x.shape[-1], 0, SIZE - x.shape[-2]))
            want = fused_labels(tiny, xp)[..., : x.shape[-2], : x.shape[-1]].long()
        assert (got == want).float().mean() > 0.999  # the file computes what fused_labels computes


@pytest.mark.parametrize("align_corners", [True, False])
def test_argmax_fusion_differs_from_the_official_semantics(align_corners):
    from segkit.export.wrapper import nearest_upscale

    low = torch.randn(2, 21, 5, 5, generator=torch.Generator().manual_seed(0))
    official = torch.nn.functional.interpolate(low, (65, 65), mode="bilinear", align_corners=align_corners).argmax(1)
    fused = nearest_upscale(low.argmax(1), (65, 65), align_corners)
    agreement = (fused == official).float().mean().item()
    assert 0.4 < agreement < 0.99  # near, not equal: opt-in, and its cost is printed by benchmarks/throughput.py


@pytest.mark.parametrize("align_corners", [True, False])
def test_nearest_upscale_samples_the_bilinear_grid(align_corners):
    from segkit.export.wrapper import nearest_upscale

    labels = torch.arange(33 * 33, dtype=torch.int64).view(1, 33, 33)
    up = nearest_upscale(labels, (513, 513), align_corners)
    rows = up[0, :, 0]
    if align_corners:  # 513 -> 33 at output stride 16: pixel 16k is exactly source k
        assert torch.equal(up[0, ::16, ::16], labels[0])
        assert rows[7].item() == 0 and rows[9].item() == 33  # round(7/16) = 0, round(9/16) = 1
    else:
        src = ((torch.arange(513) + 0.5) * 33 / 513).floor().long()
        assert torch.equal(rows, src * 33)


def test_argmax_fusion_needs_labels_and_a_segmentor(tiny):
    from segkit.export.errors import ExportError
    from segkit.export.wrapper import ExportWrapper

    with pytest.raises(ExportError, match="argmax fusion needs output='labels'"):
        ExportWrapper(tiny, output="logits", argmax_fusion=True)
    with pytest.raises(ExportError, match="segkit segmentor"):
        ExportWrapper(torch.nn.Conv2d(3, 21, 1), output="labels", argmax_fusion=True)


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "readers"), [("labels", 0), ("labels", 2), ("logits", 2)])
def test_infer_stages_a_runner_off_the_main_thread_with_the_same_labels(
    files, tiny, synth_root, tmp_path, kind, readers
):
    """segkit infer on a runner: input prepared on the reader thread, labels finished on the writer thread, torch on
    one thread while the runtime runs; the label maps equal today's logits path image by image."""
    from PIL import Image

    from segkit.evaluation.command import segment, segment_images
    from segkit.evaluation.image import STAGE_MAX_PIXELS, stage_image
    from segkit.runtimes import load_exported

    base = tiny.segkit_config
    cfg = dataclasses.replace(base, eval=dataclasses.replace(base.eval, resize_longer=60, pad_to=SIZE))
    runner = load_exported(files[kind])  # a logits file: its argmax taken on the writer thread
    jpgs = sorted((synth_root / "VOCdevkit" / "VOC2012" / "JPEGImages").glob("*.jpg"))[:4]
    threads = []
    original = runner.run_prepared
    runner.run_prepared = lambda x: threads.append(torch.get_num_threads()) or original(x)
    torch.set_num_threads(2)
    quiet = {"device": "cpu", "progress": False, "log": lambda line: None, "fit": False}
    segment_images(runner, cfg, jpgs, tmp_path / "out", readers=readers, overlay=False, **quiet)
    assert threads == [1] * len(jpgs) and torch.get_num_threads() == 2  # one thread during, restored after
    reference = LogitsOnly(load_exported(files["logits"]))
    for path in jpgs:
        rgb = read_image(path)
        want = segment(reference, rgb, cfg, "cpu")
        assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / f"{path.stem}.png")), want), path.name
        staged = stage_image(runner, rgb, cfg, "cpu")
        assert staged.x is not None and tuple(staged.x.shape) == (1, 3, SIZE, SIZE)  # prepared ahead
    assert stage_image(reference, rgb, cfg, "cpu").x is None  # no predict_labels: prepared when it runs
    big = np.zeros((2100, 2100, 3), np.uint8)
    assert 2100 * 2100 > STAGE_MAX_PIXELS
    whole = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, resize_longer=None, pad_to=None))
    assert stage_image(runner, big, whole, "cpu", max_pixels=None).x is None  # 4.4 MP floats: in the main thread
