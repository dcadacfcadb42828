"""Triplet miners: batch-all, batch-hard, semi-hard, easy-positive and distance-weighted."""

from __future__ import annotations

import math

import torch

from ..checks import check_positive
from ..comparison import PairMasks
from ..distances import Distance
from .base import TripletMiner, Triplets


def all_triplets(masks: PairMasks) -> Triplets:
    """Every (a, p, n) with p a positive and n a negative of a: O(number of triplets) memory."""
    anchor, positive = masks.positive.nonzero(as_tuple=True)
    pair, negative = masks.negative[anchor].nonzero(as_tuple=True)
    return Triplets(anchor[pair], positive[pair], negative)


def nearest_farther_negative(
    dissimilarity: torch.Tensor, negative: torch.Tensor, thresholds: torch.Tensor
) -> torch.Tensor:
    """For each row a and each threshold t in ``thresholds[a]``, the negative of a with the
    smallest dissimilarity above t, or -1 when none: O(N M log M) time, O(N M) memory."""
    values, order = torch.where(negative, dissimilarity, math.inf).sort(dim=1)
    rank = torch.searchsorted(values, thresholds.contiguous(), right=True)
    found = rank < negative.sum(dim=1, keepdim=True)
    chosen = order.gather(1, rank.clamp_max(values.shape[1] - 1))
    return torch.where(found, chosen, torch.full_like(chosen, -1))


class BatchAllMiner(TripletMiner):
    """Every valid triplet of the batch (Hermans et al. 2017, "batch all")."""

    def select(self, dissimilarity: torch.Tensor, masks: PairMasks, dim: int) -> Triplets:
        return all_triplets(masks)


class BatchHardMiner(TripletMiner):
    """Per anchor its farthest positive and nearest negative (Hermans et al. 2017)."""

    def select(self, dissimilarity: torch.Tensor, masks: PairMasks, dim: int) -> Triplets:
        positive = torch.where(masks.positive, dissimilarity, -math.inf).argmax(dim=1)
        negative = torch.where(masks.negative, dissimilarity, math.inf).argmin(dim=1)
        anchor = (masks.positive.any(dim=1) & masks.negative.any(dim=1)).nonzero().view(-1)
        return Triplets(anchor, positive[anchor], negative[anchor])


class SemiHardMiner(TripletMiner):
    """FaceNet's semi-hard negatives (Schroff et al. 2015): for every anchor-positive pair, the
    nearest negative that is farther than the positive but inside the margin,
    d(a, p) < d(a, n) < d(a, p) + margin; pairs without one are left out."""

    def __init__(self, margin: float = 0.2, distance: Distance | None = None) -> None:
        super().__init__(distance)
        check_positive("margin", margin)
        self.margin = margin

    def select(self, dissimilarity: torch.Tensor, masks: PairMasks, dim: int) -> Triplets:
        negative = nearest_farther_negative(dissimilarity, masks.negative, dissimilarity)
        anchor, positive = masks.positive.nonzero(as_tuple=True)
        negative = negative[anchor, positive]
        found = negative >= 0
        anchor, positive, negative = anchor[found], positive[found], negative[found]
        inside = dissimilarity[anchor, negative] < dissimilarity[anchor, positive] + self.margin
        return Triplets(anchor[inside], positive[inside], negative[inside])


class EasyPositiveMiner(TripletMiner):
    """Easy positive, semi-hard negative (Xuan, Stylianou & Pless 2020): per anchor its nearest
    positive, and the nearest negative that is still farther than that positive."""

    def select(self, dissimilarity: torch.Tensor, masks: PairMasks, dim: int) -> Triplets:
        positive = torch.where(masks.positive, dissimilarity, math.inf).argmin(dim=1)
        threshold = dissimilarity.gather(1, positive[:, None])
        negative = nearest_farther_negative(dissimilarity, masks.negative, threshold)[:, 0]
        anchor = (masks.positive.any(dim=1) & (negative >= 0)).nonzero().view(-1)
        return Triplets(anchor, positive[anchor], negative[anchor])


class DistanceWeightedMiner(TripletMiner):
    """Distance-weighted sampling (Wu et al. 2017) for L2-normalised embeddings of dimension n.

    For every anchor-positive pair one negative is drawn with probability proportional to
    min(1/q(d), ...) where q(d) ~ d^(n-2) (1 - d^2/4)^((n-3)/2) is the density of distances
    between uniform points on the unit sphere; d is clipped below at ``cutoff`` and negatives at
    ``nonzero_loss_cutoff`` or farther get weight 0 (uniform when no negative is left). Seeded.
    """

    def __init__(
        self, cutoff: float = 0.5, nonzero_loss_cutoff: float = 1.4, seed: int = 0
    ) -> None:
        super().__init__()
        check_positive("cutoff", cutoff)
        check_positive("nonzero_loss_cutoff", nonzero_loss_cutoff)
        self.cutoff, self.nonzero_loss_cutoff = cutoff, nonzero_loss_cutoff
        self.generator = torch.Generator().manual_seed(seed)

    def select(self, dissimilarity: torch.Tensor, masks: PairMasks, dim: int) -> Triplets:
        distance = dissimilarity.clamp(self.cutoff, 2.0 - 1e-6)
        log_weight = -(dim - 2) * distance.log() - (dim - 3) / 2 * torch.log1p(-distance.pow(2) / 4)
        usable = masks.negative & (dissimilarity < self.nonzero_loss_cutoff)
        log_weight = log_weight.masked_fill(~usable, -math.inf)
        log_weight = log_weight - log_weight.amax(dim=1, keepdim=True).nan_to_num(0.0, 0.0, 0.0)
        weight = log_weight.exp()
        fallback = masks.negative.to(weight.dtype)
        weight = torch.where(weight.sum(1, keepdim=True) > 0, weight, fallback)
        rows = (masks.positive.any(dim=1) & masks.negative.any(dim=1)).nonzero().view(-1)
        anchor, positive = masks.positive[rows].nonzero(as_tuple=True)
        if len(rows) == 0:
            return Triplets(anchor, positive, positive)
        per_row = int(masks.positive[rows].sum(dim=1).max())
        draws = torch.multinomial(
            weight[rows].double().cpu(), per_row, replacement=True, generator=self.generator
        ).to(dissimilarity.device)
        rank = masks.positive[rows].long().cumsum(dim=1)[anchor, positive] - 1
        return Triplets(rows[anchor], positive, draws[anchor, rank])
