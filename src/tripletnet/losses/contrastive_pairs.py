"""The contrastive loss of Hadsell, Chopra & LeCun (2006), the Siamese baseline.

For a pair at distance D with Y = 0 when similar and Y = 1 when not:

    L = (1 - Y) * D^2 / 2 + Y * max(0, m - D)^2 / 2
"""

from __future__ import annotations

import torch
from torch import nn

from ..distances import euclidean


def pair_contrastive_loss(
    distance: torch.Tensor, same: torch.Tensor, margin: float = 1.0
) -> torch.Tensor:
    """Mean contrastive loss over pairs; ``same`` is a boolean (N,) tensor (True = similar)."""
    similar = same.to(distance.dtype)
    pull = similar * distance.pow(2)
    push = (1.0 - similar) * torch.relu(margin - distance).pow(2)
    return 0.5 * (pull + push).mean()


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
