"""Losses, one module per family."""

from .contrastive_pairs import PairContrastiveLoss, pair_contrastive_loss
from .distance_ratio import DistanceRatioLoss, distance_ratio_loss

__all__ = [
    "DistanceRatioLoss",
    "PairContrastiveLoss",
    "distance_ratio_loss",
    "pair_contrastive_loss",
]
