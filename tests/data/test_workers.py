"""``data.num_workers`` above the CPUs this process may use: at most that many DataLoader workers start, with one
one-line warning (PyTorch's own warning, printed once per loader, twice a training run, is not reached)."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.utils.data import TensorDataset

from segkit.data import workers
from segkit.data.workers import WorkersClampedWarning, loader_workers, usable_cpus


@pytest.fixture
def fresh(monkeypatch):
    """No clamping warned about yet in this process."""
    monkeypatch.setattr(workers, "_warned", set())


@pytest.fixture
def two_cpus(monkeypatch, fresh):
    monkeypatch.setattr(workers, "usable_cpus", lambda: 2)


def test_usable_cpus_is_positive() -> None:
    assert usable_cpus() >= 1


def test_workers_within_the_cpus_are_kept(two_cpus) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [loader_workers(n) for n in (0, 1, 2)] == [0, 1, 2]


def test_workers_above_the_cpus_are_clamped_with_one_warning(two_cpus) -> None:
    with pytest.warns(WorkersClampedWarning) as record:
        assert loader_workers(8) == 2
        assert loader_workers(8) == 2  # the validation loader of the same run: no second warning
    assert len(record) == 1
    message = str(record[0].message)
    assert "\n" not in message and "data.num_workers=8" in message and "2 CPU(s)" in message


def test_a_log_gets_one_line_instead_of_a_warning(two_cpus) -> None:
    lines: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert loader_workers(4, lines.append) == 2
        assert loader_workers(4, lines.append) == 2
    assert lines == [
        "warning: data.num_workers=4 is more than the 2 CPU(s) this process may use: starting 2 DataLoader "
        "worker(s); pass --set data.num_workers=N with N <= 2 to silence this."
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert loader_workers(5, lines.append, flag="--num-workers N") == 2  # how `segkit test` sets it
    assert lines[-1].endswith("pass --num-workers N with N <= 2 to silence this.")


def test_a_foreign_files_default_workers_are_clamped_silently(two_cpus, tiny_ckpt, tmp_path) -> None:
    """`segkit test --model foreign.onnx`: the user wrote no config, so its default (4) is clamped without a word;
    a count the user passed stays theirs (and is warned about by the loader)."""
    pytest.importorskip("onnxruntime")
    from segkit.checkpoint.load import load_model
    from segkit.export.cache import load_for_tools
    from segkit.export.onnx import export_onnx
    from segkit.runtimes.metadata import read_metadata

    path = tmp_path / "foreign.onnx"
    export_onnx(load_model(tiny_ckpt), path, input_size=(33, 33))
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]  # no segkit metadata: a foreign file
    onnx.save(proto, str(path))
    assert read_metadata(path) is None
    _, cfg = load_for_tools(path, None, overrides={"model.num_classes": 21})
    assert cfg.data.num_workers == 2  # the default config's 4, clamped to the 2 CPUs
    _, cfg = load_for_tools(path, None, overrides={"model.num_classes": 21, "data.num_workers": 6})
    assert cfg.data.num_workers == 6


def test_training_and_evaluation_loaders_start_at_most_the_cpus(fresh, tiny_cfg, synth_root, capfd) -> None:
    from segkit.engine.setup import make_loader

    cpus = usable_cpus()
    cfg = tiny_cfg(synth_root, **{"data.num_workers": cpus + 4})
    data = TensorDataset(torch.zeros(4, 1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaders = [
            make_loader(data, cfg, sampler=None, batch_size=2, device=torch.device("cpu"), train=train)
            for train in (True, False)
        ]
        for loader in loaders:
            loader.check_worker_number_rationality()  # what PyTorch runs when a loader's workers start
    assert [loader.num_workers for loader in loaders] == [cpus, cpus]
    assert [type(w.message) for w in caught] == [WorkersClampedWarning]  # none of PyTorch's
    assert capfd.readouterr().err == ""
