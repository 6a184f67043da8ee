"""Quantization-aware training with PyTorch's PT2E flow (torchao) and litert-torch's int8 quantizer.

A float segkit model is exported (``torch.export``, batch and image size dynamic) and prepared with
``prepare_qat_pt2e``: fake quantization of the weights (int8, symmetric, per output channel) and of the
activations (int8, moving-average ranges). :class:`QatModel` wraps the graph so that ``model.train()`` /
``model.eval()`` work as for any segkit model (BatchNorm and dropout follow the mode; observers only
update while training), and applies the ``qat`` section's freeze schedule. :func:`convert` turns the
trained fake-quant graph into a PT2E int8 module (``convert_pt2e``), which litert-torch writes as a
full-integer .tflite without a new calibration.

Its state dict is the float model's (same names) plus the observers (``activation_post_process_N.*``);
a checkpoint of it loads strictly into :func:`prepare` of the same config.
"""

from __future__ import annotations

import collections
import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from segkit.config import Config, ConfigError

PRECISION = "fake-int8"
INSTALL = "pip install 'segkit-deeplab[deploy]'"
# Smallest image side the exported graph accepts (OS16 image pooling needs a feature map larger than 1x1).
MIN_SIDE = 17
MAX_SIDE = 4096

_BATCH_NORM = "aten.batch_norm.default"  # args: input, weight, bias, mean, var, training, momentum, eps, cudnn
_DROPOUT = "aten.dropout.default"  # args: input, p, train


def require_deploy(what: str = "train.qat=true") -> None:
    """ConfigError (one line) unless torchao and litert-torch import."""
    from segkit.utils.quiet import quiet_libraries

    try:
        with quiet_libraries():  # TensorFlow's C++ logs a few lines as litert-torch loads
            import litert_torch.quantize.pt2e_quantizer  # noqa: F401
            import torchao.quantization.pt2e.quantize_pt2e  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"{what} needs torchao and litert-torch ({exc.name} is missing): {INSTALL}.") from None


def pt2e_quantizer(is_qat: bool = False, per_channel: bool = True) -> Any:
    """litert-torch's PT2E quantizer: symmetric int8, per-channel weights (QAT: fake-quant observers)."""
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config

    config = get_symmetric_quantization_config(is_per_channel=per_channel, is_qat=is_qat)
    return PT2EQuantizer().set_global(config)


