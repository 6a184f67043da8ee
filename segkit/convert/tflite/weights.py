"""Weight loading: build the segkit model an architecture describes, load the graph's tensors, write the checkpoint.

BN is folded into TFLite's convs. Weights load into a segkit model whose BN layers are
identity-initialised (weight 1, running mean 0, running var ``1 - eps`` so that
``sqrt(var + eps) == 1``) with BN bias = the folded conv bias, so the checkpoint reproduces the
TFLite model in eval mode and can still be fine-tuned (BN statistics are then re-estimated;
with small batches set ``model.norm_eval=true`` to keep them fixed)::

    conversion = convert_tflite("deeplabv3_mnv2_pascal_quant.tflite", "deeplab_official.pth")
    print(conversion.architecture.summary())
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from segkit.config import Config
from segkit.convert.tflite.architecture import TFLiteArchitecture, infer_architecture
from segkit.convert.tflite.classes import ADE20K_TOP31_CLASSES
from segkit.convert.tflite.matcher import BackboneLayer, ConvSpec, TFLiteConversionError
from segkit.convert.tflite.reader import load_tflite

__all__ = ["TFLiteConversion", "build_converted_model", "convert_tflite", "read_labels"]


@dataclass
class TFLiteConversion:
    """Result of :func:`convert_tflite`: the loaded model (eval mode), its config and what was inferred."""

    model: nn.Module
    config: Config
    architecture: TFLiteArchitecture
    class_names: list[str] | None = None


def _conv_bn_pairs(module: nn.Module) -> list[tuple[nn.Conv2d, nn.BatchNorm2d | None]]:
    """Convs in registration (= execution) order, each with the BN that directly follows it."""
    mods = [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    return [
        (m, mods[i + 1] if i + 1 < len(mods) and isinstance(mods[i + 1], nn.BatchNorm2d) else None)
        for i, m in enumerate(mods)
        if isinstance(m, nn.Conv2d)
    ]


@torch.no_grad()
def _load_conv(
    conv: nn.Conv2d, bn: nn.BatchNorm2d | None, spec: ConvSpec, where: str, weight: np.ndarray | None = None
) -> None:
    w = torch.from_numpy(np.ascontiguousarray(spec.weight if weight is None else weight))
    if tuple(conv.weight.shape) != tuple(w.shape):
        raise TFLiteConversionError(
            f"{where}: {spec.op.describe()} has weights {list(w.shape)} (PyTorch layout), "
            f"the segkit module expects {list(conv.weight.shape)}."
        )
    if conv.stride[0] != spec.stride or conv.dilation[0] != spec.dilation:
        raise TFLiteConversionError(
            f"{where}: {spec.op.describe()} has stride {spec.stride} dilation {spec.dilation}, "
            f"the segkit module stride {conv.stride[0]} dilation {conv.dilation[0]}."
        )
    conv.weight.copy_(w)
    bias = torch.from_numpy(spec.bias)
    if bn is not None:  # identity BN carrying the folded bias: y = (x - 0) / sqrt(1 - eps + eps) * 1 + b
        bn.weight.fill_(1.0)
        bn.bias.copy_(bias)
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)
        if bn.num_batches_tracked is not None:
            bn.num_batches_tracked.zero_()
    elif conv.bias is not None:
        conv.bias.copy_(bias)
    elif bias.abs().max() > 0:
        raise TFLiteConversionError(f"{where}: {spec.op.describe()} has a bias but the segkit conv has none and no BN.")


def _load_backbone(backbone: nn.Module, layers: list[BackboneLayer]) -> None:
    features = backbone.features
    if len(features) != len(layers):
        raise TFLiteConversionError(
            f"the graph has {len(layers)} backbone layers, the segkit backbone {len(features)}."
        )
    for layer, module in zip(layers, features):
        pairs = _conv_bn_pairs(module)
        if len(pairs) != len(layer.convs):
            raise TFLiteConversionError(f"{layer.name}: {len(layer.convs)} convs in the graph, {len(pairs)} in segkit.")
        for (conv, bn), spec in zip(pairs, layer.convs):
            _load_conv(conv, bn, spec, layer.name)


def build_converted_model(arch: TFLiteArchitecture) -> nn.Module:
    """Build the segkit model for ``arch`` and load the graph's weights; returned in eval mode.

    A segmentor is a :class:`segkit.models.Segmentor`, a classifier a
    :class:`segkit.models.classifier.MobileNetV2Classifier`.
    """
    mcfg = arch.model_config()
    if arch.kind == "classifier":
        from segkit.models.build import build_classifier

        model = build_classifier(mcfg)
        _load_backbone(model, arch.layers)
        spec = arch.head["classifier"]
        linear = model.classifier[1]
        if tuple(linear.weight.shape) != spec.weight.shape:
            raise TFLiteConversionError(
                f"classifier: logits weights {list(spec.weight.shape)} vs segkit {list(linear.weight.shape)}."
            )
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(spec.weight)))
            linear.bias.copy_(torch.from_numpy(spec.bias))
        return model.eval()

    from segkit.models import build_model

    model = build_model(mcfg)
    _load_backbone(model.backbone, arch.layers)
    head = model.head
    c = arch.head_channels
    # The projection's input channels follow the graph's concat order; segkit concatenates
    # [image_pool, aspp0, atrous_0, ...]: reorder the weight's input blocks to segkit's order.
    segkit_order = ["image_pool", "aspp0", *[f"atrous_{i}" for i in range(len(arch.aspp_rates))]]
    w = arch.head["project"].weight
    blocks = {name: w[:, i * c : (i + 1) * c] for i, name in enumerate(arch.branch_order)}
    project_w = np.concatenate([blocks[name] for name in segkit_order], axis=1)
    targets = {
        "image_pool": (head.image_pool.conv[0], head.image_pool.conv[1]),
        "aspp0": (head.aspp0[0], head.aspp0[1]),
        **{f"atrous_{i}": (branch[0], branch[1]) for i, branch in enumerate(head.atrous)},
        "project": (head.project[0], head.project[1]),
        "classifier": (head.classifier, None),
    }
    for name, (conv, bn) in targets.items():
        _load_conv(conv, bn, arch.head[name], f"head.{name}", weight=project_w if name == "project" else None)
    if arch.decoder is not None:
        # convs in execution order: feature_projection0, decoder_conv0(.depthwise/.pointwise), decoder_conv1(...)
        pairs = _conv_bn_pairs(head.decoder)
        specs = list(arch.decoder.convs.items())
        if len(pairs) != len(specs):
            raise TFLiteConversionError(
                f"head.decoder: {len(specs)} convs in the graph ({', '.join(n for n, _ in specs)}), {len(pairs)} in segkit."
            )
        for (conv, bn), (name, spec) in zip(pairs, specs):
            _load_conv(conv, bn, spec, f"head.decoder.{name}")
    return model.eval()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_labels(path: str | os.PathLike) -> list[str]:
    """Class names from a labels file: its non-empty lines, one name each.

    Raises:
        TFLiteConversionError: the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise TFLiteConversionError(f"labels file not found: {path}")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def convert_tflite(
    path: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    class_names: list[str] | None = None,
    labels_file: str | os.PathLike | None = None,
) -> TFLiteConversion:
    """Convert a TFLite MobileNetV2 DeepLabV3 segmentor or ImageNet classifier to segkit.

    Args:
        path: the .tflite file.
        out: where to write the segkit checkpoint (kind 'segmentor' or 'classifier'); None: do not write.
        class_names: one name per class; default: PASCAL VOC's names for a 21-class segmentor, the MLPerf
            ADE20K names (ADE20K's 31 most frequent classes + 'other' as 0) for a 32-class one, else none.
        labels_file: read ``class_names`` from this file, one name per line (:func:`read_labels`).

    Raises:
        ImportError: the optional ``tflite`` package is missing.
        FileNotFoundError: ``path`` does not exist.
        OutputPathError: ``out`` is ``path`` or ``labels_file``, or cannot be written.
        TFLiteFormatError: not a (readable) TFLite file.
        TFLiteConversionError: a graph segkit cannot reproduce (the message names the op/tensor), a missing labels
            file, or a number of class names other than the model's classes.
    """
    path = Path(path)
    if out is not None:  # before anything is read: never the model or the labels, and writable
        from segkit.utils.io import check_output

        check_output(out, inputs={"MODEL": path, "--labels": labels_file}, flag="OUT")
    if labels_file is not None:
        if class_names is not None:
            raise TFLiteConversionError("pass class_names or labels_file, not both.")
        class_names = read_labels(labels_file)
    graph = load_tflite(path)
    arch = infer_architecture(graph)
    model = build_converted_model(arch)
    name = "tflite_" + re.sub(r"[^A-Za-z0-9_]+", "_", path.stem)
    cfg = arch.config(name)
    palette = None
    if class_names is not None:
        if len(class_names) != arch.num_classes:
            raise TFLiteConversionError(
                f"class_names has {len(class_names)} names but the model has {arch.num_classes} classes."
            )
    elif arch.kind == "segmentor" and arch.num_classes == 21:
        from segkit.data.classes import VOC_CLASSES, VOC_PALETTE

        class_names = list(VOC_CLASSES)
        palette = VOC_PALETTE[:21].tolist()
        arch.notes.append("21 classes: assumed PASCAL VOC's class names and palette.")
    elif arch.kind == "segmentor" and arch.num_classes == len(ADE20K_TOP31_CLASSES):
        from segkit.data.ade20k import ADE20K_TOP31_PALETTE

        class_names = list(ADE20K_TOP31_CLASSES)
        palette = ADE20K_TOP31_PALETTE.tolist()
        arch.notes.append(
            "32 classes: assumed MLPerf's ADE20K classes (ADE20K's 31 most frequent, in ADE20K's order, + 'other' as 0)"
            " and ADE20K's palette."
        )
    if out is not None:
        from segkit.checkpoint.format import save_checkpoint

        save_checkpoint(
            out,
            model,
            cfg,
            class_names=class_names,
            palette=palette,
            kind=arch.kind,
            source={
                "converter": "segkit.convert.tflite",
                "file": path.name,
                "sha256": _sha256(path),
                "input_size": list(arch.input_size),
                "input_dtype": arch.input_dtype,
                "notes": list(arch.notes),
            },
        )
    return TFLiteConversion(model=model, config=cfg, architecture=arch, class_names=class_names)
