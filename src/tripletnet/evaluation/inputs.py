"""Input checks shared by every metric: arrays or tensors in, clean float32/int64 arrays out."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import TripletnetError


class EvaluationInputError(TripletnetError, ValueError):
    """Embeddings or labels that no metric can use (NaN, wrong shape, mismatched lengths...)."""


def as_embeddings(x: Any, name: str = "embeddings") -> np.ndarray:
    """Return ``x`` (array or torch tensor) as a C-contiguous (N, D) float32 array, all finite."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    array = np.asarray(x)
    check_layout(array, name)
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not array.flags.writeable:  # e.g. memory-mapped: torch wants arrays it may write
        array = array.copy()
    bad = ~np.isfinite(array).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise EvaluationInputError(
            f"{name} has NaN or inf in {len(rows)} rows (first: {rows[:5].tolist()}); "
            "fix or drop those rows (a diverged model often gives NaN embeddings)"
        )
    return array


def check_layout(array: np.ndarray, name: str = "embeddings") -> None:
    """``array`` (in memory or memory-mapped: nothing is read) is a non-empty numeric (N, D)."""
    if array.ndim != 2:
        raise EvaluationInputError(f"{name} must be 2-D (N, D); got shape {array.shape}")
    if array.shape[0] == 0:
        raise EvaluationInputError(f"{name} is empty: at least one row is needed")
    if not np.issubdtype(array.dtype, np.number):
        raise EvaluationInputError(f"{name} must be numeric; got dtype {array.dtype}")


def as_labels(y: Any, length: int, name: str = "labels") -> np.ndarray:
    """Return ``y`` as a 1-D int64 array of ``length`` integer class labels."""
    if hasattr(y, "detach"):
        y = y.detach().cpu().numpy()
    labels = np.asarray(y)
    if labels.ndim != 1:
        raise EvaluationInputError(f"{name} must be 1-D; got shape {labels.shape}")
    if len(labels) != length:
        raise EvaluationInputError(
            f"{name} has {len(labels)} entries but the embeddings have {length} rows; "
            "they must match one to one"
        )
    whole = np.issubdtype(labels.dtype, np.integer) or (
        np.issubdtype(labels.dtype, np.floating) and bool(np.all(labels == np.round(labels)))
    )
    if not whole:
        raise EvaluationInputError(f"{name} must be integer class ids; got dtype {labels.dtype}")
    return labels.astype(np.int64)


def labelled(
    x: Any, y: Any, name: str = "embeddings", labels_name: str = "labels"
) -> tuple[np.ndarray, np.ndarray]:
    """Check one labelled set: (N, D) finite embeddings and N integer labels."""
    embeddings = as_embeddings(x, name)
    return embeddings, as_labels(y, len(embeddings), labels_name)


def require_classes(labels: np.ndarray, minimum: int, what: str) -> None:
    """Raise a clear error when ``labels`` has fewer than ``minimum`` distinct classes."""
    found = len(np.unique(labels))
    if found < minimum:
        raise EvaluationInputError(
            f"{what} needs at least {minimum} classes; the labels have {found}"
        )
