"""Energy confusion regulariser (Chen & Deng, "Energy Confused Adversarial Metric Learning for
Zero-Shot Image Retrieval and Clustering", AAAI 2019, ECAML):

    L_ec = (1 / |N|) sum_{(i, j) in N} ||f_i - f_j||^2        (N: the different-class pairs)

the energy of the different-class pairs, which a metric loss pushes up and this term pulls
down: an adversary that "confuses" the metric on the seen classes so that it does not over-fit
them (the paper's remedy for zero-shot retrieval). The embeddings are L2-normalised first
(``normalize``, as the paper's unit-sphere features), so the energy is 2 - 2 cos and bounded.
Add it to a base loss with :class:`.Regularized` (the paper's total: L_metric + lambda L_ec).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..comparison import Comparison
from ..distances import EPS, pairwise_squared_euclidean
from .base import MetricLoss


class EnergyConfusion(MetricLoss):
    """The mean squared distance of the different-class pairs (0 when the batch has none)."""

    def __init__(self, normalize: bool = True) -> None:
        super().__init__("mean")
        self.normalize = normalize

    def compute(self, batch: Comparison) -> torch.Tensor:
        x, y = batch.embeddings, batch.ref_emb
        if self.normalize:
            x, y = F.normalize(x, dim=1, eps=EPS), F.normalize(y, dim=1, eps=EPS)
        energy = pairwise_squared_euclidean(x, None if batch.exclude_self else y)
        negative = batch.masks().negative
        return torch.where(negative, energy, 0.0).sum() / negative.sum().clamp_min(1)
