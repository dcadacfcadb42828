"""Exact k-NN over a gallery split into shards and blocks: the top k of each, merged.

Each process of a job searches every query against its shard of the gallery (``World.shard``:
rows [floor(r M / W), floor((r + 1) M / W)) of rank r of W), one block of rows at a time (read
from a memory-mapped .npy, sized by a memory budget), and keeps each query's k smallest scores
s(q, g) = ||g||^2 - 2 q.g with their global gallery rows. Rank 0 merges the ranks' lists. The
rule is the single search's (``neighbours``): smaller score first, at an equal score the lower
gallery row; every part is sorted so and a part's rows all precede the next part's, so one
stable sort by score of the parts laid side by side is that order. One process is one shard,
and a gallery within the budget is one block: the search ``knn_chunks`` does.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable, Iterator
from contextlib import suppress
from typing import Any

import numpy as np
import torch

from ..collective import on_main
from ..world import World
from .neighbours import MEMORY_BUDGET, as_rows, chunk_rows, partial_chunks

NO_ROW = torch.iinfo(torch.int64).max  # the id of a padding entry (score inf): never kept
READ_BYTES = 16 * 2**20  # a memory map is copied this much at a time
MERGED_ROWS = 1024  # queries whose lists rank 0 merges at a time
MIN_ROWS = 64  # gallery rows a block and queries a chunk, at least: the matrix products of
# thinner blocks take other BLAS kernels, whose rounding may differ in the last bit


def budget_bytes(memory_mb: float | None) -> int | None:
    """A budget in MiB as bytes (None: no budget, the gallery is read whole)."""
    return None if memory_mb is None else int(memory_mb * 2**20)


def block_rows(rows: int, dim: int, budget: int | None) -> int:
    """Gallery rows read at a time: all of them without a budget, else about as many as half
    the budget holds in float32 (the other half is for the distances of a chunk of queries),
    at least ``MIN_ROWS``, in blocks of near-equal size."""
    if budget is None or rows <= MIN_ROWS:
        return max(rows, 1)
    fits = max(MIN_ROWS, budget // 2 // (4 * max(dim, 1)))
    return -(-rows // -(-rows // fits))  # ceil(rows / ceil(rows / fits))


def blocks(
    gallery: Any, size: int, prepare: Callable[[np.ndarray], np.ndarray]
) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, ``prepare``d rows) of each block of ``size`` rows of ``gallery`` (an array
    or a memory map)."""
    for start in range(0, len(gallery), size):
        yield start, prepare(in_memory(gallery, start, min(start + size, len(gallery))))


def in_memory(gallery: Any, start: int, stop: int) -> np.ndarray:
    """Rows [start, stop) in memory: a writable array's own, else a copy, made ``READ_BYTES``
    at a time from a memory map whose pages are handed back as they are copied."""
    rows = gallery[start:stop]
    if not isinstance(rows, np.memmap) and np.asarray(rows).flags.writeable:
        return np.asarray(rows)
    copied = np.empty(rows.shape, rows.dtype)
    step = max(1, READ_BYTES // max(1, rows.itemsize * int(np.prod(rows.shape[1:]))))
    for at in range(0, len(rows), step):
        copied[at : at + step] = rows[at : at + step]
        _release(gallery, start + at, start + min(at + step, len(rows)))
    return copied


def _release(array: Any, start: int, stop: int) -> None:
    """Hand back the pages of rows [start, stop) of a memory-mapped array once read (Linux's
    MADV_DONTNEED): the kernel would drop them under pressure anyway, but until then they count
    in the process's resident memory."""
    mapped = getattr(array, "_mmap", None)
    if mapped is None or not hasattr(mmap, "MADV_DONTNEED") or stop <= start:
        return
    root = array
    while isinstance(root.base, np.ndarray):
        root = root.base
    if not isinstance(root, np.memmap) or not array[start:stop].flags.c_contiguous:
        return
    base = root.ctypes.data - root.offset % mmap.ALLOCATIONGRANULARITY  # the map's first byte
    first = array[start:stop].ctypes.data - base
    begin = first // mmap.PAGESIZE * mmap.PAGESIZE
    length = first + (stop - start) * array.strides[0] - begin
    # not a mapping the kernel can drop pages of: they stay until it needs the memory
    with suppress(OSError, ValueError):
        mapped.madvise(mmap.MADV_DONTNEED, begin, length)


def merged(
    parts: list[tuple[torch.Tensor, torch.Tensor]], k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` smallest of (scores, ids) lists laid side by side, in the tie rule's order
    (module docstring: each part sorted, its rows before the next part's)."""
    if len(parts) == 1:
        return parts[0][0][:, :k], parts[0][1][:, :k]
    scores = torch.cat([part[0] for part in parts], 1)
    ids = torch.cat([part[1] for part in parts], 1)
    order = torch.sort(scores, dim=1, stable=True)
    return order.values[:, :k], ids.gather(1, order.indices[:, :k])


def shard_neighbours(
    queries: torch.Tensor,
    gallery: Any,
    offset: int,
    k: int,
    prepare: Callable[[np.ndarray], np.ndarray],
    same_set: bool = False,
    budget: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every query's ``k`` smallest scores against this shard's ``gallery`` rows (global rows
    ``offset`` on) and their global rows, (N, k) each, padded with (inf, ``NO_ROW``) where the
    shard has fewer. ``same_set``: the queries are the whole gallery, and query i skips row i."""
    scores = torch.full((len(queries), k), float("inf"), device=queries.device)
    ids = torch.full((len(queries), k), NO_ROW, device=queries.device)
    size = block_rows(len(gallery), queries.shape[1], budget)
    distances = MEMORY_BUDGET if budget is None else max(budget // 2, 1)
    for start, block in blocks(gallery, size, prepare):
        rows = as_rows(block, queries.device)
        first = offset + start
        width = min(k, len(rows))
        chunk = max(MIN_ROWS, chunk_rows(len(rows), width, distances))
        found = partial_chunks(queries, rows, width, first if same_set else None, chunk)
        for at, values, columns in found:
            if start == 0:  # the first block: nothing to merge with yet
                scores[at, :width], ids[at, :width] = values, columns + first
                continue
            part = (values, columns + first)
            scores[at], ids[at] = merged([(scores[at], ids[at]), part], k)
    return scores, ids


def merged_on_main(
    world: World, scores: torch.Tensor, ids: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Rank 0's merge of every rank's (N, k) lists (rank order is gallery order); None on the
    other ranks."""
    if not world.distributed:
        return scores, ids
    parts = on_main(world, (scores.cpu(), ids.cpu()))
    if not world.main:
        return None
    best = torch.empty_like(scores, device="cpu"), torch.empty_like(ids, device="cpu")
    for start in range(0, len(scores), MERGED_ROWS):  # a few rows at a time: little memory
        rows = slice(start, start + MERGED_ROWS)
        best[0][rows], best[1][rows] = merged([(s[rows], i[rows]) for s, i in parts], k)
    return best[0].to(scores.device), best[1].to(ids.device)
