"""The losses by the names ``tripletnet train --loss`` takes: each name is a loss class, with
the keyword arguments the name implies. What training needs to know about a loss (cosine or
Euclidean, per-class proxies, mixable, needs same-class pairs) is a fact of its class (see
:class:`~tripletnet.losses.MetricLoss`), read through ``LOSSES[name].loss``. Adding a loss to
the command line: its module, its export in ``losses/__init__.py``, and one line here.

>>> LOSSES["supcon"].loss.cosine, LOSSES["arcface"].loss.needs_num_classes
(True, True)
>>> loss_names(lambda loss: loss.mixable)
('contrastive', 'multi-similarity', 'proxy-anchor')
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..mining.base import Miner
from .base import MetricLoss
from .contrastive import ContrastiveLoss
from .elasticface import ElasticArcFaceLoss, ElasticCosFaceLoss
from .lifted import LiftedStructureLoss
from .proxy import ArcFaceLoss, CosFaceLoss, ProxyAnchorLoss, ProxyNCALoss
from .similarity import CircleLoss, MultiSimilarityLoss
from .snr import SNRContrastiveLoss
from .softmax import NPairLoss, NTXentLoss, SupConLoss
from .triplet import DistanceRatioTripletLoss, TripletMarginLoss


@dataclass(frozen=True)
class NamedLoss:
    """A loss class under a command-line name, and the keyword arguments that name means."""

    loss: type[MetricLoss]
    options: Mapping[str, Any] = field(default_factory=dict)

    def build(
        self, miner: Miner[Any] | None = None, num_classes: int = 2, embedding_dim: int = 2
    ) -> MetricLoss:
        """The loss: with ``num_classes`` proxies of ``embedding_dim`` when it learns per-class
        vectors, else with ``miner`` (the loss refuses a miner of the wrong kind itself)."""
        make: Callable[..., MetricLoss] = self.loss
        if self.loss.needs_num_classes:
            return make(num_classes, embedding_dim, **self.options)
        return make(miner=miner, **self.options)


LOSSES: dict[str, NamedLoss] = {
    "triplet-margin": NamedLoss(TripletMarginLoss),
    "triplet-soft-margin": NamedLoss(TripletMarginLoss, {"soft_margin": True}),
    "distance-ratio": NamedLoss(DistanceRatioTripletLoss),
    "contrastive": NamedLoss(ContrastiveLoss),
    "lifted-structure": NamedLoss(LiftedStructureLoss),
    "ntxent": NamedLoss(NTXentLoss),
    "npair": NamedLoss(NPairLoss),
    "supcon": NamedLoss(SupConLoss),
    "multi-similarity": NamedLoss(MultiSimilarityLoss),
    "circle": NamedLoss(CircleLoss),
    "snr-contrastive": NamedLoss(SNRContrastiveLoss),
    "arcface": NamedLoss(ArcFaceLoss),
    "cosface": NamedLoss(CosFaceLoss),
    "proxy-nca": NamedLoss(ProxyNCALoss),
    "proxy-anchor": NamedLoss(ProxyAnchorLoss),
    "elasticface-arc": NamedLoss(ElasticArcFaceLoss),
    "elasticface-cos": NamedLoss(ElasticCosFaceLoss),
    "elasticface-arc-plus": NamedLoss(ElasticArcFaceLoss, {"sigma": 0.0175, "plus": True}),
    "elasticface-cos-plus": NamedLoss(ElasticCosFaceLoss, {"sigma": 0.02, "plus": True}),
}


def loss_names(where: Callable[[type[MetricLoss]], bool] = lambda loss: True) -> tuple[str, ...]:
    """The names whose loss class satisfies ``where``, in catalogue order."""
    return tuple(name for name, named in LOSSES.items() if where(named.loss))
