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
from segkit.quantize.check import Int8Report, verify_int8
from segkit.quantize.formats import EXTENSIONS, QuantizeError, check_fusion_format, quantize_format
from segkit.quantize.images import choose_images
from segkit.quantize.ptq import quantize_model, quantize_qat, require_packages
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
            "ONNX, OpenVINO and ExecuTorch recalibrate its fine-tuned float weights on those images."
            if qat
            else "float checkpoint: post-training quantization calibrates on its images (a quantization-aware "
            "training checkpoint converts to --format tflite without them)."
        )
    )


def quantize_checkpoint(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    *,
    format: str | None = None,  # noqa: A002 - --format; None: from out's extension
    calib_data: str | None = None,
    calib_split: str | None = None,  # None: train, else the split calib_data has (choose_images)
    num_calib: int = 200,
    dataset: str | None = None,
    input_size: tuple[int, int] = (513, 513),
    input: str = "float",  # noqa: A002 - --input
    output: str = "logits",
    argmax_fusion: bool = False,
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
    checkpoint its fake-quantized model. Verification images (:func:`segkit.quantize.images.choose_images`, never
    the calibration images): ``verify`` (its ``verify_split``, with masks), else ``calib_data``'s ``verify_split``
    when it is another split, else a disjoint part of the calibration split, else (a QAT checkpoint to tflite) the
    checkpoint's own validation split when it is here, else random images. ``log`` says which before the work, and
    the report's ``calibrated_on`` / ``verified_on`` record it.

    ``argmax_fusion`` (with ``output="labels"``; onnx and openvino): the Edge TPU's argmax fusion, as
    ``segkit export --argmax-fusion``; the file is verified against the fused float labels and ``report.fusion``
    holds the fusion's cost against the official semantics.
    """
    from segkit.checkpoint.load import load_model
    from segkit.export.command import check_argmax_fusion

    format = quantize_format(out, format)  # noqa: A001 - .onnx onnx, .xml openvino, .tflite tflite
    check_argmax_fusion(argmax_fusion, output)  # export's error: --argmax-fusion needs --output labels
    check_fusion_format(argmax_fusion, format)
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
    chosen = choose_images(  # both sets before the quantization: a bad --calib-data or --verify is found first
        model,
        calib_data=calib_data if needs_images else None,
        calib_split=calib_split,
        num_calib=num_calib,
        verify=verify,
        verify_split=verify_split,
        num_verify=num_verify,
        dataset=dataset,
        input_size=size,
        progress=progress,
    )
    log(f"Calibrating on {chosen.calibrated_on}; verifying on {chosen.verified_on}.")
    images, check = chosen.calibration, chosen.verification
    options = dict(format=format, input_size=size, input=input, output=output, progress=progress)
    if argmax_fusion:  # quantize_qat takes it for onnx / openvino, as quantize_model does
        options["argmax_fusion"] = True
    # written and verified beside ``out``, renamed onto it only when the verification passed
    with staged_output(out) as staged:
        meta = (quantize_qat if qat else quantize_model)(model, staged.path, images, **options)
        if format == "executorch":  # which ops the XNNPACK partitioner left to the portable kernels
            from segkit.export.executorch import delegation_line

            log(delegation_line(meta))
        report = verify_int8(model, staged.path, check, progress=progress)
        report.path = str(out)
        report.reference = "fake-int8" if qat else "fp32"  # a QAT checkpoint loads as its fake-quantized model
        report.calibrated_on, report.verified_on = chosen.calibrated_on, chosen.verified_on
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
