"""``--runtime`` on a checkpoint: the export cache says what it exports where (once), ticks while it works, verifies
the file before caching it, and picks the fast exporter and the shapes the protocol needs."""

from __future__ import annotations

import re

import pytest

from segkit.config import load_config
from segkit.export.cache import CachePlan, cache_file, cache_plan, cached_export, fixed_input_side
from segkit.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")


def test_first_use_says_what_is_cached_where_then_stays_quiet(tiny_ckpt, tmp_path, monkeypatch, capfd) -> None:
    monkeypatch.setenv("SEGKIT_CACHE", str(tmp_path))
    path = cached_export(tiny_ckpt, "onnxruntime")
    err = capfd.readouterr().err
    assert path.is_file() and path.parent == tmp_path / "exports"
    start = f"exporting {tiny_ckpt.name} for onnxruntime (dynamic H, W, torchscript exporter) to the cache at {path}"
    assert f"{start} (once; ~1 s at 513x513 on a 2-core CPU)..." in err, err
    assert re.search(rf"{re.escape(start)}: done in \d+\.\d s", err), err
    assert "verified in onnxruntime on 2 image(s) from segkit's synthetic images (97, 160 px)" in err
    assert "pixel agreement 100.000%" in err
    assert cached_export(tiny_ckpt, "onnxruntime") == path  # reused, silently
    assert capfd.readouterr().err == ""


def test_a_fixed_size_protocol_caches_a_static_file(tiny_ckpt, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SEGKIT_CACHE", str(tmp_path))
    lines: list[str] = []
    overrides = {"eval.resize_longer": 64, "eval.pad_to": 64}
    path = cached_export(tiny_ckpt, "onnxruntime", overrides=overrides, log=lines.append)
    assert "(static 64x64, torchscript exporter)" in lines[0] and lines[0].endswith("...")
    assert any("done in" in line for line in lines) and "pixel agreement" in lines[-1]
    assert cached_export(tiny_ckpt, "onnxruntime", log=lines.append) != path  # another protocol: another file


def test_the_plan_follows_the_protocol_and_the_padding() -> None:
    cfg = load_config("demo_mnv2_os16", ["model.width_mult=0.35"])
    same = load_config("demo_mnv2_os16", ["model.width_mult=0.35", "model.tf_same_padding=true"])
    fixed = load_config("demo_mnv2_os16", ["eval.resize_longer=513", "eval.pad_to=513"]).eval
    assert fixed_input_side(fixed) == 513 and fixed_input_side(cfg.eval) is None
    pad_only = load_config("demo_mnv2_os16", ["eval.pad_to=513"]).eval  # larger images pass unresized: dynamic
    assert fixed_input_side(pad_only) is None
    assert cache_plan(build_model(cfg), cfg.eval) == CachePlan("torchscript", None)
    # TF 'SAME' padding depends on the size, which the tracer bakes in: a dynamic file needs the dynamo exporter
    assert cache_plan(build_model(same), same.eval) == CachePlan("dynamo", None)
    assert cache_plan(build_model(same), fixed) == CachePlan("dynamo", (513, 513))  # no run-time padding shapes


def test_a_new_cache_version_exports_again(tiny_ckpt, tmp_path, monkeypatch) -> None:
    """Files cached under an older plan (e.g. a tracer export of a 'SAME'-padding model) are not reused."""
    import segkit.export.cache as cache

    monkeypatch.setenv("SEGKIT_CACHE", str(tmp_path))
    now = cache_file(tiny_ckpt, "onnxruntime")
    assert cache_file(tiny_ckpt, "onnxruntime") == now  # the same key for the same checkpoint
    monkeypatch.setattr(cache, "CACHE_VERSION", cache.CACHE_VERSION - 1)
    assert cache_file(tiny_ckpt, "onnxruntime") != now


def test_verifies_on_the_images_of_the_data_given(tiny_ckpt, synth_root, tmp_path, monkeypatch) -> None:
    """`segkit test --checkpoint C --runtime R --data-root D`: the cached file is verified on D's images, not on
    synthetic ones, and the line says which."""
    from segkit.export.cache import load_for_tools

    monkeypatch.setenv("SEGKIT_CACHE", str(tmp_path))
    lines: list[str] = []
    monkeypatch.setattr("segkit.export.cache._to_stderr", lines.append)
    load_for_tools(None, "onnxruntime", checkpoint=str(tiny_ckpt), overrides={"data.root": str(synth_root)})
    verified = next(line for line in lines if line.startswith("verified in onnxruntime"))
    assert f"on 2 image(s) from the 'val' split of {synth_root} (the data given)" in verified, verified
