"""Triplet losses over the tuples of a batch.

* :class:`TripletMarginLoss` (Schroff et al. 2015; Hermans et al. 2017):
  max(0, d(a, p) - d(a, n) + margin), or softplus(d(a, p) - d(a, n)) with ``soft_margin``.
  Without a miner it takes every valid triplet of the batch ("batch all") with the exact
  O(B^2 log B) sum of :mod:`.batch_all`, plain Euclidean distance, averaged over the non-zero terms.
* :class:`DistanceRatioTripletLoss`: Hoffer & Ailon's distance-ratio loss (MSE or NLL form,
  see :mod:`.distance_ratio`) over the mined triplets (all of them by default).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..checks import InvalidInputError, check_choice, check_positive
from ..comparison import Comparison, PairMasks
from ..distances import Distance, Euclidean
from ..mining.base import TripletMiner, Triplets, check_miner
from ..mining.triplets import all_triplets
from .base import MetricLoss, Reduction, reduce
from .batch_all import batch_all_hinge, count_triplets
from .distance_ratio import RatioForm, distance_ratio_terms


class TripletLoss(MetricLoss):
    """Base of the triplet losses: a per-triplet ``terms(d_ap, d_an)`` over the mined triplets,
    or over every valid triplet (``all_triplets_loss``) without a miner."""

    def __init__(
        self, distance: Distance | None, reduction: Reduction, miner: TripletMiner | None
    ) -> None:
        super().__init__(reduction)
        check_miner(miner, TripletMiner, type(self).__name__, "SemiHardMiner, BatchHardMiner")
        self.distance = distance if distance is not None else Euclidean()
        self.miner = miner

    def compute(self, batch: Comparison) -> torch.Tensor:
        dissimilarity = self.distance.dissimilarity(batch.embeddings, batch.ref_emb)
        if self.miner is None:
            return self.all_triplets_loss(dissimilarity, batch.masks())
        return self.triplets_loss(dissimilarity, self.miner.mine(batch))

    def all_triplets_loss(self, dissimilarity: torch.Tensor, masks: PairMasks) -> torch.Tensor:
        return self.triplets_loss(dissimilarity, all_triplets(masks))

    def triplets_loss(self, dissimilarity: torch.Tensor, triplets: Triplets) -> torch.Tensor:
        anchor, positive, negative = triplets
        terms = self.terms(dissimilarity[anchor, positive], dissimilarity[anchor, negative])
        return reduce(terms, self.reduction)

    def terms(self, d_pos: torch.Tensor, d_neg: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class TripletMarginLoss(TripletLoss):
    """max(0, d(a, p) - d(a, n) + margin) over the batch's triplets (or softplus(d(a, p) - d(a, n))).

    Defaults follow Hermans et al. (2017): batch all, plain Euclidean, mean over non-zero terms.
    ``distance=Euclidean(squared=True)`` gives FaceNet's squared form; with a similarity the
    term is s(a, n) - s(a, p) + margin. Batch all with the hinge costs O(B^2) memory; with the
    soft margin it lists the triplets (O(number of triplets)).
    """

    def __init__(
        self,
        margin: float = 0.2,
        soft_margin: bool = False,
        distance: Distance | None = None,
        reduction: Reduction = "mean_nonzero",
        miner: TripletMiner | None = None,
    ) -> None:
        super().__init__(distance, reduction, miner)
        if not soft_margin:
            check_positive("margin", margin, allow_zero=True)
        self.margin, self.soft_margin = margin, soft_margin

    def all_triplets_loss(self, dissimilarity: torch.Tensor, masks: PairMasks) -> torch.Tensor:
        if self.soft_margin:
            return super().all_triplets_loss(dissimilarity, masks)
        total, nonzero = batch_all_hinge(dissimilarity, *masks, self.margin)
        if self.reduction == "sum":
            return total
        count = int(nonzero) if self.reduction == "mean_nonzero" else count_triplets(*masks)
        return total / max(count, 1)

    def terms(self, d_pos: torch.Tensor, d_neg: torch.Tensor) -> torch.Tensor:
        if self.soft_margin:
            return F.softplus(d_pos - d_neg)
        return torch.relu(d_pos - d_neg + self.margin)


class DistanceRatioTripletLoss(TripletLoss):
    """Hoffer & Ailon (2015) over a batch: softmax(d(a, p), d(a, n)) pushed towards (0, 1), as
    MSE (p+^2) or NLL (-log p-) per triplet, plain Euclidean; every triplet unless a miner is given.
    """

    def __init__(
        self,
        form: RatioForm = "mse",
        distance: Distance | None = None,
        reduction: Reduction = "mean",
        miner: TripletMiner | None = None,
    ) -> None:
        super().__init__(distance, reduction, miner)
        check_choice("form", form, ("mse", "nll"))
        if self.distance.is_similarity:
            raise InvalidInputError("the distance-ratio loss needs a distance, not a similarity")
        self.form: RatioForm = form

    def terms(self, d_pos: torch.Tensor, d_neg: torch.Tensor) -> torch.Tensor:
        return distance_ratio_terms(d_pos, d_neg, self.form)
