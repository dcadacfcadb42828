"""Miners choose which tuples of a batch a loss sees.

A miner is called like a loss, ``miner(embeddings, labels, ref_emb=None, ref_labels=None)``,
computes its own distance matrix without gradients, and returns either :class:`Triplets`
(index tensors into the batch and the reference) or :class:`PairMasks` (boolean (N, M) masks).
"""

from __future__ import annotations

from typing import Generic, NamedTuple, TypeVar

import torch

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
