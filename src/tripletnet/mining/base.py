"""Miners choose which tuples of a batch a loss sees.

A miner is called like a loss, ``miner(embeddings, labels, ref_emb=None, ref_labels=None)``,
computes its own distance matrix without gradients, and returns either :class:`Triplets`
(index tensors into the batch and the reference) or :class:`PairMasks` (boolean (N, M) masks).
"""

from __future__ import annotations

from typing import Any, Generic, NamedTuple, TypeVar

import torch

from ..checks import InvalidInputError
from ..comparison import Comparison, PairMasks, comparison
from ..distances import Distance, Euclidean

Mined = TypeVar("Mined")


class Triplets(NamedTuple):
    """(T,) index tensors: anchors index the batch, positives and negatives the reference."""

    anchor: torch.Tensor
    positive: torch.Tensor
    negative: torch.Tensor


class Miner(Generic[Mined]):
    """Base of the miners: checks the input and mines on ``distance``'s dissimilarity matrix."""

    def __init__(self, distance: Distance | None = None) -> None:
        self.distance = distance if distance is not None else Euclidean()

    def __call__(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_emb: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
    ) -> Mined:
        return self.mine(comparison(embeddings, labels, ref_emb, ref_labels))

    @torch.no_grad()
    def mine(self, batch: Comparison) -> Mined:
        dissimilarity = self.distance.dissimilarity(batch.embeddings, batch.ref_emb)
        return self.select(dissimilarity, batch.masks(), batch.embeddings.shape[1])

    def select(self, dissimilarity: torch.Tensor, masks: PairMasks, dim: int) -> Mined:
        """The mined tuples, from the (N, M) dissimilarity matrix and the pair masks."""
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{key}={value!r}" for key, value in vars(self).items())
        return f"{type(self).__name__}({fields})"


class TripletMiner(Miner[Triplets]):
    """A miner that returns (anchor, positive, negative) triplets."""


class PairMiner(Miner[PairMasks]):
    """A miner that returns the positive and negative pairs to keep."""


def check_miner(miner: Any, kind: type[Miner[Any]], loss: str, examples: str) -> None:
    """Refuse a ``miner`` that is not a tripletnet miner of ``kind``, teaching the
    pytorch-metric-learning user the difference: ours is given to the loss and mines inside it."""
    if miner is None or isinstance(miner, kind):
        return
    found = type(miner).__name__
    if type(miner).__module__.startswith("pytorch_metric_learning"):
        raise InvalidInputError(
            f"{loss} got pytorch-metric-learning's {found}; tripletnet losses take a tripletnet "
            f"miner, e.g. {loss}(miner=tripletnet.mining.{examples.split(',')[0]}()), and mine "
            "inside the loss (no indices_tuple): see docs/from-pml.md"
        )
    raise InvalidInputError(f"{loss} needs a {kind.__name__} ({examples}, ...), got {found}")
