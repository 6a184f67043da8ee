"""Int8 ExecuTorch programs: PT2E with ExecuTorch's XNNPACK quantizer, lowered to the XNNPACK delegate.

``torch.export`` -> torchao ``prepare_pt2e`` with ``XNNPACKQuantizer`` (symmetric int8, per-channel weights, per-tensor
activations) -> calibration on the images -> ``convert_pt2e`` -> ``torch.export`` ->
:func:`segkit.export.executorch.lower_to_pte` (the quantized convolutions and their neighbours run in XNNPACK; the
partitioner's report of what stays outside is in the metadata's ``"delegation"``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from segkit.utils.quiet import quiet_libraries

__all__ = ["quantize_executorch", "xnnpack_quantizer"]


def xnnpack_quantizer(per_channel: bool = True) -> Any:
    """ExecuTorch's XNNPACK PT2E quantizer: symmetric int8, per-channel weights (``per_channel``), static activations."""
    with quiet_libraries():
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )

    return XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=per_channel))


def quantize_executorch(
    model: nn.Module,
    wrapper: nn.Module,
    path: Path,
    feeds: Sequence[Tensor],
    input_size: tuple[int, int],
    input: str,  # noqa: A002 - --input
    output: str,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """Calibrate ``wrapper`` (an NCHW :class:`~segkit.export.ExportWrapper` of ``model``) on ``feeds`` and write the
    int8 ``.pte`` at ``path`` (atomically); returns its metadata."""
    from segkit.export.executorch import import_executorch, lower_to_pte
    from segkit.runtimes.metadata import model_metadata

    import_executorch()
    with quiet_libraries():  # torchao's pytree warning as it loads
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    # contiguous: a calibration image can hold HWC strides (a permuted decode), which torch.export would record as a
    # channels-last dim order of the program's input; XNNPACK then fails on every contiguous input at run time
    feeds = [x.contiguous() for x in feeds]
    example = feeds[0]
    with warnings.catch_warnings(), torch.no_grad(), quiet_libraries():
        warnings.simplefilter("ignore")
        prepared = prepare_pt2e(torch.export.export(wrapper, (example,), strict=False).module(), xnnpack_quantizer())
        for x in feeds:
            prepared(x)
        converted = convert_pt2e(prepared)
        program = torch.export.export(converted, (example,), strict=False)
    cfg = model.segkit_config
    meta = model_metadata(
        model,
        input=input,
        output=output,
        input_size=tuple(input_size),
        dynamic=False,
        layout="nchw",
        mean=list(cfg.model.input_mean),
        std=list(cfg.model.input_std),
        fmt="executorch",
    )
    meta.update(extra, runtime="executorch")
    return lower_to_pte(program, path, meta)
