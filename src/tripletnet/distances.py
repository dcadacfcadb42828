"""Distances with safe gradients.

The Euclidean distance is sqrt(||a - b||^2 + eps): identical embeddings give distance sqrt(eps)
and a zero (finite) gradient instead of the 0/0 of a plain square root.
"""

from __future__ import annotations

import torch

EPS = 1e-12


def squared_euclidean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise ||a_i - b_i||^2 for two (N, D) tensors."""
    return (a - b).pow(2).sum(dim=-1)


def euclidean(a: torch.Tensor, b: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Row-wise plain L2 distance ||a_i - b_i||, as in Hoffer & Ailon (2015)."""
    return torch.sqrt(squared_euclidean(a, b) + eps)


def pairwise_squared_euclidean(x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """(N, M) matrix of ||x_i - y_j||^2 via |x|^2 + |y|^2 - 2 x.y, clamped at zero."""
    y = x if y is None else y
    sq = x.pow(2).sum(1, keepdim=True) + y.pow(2).sum(1) - 2.0 * x @ y.T
    return sq.clamp_min(0.0)


def pairwise_euclidean(
    x: torch.Tensor, y: torch.Tensor | None = None, eps: float = EPS
) -> torch.Tensor:
    """(N, M) matrix of plain L2 distances with the safe square root."""
    return torch.sqrt(pairwise_squared_euclidean(x, y) + eps)
