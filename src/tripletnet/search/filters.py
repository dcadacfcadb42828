"""What an item carries (a label, metadata) and how a search is restricted by them.

Labels are whole numbers from 0 to MAX_LABEL (``check_label``; ``parse_label`` also reads one
from a form field or a query string). An item's metadata is a small JSON object of scalars (``{"shop": "lyon", "year": 2024}``).
A :class:`Filter` keeps the items whose label is one of ``labels`` and, for every field of
``where``, whose metadata holds that value (or one of a list of values). Values compare by
JSON type: ``true`` does not match ``1``, nor ``"1"``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import TripletnetError

Scalar = str | int | float | bool | None
MAX_FIELDS = 32
MAX_KEY = 64
MAX_TEXT = 1000
MAX_CHOICES = 1000
MAX_LABEL = 2**31 - 1
LABEL_RULE = f"label must be an integer from 0 to {MAX_LABEL}"


class InvalidInput(TripletnetError, ValueError):
    """A vector, item, query or filter that breaks a rule of the index (an HTTP 422)."""


def check_label(label: object) -> int | None:
    """An item's label: None, or a whole number from 0 to MAX_LABEL (a float such as 3.7 or
    1e20 is refused, never truncated)."""
    if label is None:
        return None
    if isinstance(label, bool) or not isinstance(label, int | np.integer | float | np.floating):
        raise InvalidInput(f"a label must be an integer class id, got {label!r}")
    if isinstance(label, float | np.floating) and not float(label).is_integer():
        raise InvalidInput(f"a label must be an integer class id, got {label!r}")
    if not 0 <= label <= MAX_LABEL:
        raise InvalidInput(f"a label must be from 0 to {MAX_LABEL}, got {label!r}")
    return int(label)


def parse_label(value: Any) -> int | None:
    """A label from JSON or from text (a form field, a query string): None, an int, or a string
    of one, in 0..MAX_LABEL."""
    if value is None:
        return None
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        number = int(value)
    if number is None or not 0 <= number <= MAX_LABEL:
        raise InvalidInput(f"{LABEL_RULE}, got {value!r}")
    return number


def _scalar(value: Any, where: str) -> Scalar:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(f"{where} must be finite, got {value!r}")
        return value
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise InvalidInput(f"{where} must be at most {MAX_TEXT} characters")
        return value
    raise InvalidInput(
        f"{where} must be a string, number, true, false or null, got {type(value).__name__}"
    )


def _key(key: Any, what: str) -> str:
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY or not key.isprintable():
        raise InvalidInput(f"{what} names must be printable strings of 1 to {MAX_KEY} characters")
    return key


def check_metadata(metadata: Any) -> dict[str, Scalar] | None:
    """An item's metadata: None or an object of at most MAX_FIELDS scalar fields."""
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise InvalidInput(f"metadata must be a JSON object, got {type(metadata).__name__}")
    if len(metadata) > MAX_FIELDS:
        raise InvalidInput(f"metadata may hold at most {MAX_FIELDS} fields, got {len(metadata)}")
    return {
        _key(key, "metadata field"): _scalar(value, f"metadata.{key}")
        for key, value in metadata.items()
    }


def _same(a: Scalar, b: Scalar) -> bool:
    """Equal as JSON values: a boolean never equals a number."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


@dataclass(frozen=True)
class Filter:
    """Items whose label is in ``labels`` (None: any) and whose metadata matches ``where``."""

    labels: frozenset[int] | None = None
    where: tuple[tuple[str, tuple[Scalar, ...]], ...] = field(default=())

    @classmethod
    def build(
        cls, labels: Iterable[int] | None = None, where: Mapping[str, Any] | None = None
    ) -> Filter:
        """Check a request's ``labels`` and ``where`` (a value or a list of values per field)."""
        chosen = None
        if labels is not None:
            chosen = [check_label(label) for label in labels]
            if None in chosen or not chosen or len(chosen) > MAX_CHOICES:
                raise InvalidInput(f"labels must list 1 to {MAX_CHOICES} class ids")
        if where is not None and not isinstance(where, Mapping):
            raise InvalidInput(f"where must be a JSON object, got {type(where).__name__}")
        if where is not None and len(where) > MAX_FIELDS:
            raise InvalidInput(f"where may name at most {MAX_FIELDS} fields, got {len(where)}")
        pairs = []
        for key, value in (where or {}).items():
            values = value if isinstance(value, list) else [value]
            if not values or len(values) > MAX_CHOICES:
                raise InvalidInput(f"where.{key} must list 1 to {MAX_CHOICES} values")
            pairs.append(
                (_key(key, "where field"), tuple(_scalar(v, f"where.{key}") for v in values))
            )
        return cls(None if chosen is None else frozenset(int(c) for c in chosen), tuple(pairs))  # type: ignore[arg-type]

    @property
    def empty(self) -> bool:
        return self.labels is None and not self.where

    def matches(self, label: int | None, metadata: Mapping[str, Scalar] | None) -> bool:
        if self.labels is not None and label not in self.labels:
            return False
        for key, values in self.where:
            if metadata is None or key not in metadata:
                return False
            if not any(_same(metadata[key], value) for value in values):
                return False
        return True
