"""The miners by the names ``tripletnet train --miner`` takes.

Whether a miner yields triplets or pairs is its class (:class:`~tripletnet.mining.TripletMiner`
or :class:`~tripletnet.mining.PairMiner`); adding one to the command line is one line here.

>>> sorted(MINERS)[:2]
['batch-all', 'batch-hard']
"""

from __future__ import annotations

from .base import Miner
from .pairs import MultiSimilarityMiner, PairMarginMiner
from .triplets import (
    BatchAllMiner,
    BatchHardMiner,
    DistanceWeightedMiner,
    EasyPositiveMiner,
    SemiHardMiner,
)

MINERS: dict[str, type[Miner]] = {
    "batch-all": BatchAllMiner,
    "batch-hard": BatchHardMiner,
    "semi-hard": SemiHardMiner,
    "easy-positive": EasyPositiveMiner,
    "distance-weighted": DistanceWeightedMiner,
    "multi-similarity": MultiSimilarityMiner,
    "pair-margin": PairMarginMiner,
}


def miners_of(kind: type[Miner]) -> list[str]:
    """The names of the miners of ``kind`` (TripletMiner or PairMiner), in catalogue order."""
    return [name for name, miner in MINERS.items() if issubclass(miner, kind)]
