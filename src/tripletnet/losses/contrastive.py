"""Contrastive loss over every pair of a batch (Hadsell, Chopra & LeCun 2006).

    positive pair:  max(0, D - pos_margin)^2 / 2        negative pair:  max(0, neg_margin - D)^2 / 2

with plain Euclidean D; pos_margin = 0 gives the paper's D^2 / 2. The pair-level function is
:mod:`.contrastive_pairs` (``pull_terms``, ``push_terms``), shared with the Siamese baseline.
"""

from __future__ import annotations

import torch

from ..checks import check_positive
from ..comparison import PairMasks
from ..distances import Distance, Euclidean
from ..mining.base import PairMiner
from .base import Reduction
from .contrastive_pairs import pull_terms
from .pair_loss import PairLoss


class ContrastiveLoss(PairLoss):
    """Hadsell et al.'s loss on all positive and negative pairs; mean over non-zero terms.

    >>> x = torch.tensor([[0.0], [0.0], [3.0], [3.0]])  # classes 3 apart, beyond neg_margin
    >>> round(float(ContrastiveLoss()(x, torch.tensor([0, 0, 1, 1]))), 6)
    0.0
    """

    mixable = True

    def __init__(
        self,
        pos_margin: float = 0.0,
        neg_margin: float = 1.0,
        distance: Distance | None = None,
        reduction: Reduction = "mean_nonzero",
        miner: PairMiner | None = None,
    ) -> None:
        super().__init__(distance if distance is not None else Euclidean(), reduction, miner)
        self.require_distance()
        check_positive("pos_margin", pos_margin, allow_zero=True)
        check_positive("neg_margin", neg_margin)
        self.pos_margin, self.neg_margin = pos_margin, neg_margin

    def pair_loss(self, dissimilarity: torch.Tensor, masks: PairMasks) -> torch.Tensor:
        # push_terms' max(0, m - D)^2 / 2 is non-zero only for the negatives inside the margin:
        # gather them when they are few, else keep a masked (N, M) matrix (fewer passes then)
        pull = pull_terms(dissimilarity[masks.positive], self.pos_margin)
        inside = masks.negative & (dissimilarity < self.neg_margin)
        n_inside = int(inside.sum())
        if 4 * n_inside < inside.numel():
            push = self.neg_margin - dissimilarity[inside]
        else:
            push = (self.neg_margin - dissimilarity).masked_fill_(~inside, 0.0).flatten()
        total = pull.sum() + 0.5 * torch.linalg.vecdot(push, push)
        if self.reduction == "sum":
            return total
        if self.reduction == "mean":
            count = len(pull) + int(masks.negative.sum())
        else:
            count = int(torch.count_nonzero(pull)) + n_inside
        return total / max(count, 1)
