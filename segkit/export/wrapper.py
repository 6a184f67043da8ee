"""The module the exporters trace: optional normalisation in, the segmentor, optional argmax out."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from segkit.export.formats import INPUTS, OUTPUTS


def _mean_std(model: nn.Module) -> tuple[list[float], list[float]]:
    cfg = getattr(model, "segkit_config", None)
    if cfg is None:
        from segkit.config import IMAGENET_MEAN, IMAGENET_STD

        return list(IMAGENET_MEAN), list(IMAGENET_STD)
    return list(cfg.model.input_mean), list(cfg.model.input_std)


class ExportWrapper(nn.Module):
    """``model`` with the deployment's input and output conventions.

    Args:
        model: a segkit segmentor (or any module returning ``{"out": logits}`` or logits at its input size).
        input: "float": normalised float images (NCHW for ``layout="nchw"``, NHWC for "nhwc");
            "uint8": RGB uint8 images, always NHWC ``[N, H, W, 3]`` (what an image decoder gives),
            normalised inside the graph as ``(x - mean) / std``.
        output: "logits": float logits at the input size (NCHW or NHWC as ``layout``);
            "labels": the argmax, uint8 ``[N, H, W]``.
        layout: "nchw" (ONNX) or "nhwc" (TFLite).
        mean, std: RGB on the 0..255 scale; default: the model's config.
        argmax_fusion: with ``output="labels"``, the Edge TPU's "argmax fusion": the argmax of the logits at their own
            resolution (output stride 16: 33x33 at 513) and a nearest-neighbour upscale of the labels, instead of
            the argmax of the bilinearly upsampled logits (the official semantics, the default). Cheaper, not
            equal: ``benchmarks/throughput.py`` prints its pixel agreement and mIoU cost. A segkit segmentor only.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        input: str = "float",
        output: str = "logits",  # noqa: A002
        layout: str = "nchw",
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        argmax_fusion: bool = False,
    ) -> None:
        super().__init__()
        from segkit.export.errors import ExportError

        for name, value, allowed in (
            ("input", input, INPUTS),
            ("output", output, OUTPUTS),
            ("layout", layout, ("nchw", "nhwc")),
        ):
            if value not in allowed:
                raise ExportError(f"{name} must be one of {', '.join(allowed)}, got {value!r}.")
        if argmax_fusion and (output != "labels" or not all(hasattr(model, a) for a in ("backbone", "head"))):
            raise ExportError(
                "argmax fusion needs output='labels' and a segkit segmentor (backbone + head); export logits or "
                "labels without it."
            )
        self.model = model.eval()
        self.input_kind, self.output_kind, self.layout = input, output, layout
        self.argmax_fusion = bool(argmax_fusion)
        cfg_mean, cfg_std = _mean_std(model)
        mean = list(mean if mean is not None else cfg_mean)
        std = list(std if std is not None else cfg_std)
        self.mean_rgb, self.std_rgb = mean, std
        # (x - mean) / std as one multiply-add
        self.register_buffer("scale", (1.0 / torch.tensor(std, dtype=torch.float32)).view(1, 3, 1, 1), persistent=False)
        self.register_buffer(
            "shift", (-torch.tensor(mean) / torch.tensor(std)).view(1, 3, 1, 1).float(), persistent=False
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.input_kind == "uint8":
            x = x.permute(0, 3, 1, 2).to(torch.float32) * self.scale + self.shift
        elif self.layout == "nhwc":
            x = x.permute(0, 3, 1, 2)
        if self.argmax_fusion:
            return fused_labels(self.model, x)
        out = self.model(x)
        logits = out["out"] if isinstance(out, dict) else out
        if self.output_kind == "labels":
            return logits.argmax(1).to(torch.uint8)
        return logits.permute(0, 2, 3, 1) if self.layout == "nhwc" else logits

    def example(self, size: tuple[int, int], batch: int = 1) -> Tensor:
        """A random input of this wrapper's kind at ``size``."""
        h, w = size
        if self.input_kind == "uint8":
            return torch.randint(0, 256, (batch, h, w, 3), dtype=torch.uint8)
        return torch.randn(batch, h, w, 3) if self.layout == "nhwc" else torch.randn(batch, 3, h, w)


def low_res_logits(model: nn.Module, x: Tensor) -> Tensor:
    """A segkit segmentor's logits before their upsampling to the input size ([N, C, H / OS, W / OS])."""
    features = model.backbone(x)
    decoder_in = getattr(model, "decoder_in", None)
    if decoder_in is None:
        return model.head(features[model.head_in])
    return model.head(features[model.head_in], features[decoder_in])


def nearest_upscale(labels: Tensor, size: tuple[int, int] | Sequence[int], align_corners: bool) -> Tensor:
    """Nearest-neighbour resize of label maps [N, h, w] to ``size``, on the sampling grid of the model's bilinear
    upsampling: ``align_corners`` True: source ``round(i (h - 1) / (H - 1))``; False: ``floor((i + 0.5) h / H)``."""
    idx = []
    for dim, n_out in ((-2, size[0]), (-1, size[1])):
        n_in = labels.shape[dim]
        pos = torch.arange(n_out, device=labels.device, dtype=torch.float32)
        if align_corners:
            src = (pos * ((n_in - 1) / max(n_out - 1, 1))).round()
        else:
            src = ((pos + 0.5) * (n_in / n_out)).floor()
        idx.append(src.clamp(0, n_in - 1).long())
    return labels.index_select(-2, idx[0]).index_select(-1, idx[1])


def fused_labels(model: nn.Module, x: Tensor) -> Tensor:
    """Argmax fusion: uint8 labels [N, H, W] of normalised images [N, 3, H, W], the argmax at the logits'
    resolution upscaled with :func:`nearest_upscale`. The upscale gathers int32 labels: LiteRT's converter cannot
    legalize the select it makes of a uint8 gather."""
    labels = low_res_logits(model, x).argmax(1).to(torch.int32)
    return nearest_upscale(labels, x.shape[-2:], bool(getattr(model, "align_corners", False))).to(torch.uint8)


def prepare_export(
    model: nn.Module,
    module: nn.Module | None,
    *,
    input: str,  # noqa: A002 - the command line's --input
    output: str,
    layout: str,
    size: tuple[int, int],
    dynamic: bool,
    fmt: str,
    metadata: dict | None,
    argmax_fusion: bool = False,
) -> tuple[nn.Module, Tensor, dict]:
    """The module to export (``module`` or an :class:`ExportWrapper`, with ``argmax_fusion`` when asked), its example
    input and the file's metadata (``argmax_fusion``: whether the module computes the fusion)."""
    from segkit.export.errors import ExportError
    from segkit.runtimes.metadata import model_metadata

    if module is not None and argmax_fusion and not getattr(module, "argmax_fusion", False):
        raise ExportError(
            "argmax_fusion=True with a module that does not compute it; pass ExportWrapper(model, output='labels', "
            "argmax_fusion=True) as module, or leave module out."
        )
    if module is None:
        module = ExportWrapper(model, input=input, output=output, layout=layout, argmax_fusion=argmax_fusion)
    wrapper = module
    wrapper.eval()
    shape = (1, 3, *size) if layout == "nchw" else (1, *size, 3)
    example = wrapper.example(size) if hasattr(wrapper, "example") else torch.randn(*shape)
    meta = model_metadata(
        model,
        input=input,
        output=output,
        input_size=size,
        dynamic=dynamic,
        layout=layout,
        mean=getattr(wrapper, "mean_rgb", []),
        std=getattr(wrapper, "std_rgb", []),
        fmt=fmt,
        argmax_fusion=bool(getattr(wrapper, "argmax_fusion", False)),
    )
    meta.update(metadata or {})
    return wrapper, example, meta
