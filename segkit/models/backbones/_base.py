"""What every backbone shares: ``FeatureInfo``, ``NormLayer``, the DeepLab output-stride rule and
:class:`Backbone` (out-feature selection, weight init, freezing, ``norm_eval`` and the dict forward).

Each backbone file keeps only its own layers: it builds an ordered list of layers
(:meth:`Backbone._layers`), their :class:`FeatureInfo` and their stage numbers, and calls
:meth:`Backbone._setup` once. A layer may also publish inner end points (e.g. MobileNetV2's
``layer_4/depthwise_output``) by implementing ``forward_endpoints(x) -> (out, {key: tensor})``.

This module imports nothing from segkit outside ``segkit.models.backbones``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import Tensor, nn

__all__ = [
    "Backbone",
    "FeatureInfo",
    "NormLayer",
    "check_output_stride",
    "count_parameters",
    "dilation_schedule",
    "unwrap_state_dict",
]

NormLayer = Callable[[int], nn.Module]


@dataclass(frozen=True)
class FeatureInfo:
    """One returned feature map: its name, channel count and stride w.r.t. the input."""

    name: str
    channels: int
    stride: int


def check_output_stride(output_stride: object, *, extra_compute: str = "~3x the compute") -> None:
    """Raise the one-line error for an output stride other than 8, 16 or 32."""
    if output_stride not in (8, 16, 32):
        raise ValueError(
            f"output_stride must be 8, 16 or 32, got {output_stride!r}. "
            f"Use 16 (DeepLab default), 8 (denser, {extra_compute}) or 32 (classification)."
        )


def dilation_schedule(strides: Sequence[int], output_stride: int, *, input_stride: int = 1) -> list[tuple[int, int]]:
    """The official DeepLab output-stride rule: ``(stride, rate)`` for every layer.

    Layers are given by their nominal strides, in order; ``input_stride`` is the stride of the
    input to the first one. Once the running stride has reached ``output_stride``, a later strided
    layer gets stride 1 and keeps the previous rate, and every layer after it gets the rate
    multiplied by that stride (TF-slim's ``stack_blocks_dense``, TF DeepLab's MobileNet builders;
    timm's builder does the same). torchvision and smp give the new rate to the layer that lost its
    stride instead; that costs the same but does not reproduce the official weights' outputs.
    """
    schedule: list[tuple[int, int]] = []
    current, rate = input_stride, 1
    for stride in strides:
        if stride > 1 and current == output_stride:
            schedule.append((1, rate))  # keeps the previous rate ...
            rate *= stride  # ... the layers after it get the multiplied rate
        else:
            schedule.append((stride, rate))
            current *= stride
    return schedule


def unwrap_state_dict(obj: object, *, source: str = "checkpoint") -> dict[str, Tensor]:
    """The tensors of a bare state dict: unwraps ``{"state_dict": ...}`` / ``{"model": ...}`` nestings and
    drops a ``module.`` prefix that every key carries (a DDP-wrapped model's)."""
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise ValueError(f"{source}: expected a state dict, got {type(obj).__name__}.")
    if obj and all(isinstance(k, str) and k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return obj


def count_parameters(model: nn.Module, *, trainable_only: bool = True) -> int:
    """Parameters as the paper counts them: trainable weights, BN scale/shift, biases (no running stats)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


class Backbone(nn.Module):
    """Base of segkit's backbones: returns ``dict[str, Tensor]`` and publishes ``feature_info``.

    Subclasses build their layers, then call :meth:`_setup`. Attributes after it: ``out_features``
    (names, in network order), ``feature_info`` (one :class:`FeatureInfo` per returned name),
    ``frozen_stages``, ``norm_eval``.
    """

    out_features: list[str]
    feature_info: list[FeatureInfo]

    def _layers(self) -> Sequence[nn.Module]:
        """The layers in the order the forward pass runs them."""
        raise NotImplementedError

    def _setup(
        self,
        available: Sequence[FeatureInfo],
        out_features: Sequence[str] | None,
        *,
        layer_of: Callable[[str], int],
        default: Sequence[str],
        valid_names: str,
        layer_stage: Sequence[int],
        frozen_stages: int,
        norm_eval: bool,
        nonlinearity: str = "leaky_relu",
    ) -> None:
        """Select the returned features, initialise the weights and freeze the first stages.

        Args:
            available: every feature this backbone can return, in network order.
            out_features: the names asked for; ``None`` returns ``default``.
            layer_of: index (into :meth:`_layers`) of the layer producing a feature name.
            valid_names: how the error message describes the valid names.
            layer_stage: stage number of every layer; layers with ``stage <= frozen_stages`` freeze.
            nonlinearity: passed to ``kaiming_normal_`` (``leaky_relu`` with a=0 and ``relu`` draw alike).
        """
        by_name = {info.name: info for info in available}
        order = [info.name for info in available]
        if out_features is None:
            out_features = list(default)
        unknown = [name for name in out_features if name not in by_name]
        if unknown or not out_features:
            raise ValueError(
                f"out_features {list(out_features)!r} has unknown names {unknown}; valid names are {valid_names}."
            )
        self.out_features = sorted(dict.fromkeys(out_features), key=order.index)
        self.feature_info = [by_name[name] for name in self.out_features]
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self._layer_stage = list(layer_stage)
        # layer index -> [(name, inner key or None)], None meaning the layer's own output
        self._taps: dict[int, list[tuple[str, str | None]]] = {}
        for name in self.out_features:
            inner = name.split("/", 1)[1] if "/" in name else None
            self._taps.setdefault(layer_of(name), []).append((name, inner))
        self._last_needed = max(self._taps)
        self._init_weights(nonlinearity)
        self._freeze_stages()

    @property
    def out_channels(self) -> int:
        """Channels of the deepest returned feature."""
        return self.feature_info[-1].channels

    def _init_weights(self, nonlinearity: str) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity=nonlinearity)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _frozen_layers(self) -> list[nn.Module]:
        return [layer for layer, stage in zip(self._layers(), self._layer_stage) if stage <= self.frozen_stages]

    def _freeze_stages(self) -> None:
        for layer in self._frozen_layers():
            layer.eval()
            for p in layer.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True) -> Backbone:
        super().train(mode)
        if mode:
            for layer in self._frozen_layers():
                layer.eval()
            if self.norm_eval:
                for m in self.modules():
                    if isinstance(m, nn.modules.batchnorm._BatchNorm):
                        m.eval()
        return self

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        # x: [N, 3, H, W], any H and W; each feature: [N, C, ceil(H / stride), ceil(W / stride)]
        outputs: dict[str, Tensor] = {}
        for idx, layer in enumerate(self._layers()):
            taps = self._taps.get(idx)
            if taps is None:
                x = layer(x)
            else:
                inner: dict[str, Tensor] = {}
                if any(key is not None for _, key in taps):
                    x, inner = layer.forward_endpoints(x)
                else:
                    x = layer(x)
                for name, key in taps:
                    outputs[name] = x if key is None else inner[key]
            if idx == self._last_needed:
                break
        return outputs
