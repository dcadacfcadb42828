"""Base of the losses that read the batch's pair matrix (contrastive, lifted, softmax, MS, circle)."""

from __future__ import annotations

import torch

from ..checks import InvalidInputError
from ..comparison import Comparison, PairMasks
from ..distances import Distance
from ..mining.base import PairMiner, check_miner
from .base import MetricLoss, Reduction


class PairLoss(MetricLoss):
    """Computes the (N, M) dissimilarity matrix and pair masks (restricted by an optional pair
    miner) and hands them to ``pair_loss``."""

    def __init__(self, distance: Distance, reduction: Reduction, miner: PairMiner | None) -> None:
        super().__init__(reduction)
        check_miner(miner, PairMiner, type(self).__name__, "MultiSimilarityMiner, PairMarginMiner")
        self.distance = distance
        self.miner = miner

    def compute(self, batch: Comparison) -> torch.Tensor:
        masks = batch.masks()
        if self.miner is not None:
            mined = self.miner.mine(batch)
            masks = PairMasks(masks.positive & mined.positive, masks.negative & mined.negative)
        return self.pair_loss(self.distance.dissimilarity(batch.embeddings, batch.ref_emb), masks)

    def pair_loss(self, dissimilarity: torch.Tensor, masks: PairMasks) -> torch.Tensor:
        raise NotImplementedError

    def require_distance(self) -> None:
        if self.distance.is_similarity:
            raise InvalidInputError(
                f"{type(self).__name__} needs a distance (Euclidean), not {self.distance!r}"
            )

    def require_similarity(self) -> None:
        if not self.distance.is_similarity:
            raise InvalidInputError(
                f"{type(self).__name__} needs a similarity (CosineSimilarity, DotProduct), "
                f"not {self.distance!r}"
            )


def safe_logaddexp(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """log(exp(a) + exp(b)) that gives -inf, with zero gradients, when both are -inf."""
    empty = torch.isneginf(first) & torch.isneginf(second)
    zero = torch.zeros_like(first)
    value = torch.logaddexp(torch.where(empty, zero, first), torch.where(empty, zero, second))
    return torch.where(empty, torch.full_like(first, float("-inf")), value)
