"""The model zoo: the official models by name (``segkit zoo``, ``zoo:NAME``), fetched, checked, converted, cached.

    from segkit.zoo import fetch_checkpoint
    path = fetch_checkpoint("mobilenet_v2_1.0_224")     # a converted checkpoint in ~/.cache/segkit/zoo/

The zoo sits above the converters (it calls them); the cache layout is in :mod:`segkit.utils.cache`, so the
checkpoint loader reads ``train.init_weights: zoo:NAME`` from the cache without importing this package, and
``segkit train`` fetches it first.
"""

from segkit.zoo.fetch import fetch_checkpoint, source_path
from segkit.zoo.registry import ZOO, ZooError, ZooModel, get_model

__all__ = ["ZOO", "ZooError", "ZooModel", "fetch_checkpoint", "get_model", "source_path"]
