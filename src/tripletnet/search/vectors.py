"""The vectors kept beside a compressed index, to re-rank its candidates.

A product-quantised index (IVF-PQ) ranks by approximate distances, so some true neighbours
fall just outside its top k. Re-ranking (Jegou et al., "Searching in one billion vectors:
re-rank with source coding", ICASSP 2011) asks it for ``refine * k`` candidates and orders
them by their distance ||q - x||^2 computed from vectors stored beside the index, in one of
three forms (``STORES``):

- ``float32``: the exact vectors (4 bytes a value; as large as the exact flat index);
- ``float16``: half precision (2 bytes a value; relative error about 5e-4);
- ``sq8``: 8-bit scalar quantisation per inverted-file cell and dimension (1 byte a value,
  plus the vector's cell): FAISS's ``QT_8bit`` codec with one range per IVF cell, as an
  ``IndexIVFScalarQuantizer`` encodes residuals. Each cell's and dimension's range
  [low, low + 255 * step] is learnt from the first vectors added (a cell they leave empty takes
  the range of them all) and a value is stored as round((x - low) / step), clipped to 0..255
  (later values outside the range are clipped). Re-ranking decodes low + code * step: an error
  of at most step / 2 per dimension. One range per cell, not one for the whole collection,
  matters: a cell spans a few times less than the collection, so its steps are a few times
  finer (on the benchmark's clustered data one global range lost 0.02 of recall@10).

The rows are in ascending id order, so an id's row is found by binary search. Saved as
``vectors.npy`` (float32, float16 or uint8 rows; ``sq8`` also writes ``vectors-range.npy``,
(cells, 2, D) lows and steps, and ``vectors-cells.npy``, each row's int32 cell); an index loaded with ``mmap`` maps those files instead of reading
them, so only the candidates' pages are read from disk.
"""

from __future__ import annotations

import mmap as mmap_module
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import TripletnetError

FILE = "vectors.npy"
RANGE_FILE = "vectors-range.npy"
CELLS_FILE = "vectors-cells.npy"
STORES = {"float32": np.float32, "float16": np.float16, "sq8": np.uint8}
DEFAULT_STORE = "sq8"
BLOCK_VALUES = 2**20  # values gathered at once while re-ranking (4 MB as float32)
ENCODE_ROWS = 65_536  # rows quantised at once (bounded temporaries)


def check_store(store: str) -> str:
    if store not in STORES:
        raise TripletnetError(f"unknown refine store {store!r}; choose one of: {', '.join(STORES)}")
    return store


