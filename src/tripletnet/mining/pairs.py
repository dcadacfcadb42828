"""Pair miners: the multi-similarity miner and the pair-margin miner."""

from __future__ import annotations

import math

import torch

from ..checks import check_positive
from ..comparison import PairMasks
from ..distances import CosineSimilarity, Distance
from .base import PairMiner


class MultiSimilarityMiner(PairMiner):
    """Wang et al. 2019: keep a negative if S(a, n) + epsilon > min_p S(a, p) and a positive if
    S(a, p) - epsilon < max_n S(a, n). Cosine similarity by default."""

    def __init__(self, epsilon: float = 0.1, distance: Distance | None = None) -> None:
        super().__init__(distance if distance is not None else CosineSimilarity())
        check_positive("epsilon", epsilon, allow_zero=True)
        self.epsilon = epsilon

    def select(self, dissimilarity: torch.Tensor, masks: PairMasks, dim: int) -> PairMasks:
        hardest_positive = torch.where(masks.positive, dissimilarity, -math.inf).amax(1, True)
        hardest_negative = torch.where(masks.negative, dissimilarity, math.inf).amin(1, True)
        negative = masks.negative & (dissimilarity - self.epsilon < hardest_positive)
        positive = masks.positive & (dissimilarity + self.epsilon > hardest_negative)
        return PairMasks(positive, negative)


class PairMarginMiner(PairMiner):
    """Keep the pairs that break a margin: positives farther than ``pos_margin`` and negatives
    nearer than ``neg_margin`` (for a similarity: positives below it, negatives above it)."""

    def __init__(
        self, pos_margin: float = 0.2, neg_margin: float = 0.8, distance: Distance | None = None
    ) -> None:
        super().__init__(distance)
        self.pos_margin, self.neg_margin = pos_margin, neg_margin

    def select(self, dissimilarity: torch.Tensor, masks: PairMasks, dim: int) -> PairMasks:
        sign = -1.0 if self.distance.is_similarity else 1.0  # margins are in the distance's units
        positive = masks.positive & (dissimilarity > sign * self.pos_margin)
        negative = masks.negative & (dissimilarity < sign * self.neg_margin)
        return PairMasks(positive, negative)
