"""The one way in for weights: build a model from any segkit file, or load a file's tensors into a model.

- :func:`load_model` builds the model a file describes: a segkit checkpoint (training, or converted by
  ``segkit convert``; a segmentor or an ImageNet classifier) or a bare state dict plus a config.
- :func:`load_state_into` loads the tensors of a file whose name and shape match into a built model
  (``train.init_weights``): torchvision ImageNet ``mobilenet_v2`` files, converted checkpoints of both
  kinds and segkit checkpoints.

Every file is read with ``torch.load(weights_only=True)`` (:func:`segkit.checkpoint.format.read_torch_file`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from segkit.checkpoint.format import (
    FORMAT,
    CheckpointError,
    checkpoint_config,
    describe_mismatch,
    load_checkpoint,
    load_weights,
    read_torch_file,
)
from segkit.config import Config, ConfigError, apply_overrides, config_from_dict, load_config
from segkit.data.classes import VOC_CLASSES
from segkit.evaluation.image import attach_predict
from segkit.models.backbones import MobileNetV2, load_backbone_state
from segkit.models.backbones._base import unwrap_state_dict
from segkit.models.build import build_classifier, build_model, last_layer_note
from segkit.models.classifier import MobileNetV2Classifier
from segkit.utils.cache import ZOO_PREFIX, zoo_checkpoint_path

__all__ = ["LoadReport", "bare_state_dict", "load_classifier", "load_eval_model", "load_model", "load_state_into"]

KINDS = ("segmentor", "classifier")


def bare_state_dict(obj: Any, source: str = "state dict") -> dict[str, Tensor]:
    """The tensors of a bare state dict (``{name: tensor}``, possibly under 'state_dict' / 'model', DDP's
    ``module.`` prefix removed); CheckpointError when ``obj`` is something else."""
    try:
        state = unwrap_state_dict(obj, source=source)
    except ValueError:
        state = None
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f"{source} holds neither a segkit checkpoint nor a state dict ({{name: tensor}}).")
    prefix = "module."  # saved from a DDP-wrapped model
    if all(k.startswith(prefix) for k in state):
        state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def _overrides(overrides: Sequence[str] | Mapping[str, Any]) -> list[str] | dict[str, Any]:
    return dict(overrides) if isinstance(overrides, Mapping) else list(overrides)


def _config(config: str | os.PathLike | Config, overrides: Sequence[str] | Mapping[str, Any]) -> Config:
    if isinstance(config, Config):
        return config_from_dict(apply_overrides(config.to_dict(), _overrides(overrides))) if overrides else config
    return load_config(config, _overrides(overrides) or None)


def load_model(
    path: str | os.PathLike,
    *,
    config: str | os.PathLike | Config | None = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    device: str | torch.device | None = None,
    fast: bool = False,
    qat: bool = True,
) -> nn.Module:
    """Build the model a file describes, load its weights strictly and return it in eval mode.

    A quantization-aware training checkpoint (``train.qat: true`` in its config) gives a
    :class:`segkit.models.qat.QatModel` (fake int8, ``precision`` "fake-int8"), or with ``qat=False`` the plain
    float model holding the QAT-fine-tuned weights (the observers dropped; what a recalibrating format
    starts from).

    A ``"segmentor"`` checkpoint (training, or a converted DeepLab model) gives a
    :class:`~segkit.models.Segmentor`; a ``"classifier"`` one (a converted ImageNet model) a
    :class:`~segkit.models.classifier.MobileNetV2Classifier`. A bare state dict needs ``config``.
    torchvision's ImageNet ``mobilenet_v2`` files initialise a backbone instead: ``train.init_weights``,
    :func:`load_state_into` or :func:`segkit.models.backbones.load_torchvision_weights`.

    Args:
        path: a segkit checkpoint, or a bare state dict with ``config``.
        config: a config name, YAML path or :class:`Config`, for a bare state dict only.
        overrides: ``["section.key=value", ...]`` or ``{"section.key": value}`` applied to the config
            (the checkpoint's own, or ``config``), e.g. ``data.root=...`` or ``model.output_stride=8``.
        device: where to put the model (None: the CPU).
        fast: run it through :func:`segkit.optimize_for_inference` (BN folded into the convs,
            channels_last): the same predictions, about twice as fast on a CPU. Ignored for a QAT model.
        qat: for a QAT checkpoint, False gives the float model with the fine-tuned weights.

    Returns:
        The model in eval mode, with attributes ``segkit_config`` (the effective :class:`Config`),
        ``class_names`` and ``palette`` (None when unknown); a segmentation model also has
        ``predict(image, probs=False)`` (:func:`segkit.evaluation.image.predict_image`): the label map of a path,
        PIL image or RGB uint8 array at its size, under the checkpoint's ``eval`` protocol.

    Raises:
        CheckpointError: missing or unreadable file, unknown kind, or weights that do not fit.
        ConfigError: a bad config name or override, or ``config`` given for a segkit checkpoint.
    """
    path = Path(path)
    if config is None:
        ckpt = load_checkpoint(path)
        kind = ckpt.get("kind", "segmentor")
        if kind not in KINDS:
            raise CheckpointError(
                f"{path} holds a checkpoint of unknown kind {kind!r}; segkit writes 'segmentor' "
                "and 'classifier' checkpoints."
            )
        cfg = checkpoint_config(ckpt)
        if overrides:
            try:
                cfg = config_from_dict(apply_overrides(ckpt["config"], _overrides(overrides)))
            except ConfigError as exc:
                raise ConfigError(f"Overriding the config stored in {path}: {exc}") from None
        class_names, palette = ckpt.get("class_names"), ckpt.get("palette")
    else:
        obj = read_torch_file(path, what="state dict")
        if isinstance(obj, dict) and obj.get("format") == FORMAT:
            raise ConfigError(
                f"{path} is a segkit checkpoint that carries its own config; drop --config "
                "(change data or eval settings with --set section.key=value)."
            )
        ckpt = {"model": bare_state_dict(obj, str(path))}
        kind, cfg = "segmentor", _config(config, overrides)
        class_names = list(VOC_CLASSES) if cfg.model.num_classes == len(VOC_CLASSES) else None
        palette = None
    model = build_classifier(cfg) if kind == "classifier" else build_model(cfg)
    if kind == "segmentor" and cfg.train.qat:
        model, cfg = _qat_model(model, ckpt, cfg, qat)
    else:
        load_weights(model, ckpt, cfg)
    model = model.to("cpu" if device is None else device).eval()
    if fast and not cfg.train.qat:
        from segkit.models.fuse import optimize_for_inference

        model = optimize_for_inference(model, inplace=True)
    model.segkit_config = cfg
    model.class_names = class_names
    model.palette = palette
    if kind == "segmentor":  # model.predict(image, probs=False): the checkpoint's protocol on one image
        attach_predict(model)
    return model


def _qat_model(model: nn.Module, ckpt: dict[str, Any], cfg: Config, qat: bool) -> tuple[nn.Module, Config]:
    """A QAT checkpoint's fake-quant model (``qat``) or its float model with the fine-tuned weights."""
    import dataclasses

    from segkit.models import qat as qat_ops

    if not qat:
        load_weights(model, {**ckpt, "model": qat_ops.float_state_dict(ckpt["model"])}, cfg)
        return model, dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, qat=False))
    qat_ops.require_deploy("A quantization-aware training checkpoint")
    prepared = qat_ops.prepare(model, cfg)
    qat_ops.fit_observers(prepared, ckpt["model"])
    load_weights(prepared, ckpt, cfg)
    return prepared, cfg


