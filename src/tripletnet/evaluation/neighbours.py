"""Exact k-nearest-neighbour search on a torch device, in chunks: never an N x M matrix.

A chunk of queries gets its squared L2 distances to the whole gallery from one matrix
product, d^2(q, g) = ||q||^2 + ||g||^2 - 2 q.g (FAISS's brute force computes them the same
way; the row's constant ||q||^2 is added to the k kept only), and ``torch.topk`` keeps the k
smallest. The chunk is sized so that its (chunk, M) distances fit a memory budget, so memory is
O(budget + N k + M D) whatever N and M are. A deep search (k a large share of M, e.g. the top R
of MAP@R) instead keeps each row's candidates under a sampled bound and sorts them once
(``_smallest_deep``): the same result, several times faster on the CPU.

Ties are ranked by a fixed rule: at equal distance the lower gallery row comes first (ties inside
the top k are re-ordered there; a row whose k-th is tied with the next is stable-sorted whole).
Leave-one-out excludes each query's own row by index, so an exact duplicate of the query is
still retrieved.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from .inputs import EvaluationInputError

MEMORY_BUDGET = 256 * 2**20  # bytes of distances a chunk may hold
MAX_CHUNK = 8192  # queries at a time, at most
DEEP_MIN_K = 256  # a search at least this deep ...
DEEP_FACTOR = 4  # ... in rows at least this many times longer is ``_smallest_deep``
DEEP_SAMPLE = 2048  # columns sampled to bound the k-th smallest of a row
DEEP_DEVICES = ("cpu", "cuda")  # where its kthvalue and int64 sort are known to run
FLAT_KEY_LIMIT = 2**32  # a chunk of at most this many entries keys ties by flat position


def eval_device(device: torch.device | str | None = None) -> torch.device:
    """The device evaluation runs on: the one given, else cpu."""
    return torch.device(device) if device is not None else torch.device("cpu")


def as_rows(x: Any, device: torch.device) -> torch.Tensor:
    """``x`` (array or tensor) as a contiguous (N, D) float32 tensor on ``device``."""
    tensor = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    return tensor.reshape(len(tensor), -1).to(device=device, dtype=torch.float32).contiguous()


def chunk_rows(gallery_size: int, k: int, budget: int = MEMORY_BUDGET) -> int:
    """Queries per chunk: the (chunk, M) distances, their temporaries and the (chunk, k) results
    stay within ``budget`` bytes."""
    per_query = 4 * 3 * max(gallery_size, 1) + 12 * k
    return max(1, min(MAX_CHUNK, budget // per_query))


def knn_chunks(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    k: int,
    exclude_self: bool = False,
    chunk_size: int | None = None,
) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:
    """Yield (rows, squared distances, ids) for each chunk of queries: the (chunk, k) squared L2
    distances and gallery rows of the ``k`` nearest gallery items, nearest first, on the
    queries' device."""
    _check(queries.shape, gallery.shape, k, exclude_self)
    offset = 0 if exclude_self else None
    for rows, values, ids in partial_chunks(queries, gallery, k, offset, chunk_size):
        yield rows, squared_distances(values, queries[rows]), ids


