"""Threshold-consistent margin (TCM) regulariser (Zhang et al., "Threshold-Consistent Margin
Loss for Open-World Deep Metric Learning", ICLR 2024), on cosine similarities s:

    TCM = lambda+ * mean_{P: s <= m+} (m+ - s)  +  lambda- * mean_{N: s >= m-} (s - m-)

the hard positives (below m+) pulled up and the hard negatives (above m-) pushed down, each
averaged over its own hard pairs (0 when there is none). Defaults m+ = 0.9, m- = 0.5,
lambda+ = lambda- = 1 (the paper's and pytorch-metric-learning's
``ThresholdConsistentMarginLoss``). Add it to a base loss with :class:`.Regularized`.
"""

from __future__ import annotations

import torch

from ..checks import check_positive
from ..comparison import Comparison
from ..distances import pairwise_cosine_similarity
from .base import MetricLoss


def hinge_mean(values: torch.Tensor) -> torch.Tensor:
    """The mean of the positive entries of ``values`` (0, with zero gradients, when none is)."""
    hard = values >= 0
    return torch.where(hard, values, 0.0).sum() / hard.sum().clamp_min(1)


class ThresholdConsistentMargin(MetricLoss):
    """The TCM term alone (a regulariser: weight it and add it to a metric loss)."""

    def __init__(
        self,
        pos_margin: float = 0.9,
        neg_margin: float = 0.5,
        pos_weight: float = 1.0,
        neg_weight: float = 1.0,
    ) -> None:
        super().__init__("mean")
        for name, value in (("pos_weight", pos_weight), ("neg_weight", neg_weight)):
            check_positive(name, value, allow_zero=True)
        self.pos_margin, self.neg_margin = pos_margin, neg_margin
        self.pos_weight, self.neg_weight = pos_weight, neg_weight

    def compute(self, batch: Comparison) -> torch.Tensor:
        similarity = pairwise_cosine_similarity(batch.embeddings, batch.ref_emb)
        masks = batch.masks()
        pull = hinge_mean(self.pos_margin - similarity[masks.positive])
        push = hinge_mean(similarity[masks.negative] - self.neg_margin)
        return self.pos_weight * pull + self.neg_weight * push
