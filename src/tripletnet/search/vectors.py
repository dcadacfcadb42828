"""The exact vectors kept beside a compressed index, to re-rank its candidates.

A product-quantised index (IVF-PQ) ranks by approximate distances, so some true neighbours
fall just outside its top k. Re-ranking (Jegou et al., "Searching in one billion vectors:
re-rank with source coding", ICASSP 2011) asks it for ``refine * k`` candidates and orders
them by their exact distance ||q - x||^2 computed from the stored float32 vectors.

The rows are in ascending id order, so an id's row is found by binary search. Saved as
``vectors.npy``; an index loaded with ``mmap`` maps that file instead of reading it, so
only the candidates' rows are read from disk and a collection larger than memory is served.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import TripletnetError

FILE = "vectors.npy"


class StoredVectors:
    """float32 rows by id (ids ascending); adds and removals make new arrays, never edit."""

    def __init__(self, dim: int, ids: np.ndarray | None = None, rows: np.ndarray | None = None):
        self.ids = np.empty(0, np.int64) if ids is None else np.asarray(ids, np.int64)
        self.rows = np.empty((0, dim), np.float32) if rows is None else rows
        if len(self.ids) != len(self.rows):
            raise TripletnetError(f"{len(self.rows)} stored vectors for {len(self.ids)} ids")

    def added(self, ids: np.ndarray, vectors: np.ndarray) -> StoredVectors:
        if len(self.ids) and len(ids) and ids[0] <= self.ids[-1]:
            raise TripletnetError("stored vectors take new ids in increasing order")
        return StoredVectors(
            self.rows.shape[1],
            np.concatenate([self.ids, ids]),
            np.concatenate([self.rows, vectors]),
        )

    def without(self, ids: np.ndarray) -> StoredVectors:
        keep = ~np.isin(self.ids, ids)
        return StoredVectors(self.rows.shape[1], self.ids[keep], np.asarray(self.rows[keep]))

    def of(self, ids: np.ndarray) -> np.ndarray:
        """The vectors of these ids (every id must be stored)."""
        where = np.searchsorted(self.ids, ids)
        order = np.argsort(where)  # read the file front to back
        out = np.empty((len(ids), self.rows.shape[1]), np.float32)
        out[order] = self.rows[where[order]]
        return out

    def rerank(
        self, queries: np.ndarray, candidates: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each query's k nearest candidates by exact squared L2 (-1 ids pad short rows)."""
        squared = np.full((len(queries), k), np.inf, np.float32)
        ids = np.full((len(queries), k), -1, np.int64)
        for row, (query, found) in enumerate(zip(queries, candidates, strict=True)):
            found = found[found >= 0]
            if not len(found):
                continue
            vectors = self.of(found)
            distances = ((vectors - query) ** 2).sum(axis=1)
            best = np.argsort(distances, kind="stable")[:k]
            squared[row, : len(best)] = distances[best]
            ids[row, : len(best)] = found[best]
        return squared, ids

    def save(self, path: Path) -> None:
        np.save(path, np.ascontiguousarray(self.rows, np.float32), allow_pickle=False)

    @classmethod
    def load(cls, path: Path, ids: np.ndarray, mmap: bool) -> StoredVectors:
        try:
            rows = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            raise TripletnetError(f"cannot read {path}: {error}") from None
        if rows.dtype != np.float32 or rows.ndim != 2:
            raise TripletnetError(f"{path} must hold float32 rows, got {rows.dtype} {rows.shape}")
        return cls(rows.shape[1], np.sort(ids), rows)
