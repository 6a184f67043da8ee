"""``convert_hf``: a Hugging Face MobileNetV2 model (folder or ``hf:ID``) -> a segkit checkpoint.

    conversion = convert_hf("hf:google/deeplabv3_mobilenet_v2_1.0_513", "deeplab_float.pth")
    conversion = convert_hf("mobilenet_v2_1.0_224/", "mnv2_imagenet_float.pth")   # a downloaded folder
    print(conversion.summary())

The float weights load as they are (BN statistics and eps included), so the checkpoint gives transformers'
logits; ``transformers`` is not needed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from segkit.config import Config, DataConfig, EvalConfig, ModelConfig, validate_config
from segkit.convert.hf.files import (
    HF_PREFIX,
    HFConversionError,
    HFFolder,
    download_hub_model,
    parse_hub_id,
    read_hf_folder,
)
from segkit.convert.hf.mapping import hf_kind, model_config, segkit_names

__all__ = ["HFConversion", "convert_hf", "load_hf_model"]

CONVERTED_NUM_WORKERS = 2  # the checkpoint runs on other machines: a worker count every machine has


@dataclass
class HFConversion:
    """Result of :func:`convert_hf`: the loaded model (eval mode), its config and what was read."""

    model: nn.Module
    config: Config
    kind: Literal["segmentor", "classifier"]
    source: str
    class_names: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    folder: HFFolder | None = field(default=None, repr=False)  # what was read (config, tensors, weights file)

    def summary(self) -> str:
        """Readable description of the converted model."""
        m = self.config.model
        lines = [
            f"kind: {self.kind} (transformers MobileNetV2, {self.source})",
            f"backbone: MobileNetV2 width {m.width_mult:g} (channels rounded to {m.round_nearest}), output stride "
            f"{m.output_stride}, TF 'SAME' padding {'on' if m.tf_same_padding else 'off'}, BN eps {m.bn_eps:g}",
            (
                f"head: DeepLabV3, no ASPP (image pooling + 1x1 branch), {m.head_channels} channels, "
                f"{m.num_classes} classes, align_corners={m.align_corners}"
                if self.kind == "segmentor"
                else f"head: global average pool -> {m.num_classes}-way logits"
            ),
            f"input: RGB mean {[round(v, 3) for v in m.input_mean]}, std {[round(v, 3) for v in m.input_std]} "
            "(0..255 scale)",
        ]
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def _class_names(config: dict[str, Any], num_classes: int) -> list[str] | None:
    id2label = config.get("id2label") or {}
    try:
        names = [str(id2label[k]) for k in sorted(id2label, key=int)]
    except (TypeError, ValueError):
        return None
    if len(names) != num_classes or all(n == f"LABEL_{i}" for i, n in enumerate(names)):
        return None  # transformers' placeholders name nothing
    return names


@torch.no_grad()
def _load_weights(model: nn.Module, folder: HFFolder, kind: str, where: str) -> list[str]:
    """Rename the folder's tensors to segkit's, check names and shapes, load them; returns notes."""
    names, dropped = segkit_names(kind)
    own = model.state_dict()
    state, unexpected = {}, []
    for key, tensor in folder.state.items():
        if key in names:
            state[names[key]] = tensor
        elif not key.startswith(dropped):
            unexpected.append(key)
    missing = [hf for hf, sk in names.items() if sk not in state]
    if unexpected or missing:
        raise HFConversionError(
            f"{where}: the weights do not match transformers' MobileNetV2{'ForSemanticSegmentation' if kind == 'segmentor' else 'ForImageClassification'} "
            f"layout (missing {len(missing)}: {missing[:3]}; unexpected {len(unexpected)}: {unexpected[:3]})."
        )
    for hf, sk in names.items():
        if tuple(state[sk].shape) != tuple(own[sk].shape):
            raise HFConversionError(
                f"{where}: {hf} has shape {list(state[sk].shape)}, segkit's {sk} {list(own[sk].shape)} (config.json's "
                "depth_multiplier / depth_divisible_by / num_labels must describe the weights)."
            )
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)
    notes = []
    if dropped and any(k.startswith(dropped) for k in folder.state):
        notes.append("dropped mobilenet_v2.conv_1x1 (1280 channels): transformers builds it, its head never reads it.")
    return notes


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _config(mcfg: ModelConfig, kind: str, image_size: Any, name: str) -> Config:
    data = DataConfig(dataset="voc" if mcfg.num_classes == 21 else "folder", num_workers=CONVERTED_NUM_WORKERS)
    evaluation = EvalConfig()
    if isinstance(image_size, list) and len(image_size) == 2 and image_size[0] == image_size[1]:
        image_size = image_size[0]  # [H, W] of a square input
    if isinstance(image_size, int) and image_size >= 16:
        data.crop_size = image_size
        evaluation.pad_to = image_size if kind == "segmentor" else None
    cfg = Config(name=name, model=mcfg, data=data, eval=evaluation)
    validate_config(cfg)
    return cfg


def load_hf_model(
    source: str | os.PathLike, *, output_stride: int | None = None, local_dir: str | os.PathLike | None = None
) -> HFConversion:
    """Build the segkit model a Hugging Face MobileNetV2 folder (or ``hf:ORG/NAME[@REV]``) describes, weights loaded.

    Args:
        source: a model folder (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``) or ``hf:ID``.
        output_stride: build a segmentor at this output stride (8, 16, 32) instead of ``config.json``'s.
        local_dir: where an ``hf:`` download goes (default: the Hub's cache).

    Raises:
        HFConversionError: unreadable folder, an offline or refused download, or a model segkit cannot build.
    """
    text = str(source)
    if text.startswith(HF_PREFIX):
        folder = read_hf_folder(download_hub_model(text, local_dir))
        folder.repo_id, folder.revision = parse_hub_id(text)
    else:
        folder = read_hf_folder(source)
    where = text if folder.repo_id else str(folder.path)
    kind = hf_kind(folder.config, set(folder.state), where)
    mcfg = model_config(folder.config, kind, folder.preprocessor, where, output_stride=output_stride)
    if kind == "classifier":
        from segkit.models.build import build_classifier

        model: nn.Module = build_classifier(mcfg)
    else:
        from segkit.models.build import build_model

        model = build_model(mcfg)
    notes = _load_weights(model, folder, kind, where)
    if folder.config.get("output_stride") not in (None, mcfg.output_stride) and kind == "segmentor":
        notes.append(f"built at output stride {mcfg.output_stride} (config.json: {folder.config['output_stride']}).")
    stem = (folder.repo_id or folder.path.name).split("/")[-1]
    name = "hf_" + "".join(c if c.isalnum() else "_" for c in stem)
    cfg = _config(mcfg, kind, folder.config.get("image_size"), name)
    class_names = _class_names(folder.config, mcfg.num_classes)
    return HFConversion(model.eval(), cfg, kind, where, class_names, notes, folder)


def convert_hf(
    source: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    output_stride: int | None = None,
    class_names: list[str] | None = None,
    local_dir: str | os.PathLike | None = None,
) -> HFConversion:
    """Convert a Hugging Face MobileNetV2 (folder or ``hf:ID``) to a segkit checkpoint at ``out`` (None: do not write).

    Class names come from ``config.json``'s ``id2label`` unless ``class_names`` is given; a 21-class segmentor gets
    PASCAL VOC's palette. See :func:`load_hf_model` for the other arguments.

    Raises:
        HFConversionError: see :func:`load_hf_model`; a number of class names other than the model's classes.
        OutputPathError: ``out`` cannot be written.
    """
    if out is not None:
        from segkit.utils.io import check_output

        inputs = {} if str(source).startswith(HF_PREFIX) else {"MODEL": Path(source)}
        check_output(out, inputs=inputs, flag="OUT")
    conversion = load_hf_model(source, output_stride=output_stride, local_dir=local_dir)
    num_classes = conversion.config.model.num_classes
    if class_names is not None:
        if len(class_names) != num_classes:
            raise HFConversionError(
                f"class_names has {len(class_names)} names but the model has {num_classes} classes."
            )
        conversion.class_names = list(class_names)
    palette = None
    if conversion.kind == "segmentor" and num_classes == 21:
        from segkit.data.classes import VOC_CLASSES, VOC_PALETTE

        palette = VOC_PALETTE[:21].tolist()
        if conversion.class_names is None:
            conversion.class_names = list(VOC_CLASSES)
            conversion.notes.append("21 classes: assumed PASCAL VOC's class names.")
    if out is not None:
        from segkit.checkpoint.format import save_checkpoint

        folder = conversion.folder
        assert folder is not None
        save_checkpoint(
            out,
            conversion.model,
            conversion.config,
            class_names=conversion.class_names,
            palette=palette,
            kind=conversion.kind,
            source={
                "converter": "segkit.convert.hf",
                "repo_id": folder.repo_id,
                "revision": folder.revision,
                "file": folder.weights_file.name,
                "sha256": _sha256(folder.weights_file),
                "architecture": (folder.config.get("architectures") or [None])[0],
                "notes": list(conversion.notes),
            },
        )
    return conversion
