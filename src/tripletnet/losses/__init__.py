"""Losses, one module per family (see docs/losses.md).

Every loss is called as ``loss(embeddings, labels, ref_emb=None, ref_labels=None)`` and
returns a scalar; ``distance=``, ``reduction=`` and ``miner=`` change what it compares.
"""

from ..comparison import PairMasks, pair_masks
from .base import MetricLoss, reduce
from .contrastive import ContrastiveLoss
from .contrastive_pairs import PairContrastiveLoss, contrastive_terms, pair_contrastive_loss
from .distance_ratio import DistanceRatioLoss, distance_ratio_loss, distance_ratio_terms
from .lifted import LiftedStructureLoss
from .proxy import ArcFaceLoss, CosFaceLoss, ProxyAnchorLoss, ProxyNCALoss
from .similarity import CircleLoss, MultiSimilarityLoss
from .softmax import NPairLoss, NTXentLoss, SupConLoss
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
    "InfoNCELoss",
    "LiftedStructureLoss",
    "MetricLoss",
    "MultiSimilarityLoss",
    "NPairLoss",
    "NTXentLoss",
    "PairContrastiveLoss",
    "PairMasks",
    "ProxyAnchorLoss",
    "ProxyNCALoss",
    "SupConLoss",
    "TripletMarginLoss",
    "contrastive_terms",
    "distance_ratio_loss",
    "distance_ratio_terms",
    "pair_contrastive_loss",
    "pair_masks",
    "reduce",
]
