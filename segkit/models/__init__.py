"""Models: backbones -> heads -> the Segmentor, and ``build_model(cfg)``."""

from segkit.models.build import build_backbone, build_model, count_parameters
from segkit.models.segmentor import Segmentor

__all__ = ["Segmentor", "build_backbone", "build_model", "count_parameters"]
