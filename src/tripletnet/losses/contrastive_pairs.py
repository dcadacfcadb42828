"""The contrastive loss of Hadsell, Chopra & LeCun (2006), the Siamese baseline.

For a pair at distance D with Y = 0 when similar and Y = 1 when not:

    L = (1 - Y) * D^2 / 2 + Y * max(0, m - D)^2 / 2
"""

from __future__ import annotations

import torch
from torch import nn

from ..distances import euclidean


def pull_terms(distance: torch.Tensor, pos_margin: float) -> torch.Tensor:
    """Similar pairs: max(0, D - pos_margin)^2 / 2."""
    return 0.5 * torch.relu(distance - pos_margin).pow(2)


def push_terms(distance: torch.Tensor, neg_margin: float) -> torch.Tensor:
    """Dissimilar pairs: max(0, neg_margin - D)^2 / 2."""
    return 0.5 * torch.relu(neg_margin - distance).pow(2)


def contrastive_terms(
    distance: torch.Tensor, same: torch.Tensor, pos_margin: float, neg_margin: float
) -> torch.Tensor:
    """Per-pair max(0, D - pos_margin)^2 / 2 if similar, else max(0, neg_margin - D)^2 / 2."""
    return torch.where(same, pull_terms(distance, pos_margin), push_terms(distance, neg_margin))


def pair_contrastive_loss(
    distance: torch.Tensor, same: torch.Tensor, margin: float = 1.0
) -> torch.Tensor:
    """Mean contrastive loss over pairs; ``same`` is a boolean (N,) tensor (True = similar)."""
    return contrastive_terms(distance, same.bool(), 0.0, margin).mean()


class PairContrastiveLoss(nn.Module):
    """Hadsell et al.'s loss on two (N, D) embedding tensors and a boolean ``same`` (N,)."""

    def __init__(self, margin: float = 1.0) -> None:
        super().__init__()
        if margin <= 0:
            raise ValueError(f"margin must be positive, got {margin}")
        self.margin = margin

    def forward(
        self, first: torch.Tensor, second: torch.Tensor, same: torch.Tensor
    ) -> torch.Tensor:
        return pair_contrastive_loss(euclidean(first, second), same, self.margin)
