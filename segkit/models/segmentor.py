"""The segmentor: backbone -> head (+ DeepLabV3+ decoder, auxiliary head) -> logits at the input resolution."""

from __future__ import annotations

from torch import Tensor, nn

from segkit.models.resize import ResizeMode, resize_bilinear


class Segmentor(nn.Module):
    """Composes built modules; knows nothing about how they were configured.

    Args:
        backbone: returns ``dict[str, Tensor]`` and publishes ``feature_info``.
        head: maps the ``head_in`` feature to logits.
        head_in: name of the backbone feature the head reads.
        decoder_in: name of the low-level feature a head with a decoder reads as well
            (``head(features[head_in], features[decoder_in])``); ``None`` without a decoder.
        aux_head: optional auxiliary head, run only in training mode.
        aux_in: name of the feature the auxiliary head reads.
        align_corners: bilinear upsampling convention (the official models use True).
        resize_mode: 'pytorch' (``F.interpolate`` with ``align_corners``) or 'tf_legacy' (TF1's resize without
            half-pixel centers; :mod:`segkit.models.resize`): how the logits are upsampled to the input size.
        norm_eval: keep every norm layer (backbone and heads) in eval mode in ``train()``: statistics
            frozen, as the official recipe's ``fine_tune_batch_norm=False``.

    ``forward`` returns ``{"out": logits}`` (``[N, num_classes, H, W]``, the input size) and,
    in training mode with an auxiliary head, ``"aux"`` as well (torchvision's convention).
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        *,
        head_in: str,
        decoder_in: str | None = None,
        aux_head: nn.Module | None = None,
        aux_in: str | None = None,
        align_corners: bool = True,
        resize_mode: ResizeMode = "pytorch",
        norm_eval: bool = False,
    ) -> None:
        super().__init__()
        names = [info.name for info in backbone.feature_info]
        for key, name in (("head_in", head_in), ("decoder_in", decoder_in), ("aux_in", aux_in)):
            if name is not None and name not in names:
                raise ValueError(f"{key}={name!r} is not a feature the backbone returns; it returns {names}.")
        if aux_head is not None and aux_in is None:
            raise ValueError("aux_head needs aux_in, the name of the feature it reads.")
        self.backbone = backbone
        self.head = head
        self.aux_head = aux_head
        self.head_in = head_in
        self.decoder_in = decoder_in
        self.aux_in = aux_in
        self.align_corners = align_corners
        self.resize_mode = resize_mode
        self.norm_eval = norm_eval

    def train(self, mode: bool = True) -> Segmentor:
        super().train(mode)
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def predict(self, image: object, *, probs: bool = False) -> object:
        """The label map of one image (path, PIL image or RGB uint8 array) under the checkpoint's protocol.

        :func:`segkit.load_model` replaces this with :func:`segkit.evaluation.image.predict_image` bound to the
        model, which knows the checkpoint's ``eval`` protocol and normalisation; a model built from a config
        alone does not, so it refuses with the fix.
        """
        raise NotImplementedError(
            "Segmentor.predict needs the checkpoint's eval protocol and normalisation: load the model with "
            "segkit.load_model(path), or call segkit.evaluation.image.predict_image(model, image, cfg=cfg)."
        )

    def _upsample(self, logits: Tensor, size: tuple[int, int]) -> Tensor:
        return resize_bilinear(logits, size, align_corners=self.align_corners, mode=self.resize_mode)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        size = (x.shape[-2], x.shape[-1])
        features = self.backbone(x)
        if self.decoder_in is None:
            logits = self.head(features[self.head_in])
        else:
            logits = self.head(features[self.head_in], features[self.decoder_in])
        out = {"out": self._upsample(logits, size)}
        if self.aux_head is not None and self.training:
            out["aux"] = self._upsample(self.aux_head(features[self.aux_in]), size)
        return out
