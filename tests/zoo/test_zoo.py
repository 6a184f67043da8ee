"""The model zoo: the registry, ``segkit zoo``, ``segkit convert zoo:NAME`` and ``train.init_weights: zoo:NAME``.

Downloads go to a real HTTP server on 127.0.0.1 (tests/helpers/http_server.py) serving the official VOC file from
``../shared/data`` (skipped without it); the cache is a temporary ``$SEGKIT_CACHE``. Offline is a closed port.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shutil
from pathlib import Path

import pytest
import torch

from segkit.cli import main
from segkit.utils.cache import CACHE_ENV, zoo_checkpoint_path
from segkit.zoo import ZOO, fetch_checkpoint, source_path
from tests.helpers.http_server import FileServer, closed_port

VOC = "deeplabv3_mnv2_voc_uint8"


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def _serve_from(monkeypatch: pytest.MonkeyPatch, name: str, url: str) -> None:
    monkeypatch.setitem(ZOO, name, dataclasses.replace(ZOO[name], url=url))


def test_registry_pins_every_model() -> None:
    assert len(ZOO) == 8 and all(name == model.name for name, model in ZOO.items())
    for model in ZOO.values():
        assert model.kind in ("segmentor", "classifier") and model.published and model.agreement
        if model.format == "tflite":
            assert model.url.startswith("https://") and re.fullmatch(r"[0-9a-f]{64}", model.sha256)
        else:
            assert model.format == "hf" and model.repo_id.startswith("google/") and model.revision
    assert {m.repo_id for m in ZOO.values() if m.format == "hf"} == {
        "google/deeplabv3_mobilenet_v2_1.0_513",
        "google/mobilenet_v2_1.4_224",
        "google/mobilenet_v2_1.0_224",
        "google/mobilenet_v2_0.75_160",
        "google/mobilenet_v2_0.35_96",
    }


def test_registry_checksums_are_the_shared_files(shared_data: Path) -> None:
    files = {
        VOC: shared_data / "tflite/deeplabv3_mnv2_pascal_quant.tflite",
        "mobilenet_v2_1.0_224_uint8": shared_data / "tflite/mobilenet_v2_1.0_224_quant.tflite",
        "deeplabv3_mnv2_ade20k_uint8": shared_data / "ade20k_mlperf/deeplabv3_mnv2_ade20k_uint8.tflite",
    }
    for name, path in files.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == ZOO[name].sha256, name
        assert ZOO[name].filename == path.name
    labels = shared_data / "tflite/imagenet_labels.txt"
    assert hashlib.sha256(labels.read_bytes()).hexdigest() == ZOO["mobilenet_v2_1.0_224_uint8"].labels_sha256


def test_zoo_command_lists_and_describes(capsys: pytest.CaptureFixture, cache: Path) -> None:
    code, out, _ = run(capsys, "zoo")
    assert code == 0 and all(name in out for name in ZOO)
    assert "99.76%" in out and "75.32%" in out
    code, out, _ = run(capsys, "zoo", VOC)
    assert code == 0 and ZOO[VOC].sha256 in out and ZOO[VOC].url in out
    assert str(cache / "zoo" / "files" / "deeplabv3_mnv2_pascal_quant.tflite") in out and "not yet converted" in out
    code, _, err = run(capsys, "zoo", "deeplabv3_mnv2_voc")
    assert code == 2 and "Did you mean" in one_line_error(err)
    code, _, err = run(capsys, "convert", "zoo:../x", str(cache / "x.pth"))
    assert code == 2 and "no zoo model '../x'" in one_line_error(err)


def test_offline_says_which_url_to_fetch_and_where(
    capsys: pytest.CaptureFixture, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/deeplabv3_mnv2_pascal_quant.tflite"
    _serve_from(monkeypatch, VOC, url)
    code, _, err = run(capsys, "convert", f"zoo:{VOC}", str(tmp_path / "out.pth"))
    line = one_line_error(err)
    assert code == 2 and f"Cannot download {url}" in line
    assert f"put it at {source_path(ZOO[VOC])}" in line
    assert not (tmp_path / "out.pth").exists() and not zoo_checkpoint_path(VOC).exists()


def test_checksum_mismatch_deletes_the_download(
    capsys: pytest.CaptureFixture, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FileServer({"/m.tflite": b"not the official file" * 50}) as server:
        _serve_from(monkeypatch, VOC, server.url("/m.tflite"))
        code, _, err = run(capsys, "convert", f"zoo:{VOC}", str(tmp_path / "out.pth"))
    assert code == 2 and f"is not the expected {ZOO[VOC].sha256}" in one_line_error(err)
    assert not source_path(ZOO[VOC]).exists() and not (tmp_path / "out.pth").exists()


@pytest.fixture(scope="module")
def fetched(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """zoo:deeplabv3_mnv2_voc_uint8 fetched once through a local server that cuts the first transfer."""
    pytest.importorskip("tflite", reason="the tflite extra reads the file")
    cache = tmp_path_factory.mktemp("cache")
    data = (shared_data / "tflite/deeplabv3_mnv2_pascal_quant.tflite").read_bytes()
    with pytest.MonkeyPatch.context() as mp, FileServer({"/voc.tflite": data}, cut_first=True) as server:
        mp.setenv(CACHE_ENV, str(cache))
        mp.setitem(ZOO, VOC, dataclasses.replace(ZOO[VOC], url=server.url("/voc.tflite")))
        first = None
        try:
            fetch_checkpoint(VOC, progress=False, log=lambda line: None)
        except Exception as exc:  # the cut transfer
            first = exc
        lines: list[str] = []
        path = fetch_checkpoint(VOC, progress=False, log=lines.append)
        requests = list(server.requests)
    return {"cache": cache, "first": first, "path": path, "lines": lines, "requests": requests, "server": server}


def test_convert_zoo_resumes_checks_converts_and_caches(
    fetched: dict, capsys: pytest.CaptureFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from segkit.utils.download import DownloadError

    assert isinstance(fetched["first"], DownloadError) and "kept in" in str(fetched["first"])
    (path1, range1), (path2, range2) = fetched["requests"]
    assert range1 is None and range2 is not None and range2.startswith("bytes=")  # the second call resumed
    assert fetched["path"] == fetched["cache"] / "zoo" / f"{VOC}.pth"
    assert any("output stride 16" in line for line in fetched["lines"])
    ckpt = torch.load(fetched["path"], map_location="cpu", weights_only=True)
    assert ckpt["kind"] == "segmentor" and ckpt["source"]["sha256"] == ZOO[VOC].sha256

    monkeypatch.setenv(CACHE_ENV, str(fetched["cache"]))
    _serve_from(monkeypatch, VOC, f"http://127.0.0.1:{closed_port()}/offline")  # cached: no network needed
    out = tmp_path / "voc.pth"
    code, printed, err = run(capsys, "convert", f"zoo:{VOC}", str(out))
    assert code == 0 and "cached checkpoint" in printed and f"Wrote segmentor checkpoint {out}" in err
    assert out.read_bytes() == fetched["path"].read_bytes()
    code, _, err = run(capsys, "convert", f"zoo:{VOC}", str(fetched["path"]))
    assert code == 2 and "this command reads" in one_line_error(err)  # the cache is an input, never the output


def test_init_weights_zoo_reads_the_cache(fetched: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from segkit.checkpoint.format import CheckpointError
    from segkit.checkpoint.load import load_state_into
    from segkit.config import load_config
    from segkit.models import build_model
    from segkit.zoo.command import SourceError, fetch_init_weights

    cfg = load_config("voc_mnv2_os16", ["model.tf_same_padding=true", f"train.init_weights=zoo:{VOC}"])
    model = build_model(cfg)
    monkeypatch.setenv(CACHE_ENV, str(fetched["cache"]))
    fetch_init_weights(cfg.train.init_weights, log=lambda line: None)  # cached: nothing to do
    report = load_state_into(model, cfg.train.init_weights, log=lambda line: None)
    assert report.source == str(fetched["path"]) and report.loaded == len(model.state_dict())

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "empty"))
    with pytest.raises(CheckpointError, match=rf"zoo:{VOC}: not in segkit's cache yet .*segkit zoo --fetch {VOC}"):
        load_state_into(model, f"zoo:{VOC}", log=lambda line: None)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SourceError, match=rf"2 processes would download it at once: run `segkit zoo --fetch {VOC}`"):
        fetch_init_weights(f"zoo:{VOC}")


def test_file_put_by_hand_is_used_offline(shared_data: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The offline route the error describes: copy the file to the cache path, then zoo:NAME converts it."""
    pytest.importorskip("tflite", reason="the tflite extra reads the file")
    name = "mobilenet_v2_1.0_224_uint8"
    model = ZOO[name]
    monkeypatch.setitem(ZOO, name, dataclasses.replace(model, url=f"http://127.0.0.1:{closed_port()}/{model.filename}"))
    target = source_path(model)
    target.parent.mkdir(parents=True)
    shutil.copyfile(shared_data / "tflite/mobilenet_v2_1.0_224_quant.tflite", target)
    shutil.copyfile(shared_data / "tflite/imagenet_labels.txt", target.with_name("imagenet_labels.txt"))
    path = fetch_checkpoint(name, progress=False, log=lambda line: None)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert ckpt["kind"] == "classifier" and len(ckpt["class_names"]) == 1001


