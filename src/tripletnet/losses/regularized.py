"""A metric loss plus weighted regularisers on the same batch: L = L_base + sum_k w_k R_k
(threshold-consistent margin, energy confusion, or any other ``MetricLoss``)."""

from __future__ import annotations

import torch
from torch import nn

from ..checks import InvalidInputError
from .base import MetricLoss


class Regularized(nn.Module):
    """``base(x, y, ...) + sum(weight * regulariser(x, y, ...))``; the base's parameters (proxies)
    are this module's, so ``Regularized(loss, ...).parameters()`` still trains them."""

    def __init__(self, base: nn.Module, *terms: tuple[float, MetricLoss]) -> None:
        super().__init__()
        for weight, _ in terms:
            if not weight >= 0 or weight == float("inf"):
                raise InvalidInputError(
                    f"a regulariser's weight must be finite and >= 0, got {weight}"
                )
        self.base = base
        self.weights = [float(weight) for weight, _ in terms]
        self.terms = nn.ModuleList(term for _, term in terms)

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_emb: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        total: torch.Tensor = self.base(embeddings, labels, ref_emb, ref_labels)
        for weight, term in zip(self.weights, self.terms, strict=True):
            if weight:
                total = total + weight * term(embeddings, labels, ref_emb, ref_labels)
        return total
