"""Softmax-family losses on the batch's similarity matrix, in O(N M) memory.

* :class:`NTXentLoss` (InfoNCE, Oord et al. 2018; NT-Xent, Chen et al. 2020), for every positive
  pair (a, p) with s the similarity over the temperature t:
  -log[ exp(s_ap) / (exp(s_ap) + sum_{n in N_a} exp(s_an)) ].
* :class:`NPairLoss` (Sohn 2016): the same with dot products and t = 1.
* :class:`SupConLoss` (Khosla et al. 2020), per anchor with positives:
  -(1 / |P_a|) sum_{p in P_a} log[ exp(s_ap) / sum_{k != a} exp(s_ak) ].

Only a row-wise log-sum-exp over the negatives (or all others) is needed, never a row per pair.
"""

from __future__ import annotations

import torch

from ..checks import check_positive
from ..comparison import PairMasks
from ..distances import CosineSimilarity, Distance, DotProduct
from ..mining.base import PairMiner
from .base import Reduction, masked_logsumexp, reduce
from .pair_loss import PairLoss


class SoftmaxLoss(PairLoss):
    """Shared part: logits = similarity / temperature (minus distance / t for a distance).
    ``temperature`` and ``distance`` default to the class's ``default_temperature`` and
    ``default_distance``."""

    default_temperature = 1.0
    default_distance: type[Distance] = CosineSimilarity
    cosine = True  # with the default distance

    def __init__(
        self,
        temperature: float | None = None,
        distance: Distance | None = None,
        reduction: Reduction = "mean",
        miner: PairMiner | None = None,
    ) -> None:
        super().__init__(distance or self.default_distance(), reduction, miner)
        self.temperature = self.default_temperature if temperature is None else temperature
        check_positive("temperature", self.temperature)

    def logits(self, dissimilarity: torch.Tensor) -> torch.Tensor:
        return -dissimilarity / self.temperature


class NTXentLoss(SoftmaxLoss):
    """NT-Xent / InfoNCE with labels: every same-label pair is a positive, contrasted with the
    anchor's negatives. Cosine similarity; t = 0.5 as SimCLR (MoCo's InfoNCE uses 0.07)."""

    default_temperature = 0.5

    def pair_loss(self, dissimilarity: torch.Tensor, masks: PairMasks) -> torch.Tensor:
        logits = self.logits(dissimilarity)
        negatives = masked_logsumexp(logits, masks.negative)
        anchor, positive = masks.positive.nonzero(as_tuple=True)
        positive_logits = logits[anchor, positive]
        terms = torch.logaddexp(positive_logits, negatives[anchor]) - positive_logits
        return reduce(terms, self.reduction)


class NPairLoss(NTXentLoss):
    """N-pair loss (Sohn 2016): log(1 + sum_n exp(f.f_n - f.f_p)), i.e. NT-Xent on dot products
    with t = 1 (the paper's L2 penalty on the embeddings is left to the optimiser's weight decay)."""

    default_temperature = 1.0
    default_distance = DotProduct
    cosine = False


class SupConLoss(SoftmaxLoss):
    """Supervised contrastive loss (the L_out form); cosine similarity, t = 0.1; the mean runs
    over the anchors that have a positive."""

    default_temperature = 0.1

    def pair_loss(self, dissimilarity: torch.Tensor, masks: PairMasks) -> torch.Tensor:
        logits = self.logits(dissimilarity)
        everyone = masked_logsumexp(logits, masks.positive | masks.negative)
        count = masks.positive.sum(dim=1)
        anchors = count > 0
        positive_sum = torch.where(masks.positive, logits, 0.0).sum(dim=1)
        terms = everyone[anchors] - positive_sum[anchors] / count[anchors]
        return reduce(terms, self.reduction)


InfoNCELoss = NTXentLoss  # the same loss under its other name
