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

import mmap as mmap_module
from pathlib import Path

import numpy as np

from ..errors import TripletnetError

FILE = "vectors.npy"
BLOCK_VALUES = 2**24  # float32 values gathered at once while re-ranking (64 MB)


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
        """Each query's k nearest candidates by exact squared L2 (-1 ids pad short rows).

        One gather and one distance computation per block of queries (no loop per query;
        blocks keep the gathered vectors under about 64 MB)."""
        k = min(k, candidates.shape[1])
        block = max(1, BLOCK_VALUES // max(1, candidates.shape[1] * self.rows.shape[1]))
        parts = [
            self._rerank_block(queries[start : start + block], candidates[start : start + block], k)
            for start in range(0, len(queries), block)
        ]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _rerank_block(
        self, queries: np.ndarray, candidates: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        valid = candidates >= 0
        found = np.where(valid, candidates, self.ids[0] if len(self.ids) else 0)
        vectors = self.of(found.ravel()).reshape(*found.shape, -1)
        differences = vectors - queries[:, None, :]
        distances = np.einsum("qcd,qcd->qc", differences, differences)
        distances[~valid] = np.inf
        best = np.argsort(distances, axis=1, kind="stable")[:, :k]
        squared = np.take_along_axis(distances, best, axis=1).astype(np.float32)
        ids = np.where(np.isfinite(squared), np.take_along_axis(candidates, best, axis=1), -1)
        return squared, ids

    def save(self, path: Path) -> None:
        np.save(path, np.ascontiguousarray(self.rows, np.float32), allow_pickle=False)

    @classmethod
    def load(cls, path: Path, ids: np.ndarray, mmap: bool) -> StoredVectors:
        try:
            rows = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            raise TripletnetError(f"cannot read {path}: {error}") from None
        if mmap and hasattr(mmap_module, "MADV_RANDOM") and getattr(rows, "_mmap", None):
            # re-ranking reads scattered rows: no read-ahead of the pages around each one
            rows._mmap.madvise(mmap_module.MADV_RANDOM)
        if rows.dtype != np.float32 or rows.ndim != 2:
            raise TripletnetError(f"{path} must hold float32 rows, got {rows.dtype} {rows.shape}")
        return cls(rows.shape[1], np.sort(ids), rows)
