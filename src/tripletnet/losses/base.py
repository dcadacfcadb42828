"""What every embedding loss shares: input checks, reference embeddings, pair masks, reductions.

A loss is called as ``loss(embeddings, labels, ref_emb=None, ref_labels=None)``. Without a
reference set the batch is compared with itself and each sample's pair with itself is left out;
with one (a memory bank, other devices' embeddings) the batch is compared with the reference.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import nn

from ..checks import InvalidInputError, check_choice, check_embeddings_and_labels

Reduction = Literal["mean", "sum", "mean_nonzero"]
REDUCTIONS = ("mean", "sum", "mean_nonzero")


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


def reduce(terms: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    """mean, sum, or the mean over the non-zero terms (Hermans et al. 2017); 0 when empty."""
    if reduction == "sum":
        return terms.sum()
    count = int((terms != 0).sum()) if reduction == "mean_nonzero" else terms.numel()
    return terms.sum() / max(count, 1)


def masked_logsumexp(
    values: torch.Tensor, mask: torch.Tensor, add_one: bool = False
) -> torch.Tensor:
    """Row-wise log(sum_{mask} exp(values)) (plus 1 inside the log when ``add_one``).

    An empty row gives -inf (or 0 with ``add_one``) and zero, finite gradients.
    """
    masked = values.masked_fill(~mask, float("-inf"))
    shift = masked.amax(dim=1).detach()
    shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))
    if add_one:
        shift = shift.clamp_min(0.0)
    total = (masked - shift[:, None]).exp().sum(dim=1)
    if add_one:
        total = total + (-shift).exp()
    safe = torch.where(total > 0, total, torch.ones_like(total))
    return torch.where(total > 0, safe.log() + shift, torch.full_like(total, float("-inf")))


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


class MetricLoss(nn.Module):
    """Base of the losses: checks the input, then calls ``compute`` on the batch and reference."""

    def __init__(self, reduction: Reduction) -> None:
        super().__init__()
        check_choice("reduction", reduction, REDUCTIONS)
        self.reduction: Reduction = reduction

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_emb: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.compute(comparison(embeddings, labels, ref_emb, ref_labels))

    def compute(self, batch: Comparison) -> torch.Tensor:
        """The loss of ``batch.embeddings`` against ``batch.ref_emb``."""
        raise NotImplementedError
