"""Losses, one module per family (see docs/losses.md).

Every loss is called as ``loss(embeddings, labels, ref_emb=None, ref_labels=None)`` and
returns a scalar; ``distance=``, ``reduction=`` and ``miner=`` change what it compares.
"""

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
from .tcm import ThresholdConsistentMargin
from .triplet import DistanceRatioTripletLoss, TripletMarginLoss
from .xbm import CrossBatchMemory

InfoNCELoss = NTXentLoss

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
