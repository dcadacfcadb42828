"""Exact batch-all triplet hinge sums without the (N, M, M) tensor of triplets.

For one anchor, with thresholds t_(1) >= t_(2) >= ... the values p_i + m over its positives
(p_i = d(a, p_i)) and n_j its negatives' dissimilarities,

    sum_ij max(0, t_i - n_j) = sum_j (T(r_j) - r_j n_j),

where r_j counts the thresholds above n_j and T(r) = t_(1) + ... + t_(r). A histogram h of the
r_j gives sum_j T(r_j) = sum_v h_v T(v), and the gradient is as direct: d/dn_j = -r_j and
d/dt_(i) = c_(i) = number of negatives below t_(i) = sum_{v >= i} h_v. With K positives per anchor
(P x K batches) the r_j cost K comparisons per pair: O(N M K) work, O(N M) memory (one byte per
pair is kept for the backward pass); with many positives per anchor a binary search replaces
the comparisons (O(N M log K)). Rows go in cache-sized chunks; sums accumulate in float64.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

CHUNK_ELEMENTS = 1 << 18
FEW_POSITIVES = 24  # up to this many positives per anchor, count by comparisons


class Thresholds(NamedTuple):
    """The rows' positive thresholds t = p + m packed to (rows, k), -inf where a row has fewer."""

    values: torch.Tensor
    row: torch.Tensor  # (positives,) row of each positive
    rank: torch.Tensor  # (positives,) its slot among the row's k


def _row_chunks(rows: int, columns: int) -> Iterator[slice]:
    step = max(1, CHUNK_ELEMENTS // max(columns, 1))
    for start in range(0, rows, step):
        yield slice(start, min(start + step, rows))


def _thresholds(values: torch.Tensor, positive: torch.Tensor, margin: float) -> Thresholds:
    counts = positive.sum(dim=1)
    row, column = positive.nonzero(as_tuple=True)
    rank = torch.arange(len(row), device=row.device) - (counts.cumsum(0) - counts)[row]
    packed = values.new_full((len(values), int(counts.max())), float("-inf"))
    packed[row, rank] = values[row, column] + margin
    return Thresholds(packed, row, rank)


def _count_above(thresholds: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """(rows, M): how many of the row's thresholds exceed each value (int8 when few)."""
    k = thresholds.shape[1]
    if k <= FEW_POSITIVES:
        count = torch.zeros(values.shape, dtype=torch.int8, device=values.device)
        above = torch.empty(values.shape, dtype=torch.bool, device=values.device)
        for slot in range(k):
            count.add_(torch.lt(values, thresholds[:, slot : slot + 1], out=above))
        return count
    ascending = thresholds.sort(dim=1).values
    return (k - torch.searchsorted(ascending, values, right=True)).int()


class _BatchAllHinge(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        dissimilarity: torch.Tensor,
        positive: torch.Tensor,
        negative: torch.Tensor,
        margin: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        total = torch.zeros((), dtype=torch.float64, device=dissimilarity.device)
        nonzero = torch.zeros((), dtype=torch.int64, device=dissimilarity.device)
        most_positives = int(positive.sum(1).max()) if len(positive) else 0  # 0: empty batch
        counts = torch.zeros(
            dissimilarity.shape,
            dtype=torch.int8 if most_positives <= FEW_POSITIVES else torch.int32,
            device=dissimilarity.device,
        )
        # filled in place, so no small tensor outlives a chunk (and pins freed chunk memory)
        pair_row, pair_column = positive.nonzero(as_tuple=True)
        pair_below = torch.empty_like(pair_row)
        first_pair = F.pad(positive.sum(dim=1).cumsum(0), (1, 0))
        for rows in _row_chunks(*dissimilarity.shape):
            if not positive[rows].any():
                continue
            values = dissimilarity[rows]
            thresholds = _thresholds(values, positive[rows], margin)
            largest_first, order = thresholds.values.sort(dim=1, descending=True)
            above = _count_above(largest_first, values).masked_fill_(~negative[rows], 0)
            counts[rows] = above
            histogram = torch.zeros(
                (len(values), largest_first.shape[1] + 1), dtype=torch.int64, device=values.device
            ).scatter_add_(1, above.long(), torch.ones_like(above, dtype=torch.int64))
            top_sums = F.pad(largest_first.double().nan_to_num(neginf=0.0).cumsum(dim=1), (1, 0))
            total += (histogram * top_sums).sum() - (above * values).sum(dtype=torch.float64)
            nonzero += (histogram * torch.arange(histogram.shape[1], device=values.device)).sum()
            below_sorted = histogram[:, 1:].flip(1).cumsum(1).flip(1)  # c_(i) = sum_{v >= i} h_v
            below = torch.empty_like(below_sorted).scatter_(1, order, below_sorted)
            pairs = slice(int(first_pair[rows.start]), int(first_pair[rows.stop]))
            pair_below[pairs] = below[thresholds.row, thresholds.rank]
        ctx.save_for_backward(counts, pair_row, pair_column, pair_below)
        ctx.mark_non_differentiable(nonzero)
        return total.to(dissimilarity.dtype), nonzero

    @staticmethod
    def backward(ctx: Any, grad_total: torch.Tensor, _: torch.Tensor) -> tuple[Any, ...]:
        counts, rows, columns, below = ctx.saved_tensors
        grad = counts.to(grad_total.dtype).neg_()
        grad[rows, columns] = below.to(grad.dtype)
        return grad.mul_(grad_total), None, None, None


def batch_all_hinge(
    dissimilarity: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum over all valid triplets of max(0, d_ap - d_an + margin), number of non-zero terms)."""
    total, nonzero = _BatchAllHinge.apply(dissimilarity, positive, negative, margin)
    return total, nonzero


def count_triplets(positive: torch.Tensor, negative: torch.Tensor) -> int:
    """Number of valid triplets: sum over anchors of |P_a| |N_a|."""
    return int((positive.sum(dim=1) * negative.sum(dim=1)).sum())
