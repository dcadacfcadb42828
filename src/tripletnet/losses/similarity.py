"""Losses that weight pairs by their similarity S (cosine by default).

* :class:`MultiSimilarityLoss` (Wang et al. 2019), averaged over the anchors:
  (1/alpha) log[1 + sum_{P_i} exp(-alpha (S_ik - base))] + (1/beta) log[1 + sum_{N_i} exp(beta (S_ik - base))]
* :class:`CircleLoss` (Sun et al. 2020), per anchor:
  log[1 + sum_{N} exp(g a_n (s_n - m)) sum_{P} exp(-g a_p (s_p - 1 + m))],
  a_p = [1 + m - s_p]_+, a_n = [s_n + m]_+, held constant in the gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..checks import check_positive
from ..comparison import PairMasks
from ..distances import CosineSimilarity, Distance
from ..mining.base import PairMiner
from .base import Reduction, masked_logsumexp, reduce
from .pair_loss import PairLoss


class MultiSimilarityLoss(PairLoss):
    """alpha = 2, beta = 50, base = 0.5 (the authors' code; the paper's text uses 1)."""

    cosine = True
    mixable = True

    def __init__(
        self,
        alpha: float = 2.0,
        beta: float = 50.0,
        base: float = 0.5,
        distance: Distance | None = None,
        reduction: Reduction = "mean",
        miner: PairMiner | None = None,
    ) -> None:
        super().__init__(distance or CosineSimilarity(), reduction, miner)
        self.require_similarity()
        check_positive("alpha", alpha)
        check_positive("beta", beta)
        self.alpha, self.beta, self.base = alpha, beta, base

    def pair_loss(self, dissimilarity: torch.Tensor, masks: PairMasks) -> torch.Tensor:
        shifted = -dissimilarity - self.base
        pull = masked_logsumexp(-self.alpha * shifted, masks.positive, add_one=True) / self.alpha
        push = masked_logsumexp(self.beta * shifted, masks.negative, add_one=True) / self.beta
        return reduce(pull + push, self.reduction)


class CircleLoss(PairLoss):
    """m = 0.4, gamma = 80 (the paper's fine-grained setting); anchors that lack a positive or a
    negative give 0; mean over the non-zero terms."""

    cosine = True

    def __init__(
        self,
        margin: float = 0.4,
        gamma: float = 80.0,
        distance: Distance | None = None,
        reduction: Reduction = "mean_nonzero",
        miner: PairMiner | None = None,
    ) -> None:
        super().__init__(distance or CosineSimilarity(), reduction, miner)
        self.require_similarity()
        check_positive("margin", margin, allow_zero=True)
        check_positive("gamma", gamma)
        self.margin, self.gamma = margin, gamma

    def pair_loss(self, dissimilarity: torch.Tensor, masks: PairMasks) -> torch.Tensor:
        similarity = -dissimilarity
        weight_pos = torch.relu(1 + self.margin - similarity).detach()
        weight_neg = torch.relu(similarity + self.margin).detach()
        pos_logits = -self.gamma * weight_pos * (similarity - (1 - self.margin))
        neg_logits = self.gamma * weight_neg * (similarity - self.margin)
        pos = masked_logsumexp(pos_logits, masks.positive)
        neg = masked_logsumexp(neg_logits, masks.negative)
        return reduce(F.softplus(pos + neg), self.reduction)
