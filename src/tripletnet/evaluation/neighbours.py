"""Exact k-nearest-neighbour search in chunks: never an N x M distance matrix in memory.

Each chunk of queries is searched with ``faiss.knn`` (exact L2, no copy of the gallery into an
index), so memory is O(chunk * k + gallery) whatever the number of queries.
"""

from __future__ import annotations

import faiss
import numpy as np

from .inputs import EvaluationInputError


def knn_search(
    queries: np.ndarray,
    gallery: np.ndarray,
    k: int,
    exclude_self: bool = False,
    chunk_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (distances, ids), each (N, k): the L2 distances and gallery rows of the ``k``
    nearest gallery items of every query, nearest first.

    With ``exclude_self`` the queries are the gallery (leave-one-out): query i never retrieves
    gallery row i, even when another row is an exact duplicate of it. ``k`` must not exceed the
    number of candidates (gallery size, minus one when excluding self).
    """
    if queries.shape[1] != gallery.shape[1]:
        raise EvaluationInputError(
            f"queries have dimension {queries.shape[1]} but the gallery has {gallery.shape[1]}"
        )
    if exclude_self and len(queries) != len(gallery):
        raise EvaluationInputError("leave-one-out search needs the queries to be the gallery")
    candidates = len(gallery) - int(exclude_self)
    if not 1 <= k <= candidates:
        raise EvaluationInputError(
            f"k = {k} but there are {candidates} gallery items to retrieve from; "
            f"choose 1 <= k <= {candidates}"
        )
    distances = np.empty((len(queries), k), dtype=np.float32)
    ids = np.empty((len(queries), k), dtype=np.int64)
    extra = int(exclude_self)
    chunk_size = chunk_size or max(1, min(8192, 2**24 // (k + extra)))
    for start in range(0, len(queries), chunk_size):
        chunk = queries[start : start + chunk_size]
        squared, found = faiss.knn(chunk, gallery, k + extra)
        if exclude_self:
            squared, found = _drop_self(squared, found, np.arange(start, start + len(chunk)))
        distances[start : start + len(chunk)] = np.sqrt(np.maximum(squared, 0.0))
        ids[start : start + len(chunk)] = found
    return distances, ids


def _drop_self(
    squared: np.ndarray, found: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Remove each query's own row from its k + 1 results; where it is absent (ties with
    duplicates pushed it out), drop the last result instead."""
    is_self = found == rows[:, None]
    is_self[~is_self.any(axis=1), -1] = True
    keep = ~is_self
    k = found.shape[1] - 1
    return squared[keep].reshape(-1, k), found[keep].reshape(-1, k)
