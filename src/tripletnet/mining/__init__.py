"""Miners: which tuples of a batch the loss sees (see docs/mining.md).

The parts are imported when first used (``lazy_exports``): the catalogue of names alone needs
no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

if TYPE_CHECKING:
    from .base import Miner, PairMiner, TripletMiner, Triplets
    from .pairs import MultiSimilarityMiner, PairMarginMiner
    from .triplets import (
        BatchAllMiner,
        BatchHardMiner,
        DistanceWeightedMiner,
        EasyPositiveMiner,
        SemiHardMiner,
        all_triplets,
    )

__all__ = [
    "BatchAllMiner",
    "BatchHardMiner",
    "DistanceWeightedMiner",
    "EasyPositiveMiner",
    "Miner",
    "MultiSimilarityMiner",
    "PairMarginMiner",
    "PairMiner",
    "SemiHardMiner",
    "TripletMiner",
    "Triplets",
    "all_triplets",
]
WHERE = {
    **dict.fromkeys(("Miner", "PairMiner", "TripletMiner", "Triplets"), ".base"),
    **dict.fromkeys(("MultiSimilarityMiner", "PairMarginMiner"), ".pairs"),
    **dict.fromkeys(
        (
            "BatchAllMiner",
            "BatchHardMiner",
            "DistanceWeightedMiner",
            "EasyPositiveMiner",
            "SemiHardMiner",
            "all_triplets",
        ),
        ".triplets",
    ),
}
__getattr__ = lazy_exports(__name__, WHERE)
