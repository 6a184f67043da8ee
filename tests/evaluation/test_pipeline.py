"""The read-ahead and write-behind of ``segkit infer`` / ``segkit test --save-pred`` (segkit.evaluation.pipeline), and
infer's outputs with them: the same files, in order, errors kept, overlays skippable (issue 25, goal 1)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segkit.evaluation.pipeline import BackgroundWriter, prefetch

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_prefetch_keeps_order_and_hands_back_errors(workers):
    def work(i: int) -> int:
        time.sleep(0.002 * (i % 3))  # finish out of order
        if i == 4:
            raise ValueError("bad item")
        return i * 10

    got = list(prefetch(work, range(8), workers=workers, depth=3))
    assert [item for item, _ in got] == list(range(8))
    assert [f.value for _, f in got] == [0, 10, 20, 30, None, 50, 60, 70]
    assert isinstance(got[4][1].error, ValueError) and all(f.error is None for i, f in got if i != 4)


def test_prefetch_is_bounded():
    running, peak, lock = [0], [0], threading.Lock()
    started = []

    def work(i: int) -> int:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        started.append(i)
        with lock:
            running[0] -= 1
        return i

    gen = prefetch(work, range(100), workers=2, depth=4)
    next(gen)
    time.sleep(0.05)
    assert len(started) <= 5  # the first handed out, at most depth more submitted: never the whole folder
    assert peak[0] <= 2
    gen.close()


def test_prefetch_refuses_bad_settings():
    with pytest.raises(ValueError, match="workers must be >= 0 and depth >= 1"):
        list(prefetch(str, [1], workers=1, depth=0))


def test_background_writer_runs_in_order_and_reraises():
    done: list[int] = []
    with BackgroundWriter(depth=2) as writer:
        for i in range(6):
            writer.submit(done.append, i)
    assert done == list(range(6))

    writer = BackgroundWriter()
    writer.submit(lambda: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        writer.close()
    with pytest.raises(RuntimeError, match="after close"):
        writer.submit(print)


def _photos(folder: Path, n: int) -> list[Path]:
    folder.mkdir()
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"p{i}.png"
        Image.fromarray(rng.integers(0, 256, (20 + 3 * i, 30, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    return paths + [folder / "broken.jpg"]


class Tiny(torch.nn.Module):
    """A 1x1 conv: a segmentor at the input size, fast."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 21, 1)

    def forward(self, x):
        return {"out": self.conv(x)}


@pytest.mark.parametrize("readers", [0, 2])
def test_infer_outputs_equal_with_read_ahead_and_without_overlay(tmp_path, readers):
    from segkit.config import Config
    from segkit.evaluation.command import segment, segment_images

    cfg = Config(name="tiny")
    paths = _photos(tmp_path / "in", 4)
    quiet = {"device": "cpu", "progress": False, "log": lambda line: None}
    res = segment_images(Tiny(), cfg, paths, tmp_path / "full", readers=readers, **quiet)
    labels_only = segment_images(Tiny(), cfg, paths, tmp_path / "labels", readers=readers, overlay=False, **quiet)
    assert [p.name for p, _ in res.failed] == ["broken.jpg"] == [p.name for p, _ in labels_only.failed]
    assert sorted(f.name for f in (tmp_path / "labels").iterdir()) == [f"p{i}.png" for i in range(4)]
    assert len(list((tmp_path / "full").glob("*_overlay.jpg"))) == 4
    assert [r.get("overlay") for r in labels_only.report["images"]] == [None] * 5
    for i, path in enumerate(paths[:4]):  # written behind the model, the same label maps as one image at a time
        want = segment(Tiny(), np.asarray(Image.open(path).convert("RGB")), cfg, "cpu")
        for folder in ("full", "labels"):
            assert np.array_equal(np.asarray(Image.open(tmp_path / folder / f"p{i}.png")), want)


def test_host_threads_gives_a_runtime_one_torch_thread_and_restores():
    from segkit.evaluation.pipeline import host_threads

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with host_threads(object()):  # a runtime's runner: not a torch module
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with host_threads(Tiny()):  # a torch model keeps torch's threads
            assert torch.get_num_threads() == 2
        with host_threads(object(), active=False):  # a multi-view protocol: torch does the averaging, on its threads
            assert torch.get_num_threads() == 2
        with pytest.raises(KeyError), host_threads(object()):
            raise KeyError("restored on an error too")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_thread_loader_yields_collated_samples_in_order_and_reraises():
    from segkit.evaluation.pipeline import ThreadLoader

    class Data:
        def __len__(self):
            return 5

        def __getitem__(self, i):
            if i == 3:
                raise OSError("sample 3 is unreadable")
            time.sleep(0.01 * (5 - i))  # later samples finish first on the other thread
            return {"i": i}

    loader = ThreadLoader(Data(), lambda batch: [s["i"] for s in batch], workers=2)
    assert len(loader) == 5
    got = []
    with pytest.raises(OSError, match="sample 3"):
        for batch in loader:
            got.append(batch)
    assert got == [[0], [1], [2]]
