"""Distances with safe gradients.

Euclidean, squared Euclidean, cosine similarity and dot product, as functions and as
:class:`Distance` objects a loss takes as its ``distance=`` parameter.

The Euclidean distance is sqrt(||a - b||^2 + eps): identical embeddings give distance sqrt(eps)
and a zero (finite) gradient instead of the 0/0 of a plain square root.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

EPS = 1e-12


def squared_euclidean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise ||a_i - b_i||^2 over the last dimension (the two tensors broadcast)."""
    return (a - b).pow(2).sum(dim=-1)


def euclidean(a: torch.Tensor, b: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Row-wise plain L2 distance ||a_i - b_i||, as in Hoffer & Ailon (2015)."""
    return torch.sqrt(squared_euclidean(a, b) + eps)


class _PairwiseEuclidean(torch.autograd.Function):
    """(N, M) matrix of sqrt(max(0, |x_i|^2 + |y_j|^2 - 2 x_i.y_j) + eps), or the clamped squares.

    Fused: the forward pass works in place on one matrix and keeps only its output; the backward
    pass is G = dL/dsq (zero where clamped), grad_x = 2 (rowsum(G) x - G y), grad_y likewise
    (2 (rowsum(G) + colsum(G)) x - 2 (G + G^T) x when y is x).
    """

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, y: torch.Tensor | None, squared: bool, eps: float
    ) -> torch.Tensor:
        other = x if y is None else y
        out = torch.addmm(other.pow(2).sum(1)[None, :], x, other.T, alpha=-2.0)
        out.add_(x.pow(2).sum(1, keepdim=True)).clamp_min_(0.0)
        if not squared:
            out.add_(eps).sqrt_()
        ctx.save_for_backward(x, other, out)
        ctx.squared, ctx.eps, ctx.symmetric = squared, eps, other is x
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        x, y, out = ctx.saved_tensors
        # G = dL/dsq, zero where sq was clamped at 0, kept as G / scale to save a pass:
        # squared: G = grad; plain: d sqrt(sq + eps) / d sq = 1 / (2 out), G = (grad / out) / 2
        if ctx.squared:
            weight, scale = grad.masked_fill(out <= 0, 0.0), 2.0
        else:
            clamped = out <= math.sqrt(ctx.eps) * (1.0 + 1e-4)  # out = sqrt(eps) up to rounding
            weight, scale = torch.div(grad, out).masked_fill_(clamped, 0.0), 1.0
        if ctx.symmetric:  # y is x: (G + G^T) x without forming G + G^T; all of it goes to x
            sums = weight.sum(1, keepdim=True) + weight.sum(0)[:, None]
            product = torch.addmm(weight @ x, weight.T, x)
            return scale * (sums * x - product), None, None, None
        grad_x = scale * (weight.sum(1, keepdim=True) * x - weight @ y)
        grad_y = scale * (weight.sum(0)[:, None] * y - weight.T @ x)
        return grad_x, grad_y, None, None


def pairwise_squared_euclidean(x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """(N, M) matrix of ||x_i - y_j||^2 via |x|^2 + |y|^2 - 2 x.y, clamped at zero."""
    result: torch.Tensor = _PairwiseEuclidean.apply(x, y, True, 0.0)
    return result


def pairwise_euclidean(
    x: torch.Tensor, y: torch.Tensor | None = None, eps: float = EPS
) -> torch.Tensor:
    """(N, M) matrix of plain L2 distances with the safe square root."""
    result: torch.Tensor = _PairwiseEuclidean.apply(x, y, False, eps)
    return result


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


def pairwise_snr(x: torch.Tensor, y: torch.Tensor | None = None, eps: float = EPS) -> torch.Tensor:
    """(N, M) matrix of Var(y_j - x_i) / Var(x_i), the signal-to-noise-ratio distance (Yuan et
    al., "Signal-to-Noise Ratio: A Robust Distance Metric for Deep Metric Learning", CVPR 2019).

    With centred rows c(v) = v - mean(v), Var(y - x) = ||c(y) - c(x)||^2 / D, so the matrix is
    the fused squared Euclidean one of the centred rows over D (Var(x_i) + eps): a constant
    anchor gives a large finite value and finite gradients instead of 0/0.
    """
    x_centred = x - x.mean(dim=1, keepdim=True)
    y_centred = None if y is None else y - y.mean(dim=1, keepdim=True)
    noise = pairwise_squared_euclidean(x_centred, y_centred)
    signal = x_centred.pow(2).sum(dim=1, keepdim=True)  # D Var(x_i)
    return noise / (signal + x.shape[1] * eps)


class SNRDistance(Distance):
    """d_SNR(a, b) = Var(b - a) / Var(a): the noise b - a over the anchor's signal (not
    symmetric; the rows are the anchors). See :func:`pairwise_snr`. ``normalize`` L2-normalises
    the embeddings first (pytorch-metric-learning's default; the paper does not)."""

    def __init__(self, normalize: bool = False) -> None:
        self.normalize = normalize

    def matrix(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.normalize:
            x = F.normalize(x, dim=1, eps=EPS)
            y = None if y is None else F.normalize(y, dim=1, eps=EPS)
        return pairwise_snr(x, y)

    def __repr__(self) -> str:
        return f"SNRDistance(normalize={self.normalize})"