def test_hugging_face_zoo_model_from_a_folder_put_by_hand(cache: Path) -> None:
    """An hf zoo model reads the folder `hf download ... --local-dir` wrote into the cache, without the network."""
    transformers = pytest.importorskip("transformers", reason="transformers (dev extra) writes the folder")
    config = transformers.MobileNetV2Config(
        num_labels=1001, depth_multiplier=0.35, architectures=["MobileNetV2ForImageClassification"]
    )
    transformers.MobileNetV2ForImageClassification(config).save_pretrained(source_path(ZOO["mobilenet_v2_0.35_96"]))
    path = fetch_checkpoint("mobilenet_v2_0.35_96", log=lambda line: None)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert ckpt["kind"] == "classifier" and ckpt["config"]["model"]["width_mult"] == pytest.approx(0.35)
    assert ckpt["source"]["converter"] == "segkit.convert.hf"


def test_train_fetches_zoo_init_weights_first(capsys: pytest.CaptureFixture, cache: Path, monkeypatch) -> None:
    """`segkit train` resolves zoo:NAME before the engine runs: an unknown name or an offline fetch stops it there."""
    code, _, err = run(capsys, "train", "--config", "demo_mnv2_os16", "--set", "train.init_weights=zoo:nope")
    assert code == 2 and "no zoo model 'nope'" in one_line_error(err)
    url = f"http://127.0.0.1:{closed_port()}/{ZOO[VOC].filename}"
    _serve_from(monkeypatch, VOC, url)
    code, _, err = run(capsys, "train", "--config", "demo_mnv2_os16", "--set", f"train.init_weights=zoo:{VOC}")
    assert code == 2 and f"Cannot download {url}" in one_line_error(err)
