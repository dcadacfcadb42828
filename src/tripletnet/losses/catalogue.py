"""The losses by the names ``tripletnet train --loss`` takes: each name is a loss class, with
the keyword arguments the name implies. What training needs to know about a loss (cosine or
Euclidean, per-class proxies, mixable, needs same-class pairs) is a fact of its class (see
:class:`~tripletnet.losses.MetricLoss`), read through ``LOSSES[name].loss``; the classes are
imported when first read, so the names alone (``--loss``'s choices) need no torch. Adding a loss to
the command line: its module, its export in ``losses/__init__.py``, and one line here.

>>> LOSSES["supcon"].loss.cosine, LOSSES["arcface"].loss.needs_num_classes
(True, True)
>>> loss_names(lambda loss: loss.mixable)
('contrastive', 'multi-similarity', 'proxy-anchor')
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..lazy import resolve

if TYPE_CHECKING:
    from ..mining.base import Miner
    from .base import MetricLoss


@dataclass(frozen=True)
class NamedLoss:
    """A loss class under a command-line name, and the keyword arguments that name means."""

    where: str  # "module:Class", imported when the class is first asked for
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def loss(self) -> type[MetricLoss]:
        """The loss class (its module is imported here, not with the catalogue)."""
        loss: type[MetricLoss] = resolve(self.where, __package__)
        return loss

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
    "triplet-margin": NamedLoss(".triplet:TripletMarginLoss"),
    "triplet-soft-margin": NamedLoss(".triplet:TripletMarginLoss", {"soft_margin": True}),
    "distance-ratio": NamedLoss(".triplet:DistanceRatioTripletLoss"),
    "contrastive": NamedLoss(".contrastive:ContrastiveLoss"),
    "lifted-structure": NamedLoss(".lifted:LiftedStructureLoss"),
    "ntxent": NamedLoss(".softmax:NTXentLoss"),
    "npair": NamedLoss(".softmax:NPairLoss"),
    "supcon": NamedLoss(".softmax:SupConLoss"),
    "multi-similarity": NamedLoss(".similarity:MultiSimilarityLoss"),
    "circle": NamedLoss(".similarity:CircleLoss"),
    "snr-contrastive": NamedLoss(".snr:SNRContrastiveLoss"),
    "arcface": NamedLoss(".proxy:ArcFaceLoss"),
    "cosface": NamedLoss(".proxy:CosFaceLoss"),
    "proxy-nca": NamedLoss(".proxy:ProxyNCALoss"),
    "proxy-anchor": NamedLoss(".proxy:ProxyAnchorLoss"),
    "elasticface-arc": NamedLoss(".elasticface:ElasticArcFaceLoss"),
    "elasticface-cos": NamedLoss(".elasticface:ElasticCosFaceLoss"),
    "elasticface-arc-plus": NamedLoss(
        ".elasticface:ElasticArcFaceLoss", {"sigma": 0.0175, "plus": True}
    ),
    "elasticface-cos-plus": NamedLoss(
        ".elasticface:ElasticCosFaceLoss", {"sigma": 0.02, "plus": True}
    ),
}


def loss_names(where: Callable[[type[MetricLoss]], bool] = lambda loss: True) -> tuple[str, ...]:
    """The names whose loss class satisfies ``where``, in catalogue order."""
    return tuple(name for name, named in LOSSES.items() if where(named.loss))
