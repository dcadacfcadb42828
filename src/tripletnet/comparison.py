"""The argument of every loss and miner: a batch, the reference it is compared with, and the
positive / negative pair masks between them.

A loss or miner is called as ``f(embeddings, labels, ref_emb=None, ref_labels=None)``. Without
a reference set the batch is compared with itself and each sample's pair with itself is left
out; with one (a memory bank, other devices' embeddings) the batch is compared with the reference.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .checks import InvalidInputError, check_embeddings_and_labels


class PairMasks(NamedTuple):
    """(N, M) boolean masks of the positive (same label) and negative pairs."""

    positive: torch.Tensor
    negative: torch.Tensor


def pair_masks(labels: torch.Tensor, ref_labels: torch.Tensor, exclude_self: bool) -> PairMasks:
    """Same-label and different-label masks; ``exclude_self`` drops the pairs (i, i)."""
    same = labels[:, None] == ref_labels[None, :]
    positive = same.clone()
    if exclude_self:
        positive.fill_diagonal_(False)  # the first N columns are the batch itself
    return PairMasks(positive, ~same)


class Comparison(NamedTuple):
    """A batch and the reference it is compared with; ``exclude_self``: the first N rows of the
    reference are the batch itself and the pairs (i, i) do not count."""

    embeddings: torch.Tensor
    labels: torch.Tensor
    ref_emb: torch.Tensor
    ref_labels: torch.Tensor
    exclude_self: bool

    def masks(self) -> PairMasks:
        return pair_masks(self.labels, self.ref_labels, self.exclude_self)


def comparison(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    ref_emb: torch.Tensor | None = None,
    ref_labels: torch.Tensor | None = None,
) -> Comparison:
    """Check the arguments of a loss or miner call; without a reference, the batch is its own."""
    check_embeddings_and_labels(embeddings, labels, "embeddings")
    if isinstance(ref_emb, tuple | list):
        raise InvalidInputError(
            "the third argument is ref_emb, a reference batch of embeddings; got a "
            f"{type(ref_emb).__name__} (a pytorch-metric-learning indices_tuple?). tripletnet "
            "losses mine inside the loss: pass the miner when you build it, e.g. "
            "TripletMarginLoss(miner=SemiHardMiner()), and call loss(embeddings, labels): see "
            "docs/from-pml.md"
        )
    if (ref_emb is None) != (ref_labels is None):
        raise InvalidInputError("pass ref_emb and ref_labels together, or neither")
    if ref_emb is None or ref_labels is None:
        return Comparison(embeddings, labels, embeddings, labels, exclude_self=True)
    check_embeddings_and_labels(ref_emb, ref_labels, "ref_emb")
    if ref_emb.shape[1] != embeddings.shape[1]:
        raise InvalidInputError(
            f"ref_emb has dimension {ref_emb.shape[1]} but embeddings have {embeddings.shape[1]}"
        )
    return Comparison(embeddings, labels, ref_emb, ref_labels, exclude_self=False)
