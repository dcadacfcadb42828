"""The training methods, by name: the registry ``train``, ``pretrain`` and their options read.

Adding a method: a module with a ``Method`` subclass and its ``Options``, and one line below.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ...errors import TripletnetError
from ...runs.options import coerce
from .base import Method, MethodContext, Statistics

METHODS: dict[str, type[Method]] = {}


def register(method: type[Method]) -> type[Method]:
    """Class decorator: make ``method`` available by its ``name``."""
    METHODS[method.name] = method
    return method


def method_class(name: str) -> type[Method]:
    if name not in METHODS:
        raise TripletnetError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}")
    return METHODS[name]


def methods_taking(option: str) -> list[str]:
    """The methods that have an option called ``option``."""
    return [
        name
        for name, method in METHODS.items()
        if option in {item.name for item in dataclasses.fields(method.Options)}
    ]


def typed_options(name: str, values: dict[str, Any], where: str = "the options") -> Any:
    """The method's Options from a table, refusing options that belong to other methods."""
    method = method_class(name)
    own = {item.name for item in dataclasses.fields(method.Options)}
    for option in values:
        if option not in own:
            flag = "--" + option.replace("_", "-")
            takers = methods_taking(option)
            where_it_goes = (
                f"it goes with --method {' or '.join(takers)}" if takers else "no method takes it"
            )
            raise TripletnetError(f"{flag} does not apply to --method {name}; {where_it_goes}")
    return coerce(method.Options, values, where)


def build_method(name: str, options: Any, context: MethodContext) -> Method:
    return method_class(name)(options, context)


# the methods, in the order --help lists them
from . import random_triplets, batch_mining, semi_supervised, spatial_contrasting  # noqa: E402, F401, I001

__all__ = [
    "METHODS",
    "Method",
    "MethodContext",
    "Statistics",
    "build_method",
    "method_class",
    "methods_taking",
    "register",
    "typed_options",
]