@contextlib.contextmanager
def litert_qat_workaround() -> Iterator[None]:
    """Let litert-torch's quantizer annotate conv+BN for QAT under torch >= 2.10's ``torch.export``.

    litert-torch 0.10's ``_do_annotate_conv_bn`` (pt2e_quantizer_utils.py) passes a plain function to
    torchao's ``_get_aten_graph_module_for_pattern``, which exports it; ``torch.export.export`` now refuses
    anything but an ``nn.Module`` ("Expected mod to be an instance of torch.nn.Module, got <class
    'function'>"), so ``prepare_qat_pt2e(gm, PT2EQuantizer().set_global(
    get_symmetric_quantization_config(is_qat=True)))`` fails (upstream: google-ai-edge/litert-torch issue
    #801, "Failed to prepare model for QAT in Pt2e"). While this context is open, a function pattern is
    wrapped in torchao's ``WrapperModule`` first (as torchao's own callers do); nothing else changes.
    """
    import litert_torch.quantize.pt2e_quantizer_utils as utils
    from torchao.quantization.pt2e.export_utils import WrapperModule

    original = utils._get_aten_graph_module_for_pattern

    def wrapped(pattern: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(pattern, nn.Module):
            pattern = WrapperModule(pattern)
        return original(pattern, *args, **kwargs)

    utils._get_aten_graph_module_for_pattern = wrapped
    try:
        yield
    finally:
        utils._get_aten_graph_module_for_pattern = original


def check_config(cfg: Config) -> None:
    """The settings QAT cannot train with (the config checks catch the rest); ConfigError on one line."""
    if not cfg.train.init_weights:
        raise ConfigError(
            "train.qat=true fine-tunes a trained float model: set train.init_weights to a float segkit checkpoint "
            "(e.g. work_dirs/<float run>/best.pth)."
        )
    require_deploy()


def example_input(cfg: Config, batch: int = 2) -> Tensor:
    """The export example: ``batch`` random images at the training crop size."""
    side = max(cfg.data.crop_size, MIN_SIDE)
    return torch.randn(batch, 3, side, side, generator=torch.Generator().manual_seed(0))


def prepare(model: nn.Module, cfg: Config) -> QatModel:
    """Export ``model`` (a float segkit segmentor on the CPU) and insert fake quantization: a :class:`QatModel`.

    The graph depends on the architecture only (not on the weights), so preparing a freshly built
    model and loading a QAT checkpoint's state dict restores a trained one exactly.
    """
    require_deploy()
    from torch.export import Dim
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

    model.train()
    dims = {
        0: Dim("B", min=1, max=1024),
        2: Dim("H", min=MIN_SIDE, max=MAX_SIDE),
        3: Dim("W", min=MIN_SIDE, max=MAX_SIDE),
    }
    example = example_input(cfg).to(next(model.parameters()).device)
    exported = torch.export.export(model, (example,), dynamic_shapes=(dims,)).module()
    with litert_qat_workaround():
        graph = prepare_qat_pt2e(exported, pt2e_quantizer(is_qat=True, per_channel=cfg.qat.per_channel))
    return QatModel(graph, model, cfg)


class QatModel(nn.Module):
    """A fake-quantized segkit model: ``forward(x) -> {"out": logits}``, train/eval like the float model.

    ``train()``: BatchNorm uses batch statistics (until ``qat.freeze_bn_iter``), dropout is on, observers
    update their ranges (until ``qat.freeze_observer_iter``). ``eval()``: BatchNorm uses its running
    statistics, dropout is off, observers are frozen; fake quantization is always on.
    """

    precision = PRECISION
    runtime = "pytorch"
    quantization = "qat"

    def __init__(self, graph: nn.Module, float_model: nn.Module, cfg: Config) -> None:
        super().__init__()
        self.graph = graph
        self._float = (float_model,)  # shares its parameters with the graph; not a submodule
        self.freeze_bn_iter = cfg.qat.freeze_bn_iter
        self.freeze_observer_iter = cfg.qat.freeze_observer_iter
        self.bn_frozen = False
        self.observers_frozen = False
        # BN nodes exported in eval mode (model.norm_eval, frozen stages) stay so in training
        self._fixed_bn = {n.name for n in self._nodes(_BATCH_NORM) if not n.args[5]}
        self._applied: tuple[bool, bool, bool] | None = None
        self.training = True
        self._set_modes()

    @property
    def float_model(self) -> nn.Module:
        """The float model the graph was exported from; its parameters *are* the graph's (for the
        optimiser's parameter groups, which need the module types). Its BN statistics are stale."""
        return self._float[0]

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return self.graph(x)

    def _nodes(self, target: str) -> list[torch.fx.Node]:
        return [n for n in self.graph.graph.nodes if n.op == "call_function" and str(n.target) == target]

    def _set_modes(self) -> None:
        """Set BN/dropout modes in the graph and the observers' switches, when they changed."""
        from torchao.quantization.pt2e import disable_observer, enable_observer

        state = (self.training and not self.bn_frozen, self.training, self.training and not self.observers_frozen)
        if state == self._applied:
            return
        bn_training, dropout, observe = state
        for node in self._nodes(_BATCH_NORM):
            node.update_arg(5, bn_training and node.name not in self._fixed_bn)
        for node in self._nodes(_DROPOUT):
            node.update_arg(2, dropout)
        self.graph.recompile()
        self.graph.apply(enable_observer if observe else disable_observer)
        self._applied = state

    def train(self, mode: bool = True) -> QatModel:
        self.training = mode  # the graph module refuses train()/eval(): the modes live in its nodes
        self._set_modes()
        return self

    def schedule(self, iteration: int) -> None:
        """Freeze BN statistics / observer ranges from the configured iterations on (0-based step index)."""
        self.bn_frozen = self.freeze_bn_iter is not None and iteration >= self.freeze_bn_iter
        self.observers_frozen = self.freeze_observer_iter is not None and iteration >= self.freeze_observer_iter
        self._set_modes()

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self.graph.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        # The observers read their version from the state dict's _metadata (absent from a dict rebuilt for a
        # checkpoint); without it they reset ``eps`` to float32's. The graph is the same: take its own versions.
        state = collections.OrderedDict(state_dict)
        state._metadata = getattr(state_dict, "_metadata", None) or self.graph.state_dict()._metadata
        result = self.graph.load_state_dict(state, strict=strict, assign=assign)
        self._applied = None  # the observers' switches came with the state: set them again
        self._set_modes()
        return result


def apply_schedule(model: nn.Module, iteration: int) -> None:
    """:meth:`QatModel.schedule` for a QAT model (possibly DDP-wrapped); nothing for a float model."""
    model = getattr(model, "module", model)
    if isinstance(model, QatModel):
        model.schedule(iteration)


def fit_observers(model: nn.Module, state: dict[str, Tensor]) -> None:
    """Give a freshly prepared model's observer buffers the shapes of ``state``'s (per-channel ranges are
    empty until the first observed batch), so that ``state`` loads strictly."""
    model = getattr(model, "module", model)
    if not isinstance(model, QatModel):
        return
    own = model.state_dict(keep_vars=True)
    for key, value in state.items():
        mine = own.get(key)
        if key.startswith("activation_post_process_") and mine is not None and mine.shape != value.shape:
            with torch.no_grad():
                mine.resize_(value.shape)


def float_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The float model's tensors of a QAT state dict (the observers dropped)."""
    return {k: v for k, v in state.items() if not k.startswith("activation_post_process_")}


def convert(model: QatModel) -> nn.Module:
    """The int8 PT2E module (``convert_pt2e``) of a trained QAT model: quantize/dequantize ops with the
    trained ranges, BN folded; its input is the float model's ([N, 3, H, W] normalised)."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    model.eval()
    graph = copy.deepcopy(model.graph)
    return convert_pt2e(graph, fold_quantize=False)


__all__ = [
    "PRECISION",
    "QatModel",
    "apply_schedule",
    "check_config",
    "convert",
    "example_input",
    "fit_observers",
    "float_state_dict",
    "litert_qat_workaround",
    "prepare",
    "pt2e_quantizer",
    "require_deploy",
]
