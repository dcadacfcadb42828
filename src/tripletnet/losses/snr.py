"""SNR contrastive loss (Yuan et al., "Signal-to-Noise Ratio: A Robust Distance Metric for Deep
Metric Learning", CVPR 2019, DSML):

    positive pair:  max(0, d_SNR - pos_margin)        negative pair:  max(0, neg_margin - d_SNR)

with d_SNR(a, b) = Var(b - a) / Var(a) (:class:`tripletnet.distances.SNRDistance`); pos_margin 0
and neg_margin 1 give the paper's L = sum_P d_SNR + sum_N max(0, m - d_SNR) (pytorch-metric-
learning's ``SignalToNoiseRatioContrastiveLoss``). The paper's optional zero-mean regulariser
lambda (1/N) sum_i |sum_k h_ik| is ``zero_mean_weight`` (0: off, as in PML).
"""

from __future__ import annotations

import torch

from ..checks import check_positive
from ..comparison import Comparison, PairMasks
from ..distances import Distance, SNRDistance
from ..mining.base import PairMiner
from .base import Reduction, reduce
from .pair_loss import PairLoss


class SNRContrastiveLoss(PairLoss):
    """Hinge contrastive loss on the SNR distance; mean over the non-zero terms."""

    def __init__(
        self,
        pos_margin: float = 0.0,
        neg_margin: float = 1.0,
        zero_mean_weight: float = 0.0,
        distance: Distance | None = None,
        reduction: Reduction = "mean_nonzero",
        miner: PairMiner | None = None,
    ) -> None:
        super().__init__(distance if distance is not None else SNRDistance(), reduction, miner)
        self.require_distance()
        check_positive("pos_margin", pos_margin, allow_zero=True)
        check_positive("neg_margin", neg_margin)
        check_positive("zero_mean_weight", zero_mean_weight, allow_zero=True)
        self.pos_margin, self.neg_margin = pos_margin, neg_margin
        self.zero_mean_weight = zero_mean_weight

    def compute(self, batch: Comparison) -> torch.Tensor:
        loss = super().compute(batch)
        if self.zero_mean_weight:
            loss = loss + self.zero_mean_weight * batch.embeddings.sum(dim=1).abs().mean()
        return loss

    def pair_loss(self, dissimilarity: torch.Tensor, masks: PairMasks) -> torch.Tensor:
        pull = torch.relu(dissimilarity[masks.positive] - self.pos_margin)
        push = torch.relu(self.neg_margin - dissimilarity[masks.negative])
        return reduce(torch.cat([pull, push]), self.reduction)
