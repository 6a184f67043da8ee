"""segkit export --format web: the folder, its refusals, and the page in a real headless Chromium.

The browser tests export the tiny model's page (64x64; fp32 and an int8 file of segkit quantize), serve it from
127.0.0.1 with the cross-origin isolation headers, segment synthetic images in the page through its automation hook
(window.segkit.segmentUrl) and compare the label maps read back with PyTorch (fp32, WASM) and with ONNX Runtime
native (int8). They skip, saying why, without Chromium, chromedriver, selenium or node_modules/onnxruntime-web.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from segkit.cli import main as segkit_main
from tests.helpers.browser import REPO, Browser, missing, served

pytest.importorskip("onnxruntime", reason="the deploy extra is not installed (pip install 'segkit-deeplab[deploy]')")

SIZE = 64
IMAGES = 3


def test_the_pinned_onnxruntime_web_is_the_one_package_json_and_its_lock_install():
    from segkit.export.web import CDN, ORT_WEB_VERSION

    package = json.loads((REPO / "package.json").read_text())
    lock = json.loads((REPO / "package-lock.json").read_text())
    assert package["dependencies"]["onnxruntime-web"] == ORT_WEB_VERSION  # exact pin, no range
    assert lock["packages"]["node_modules/onnxruntime-web"]["version"] == ORT_WEB_VERSION
    assert f"onnxruntime-web@{ORT_WEB_VERSION}/" in CDN


def test_find_ort_web_refuses_a_folder_that_is_not_the_pinned_package(tmp_path, monkeypatch):
    from segkit.export.errors import ExportError
    from segkit.export.web import ORT_WEB_ENV, find_ort_web

    with pytest.raises(ExportError, match="not an onnxruntime-web package folder"):
        find_ort_web(tmp_path)
    fake = tmp_path / "node_modules" / "onnxruntime-web"
    (fake / "dist").mkdir(parents=True)
    (fake / "package.json").write_text(json.dumps({"name": "onnxruntime-web", "version": "1.0.0"}))
    with pytest.raises(ExportError, match="holds onnxruntime-web 1.0.0.*npm ci"):
        find_ort_web(tmp_path)  # the node_modules folder above the package is accepted too
    monkeypatch.setenv(ORT_WEB_ENV, str(fake))
    with pytest.raises(ExportError, match="1.0.0"):
        find_ort_web()


def test_runtime_files_are_the_loader_and_the_wasm_it_imports():
    from segkit.export.web import find_ort_web, runtime_files

    if (reason := missing()) is not None and "node_modules" in reason:
        pytest.skip(reason)
    package = find_ort_web(REPO / "node_modules")
    fp32 = [p.name for p in runtime_files(package, "fp32")]
    int8 = [p.name for p in runtime_files(package, "int8")]
    assert fp32[0] == "ort.min.mjs" and any(n.endswith(".jsep.wasm") for n in fp32)  # WASM + WebGPU (JSEP)
    assert int8 == ["ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"]


def test_refusals_before_any_work(tiny_ckpt, tmp_path, capsys):
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    assert segkit_main(["export", "--checkpoint", str(tiny_ckpt), "--format", "web", "--out", str(other)]) == 2
    assert "holding other files" in capsys.readouterr().err and (other / "notes.txt").read_text() == "keep me"
    site = tmp_path / "site"
    args = ["export", "--checkpoint", str(tiny_ckpt), "--out", str(site)]
    assert segkit_main([*args, "--format", "web", "--dynamic"]) == 2
    assert "static input size" in capsys.readouterr().err
    assert segkit_main([*args, "--format", "onnx", "--model", str(tiny_ckpt)]) == 2
    assert "options of --format web" in capsys.readouterr().err
    assert segkit_main([*args, "--format", "web", "--model", str(tiny_ckpt)]) == 2
    assert "not an ONNX file" in capsys.readouterr().err
    bare = tmp_path / "bare.onnx"
    _bare_onnx(bare)
    assert segkit_main([*args, "--format", "web", "--model", str(bare)]) == 2
    assert "no segkit metadata" in capsys.readouterr().err
    assert not site.exists()


def _bare_onnx(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Identity", ["x"], ["y"])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    onnx.save(helper.make_model(helper.make_graph([node], "g", [x], [y])), str(path))


# -- exported folders (slow: ONNX export, int8 quantization, a browser) ----------------------------------------------


@pytest.fixture(scope="module")
def sites(tiny_ckpt, synth_root, tmp_path_factory):
    """fp32 and int8 web folders of the tiny model at 64x64, with the int8 file and test images beside them."""
    from segkit.checkpoint.load import load_model
    from segkit.data.synthetic import render_sample
    from segkit.export.web import export_web
    from segkit.quantize import calibration_images, quantize_model

    if (reason := missing()) is not None:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("web")
    ckpt = _with_live_features(tiny_ckpt, out / "tiny.pth")
    lines: list[str] = []
    fp32 = export_web(ckpt, out / "fp32", input_size=SIZE, verify_root=synth_root, verify_images=2, log=lines.append)
    int8_file = out / "int8.onnx"  # segkit's ONNX PTQ; a random model's int8 file is far from its float one (~50%
    model = load_model(ckpt)  # of the pixels), so it is shipped unverified here and refused when verified (below)
    calib = calibration_images(model, synth_root, split="train", num=4, input_size=(SIZE, SIZE), progress=False)
    quantize_model(model, int8_file, calib, format="onnx", input_size=(SIZE, SIZE), progress=False)
    int8 = export_web(ckpt, out / "int8", model_file=int8_file, skip_verify=True)
    rng = np.random.default_rng(7)
    images = [render_sample(rng, SIZE)[0] for _ in range(IMAGES)]
    for site in (out / "fp32", out / "int8"):
        for i, image in enumerate(images):
            _save_png(image, site / f"test_{i}.png")
    return {
        "ckpt": ckpt,
        "fp32": fp32,
        "int8": int8,
        "int8_file": int8_file,
        "images": images,
        "lines": lines,
        "out": out,
    }


def _with_live_features(ckpt: Path, path: Path) -> Path:
    """``ckpt`` with its BatchNorm statistics measured on 8 synthetic images, saved at ``path``: at random init the
    features fade to ~0 (every pixel gets one class), so a comparison of label maps would check nothing."""
    import torch

    from segkit.checkpoint.format import save_checkpoint
    from segkit.checkpoint.load import load_model
    from segkit.data.synthetic import render_sample
    from segkit.evaluation.predict import normalize

    model = load_model(ckpt, device="cpu")
    cfg = model.segkit_config
    rng = np.random.default_rng(100)
    batch = torch.stack(
        [normalize(render_sample(rng, SIZE)[0], cfg.model.input_mean, cfg.model.input_std) for _ in range(8)]
    )
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.reset_running_stats()
                module.momentum = None  # the plain average over the batch
        model.train()(batch)
    save_checkpoint(path, model.eval(), cfg)
    return path


def _save_png(image: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(image).save(path)


@pytest.mark.slow
def test_the_folder_holds_the_page_the_model_its_metadata_and_onnxruntime_web(sites):
    fp32, int8 = sites["fp32"], sites["int8"]
    assert fp32.precision == "fp32" and int8.precision == "int8" and fp32.written and int8.written
    assert fp32.verification.agreement >= 0.999 and fp32.verification.runtime == "onnxruntime"
    page = json.loads((fp32.path / "segkit.json").read_text())
    assert page["format"] == "segkit-web" and page["runtime"]["source"] == "copied"
    assert page["metadata"]["input_size"] == [SIZE, SIZE] and len(page["metadata"]["palette"]) == 5
    assert {"index.html", "app.js", "model.onnx", "ort.min.mjs"} <= set(fp32.files)
    assert "ort.wasm.min.mjs" in int8.files and not [f for f in int8.files if "jsep" in f]  # int8: WASM only
    assert "copied" in sites["lines"][0] and "works offline" in sites["lines"][0]
    assert (int8.path / "model.onnx").read_bytes() == sites["int8_file"].read_bytes()


@pytest.mark.slow
def test_without_node_modules_the_page_links_the_cdn_and_a_second_export_replaces_the_first(sites, monkeypatch):
    import segkit.export.web as web

    site = sites["out"] / "cdn"
    monkeypatch.setattr(web, "find_ort_web", lambda ort_web=None: None)
    for _ in range(2):  # the second run replaces the first export (a folder segkit wrote)
        report = web.export_web(sites["ckpt"], site, model_file=sites["int8_file"], skip_verify=True)
    page = json.loads((site / "segkit.json").read_text())
    assert page["runtime"]["source"] == "cdn" and page["runtime"]["script"] == web.CDN + "ort.wasm.min.mjs"
    assert report.runtime.startswith("linked https://cdn.jsdelivr.net/npm/onnxruntime-web@")
    assert not [f for f in report.files if f.endswith(".wasm")] and not list(site.parent.glob(".cdn.*"))


@pytest.mark.slow
def test_an_int8_file_that_fails_the_verification_writes_no_folder(sites):
    import segkit.export.web as web

    out = sites["out"] / "refused"
    report = web.export_web(sites["ckpt"], out, model_file=sites["int8_file"], verify_images=2)
    assert report.precision == "int8" and report.verification.runtime == "onnxruntime"
    assert report.verification.agreement < web.INT8_AGREE_MIN  # the random model's int8 file: about half the pixels
    assert not report.written and not report.passed() and "not written" in report.failure()
    assert not out.exists() and not list(sites["out"].glob(".refused.*"))


def _pytorch_labels(ckpt: Path, images: list[np.ndarray]) -> list[np.ndarray]:
    import torch

    from segkit.checkpoint.load import load_model
    from segkit.evaluation.predict import normalize

    model = load_model(ckpt, device="cpu").eval()
    cfg = model.segkit_config
    with torch.inference_mode():
        return [
            model(normalize(im, cfg.model.input_mean, cfg.model.input_std)[None])["out"].argmax(1)[0].numpy()
            for im in images
        ]


def _onnxruntime_labels(path: Path, images: list[np.ndarray]) -> list[np.ndarray]:
    from segkit.evaluation.predict import normalize
    from segkit.runtimes.runner import load_exported

    runner = load_exported(path, "onnxruntime", threads=1)
    out = []
    for image in images:
        got = runner(normalize(image, runner.mean, runner.std)[None])
        out.append((got["labels"] if "labels" in got else got["out"].argmax(1))[0].numpy())
    return out


def _page_labels(browser: Browser, count: int) -> list[np.ndarray]:
    labels = []
    for i in range(count):
        result = browser.call("segmentUrl", f"test_{i}.png")
        assert result["extent"] == [SIZE, SIZE] and len(result["labels"]) == SIZE * SIZE
        labels.append(np.asarray(result["labels"], dtype=np.int64).reshape(SIZE, SIZE))
    return labels


def _agreement(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return float(np.mean(np.concatenate([(x == y).ravel() for x, y in zip(a, b)])))


@pytest.mark.slow
def test_the_page_segments_like_pytorch_in_wasm_and_draws_the_overlay(sites):
    from PIL import Image

    site = sites["fp32"].path
    reference = _pytorch_labels(sites["ckpt"], sites["images"])
    with served(site) as url, Browser() as browser:
        info = browser.open(f"{url}/index.html?ep=wasm&threads=2")
        assert info["ep"] == "wasm" and info["isolated"] and info["threads"] == 2  # COOP/COEP: threads
        got = _page_labels(browser, IMAGES)
        shot = np.asarray(Image.open(io.BytesIO(browser.screenshot("canvas"))).convert("RGB"), dtype=np.float64)
        legend = browser.text("legend")
        latency = browser.text("latency")
    agreement = _agreement(got, reference)
    print(f"fp32 in the browser (WASM, 2 threads) vs PyTorch: pixel agreement {100 * agreement:.3f}%")
    assert agreement >= 0.999
    assert len({int(v) for lab in reference for v in np.unique(lab)}) > 1  # a label map with content, not one class
    assert shot.shape[0] >= SIZE and shot.std() > 10  # the image with its overlay, not a blank canvas
    assert "class" in legend and "%" in legend and "inference" in latency and "ms" in latency


@pytest.mark.slow
def test_the_int8_page_matches_onnxruntime_native_and_falls_back_to_one_thread_without_isolation(sites):
    site = sites["int8"].path
    reference = _onnxruntime_labels(site / "model.onnx", sites["images"])
    with served(site, isolated=False) as url, Browser() as browser:
        info = browser.open(f"{url}/index.html?threads=2")  # no COOP/COEP headers: one thread, WASM (int8)
        assert info["ep"] == "wasm" and not info["isolated"] and info["threads"] == 1
        got = _page_labels(browser, IMAGES)
    agreement = _agreement(got, reference)
    print(f"int8 in the browser (WASM, 1 thread) vs ONNX Runtime native: pixel agreement {100 * agreement:.3f}%")
    assert agreement >= 0.999
    assert len({int(v) for lab in reference for v in np.unique(lab)}) > 1  # label maps with content
