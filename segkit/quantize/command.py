"""What ``segkit quantize`` does, as one function: a checkpoint -> a verified int8 file.

A float checkpoint is calibrated on ``calib_data`` (post-training quantization). A quantization-aware
training checkpoint (``train.qat``) converts to LiteRT with its trained ranges, without calibration;
ONNX and OpenVINO recalibrate its fine-tuned float weights (``calib_data`` needed).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from segkit.evaluation.predict import check_input_size
from segkit.quantize.calib import calibration_images, synthetic_images
from segkit.quantize.check import Int8Report, verify_int8
from segkit.quantize.ptq import EXTENSIONS, FORMATS, QuantizeError, quantize_model, quantize_qat, require_packages
from segkit.utils.io import check_output, staged_output


def is_qat_checkpoint(path: str | os.PathLike) -> bool:
    """True for a checkpoint of a ``train.qat`` run."""
    from segkit.checkpoint.format import checkpoint_config, load_checkpoint

    ckpt = load_checkpoint(path)
    return ckpt.get("kind", "segmentor") == "segmentor" and bool(checkpoint_config(ckpt).train.qat)


def _require_calibration(fmt: str, qat: bool) -> None:
    raise QuantizeError(
        f"--calib-data ROOT is required for --format {fmt} of a "
        + (
            "quantization-aware training checkpoint: only LiteRT (--format tflite) takes its trained ranges; "
            "ONNX and OpenVINO recalibrate its fine-tuned float weights on those images."
            if qat
            else "float checkpoint: post-training quantization calibrates on its images (a quantization-aware "
            "training checkpoint converts to --format tflite without them)."
        )
    )


def quantize_checkpoint(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    *,
    format: str,  # noqa: A002 - --format
    calib_data: str | None = None,
    calib_split: str = "train",
    num_calib: int = 200,
    dataset: str | None = None,
    input_size: tuple[int, int] = (513, 513),
    input: str = "float",  # noqa: A002 - --input
    output: str = "logits",
    verify: str | None = None,
    verify_split: str = "val",
    num_verify: int = 50,
    progress: bool = True,
    log: Callable[[str], Any] = print,
) -> Int8Report:
    """Write ``out`` from ``checkpoint`` (PTQ, or a QAT checkpoint's conversion) and verify it.

    ``out`` is checked before any work (never one of the inputs, writable); the file is written and verified beside
    it and renamed onto it only when the verification passed: a failed verification (``report.written`` False) or an
    interrupted one leaves ``out`` as it was.

    The reference of the verification is the checkpoint's model: the float model, or for a QAT
    checkpoint its fake-quantized model. Verification images: ``verify`` (its ``verify_split``, with
    masks), else the calibration images, else (a QAT checkpoint to tflite) the checkpoint's own
    validation split when it is here, else random images (said so through ``log``).
    """
    from segkit.checkpoint.load import load_model

    if format not in FORMATS:
        raise QuantizeError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}.")
    input_size = check_input_size(tuple(input_size), error=QuantizeError)  # before anything of that size exists
    if num_calib < 1:
        raise QuantizeError(
            f"--num-calib is the number of calibration images: at least 1, got {num_calib}; "
            "pass --num-calib N (default 200)."
        )
    _check_out(checkpoint, out, format, calib_data, verify, num_verify)
    require_packages(format)  # before the checkpoint, the data and the calibration
    qat = is_qat_checkpoint(checkpoint)
    if qat:
        require_packages(format, qat=True)
    needs_images = not (qat and format == "tflite")
    if calib_data is None and needs_images:
        _require_calibration(format, qat)
    model = load_model(checkpoint)
    size = tuple(input_size)
    images = []
    if calib_data is not None and needs_images:
        images = calibration_images(
            model, calib_data, split=calib_split, num=num_calib, input_size=size, dataset=dataset, progress=progress
        )
    options = dict(format=format, input_size=size, input=input, output=output, progress=progress)
    if verify:  # the verification images before the quantization: a bad --verify is found first
        check = calibration_images(
            model,
            verify,
            split=verify_split,
            num=num_verify,
            input_size=size,
            dataset=dataset,
            with_masks=True,
            progress=progress,
        )
    elif images:
        check = images[:num_verify]
    else:
        check = _own_val_images(model, num_verify, size, progress, log)
    # written and verified beside ``out``, renamed onto it only when the verification passed
    with staged_output(out) as staged:
        (quantize_qat if qat else quantize_model)(model, staged.path, images, **options)
        report = verify_int8(model, staged.path, check)
        report.path = str(out)
        report.reference = "fake-int8" if qat else "fp32"  # a QAT checkpoint loads as its fake-quantized model
        staged.keep = report.written = report.passed()
    return report


def _check_out(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    format: str,  # noqa: A002 - --format
    calib_data: str | os.PathLike | None,
    verify: str | os.PathLike | None,
    num_verify: int,
) -> None:
    """QuantizeError / OutputPathError, before any work, for an ``out`` the format does not write, one that is an
    input or cannot be written (with its OpenVINO ``.bin``), and a verification of no images."""
    from pathlib import Path

    out = Path(out)
    ext = EXTENSIONS[format]
    if out.suffix.lower() != ext:
        raise QuantizeError(f"--format {format} writes a {ext} file, got --out {out}; name the output *{ext}.")
    if isinstance(num_verify, bool) or not isinstance(num_verify, int) or num_verify < 1:
        raise QuantizeError(
            f"--num-verify {num_verify} verifies nothing; pass --num-verify N with N >= 1 (default 50): an int8 "
            "file is written only after it was compared with the float model."
        )
    inputs = {"--checkpoint": checkpoint, "--calib-data": calib_data, "--verify": verify}
    check_output(out, inputs=inputs, flag="--out")
    if format == "openvino":  # its weights land beside it
        check_output(out.with_suffix(".bin"), inputs=inputs, flag="--out (its .bin)")


def _own_val_images(
    model: Any, num: int, size: tuple[int, int], progress: bool, log: Callable[[str], Any]
) -> list[dict[str, Any]]:
    """The checkpoint's validation split (its config's data.root) when present, else random images."""
    from segkit.data import DatasetError

    data = model.segkit_config.data
    try:
        return calibration_images(model, data.root, split=data.val_split, num=num, input_size=size, progress=progress)
    except (DatasetError, OSError):
        log(f"No --verify data and {data.root} is absent: verifying on {num} random images.")
        return synthetic_images(model, num, size)
