"""Losses, one module per family (see docs/losses.md).

Every loss is called as ``loss(embeddings, labels, ref_emb=None, ref_labels=None)`` and
returns a scalar; ``distance=``, ``reduction=`` and ``miner=`` change what it compares.

The parts are imported when first used (``lazy_exports``): the catalogue of names alone needs
no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

if TYPE_CHECKING:
    from ..comparison import PairMasks, pair_masks
    from .base import MetricLoss, reduce
    from .contrastive import ContrastiveLoss
    from .contrastive_pairs import PairContrastiveLoss, contrastive_terms, pair_contrastive_loss
    from .distance_ratio import DistanceRatioLoss, distance_ratio_loss, distance_ratio_terms
    from .elasticface import ElasticArcFaceLoss, ElasticCosFaceLoss
    from .energy_confusion import EnergyConfusion
    from .lifted import LiftedStructureLoss
    from .metrix import Metrix, MixPairs, mix, mixing_pairs
    from .proxy import ArcFaceLoss, CosFaceLoss, ProxyAnchorLoss, ProxyNCALoss
    from .regularized import Regularized
    from .similarity import CircleLoss, MultiSimilarityLoss
    from .snr import SNRContrastiveLoss
    from .softmax import NPairLoss, NTXentLoss, SupConLoss
    from .softmax import NTXentLoss as InfoNCELoss
    from .tcm import ThresholdConsistentMargin
    from .triplet import DistanceRatioTripletLoss, TripletMarginLoss
    from .xbm import CrossBatchMemory

__all__ = [
    "ArcFaceLoss",
    "CircleLoss",
    "ContrastiveLoss",
    "CosFaceLoss",
    "CrossBatchMemory",
    "DistanceRatioLoss",
    "DistanceRatioTripletLoss",
    "ElasticArcFaceLoss",
    "ElasticCosFaceLoss",
    "EnergyConfusion",
    "InfoNCELoss",
    "LiftedStructureLoss",
    "MetricLoss",
    "Metrix",
    "MixPairs",
    "MultiSimilarityLoss",
    "NPairLoss",
    "NTXentLoss",
    "PairContrastiveLoss",
    "PairMasks",
    "ProxyAnchorLoss",
    "ProxyNCALoss",
    "Regularized",
    "SNRContrastiveLoss",
    "SupConLoss",
    "ThresholdConsistentMargin",
    "TripletMarginLoss",
    "contrastive_terms",
    "distance_ratio_loss",
    "distance_ratio_terms",
    "mix",
    "mixing_pairs",
    "pair_contrastive_loss",
    "pair_masks",
    "reduce",
]
WHERE = {
    "PairMasks": "..comparison",
    "pair_masks": "..comparison",
    "MetricLoss": ".base",
    "reduce": ".base",
    "ContrastiveLoss": ".contrastive",
    "PairContrastiveLoss": ".contrastive_pairs",
    "contrastive_terms": ".contrastive_pairs",
    "pair_contrastive_loss": ".contrastive_pairs",
    "DistanceRatioLoss": ".distance_ratio",
    "distance_ratio_loss": ".distance_ratio",
    "distance_ratio_terms": ".distance_ratio",
    "ElasticArcFaceLoss": ".elasticface",
    "ElasticCosFaceLoss": ".elasticface",
    "EnergyConfusion": ".energy_confusion",
    "LiftedStructureLoss": ".lifted",
    "Metrix": ".metrix",
    "MixPairs": ".metrix",
    "mix": ".metrix",
    "mixing_pairs": ".metrix",
    "ArcFaceLoss": ".proxy",
    "CosFaceLoss": ".proxy",
    "ProxyAnchorLoss": ".proxy",
    "ProxyNCALoss": ".proxy",
    "Regularized": ".regularized",
    "CircleLoss": ".similarity",
    "MultiSimilarityLoss": ".similarity",
    "SNRContrastiveLoss": ".snr",
    "NPairLoss": ".softmax",
    "NTXentLoss": ".softmax",
    "SupConLoss": ".softmax",
    "ThresholdConsistentMargin": ".tcm",
    "DistanceRatioTripletLoss": ".triplet",
    "TripletMarginLoss": ".triplet",
    "CrossBatchMemory": ".xbm",
    "InfoNCELoss": ".softmax",
}
__getattr__ = lazy_exports(__name__, WHERE)