def load_eval_model(checkpoint: str | os.PathLike, **kwargs: Any) -> tuple[nn.Module, Config]:
    """:func:`load_model` for a segmentation model, returning ``(model, model.segkit_config)``.

    Raises:
        CheckpointError: as :func:`load_model`, and for a classifier checkpoint.
    """
    model = load_model(checkpoint, **kwargs)
    if isinstance(model, MobileNetV2Classifier):
        raise CheckpointError(
            f"{checkpoint} holds a 'classifier' checkpoint (an ImageNet model), not a "
            "segmentation model; use it as train.init_weights, or load it with segkit.load_model."
        )
    return model, model.segkit_config


def load_classifier(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> MobileNetV2Classifier:
    """:func:`load_model` for a checkpoint of kind ``"classifier"`` (CheckpointError for any other kind)."""
    model = load_model(path, device=device)
    if not isinstance(model, MobileNetV2Classifier):
        raise CheckpointError(
            f"{path} holds a 'segmentor' checkpoint, not a classifier; load segmentation models with segkit.load_model."
        )
    return model


@dataclass
class LoadReport:
    """What :func:`load_state_into` loaded: counts and key lists (``missing``: model keys left as they were)."""

    source: str
    loaded: int
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        """The one-line summary the training log prints."""
        m, u = self.missing, self.unexpected
        text = (
            f"init_weights {self.source}: loaded {self.loaded} tensors; missing {len(m)}: {m[:8]}"
            f"{' ...' if len(m) > 8 else ''}; unexpected {len(u)}: {u[:8]}{' ...' if len(u) > 8 else ''}"
        )
        return " ".join([text, *self.notes])


def _read_state(path_or_state: str | os.PathLike | Mapping[str, Any]) -> tuple[dict[str, Tensor], str]:
    if isinstance(path_or_state, Mapping):
        obj, source = dict(path_or_state), "state dict"
    else:
        source = str(path_or_state)
        if source.startswith(ZOO_PREFIX):  # a zoo model: its converted checkpoint in the cache (segkit.zoo fills it)
            name = source[len(ZOO_PREFIX) :]
            cached = zoo_checkpoint_path(name)
            if not cached.is_file():
                raise CheckpointError(
                    f"train.init_weights={source}: not in segkit's cache yet ({cached}); `segkit train` fetches it, "
                    f"or run `segkit zoo --fetch {name}` (Python: segkit.zoo.fetch_checkpoint({name!r})) first."
                )
            source = str(cached)
        if not Path(source).is_file():
            raise CheckpointError(
                f"train.init_weights file not found: {source}. Pass a torchvision mobilenet_v2 "
                "ImageNet file, a converted checkpoint or a segkit checkpoint."
            )
        obj = read_torch_file(source, what="train.init_weights file")
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        return bare_state_dict(obj.get("model"), source), source
    return bare_state_dict(obj, source), source


def load_state_into(
    model: nn.Module,
    path_or_state: str | os.PathLike | Mapping[str, Any],
    *,
    log: Any = print,
    exclude: Sequence[str] = (),
) -> LoadReport:
    """Load the tensors of a file (or an in-memory state dict) whose name and shape match into ``model``.

    A segkit segmentor's weights (a checkpoint, a converted DeepLab model, or a state dict with
    ``backbone.*`` keys) go into every matching tensor, and must share backbone weights with ``model``.
    Anything else is read as an ImageNet MobileNetV2 classifier (a torchvision file or a converted
    ``"classifier"`` checkpoint) and loads into ``model.backbone``, which must be a MobileNetV2 that at
    least half of the file's tensors fit. The rest keeps its initialisation; the report is logged.

    Args:
        model: a built segkit model (not DDP-wrapped).
        path_or_state: a file path, or a state dict / segkit checkpoint dict.
        log: called with the one-line report.
        exclude: key prefixes never loaded (e.g. the logits convs, ``segkit.models.build.init_exclude``).

    Raises:
        CheckpointError: unreadable file, or weights that do not fit as described above.
    """
    state, source = _read_state(path_or_state)
    notes: list[str] = []
    if any(k.startswith("backbone.") for k in state):  # a segkit segmentor: load everything that fits
        own = model.state_dict()
        usable = {
            k: v for k, v in state.items() if k in own and own[k].shape == v.shape and not k.startswith(tuple(exclude))
        }
        if not any(k.startswith("backbone.") for k in usable):
            raise CheckpointError(
                f"{source} shares no backbone weights with this model ({describe_mismatch(model, state)})."
            )
        model.load_state_dict(usable, strict=False)
        missing, unexpected = sorted(set(own) - set(usable)), sorted(set(state) - set(usable))
        loaded = len(usable)
        note = last_layer_note(model, state, usable)
        notes += [note] if note else []
    else:  # ImageNet classifier: torchvision file or a converted segkit "classifier" checkpoint
        backbone = getattr(model, "backbone", None)
        if not isinstance(backbone, MobileNetV2):
            raise CheckpointError(
                f"{source} is not a segkit segmentor checkpoint, so it is read as an ImageNet MobileNetV2 classifier, "
                f"but this model's backbone is {type(backbone).__name__}. ImageNet initialisation is supported "
                "for model.backbone=mobilenet_v2; for other backbones pass a segkit checkpoint of the same backbone."
            )
        missing, unexpected = load_backbone_state(backbone, state, strict=False, source=source)
        total = len(backbone.state_dict())
        loaded = total - len(missing)
        if loaded < total // 2:
            raise CheckpointError(
                f"{source}: only {loaded} of the backbone's {total} tensors fit (unexpected: {unexpected[:6]}); it is "
                "not a MobileNetV2 of this width. Check model.width_mult / model.round_nearest against the file."
            )
        missing = [f"backbone.{k}" for k in missing] + ["head.*, aux_head.* (not in an ImageNet file)"]
    report = LoadReport(source, loaded, missing, unexpected, notes)
    log(report.line())
    return report
