"""Other libraries' log chatter stays off segkit's output (segkit.utils.quiet): the C++ lines TensorFlow/LiteRT write
to file descriptor 2 are dropped, everything else (segkit's lines, progress bars, warnings, errors) passes, and the
chatty Python loggers are quiet only while segkit calls into those libraries."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from segkit.utils.quiet import NOISY_LOGGERS, filtered_stderr, quiet_libraries, quiet_logs

# What a LiteRT export, a LiteRT verification and an OpenVINO int8 run printed before (segkit 0.1.0 on this machine).
NOISE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796294096.634897    4650 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results due to floating-point round-off errors from different computation orders.",
    "I0000 00:00:1796294169.202365    4650 flatbuffer_export.cc:4410] Estimated count of arithmetic ops: 25.163 M  ops",
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
]
KEPT = [
    "Exporting model.tflite (LiteRT) at 65x65...",
    "E0000 00:00:1796294169.202365    4650 converter.cc:12] a real error",
    "W1203 10:37:20.140000 5856 some_lib.py:630] a warning is not dropped",
    "INFO: what segkit's own message could say",
]


def test_native_noise_is_dropped_and_the_rest_passes(capfd) -> None:
    with filtered_stderr():
        for line in [NOISE[0], KEPT[0], NOISE[1], NOISE[2], KEPT[1], NOISE[3], KEPT[2], KEPT[3]]:
            os.write(2, (line + "\n").encode())  # as C++ code writes: straight to the file descriptor
    os.write(2, (NOISE[3] + "\n").encode())  # outside the block nothing is filtered
    assert capfd.readouterr().err == "\n".join([*KEPT, NOISE[3]]) + "\n"


def test_progress_bars_pass_as_they_are_written(capfd) -> None:
    with filtered_stderr():
        os.write(2, b"\rExporting: 00:01 elapsed")  # a bar redraws its line without a newline
        os.write(2, b"\rExporting: 00:02 elapsed")
        os.write(2, b"I0000 00:00:1.5    7 port.cc:153] split ")  # a native line arriving in two writes
        os.write(2, b"across writes\n")
        os.write(2, b"\rExporting: 00:03 elapsed")
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")  # after a bar, on its line
        os.write(2, "\rdone \u2713".encode()[:-1])  # a character split across writes
        os.write(2, "\u2713".encode()[-1:])
    err = capfd.readouterr().err
    assert err == "\rExporting: 00:01 elapsed\rExporting: 00:02 elapsed\rExporting: 00:03 elapsed\rdone \u2713"


def test_errors_inside_the_block_propagate_and_stderr_is_restored(capfd) -> None:
    fd_target = os.fstat(2)
    with pytest.raises(RuntimeError, match="boom"), filtered_stderr():
        os.write(2, b"kept\n")
        raise RuntimeError("boom")
    assert os.fstat(2).st_ino == fd_target.st_ino  # fd 2 is what it was
    assert capfd.readouterr().err == "kept\n"


def test_loggers_are_quiet_in_the_block_only(capfd) -> None:
    nncf = logging.getLogger("nncf")
    nncf.setLevel(logging.INFO)
    with quiet_logs():
        assert all(logging.getLogger(name).getEffectiveLevel() >= logging.ERROR for name in NOISY_LOGGERS)
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] in ("0", "1", "2", "3")  # set unless the user had set it
    assert nncf.level == logging.INFO


def test_quiet_libraries_is_both(capfd) -> None:
    logger = logging.getLogger("torch.utils.cpp_extension")
    handler = logging.StreamHandler(sys.stderr)
    logger.addHandler(handler)
    try:
        with quiet_libraries():
            logger.warning("No CUDA runtime is found, using CUDA_HOME='/usr/local'")  # what NNCF's import logged
            os.write(2, (NOISE[0] + "\n").encode())
            print("segkit line", file=sys.stderr)
    finally:
        logger.removeHandler(handler)
    assert capfd.readouterr().err == "segkit line\n"


@pytest.mark.slow  # a subprocess that loads LiteRT (a few seconds)
def test_a_litert_session_prints_nothing_of_its_own(shared_data: Path) -> None:
    pytest.importorskip("ai_edge_litert", reason="the optional 'ai-edge-litert' package is absent")
    model = shared_data / "tflite" / "mobilenet_v2_1.0_224_quant.tflite"
    code = f"from segkit.runtimes.backends import LiteRtSession\nLiteRtSession(__import__('pathlib').Path({str(model)!r}), 1)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr == "", proc.stderr  # before: "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."


@pytest.mark.slow  # a subprocess that loads litert-torch and TensorFlow's converter (20 s on 2 busy cores)
def test_loading_the_litert_converter_prints_nothing() -> None:
    pytest.importorskip("litert_torch", reason="the optional 'litert-torch' package is absent")
    code = "from segkit.export.tflite import _import_litert\n_import_litert()"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr == "", proc.stderr  # before: absl's InitializeLog warning, oneDNN's port.cc line, torch's
