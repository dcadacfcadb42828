"""The miners by the names ``tripletnet train --miner`` takes.

Whether a miner yields triplets or pairs is its class (:class:`~tripletnet.mining.TripletMiner`
or :class:`~tripletnet.mining.PairMiner`); adding one to the command line is one line here. The
classes are imported when first looked up, so the names alone (``--miner``'s choices) need no
torch.

>>> sorted(MINERS)[:2]
['batch-all', 'batch-hard']
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from ..lazy import resolve

if TYPE_CHECKING:
    from .base import Miner


class _Miners(Mapping[str, "type[Miner]"]):
    """Names -> miner classes, each class imported when first looked up."""

    def __init__(self, where: dict[str, str]) -> None:
        self.where = where  # name -> "module:Class"

    def __getitem__(self, name: str) -> type[Miner]:
        miner: type[Miner] = resolve(self.where[name], __package__)
        return miner

    def __iter__(self) -> Iterator[str]:
        return iter(self.where)

    def __len__(self) -> int:
        return len(self.where)


MINERS: Mapping[str, type[Miner]] = _Miners(
    {
        "batch-all": ".triplets:BatchAllMiner",
        "batch-hard": ".triplets:BatchHardMiner",
        "semi-hard": ".triplets:SemiHardMiner",
        "easy-positive": ".triplets:EasyPositiveMiner",
        "distance-weighted": ".triplets:DistanceWeightedMiner",
        "multi-similarity": ".pairs:MultiSimilarityMiner",
        "pair-margin": ".pairs:PairMarginMiner",
    }
)


def miners_of(kind: type[Miner]) -> list[str]:
    """The names of the miners of ``kind`` (TripletMiner or PairMiner), in catalogue order."""
    return [name for name, miner in MINERS.items() if issubclass(miner, kind)]
