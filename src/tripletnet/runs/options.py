"""Options as dataclass fields that describe themselves: one source for the command line's
flags, the TOML/JSON configuration and their checks.

``option(default, help, ...)`` makes a field whose metadata carries its help text, its choices
and its flag; ``flags(cls)`` lists them for the command line; ``coerce(cls, values)`` checks the
types of values read from a file.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import TripletnetError


def option(
    default: Any,
    help: str,
    choices: tuple[str, ...] | None = None,
    flag: str | None = None,
) -> Any:
    """A dataclass field for a user-facing option (``flag``: the short form, e.g. ``-k``)."""
    return field(default=default, metadata={"help": help, "choices": choices, "flag": flag})


@dataclass(frozen=True)
class Flag:
    """What the command line needs to offer one option."""

    name: str  # the field's name, e.g. "batch_size"
    kind: Any  # int, float, str, bool or dict
    default: Any
    help: str
    choices: tuple[str, ...] | None
    short: str | None

    @property
    def long(self) -> str:
        return "--" + self.name.replace("_", "-")


def _kind(annotation: Any) -> Any:
    """int, float, str, bool or dict, from ``int | None`` and the like."""
    kinds = [a for a in typing.get_args(annotation) or (annotation,) if a is not type(None)]
    kind = typing.get_origin(kinds[0]) or kinds[0]
    return kind


def flags(cls: type) -> Iterator[Flag]:
    """The options of a dataclass made with ``option`` fields, in declaration order."""
    hints = typing.get_type_hints(cls)
    for item in dataclasses.fields(cls):
        if "help" in item.metadata:
            yield Flag(
                item.name,
                _kind(hints[item.name]),
                item.default,
                item.metadata["help"],
                item.metadata["choices"],
                item.metadata["flag"],
            )


def _has_type(value: Any, annotation: Any) -> bool:
    """Is ``value`` (read from JSON or TOML) of the field type ``annotation``."""
    allowed = [typing.get_origin(a) or a for a in typing.get_args(annotation) or (annotation,)]
    if value is None:
        return type(None) in allowed
    if isinstance(value, bool):
        return bool in allowed
    if isinstance(value, int):
        return int in allowed or float in allowed
    return any(kind is not type(None) and isinstance(value, kind) for kind in allowed)


def coerce(cls: type, values: Mapping[str, Any], where: str) -> Any:
    """``cls(**values)``, refusing unknown names and values of the wrong type (ints are
    accepted for floats), with messages that name ``where`` the values came from."""
    if not isinstance(values, Mapping):
        raise TripletnetError(f"{where} must be a table of options, got {values!r}")
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise TripletnetError(
            f"{where}: unknown option(s) {', '.join(unknown)}; known: {', '.join(hints)}"
        )
    for name, value in values.items():
        if not _has_type(value, hints[name]):
            raise TripletnetError(
                f"{where}: {name} = {value!r} is not a valid value ({hints[name]})"
            )
        choices = next(f for f in dataclasses.fields(cls) if f.name == name).metadata.get("choices")
        if choices and value is not None and value not in choices:
            raise TripletnetError(
                f"{where}: {name} must be one of {', '.join(choices)}, got {value!r}"
            )
    converted = {
        name: float(value) if _kind(hints[name]) is float and isinstance(value, int) else value
        for name, value in values.items()
    }
    return cls(**converted)


def check_range(
    name: str, value: float | None, above: float | None = None, below: float | None = None
) -> None:
    """Refuse NaN and infinity, and values outside [0, ``below``): ``above`` (exclusive lower
    bound) replaces 0 where given; None ``value``: nothing to check."""
    if value is None:
        return
    low_ok = value > above if above is not None else value >= 0
    if not math.isfinite(value) or not low_ok or (below is not None and not value < below):
        bound = f"> {above:g}" if above is not None else ">= 0"
        upper = f" and < {below:g}" if below is not None else ""
        raise TripletnetError(f"{name} must be a finite number {bound}{upper}, got {value}")


def check_count(name: str, value: int | None, most: int | None = None) -> None:
    """Refuse a count below 1 (or above ``most``); None: nothing to check."""
    if value is None:
        return
    if value < 1:
        raise TripletnetError(f"--{name} must be at least 1, got {value}")
    if most is not None and value > most:
        raise TripletnetError(f"--{name} must be at most {most:,}, got {value:,}")