class StoredVectors:
    """Rows by id (ids ascending); adds and removals make new arrays, never edit."""

    def __init__(
        self,
        dim: int,
        ids: np.ndarray | None = None,
        rows: np.ndarray | None = None,
        store: str = "float32",
        scale: np.ndarray | None = None,
        cells: np.ndarray | None = None,
    ):
        self.store = check_store(store)
        self.ids = np.empty(0, np.int64) if ids is None else np.asarray(ids, np.int64)
        self.rows = np.empty((0, dim), STORES[store]) if rows is None else rows
        self.scale = scale  # sq8: (cells, 2, dim) float32, lows and steps; None until trained
        self.cells = np.zeros(len(self.ids), np.int32) if cells is None else cells  # sq8
        if not len(self.ids) == len(self.rows) == len(self.cells):
            raise TripletnetError(f"{len(self.rows)} stored vectors for {len(self.ids)} ids")

    def _like(self, ids: np.ndarray, rows: np.ndarray, cells: np.ndarray) -> StoredVectors:
        return StoredVectors(self.rows.shape[1], ids, rows, self.store, self.scale, cells)

    def _train(self, vectors: np.ndarray, cells: np.ndarray, count: int) -> None:
        """sq8: each cell's per-dimension [min, max] (empty cells: that of all vectors)."""
        low = np.repeat(vectors.min(axis=0, keepdims=True), count, axis=0)
        high = np.repeat(vectors.max(axis=0, keepdims=True), count, axis=0)
        order = np.argsort(cells, kind="stable")
        used, starts = np.unique(cells[order], return_index=True)
        for start in range(0, len(order), ENCODE_ROWS * 4):  # bounded copies of sorted rows
            chunk = order[start : start + ENCODE_ROWS * 4]
            part, part_cells = vectors[chunk], cells[chunk]
            firsts = np.flatnonzero(np.r_[True, part_cells[1:] != part_cells[:-1]])
            which = part_cells[firsts]
            fresh = np.isin(which, used[starts >= start])  # cells first seen in this chunk
            mins = np.minimum.reduceat(part, firsts)
            maxs = np.maximum.reduceat(part, firsts)
            low[which] = np.where(fresh[:, None], mins, np.minimum(low[which], mins))
            high[which] = np.where(fresh[:, None], maxs, np.maximum(high[which], maxs))
        step = np.maximum((high - low) / 255, np.finfo(np.float32).tiny)
        self.scale = np.stack([low, step], axis=1).astype(np.float32)

    def encode(self, vectors: np.ndarray, cells: np.ndarray, count: int = 1) -> np.ndarray:
        """float32 vectors in this store's form (sq8: learns the ranges on first use)."""
        if self.store != "sq8":
            return np.asarray(vectors, STORES[self.store])
        if self.scale is None:
            self._train(vectors, cells, count)
        assert self.scale is not None
        out = np.empty(vectors.shape, np.uint8)
        for start in range(0, len(vectors), ENCODE_ROWS):
            scale = self.scale[cells[start : start + ENCODE_ROWS]]
            part = (vectors[start : start + ENCODE_ROWS] - scale[:, 0]) / scale[:, 1]
            out[start : start + ENCODE_ROWS] = np.clip(np.rint(part), 0, 255)
        return out

    def decode(self, rows: np.ndarray, cells: np.ndarray) -> np.ndarray:
        if self.store != "sq8":
            return np.asarray(rows, np.float32)
        assert self.scale is not None
        decoded: np.ndarray = rows.astype(np.float32)
        decoded *= self.scale[cells, 1]
        decoded += self.scale[cells, 0]
        return decoded

    def added(
        self, ids: np.ndarray, vectors: np.ndarray, cells: np.ndarray | None = None, count: int = 1
    ) -> StoredVectors:
        """With the vectors' inverted-file cells (of ``count``), which sq8 quantises by."""
        if len(self.ids) and len(ids) and ids[0] <= self.ids[-1]:
            raise TripletnetError("stored vectors take new ids in increasing order")
        cells = np.zeros(len(ids), np.int32) if cells is None else np.asarray(cells, np.int32)
        if self.store != "sq8":
            cells, count = np.zeros(len(ids), np.int32), 1  # not needed: not kept
        encoded = self.encode(vectors, cells, count)
        return self._like(
            np.concatenate([self.ids, ids]),
            np.concatenate([self.rows, encoded]),
            np.concatenate([self.cells, cells]),
        )

    def without(self, ids: np.ndarray) -> StoredVectors:
        keep = ~np.isin(self.ids, ids)
        return self._like(self.ids[keep], np.asarray(self.rows[keep]), np.asarray(self.cells[keep]))

    def of(self, ids: np.ndarray) -> np.ndarray:
        """The (decoded, float32) vectors of these ids (every id must be stored)."""
        where = np.searchsorted(self.ids, ids)
        order = np.argsort(where)  # read the file front to back
        out = np.empty((len(ids), self.rows.shape[1]), self.rows.dtype)
        out[order] = self.rows[where[order]]
        return self.decode(out, np.asarray(self.cells[where]))

    def rerank(
        self, queries: np.ndarray, candidates: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each query's k nearest candidates by squared L2 to the stored vectors (exact for
        float32, to the decoded vectors otherwise; -1 ids pad short rows).

        One gather and one distance computation per block of queries (no loop per query;
        blocks keep the gathered vectors under about 4 MB: small temporaries, which the
        allocator gives back rather than keeping resident)."""
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
        vectors -= queries[:, None, :]  # in place: no second block-sized array
        distances = np.einsum("qcd,qcd->qc", vectors, vectors)
        distances[~valid] = np.inf
        best = np.argsort(distances, axis=1, kind="stable")[:, :k]
        squared = np.take_along_axis(distances, best, axis=1).astype(np.float32)
        ids = np.where(np.isfinite(squared), np.take_along_axis(candidates, best, axis=1), -1)
        return squared, ids

    def files(self) -> dict[str, Any]:
        """File name -> writer (a callable taking the path) for a version folder."""
        rows = np.ascontiguousarray(self.rows, STORES[self.store])
        out: dict[str, Any] = {FILE: lambda p: np.save(p, rows, allow_pickle=False)}
        if self.store == "sq8":
            dim = self.rows.shape[1]
            scale = np.zeros((1, 2, dim), np.float32) if self.scale is None else self.scale
            cells = np.ascontiguousarray(self.cells, np.int32)
            out[RANGE_FILE] = lambda p: np.save(p, scale, allow_pickle=False)
            out[CELLS_FILE] = lambda p: np.save(p, cells, allow_pickle=False)
        return out

    @classmethod
    def load(cls, folder: Path, ids: np.ndarray, mmap: bool, store: str) -> StoredVectors:
        """The stored vectors of a version folder (indexes before ``store``: float32)."""
        path = folder / FILE
        try:
            rows = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
            scale = cells = None
            if store == "sq8":
                scale = np.load(folder / RANGE_FILE, allow_pickle=False)
                cells = np.load(folder / CELLS_FILE, mmap_mode="r" if mmap else None)
        except (ValueError, OSError, EOFError) as error:
            where = getattr(error, "filename", None) or path
            raise TripletnetError(f"cannot read {where}: {error}") from None
        if mmap and hasattr(mmap_module, "MADV_RANDOM") and getattr(rows, "_mmap", None):
            # re-ranking reads scattered rows: no read-ahead of the pages around each one
            rows._mmap.madvise(mmap_module.MADV_RANDOM)
        wanted = np.dtype(STORES[check_store(store)])
        if rows.dtype != wanted or rows.ndim != 2:
            raise TripletnetError(f"{path} must hold {wanted} rows, got {rows.dtype} {rows.shape}")
        if scale is not None and cells is not None:
            dim = rows.shape[1]
            if scale.ndim != 3 or scale.shape[1:] != (2, dim) or scale.dtype != np.float32:
                raise TripletnetError(f"{folder / RANGE_FILE} must hold (cells, 2, {dim}) float32")
            if cells.shape != (len(rows),) or cells.dtype != np.int32:
                raise TripletnetError(f"{folder / CELLS_FILE} must hold {len(rows)} int32 cells")
            if len(cells) and (cells.min() < 0 or cells.max() >= len(scale)):
                raise TripletnetError(f"{folder / CELLS_FILE} names cells {RANGE_FILE} lacks")
        return cls(rows.shape[1], np.sort(ids), rows, store, scale, cells)
