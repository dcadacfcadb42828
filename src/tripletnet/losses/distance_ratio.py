"""The Triplet network's loss (Hoffer & Ailon 2015, arXiv 1412.6622).

With d+ = ||Net(x) - Net(x+)|| and d- = ||Net(x) - Net(x-)|| (plain L2), the net outputs
softmax(d+, d-) = (p+, p-). The loss pushes that towards (0, 1):

    MSE form:  ((p+ - 0)^2 + (p- - 1)^2) / 2 = p+^2      (averaged as the authors' MSECriterion)
    NLL form:  -log p-                                    (the form the paper tried first)
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..distances import euclidean

RatioForm = Literal["mse", "nll"]


def distance_ratio_terms(
    d_pos: torch.Tensor, d_neg: torch.Tensor, form: RatioForm = "mse"
) -> torch.Tensor:
    """Per-triplet distance-ratio loss, given the (N,) positive and negative distances.

    The softmax over two values is a sigmoid of their difference: p+ = sigmoid(d+ - d-), and
    -log p- = softplus(d+ - d-); computed that way, in fewer operations.
    """
    if form == "mse":
        return torch.sigmoid(d_pos - d_neg).pow(2)
    if form == "nll":
        return F.softplus(d_pos - d_neg)
    raise ValueError(f"form must be 'mse' or 'nll', got {form!r}")


def distance_ratio_loss(
    d_pos: torch.Tensor, d_neg: torch.Tensor, form: RatioForm = "mse"
) -> torch.Tensor:
    """Mean distance-ratio loss over triplets, given their (N,) positive and negative distances."""
    return distance_ratio_terms(d_pos, d_neg, form).mean()


class DistanceRatioLoss(nn.Module):
    """Hoffer & Ailon's triplet loss on (anchor, positive, negative) embeddings, each (N, D)."""

    def __init__(self, form: RatioForm = "mse") -> None:
        super().__init__()
        if form not in ("mse", "nll"):
            raise ValueError(f"form must be 'mse' or 'nll', got {form!r}")
        self.form: RatioForm = form

    def forward(
        self, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor
    ) -> torch.Tensor:
        return distance_ratio_loss(
            euclidean(anchor, positive), euclidean(anchor, negative), self.form
        )
