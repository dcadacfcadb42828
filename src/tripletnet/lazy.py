"""Packages that import their parts when first used, so that importing one light part (the
image decoder, the ONNX embedder) does not import torch and everything else."""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable
from typing import Any


class _LazyPackage(types.ModuleType):
    """A package whose exports named like their own submodule (``fit`` of ``.fit``) stay the
    exports, as an eager ``from .fit import fit`` leaves them, when the import system binds
    the submodule to the package's attribute on importing it."""

    _lazy_where: dict[str, str]

    def __setattr__(self, name: str, value: Any) -> None:
        if (
            isinstance(value, types.ModuleType)
            and value.__name__ == f"{self.__name__}.{name}"
            and self.__dict__.get("_lazy_where", {}).get(name) == f".{name}"
        ):
            value = getattr(value, name)
        super().__setattr__(name, value)


def lazy_exports(package: str, where: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports each name of ``where`` (name ->
    its submodule, e.g. ``".arrays"``) on first use."""

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name], package), name)
        setattr(importlib.import_module(package), name, value)  # the next lookup is direct
        return value

    module = sys.modules[package]
    if any(where[name] == f".{name}" for name in where):
        module.__class__ = _LazyPackage
        module._lazy_where = where  # type: ignore[attr-defined]
    return __getattr__


def resolve(where: str, package: str | None = None) -> Any:
    """The object that ``where`` ("module:Name", the module relative to ``package`` when it
    starts with a dot) names, its module imported on first use."""
    module, _, name = where.partition(":")
    return getattr(importlib.import_module(module, package), name)
