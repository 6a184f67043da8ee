"""Checkpoints: the file format (:mod:`~segkit.checkpoint.format`) and the one path that loads a model from a
checkpoint, a converted official file or a bare state dict (:mod:`~segkit.checkpoint.load`).
"""
