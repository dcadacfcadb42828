"""Miners: which tuples of a batch the loss sees (see docs/mining.md)."""

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
