"""Distances with safe gradients.

Euclidean, squared Euclidean, cosine similarity and dot product, as functions and as
:class:`Distance` objects a loss takes as its ``distance=`` parameter.

The Euclidean distance is sqrt(||a - b||^2 + eps): identical embeddings give distance sqrt(eps)
and a zero (finite) gradient instead of the 0/0 of a plain square root.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

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


def pairwise_cosine_similarity(x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """(N, M) matrix of x_i.y_j / (|x_i| |y_j|); a zero vector has similarity 0 to everything."""
    x_unit = F.normalize(x, dim=1, eps=EPS)
    y_unit = x_unit if y is None else F.normalize(y, dim=1, eps=EPS)
    return x_unit @ y_unit.T


def pairwise_dot(x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """(N, M) matrix of inner products x_i.y_j (N-pair loss, Sohn 2016)."""
    return x @ (x if y is None else y).T


class Distance:
    """A pairwise distance or similarity a loss or miner takes as its ``distance=`` parameter.

    ``matrix(x, y)`` gives the (N, M) values; ``is_similarity`` says whether larger means closer.
    ``dissimilarity(x, y)`` always grows with distance (the matrix, or minus a similarity), so
    one formula such as ``d(a, p) - d(a, n) + margin`` serves every kind.
    """

    is_similarity = False

    def matrix(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def dissimilarity(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        values = self.matrix(x, y)
        return -values if self.is_similarity else values

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Euclidean(Distance):
    """||x - y|| with the safe square root, or ||x - y||^2 when ``squared`` (FaceNet)."""

    def __init__(self, squared: bool = False) -> None:
        self.squared = squared

    def matrix(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return pairwise_squared_euclidean(x, y) if self.squared else pairwise_euclidean(x, y)

    def __repr__(self) -> str:
        return f"Euclidean(squared={self.squared})"


class CosineSimilarity(Distance):
    """cos(x, y) = x.y / (|x| |y|), in [-1, 1]."""

    is_similarity = True

    def matrix(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return pairwise_cosine_similarity(x, y)


class DotProduct(Distance):
    """x.y, unnormalised."""

    is_similarity = True

    def matrix(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return pairwise_dot(x, y)
