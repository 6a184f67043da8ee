"""Lazy package attributes (PEP 562): a package's public names imported from their defining module on first use.

A package ``__init__`` that re-exports heavy modules (torch, runtimes) makes every ``import segkit.<pkg>.<light>``
pay for them; with :func:`lazy_exports` it imports nothing until a name is used::

    __getattr__, __dir__ = lazy_exports(__name__, {"export_onnx": "segkit.export.onnx", ...})
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``exports`` maps each public name to the module defining it; a
    name is imported on first access and then kept in the package's namespace.

    A public name that is also the name of its defining submodule (``segkit.export.verify``, the function, defined in
    the module ``segkit.export.verify``) keeps meaning the name once the submodule is imported, as it would with
    eager imports: the import system's ``setattr(package, "verify", module)`` stores the module's ``verify``.
    """
    shadowed = {name for name, module in exports.items() if module == f"{package}.{name}"}

    class LazyPackage(types.ModuleType):
        def __setattr__(self, name: str, value: Any) -> None:
            if name in shadowed and isinstance(value, types.ModuleType) and value.__name__ == f"{package}.{name}":
                value = getattr(value, name)
            super().__setattr__(name, value)

    if shadowed:
        sys.modules[package].__class__ = LazyPackage

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
