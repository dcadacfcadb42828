"""What every embedding loss shares: the call (see :mod:`tripletnet.comparison`), reductions
and a safe masked log-sum-exp."""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import nn

from ..checks import check_choice
from ..comparison import Comparison, comparison

Reduction = Literal["mean", "sum", "mean_nonzero"]
REDUCTIONS = ("mean", "sum", "mean_nonzero")


def reduce(terms: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    """mean, sum, or the mean over the non-zero terms (Hermans et al. 2017); 0 when empty."""
    if reduction == "sum":
        return terms.sum()
    count = int(torch.count_nonzero(terms)) if reduction == "mean_nonzero" else terms.numel()
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


class MetricLoss(nn.Module):
    """Base of the losses: checks the input, then calls ``compute`` on the batch and reference.

    What training needs to know about a loss is a fact of its class:

    ``needs_positive_pairs``: the loss learns from pairs of samples of the same class in the
    batch (pair and triplet losses); without any it is 0 or only pushes classes apart, so a
    batch of one sample per class cannot train it. Losses against learned per-class vectors
    (proxies) do not need them.

    ``needs_num_classes``: the loss learns one vector per class (proxies), so it is built as
    ``Loss(num_classes, embedding_dim)`` and trained with the net; it takes no miner.

    ``cosine``: the loss compares by cosine similarity, so a run trained with it L2-normalises
    its embeddings (and is evaluated and searched by cosine).

    ``mixable``: :class:`~tripletnet.losses.Metrix` mixup applies to it."""

    needs_positive_pairs: ClassVar[bool] = True
    needs_num_classes: ClassVar[bool] = False
    cosine: ClassVar[bool] = False
    mixable: ClassVar[bool] = False

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
        batch = comparison(embeddings, labels, ref_emb, ref_labels)
        if len(batch.embeddings) == 0 or len(batch.ref_emb) == 0:  # no tuple at all
            return batch.embeddings.sum() * 0.0
        return self.compute(batch)

    def compute(self, batch: Comparison) -> torch.Tensor:
        """The loss of ``batch.embeddings`` against ``batch.ref_emb``."""
        raise NotImplementedError