def squared_distances(partial: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """d^2 = (||g||^2 - 2 q.g) + ||q||^2, clamped at 0 (``partial_chunks``'s scores)."""
    return (partial + (queries * queries).sum(1, keepdim=True)).clamp_(min=0.0)


def partial_chunks(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    k: int,
    self_offset: int | None = None,
    chunk_size: int | None = None,
) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:
    """``knn_chunks`` before ||q||^2 is added: (rows, ||g||^2 - 2 q.g, ids) of the ``k``
    smallest (``k`` at most the gallery's rows), the ranking scores. ``self_offset``: the
    gallery is the query rows from this one on, and query i never retrieves its own row, column
    i - self_offset (None: no query is in the gallery)."""
    gallery_norms = (gallery * gallery).sum(1)
    chunk_size = max(1, min(chunk_size or chunk_rows(len(gallery), k), len(queries)))
    # one buffer for every chunk's distances: a fresh (chunk, M) block each time costs the
    # CPU its page faults
    buffer = torch.empty(chunk_size, len(gallery), device=queries.device, dtype=queries.dtype)
    for start in range(0, len(queries), chunk_size):
        chunk = queries[start : start + chunk_size]
        # ||g||^2 - 2 q.g ranks the gallery as d^2 does: ||q||^2 is the same along a row
        partial = torch.addmm(
            gallery_norms[None, :], chunk, gallery.T, alpha=-2.0, out=buffer[: len(chunk)]
        )
        if self_offset is not None:
            rows = torch.arange(len(chunk), device=chunk.device)
            columns = rows + start - self_offset
            inside = (columns >= 0) & (columns < len(gallery))
            partial[rows[inside], columns[inside]] = float("inf")
        values, ids = _smallest(partial, k)
        yield slice(start, start + len(chunk)), values, ids


def _smallest(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` smallest entries of each row, ties broken by the lower column: ties inside the
    top k are ordered by a (value, column) sort of the top k alone; a row whose k-th value is
    tied with the next is re-ranked by a stable sort of the whole row. A deep search (k a large
    share of a long row, e.g. the top R of MAP@R) is ``_smallest_deep``."""
    deep = k >= DEEP_MIN_K and DEEP_FACTOR * k <= scores.shape[1]
    if deep and scores.device.type in DEEP_DEVICES:
        return _smallest_deep(scores, k)
    extra = int(k < scores.shape[1])  # one more: is the next one equal to the k-th?
    values, ids = torch.topk(scores, k + extra, dim=1, largest=False, sorted=True)
    tied = (values[:, 1:] == values[:, :-1]).any(1).nonzero()[:, 0]
    if len(tied):
        by_id = ids[tied].argsort(dim=1)
        v, i = values[tied].gather(1, by_id), ids[tied].gather(1, by_id)
        by_value = torch.sort(v, dim=1, stable=True).indices
        values[tied], ids[tied] = v.gather(1, by_value), i.gather(1, by_value)
    edge = (values[:, k] == values[:, k - 1]).nonzero()[:, 0] if extra else tied[:0]
    values, ids = values[:, :k], ids[:, :k]
    if len(edge):
        ordered, order = torch.sort(scores[edge], dim=1, stable=True)
        values[edge], ids[edge] = ordered[:, :k], order[:, :k]
    return values, ids


def _smallest_deep(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``_smallest`` by one sort of each row's candidates (``_candidates``) on a unique int64
    key, (value, position): the same neighbours in the same order, ties included, from any sort
    (on the CPU numpy's vectorised one, a block of rows per thread)."""
    n, width = scores.shape
    flat, counts = _candidates(scores, k)
    bits = (scores.reshape(-1)[flat] + 0.0).view(torch.int32)  # + 0.0: -0.0 becomes 0.0
    by_flat = n * width <= FLAT_KEY_LIMIT  # the flat position fits the low half: no division
    keys = (_ordered(bits).to(torch.int64) << 32) | (flat if by_flat else flat % width)
    slots = torch.arange(int(counts.max()), device=scores.device)[None, :] < counts[:, None]
    packed = torch.full(slots.shape, torch.iinfo(torch.int64).max, device=scores.device)
    packed.masked_scatter_(slots, keys)
    packed = _sorted_rows(packed)[:, :k]
    values = _ordered((packed >> 32).to(torch.int32)).view(torch.float32)
    ids = packed & 0xFFFFFFFF
    if by_flat:  # flat position -> column
        ids -= torch.arange(n, device=scores.device)[:, None] * width
    return values, ids


def _sorted_rows(keys: torch.Tensor) -> torch.Tensor:
    """Each row of ``keys`` sorted ascending: on the CPU numpy's vectorised sort in place, the
    rows split over torch's threads (the sort releases the GIL); elsewhere ``torch.sort``."""
    if not keys.is_cpu:
        return torch.sort(keys, dim=1).values
    rows = keys.numpy()
    blocks = np.array_split(rows, max(1, min(torch.get_num_threads(), len(rows))))
    with ThreadPoolExecutor(len(blocks)) as pool:
        list(pool.map(lambda block: block.sort(axis=1), blocks))
    return keys


def _ordered(bits: torch.Tensor) -> torch.Tensor:
    """int32 float bit patterns mapped to integers in the floats' order (and back: the map is
    its own inverse)."""
    return bits ^ ((bits >> 31) & 0x7FFFFFFF)


def _candidates(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The flat positions (row-major) of each row's entries up to a bound on its k-th smallest,
    and how many each row has: they hold the row's k smallest, ties included.

    The bound is a high quantile of a strided sample of the columns; a row with fewer than k
    entries under it keeps them all, so the result is exact whatever the sample."""
    n, width = scores.shape
    sample = scores[:, :: max(1, width // DEEP_SAMPLE)]
    expected = k * sample.shape[1] / width  # sampled entries among the k smallest, on average
    rank = int(expected + 4 * expected**0.5 + 8)
    if rank < sample.shape[1]:
        keep = _at_most(scores, _kth_smallest(sample, rank))
    else:
        keep = torch.ones_like(scores, dtype=torch.bool)
    flat, counts = _positions(keep)
    short = counts < k
    if short.any():  # too few under the bound: the whole row
        keep[short] = True
        flat, counts = _positions(keep)
    return flat, counts


def _kth_smallest(rows: torch.Tensor, rank: int) -> torch.Tensor:
    """The ``rank``-th smallest entry (from 1) of each row (on the CPU numpy's partition: about
    3x faster there than ``torch.kthvalue``)."""
    if rows.is_cpu:
        return torch.from_numpy(np.partition(rows.numpy(), rank - 1, axis=1)[:, rank - 1])
    return torch.kthvalue(rows, rank, dim=1).values


def _at_most(rows: torch.Tensor, bounds: torch.Tensor) -> torch.Tensor:
    """The mask of the entries of each row at most its bound (numpy's comparison on the CPU:
    about twice as fast there as torch's)."""
    if rows.is_cpu:
        return torch.from_numpy(rows.numpy() <= bounds.numpy()[:, None])
    return rows <= bounds[:, None]


def _positions(keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The flat positions of the True entries of a (rows, width) mask, ascending, and how many
    each row has (numpy's flatnonzero on the CPU: faster there than torch's nonzero)."""
    if keep.is_cpu:
        flat = torch.from_numpy(np.flatnonzero(keep.numpy()))
    else:
        flat = keep.reshape(-1).nonzero()[:, 0]
    row_starts = torch.arange(len(keep) + 1, device=keep.device) * keep.shape[1]
    return flat, torch.searchsorted(flat, row_starts).diff()


def knn_search(
    queries: Any,
    gallery: Any,
    k: int,
    exclude_self: bool = False,
    chunk_size: int | None = None,
    device: torch.device | str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (distances, ids), each (N, k): the L2 distances and gallery rows of the ``k``
    nearest gallery items of every query, nearest first (ties: lower gallery row first).

    With ``exclude_self`` the queries are the gallery (leave-one-out): query i never retrieves
    gallery row i, even when another row is an exact duplicate of it. ``k`` must not exceed the
    number of candidates (gallery size, minus one when excluding self).
    """
    device = eval_device(device)
    q, g = as_rows(queries, device), as_rows(gallery, device)
    distances = np.empty((len(q), k), dtype=np.float32)
    ids = np.empty((len(q), k), dtype=np.int64)
    for rows, squared, found in knn_chunks(q, g, k, exclude_self, chunk_size):
        distances[rows] = squared.sqrt().cpu().numpy()
        ids[rows] = found.cpu().numpy()
    return distances, ids


def check_dimensions(queries: tuple[int, ...], gallery: tuple[int, ...]) -> None:
    """Queries and gallery (shapes (N, D) and (M, D)) must have the same dimension D."""
    if queries[1] != gallery[1]:
        raise EvaluationInputError(
            f"queries have dimension {queries[1]} but the gallery has {gallery[1]}"
        )


def _check(queries: torch.Size, gallery: torch.Size, k: int, exclude_self: bool) -> None:
    check_dimensions(queries, gallery)
    if exclude_self and queries[0] != gallery[0]:
        raise EvaluationInputError("leave-one-out search needs the queries to be the gallery")
    candidates = gallery[0] - int(exclude_self)
    if not 1 <= k <= candidates:
        raise EvaluationInputError(
            f"k = {k} but there are {candidates} gallery items to retrieve from; "
            f"choose 1 <= k <= {candidates}"
        )
