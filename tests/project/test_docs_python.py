"""Every ```python block of README.md and docs/*.md runs as written.

Each block is executed on its own (a fresh namespace, as a reader pastes it) in a temporary folder that holds the
files the pages name, made by the test: ``work_dirs/demo_mnv2_os16/best.pth`` and ``ckpt.pth`` (a tiny random
checkpoint of the demo config on a small synthetic set), ``photo.jpg``, ``configs/`` (the repository's), torchvision's
``mobilenet_v2-b0353104.pth`` (random weights of the same layout) and ``model.onnx`` (the tiny checkpoint exported).
A block that needs what a test cannot make (real data, a download, minutes of training) says so in a comment line
``# needs: <what>`` and is skipped with that reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers.tiny_run import save_tiny_checkpoint

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^ {0,3}```python[ \t]*\n(?P<code>.*?)^ {0,3}```[ \t]*$", re.S | re.M)
NEEDS = re.compile(r"^\s*# needs: (?P<what>.+)$", re.M)

pytestmark = pytest.mark.usefixtures("one_thread")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    code: str

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def python_blocks() -> list[Block]:
    blocks = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for m in BLOCK.finditer(text):
            blocks.append(Block(page, text.count("\n", 0, m.start()) + 2, m.group("code")))
    return blocks


BLOCKS = python_blocks()


def test_the_pages_have_python_blocks() -> None:
    assert len(BLOCKS) >= 5 and any(b.page.name == "README.md" for b in BLOCKS)


@pytest.fixture(scope="module")
def doc_folder(tmp_path_factory, synth_root) -> Path:
    """The files the pages' blocks name (see the module docstring)."""
    folder = tmp_path_factory.mktemp("docs_python")
    ckpt = save_tiny_checkpoint(folder / "ckpt.pth", synth_root)
    best = folder / "work_dirs" / "demo_mnv2_os16" / "best.pth"
    best.parent.mkdir(parents=True)
    best.write_bytes(ckpt.read_bytes())
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(folder / "photo.jpg")
    configs = ROOT / "configs" if (ROOT / "configs").is_dir() else ROOT / "segkit" / "configs"
    (folder / "configs").symlink_to(configs, target_is_directory=True)
    return folder


def _torchvision_weights(folder: Path) -> None:
    import torchvision

    torch.manual_seed(0)
    torch.save(torchvision.models.mobilenet_v2().state_dict(), folder / "mobilenet_v2-b0353104.pth")


def _onnx_model(folder: Path) -> None:
    pytest.importorskip("onnxruntime", reason="the block runs an .onnx file in ONNX Runtime (segkit-deeplab[deploy])")
    from segkit.export import export_checkpoint

    export_checkpoint(
        folder / "ckpt.pth", folder / "model.onnx", dynamic=True, exporter="torchscript", skip_verify=True
    )


def _video_clip(folder: Path) -> None:
    av = pytest.importorskip("av", reason="the block reads a video with PyAV (a segkit dependency)")
    rng = np.random.default_rng(0)
    with av.open(str(folder / "clip.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(3):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


# files made only for the blocks that name them (each costs seconds)
ON_DEMAND = {"mobilenet_v2-b0353104.pth": _torchvision_weights, "model.onnx": _onnx_model, "clip.mp4": _video_clip}


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_python_block_runs_as_written(block: Block, doc_folder: Path, monkeypatch) -> None:
    needs = NEEDS.search(block.code)
    if needs:
        pytest.skip(f"{block.id} needs {needs.group('what')}")
    for name, make in ON_DEMAND.items():
        if name in block.code and not (doc_folder / name).exists():
            make(doc_folder)
    monkeypatch.chdir(doc_folder)
    namespace = {"__name__": "__docs__"}
    try:
        exec(compile(block.code, block.id, "exec"), namespace)
    except Exception as exc:  # noqa: BLE001 - the page and line of the block that failed, then the error
        pytest.fail(f"{block.id}: the Python block fails as written: {type(exc).__name__}: {exc}")
