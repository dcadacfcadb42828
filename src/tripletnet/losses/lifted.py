"""Lifted structure loss (Oh Song, Xiang, Jegelka & Savarese 2016).

For every positive pair (i, j), with N_i the negatives of i:

    J_ij = log( sum_{k in N_i} exp(m - D_ik) + sum_{l in N_j} exp(m - D_jl) ) + D_ij
    L = 1 / (2 |P|) sum_{(i, j) in P} max(0, J_ij)^2

plain Euclidean D, m = 1. Each of the two sums is a row (column) log-sum-exp of the (N, M)
matrix, so the loss costs O(N M). With a reference set, N_j are the batch rows negative to j.
"""

from __future__ import annotations

import torch

from ..checks import check_positive
from ..comparison import PairMasks
from ..distances import Distance, Euclidean
from ..mining.base import PairMiner
from .base import Reduction, masked_logsumexp, reduce
from .pair_loss import PairLoss, safe_logaddexp


class LiftedStructureLoss(PairLoss):
    """max(0, J_ij)^2 / 2 per positive pair, averaged; ``pos_margin`` is subtracted from D_ij."""

    def __init__(
        self,
        neg_margin: float = 1.0,
        pos_margin: float = 0.0,
        distance: Distance | None = None,
        reduction: Reduction = "mean",
        miner: PairMiner | None = None,
    ) -> None:
        super().__init__(distance if distance is not None else Euclidean(), reduction, miner)
        self.require_distance()
        check_positive("neg_margin", neg_margin)
        check_positive("pos_margin", pos_margin, allow_zero=True)
        self.neg_margin, self.pos_margin = neg_margin, pos_margin

    def pair_loss(self, dissimilarity: torch.Tensor, masks: PairMasks) -> torch.Tensor:
        push = self.neg_margin - dissimilarity
        row = masked_logsumexp(push, masks.negative)
        column = masked_logsumexp(push.T, masks.negative.T)
        anchor, positive = masks.positive.nonzero(as_tuple=True)
        joint = safe_logaddexp(row[anchor], column[positive])
        terms = torch.relu(joint + dissimilarity[anchor, positive] - self.pos_margin).pow(2) / 2
        return reduce(terms, self.reduction)
