"""Exact batch-all triplet hinge sums in O(N M log M) time and O(N M) memory.

For one anchor with positive dissimilarities p_i and negative ones n_j,

    sum_ij max(0, p_i + m - n_j) = sum_i (c_i (p_i + m) - S_i),

where c_i counts the negatives below p_i + m and S_i sums them: sort the negatives once, then a
``searchsorted`` and a prefix sum give c_i and S_i. The gradient is as direct: d/dp_i = c_i and
d/dn_j = -(number of positives with p_i + m > n_j). Rows are processed in chunks, so no
(N, M, M) tensor is ever built; sums are accumulated in float64.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch

CHUNK_ELEMENTS = 1 << 22


def _row_chunks(rows: int, columns: int) -> Iterator[slice]:
    step = max(1, CHUNK_ELEMENTS // max(columns, 1))
    for start in range(0, rows, step):
        yield slice(start, start + step)


def _counts_below(sorted_values: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    return torch.searchsorted(sorted_values, thresholds.contiguous())


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
        for rows in _row_chunks(*dissimilarity.shape):
            values = dissimilarity[rows].double()
            sorted_negatives = torch.where(negative[rows], values, math.inf).sort(dim=1).values
            prefix = torch.nn.functional.pad(
                sorted_negatives.nan_to_num(posinf=0.0).cumsum(dim=1), (1, 0)
            )
            thresholds = torch.where(positive[rows], values + margin, -math.inf)
            count = _counts_below(sorted_negatives, thresholds)
            below_sum = prefix.gather(1, count)
            total += torch.where(positive[rows], count * thresholds - below_sum, 0.0).sum()
            nonzero += count.sum()
        ctx.save_for_backward(dissimilarity, positive, negative)
        ctx.margin = margin
        ctx.mark_non_differentiable(nonzero)
        return total.to(dissimilarity.dtype), nonzero

    @staticmethod
    def backward(ctx: Any, grad_total: torch.Tensor, _: torch.Tensor) -> tuple[Any, ...]:
        dissimilarity, positive, negative = ctx.saved_tensors
        grad = torch.zeros_like(dissimilarity)
        for rows in _row_chunks(*dissimilarity.shape):
            values = dissimilarity[rows].double()
            sorted_negatives = torch.where(negative[rows], values, math.inf).sort(dim=1).values
            sorted_positives = torch.where(positive[rows], values, -math.inf).sort(dim=1).values
            below = _counts_below(sorted_negatives, values + ctx.margin)  # c_i for positives
            # positives with p_i + m > n_j, i.e. p_i > n_j - m: all minus those <= n_j - m
            not_above = torch.searchsorted(sorted_positives, values - ctx.margin, right=True)
            above = positive[rows].sum(dim=1, keepdim=True) - (
                not_above - (~positive[rows]).sum(dim=1, keepdim=True)
            )
            row_grad = torch.where(positive[rows], below, 0) - torch.where(negative[rows], above, 0)
            grad[rows] = row_grad.to(grad.dtype)
        return grad * grad_total, None, None, None


def batch_all_hinge(
    dissimilarity: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum over all valid triplets of max(0, d_ap - d_an + margin), number of non-zero terms)."""
    total, nonzero = _BatchAllHinge.apply(dissimilarity, positive, negative, margin)
    return total, nonzero


def count_triplets(positive: torch.Tensor, negative: torch.Tensor) -> int:
    """Number of valid triplets: sum over anchors of |P_a| |N_a|."""
    return int((positive.sum(dim=1) * negative.sum(dim=1)).sum())
