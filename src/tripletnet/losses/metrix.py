"""Metrix (Venkataramanan et al., "It Takes Two to Tango: Mixup for Deep Metric Learning",
ICLR 2022): mixup of a positive and a negative with an interpolated pair target.

A mixed example v = lam x_i + (1 - lam) x_j (inputs, intermediate features or embeddings) of
samples of two classes, lam ~ Beta(alpha, alpha), is for an anchor a of the class of x_i a
positive of weight lam and a negative of weight 1 - lam (swapped when a is of x_j's class); as
in the paper a mixed example counts for an anchor only when it mixes one of the anchor's
positives with one of its negatives (never with the anchor itself). The paper writes a pair loss
as tau(sigma+(sum_P rho+(s)) + sigma-(sum_N rho-(s))) and the mixed loss as the same with the sums
over the mixed examples weighted by lam and 1 - lam:

* contrastive:      sum_v lam max(0, d - m+)^2 / 2 + (1 - lam) max(0, m- - d)^2 / 2
* multi-similarity: (1/alpha) log(1 + sum_v lam e^{-alpha (s - b)})
                    + (1/beta) log(1 + sum_v (1 - lam) e^{beta (s - b)}), per anchor
* proxy anchor:     the same two sums with the proxies as anchors (alpha, delta of the loss)

each with its base loss's own margins and reduction. The training objective is
L(X) + w L_mix(X, V) (``weight`` w = 1 in the paper).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from ..checks import InvalidInputError, check_embeddings_and_labels, check_positive
from ..distances import pairwise_cosine_similarity
from .base import MetricLoss, masked_logsumexp, reduce
from .contrastive import ContrastiveLoss
from .proxy import ProxyAnchorLoss
from .similarity import MultiSimilarityLoss


class MixPairs(NamedTuple):
    """Mixed example k is lam[k] * sample first[k] + (1 - lam[k]) * sample second[k]."""

    first: torch.Tensor
    second: torch.Tensor
    lam: torch.Tensor


def mixing_pairs(
    labels: torch.Tensor, alpha: float = 2.0, rng: np.random.Generator | None = None
) -> MixPairs:
    """Each sample with a random sample of another class, lam ~ Beta(alpha, alpha); samples whose
    class is the only one in the batch are left out."""
    check_positive("alpha", alpha)
    rng = rng if rng is not None else np.random.default_rng()
    y = labels.detach().cpu().numpy()
    different = y[:, None] != y[None, :]
    first = np.flatnonzero(different.any(axis=1))
    scores = np.where(different[first], rng.random((len(first), len(y))), -1.0)
    second = scores.argmax(axis=1)
    lam = rng.beta(alpha, alpha, size=len(first))
    device = labels.device
    return MixPairs(
        torch.from_numpy(first).to(device),
        torch.from_numpy(second).to(device),
        torch.from_numpy(lam).to(device),
    )


def mix(x: torch.Tensor, pairs: MixPairs) -> torch.Tensor:
    """lam x[first] + (1 - lam) x[second], row by row, for a batch of any shape."""
    lam = pairs.lam.to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
    return lam * x[pairs.first] + (1 - lam) * x[pairs.second]


def interpolated_targets(
    anchor_labels: torch.Tensor, labels: torch.Tensor, pairs: MixPairs, exclude_self: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, M) weights of each mixed example as a positive and as a negative of each anchor; zero
    where it does not mix one of the anchor's positives with one of its negatives."""
    of_first = anchor_labels[:, None] == labels[pairs.first][None, :]
    of_second = anchor_labels[:, None] == labels[pairs.second][None, :]
    relevant = of_first | of_second
    if exclude_self:  # the anchors are the batch: a mix with the anchor itself does not count
        rows = torch.arange(len(anchor_labels), device=labels.device)[:, None]
        relevant &= (rows != pairs.first[None, :]) & (rows != pairs.second[None, :])
    lam = pairs.lam[None, :]
    positive = torch.where(of_first, lam, 1 - lam) * relevant
    negative = torch.where(of_first, 1 - lam, lam) * relevant
    return positive, negative


def weighted_logsumexp(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Row-wise log(1 + sum_k w_k exp(v_k)) over the entries with w_k > 0."""
    present = weights > 0
    logs = torch.log(torch.where(present, weights, 1.0))
    return masked_logsumexp(values + logs, present, add_one=True)


class Metrix(nn.Module):
    """Metrix around a contrastive, multi-similarity or proxy-anchor loss.

    ``metrix(embeddings, labels)`` is embedding mixup: L(X) + w L_mix with the mixed embeddings.
    For input or feature mixup, draw ``pairs = metrix.pairs(labels)``, embed
    ``mix(inputs, pairs)`` (or mixed features), and add ``metrix.weight * metrix.mixed_loss(
    embeddings, labels, mixed_embeddings, pairs)`` to the base loss.
    """

    def __init__(self, loss: nn.Module, weight: float = 1.0, alpha: float = 2.0) -> None:
        super().__init__()
        if not (isinstance(loss, MetricLoss) and loss.mixable):
            raise InvalidInputError(
                f"Metrix mixes the contrastive, multi-similarity and proxy-anchor losses, "
                f"not {type(loss).__name__}"
            )
        check_positive("weight", weight, allow_zero=True)
        check_positive("alpha", alpha)
        self.loss, self.weight, self.alpha = loss, weight, alpha

    def pairs(self, labels: torch.Tensor, rng: np.random.Generator | None = None) -> MixPairs:
        return mixing_pairs(labels, self.alpha, rng)

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        rng: np.random.Generator | None = None,
    ) -> torch.Tensor:
        pairs = self.pairs(labels, rng)
        mixed = self.mixed_loss(embeddings, labels, mix(embeddings, pairs), pairs)
        base: torch.Tensor = self.loss(embeddings, labels)
        return base + self.weight * mixed

    def mixed_loss(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        mixed: torch.Tensor,
        pairs: MixPairs,
    ) -> torch.Tensor:
        """L_mix: the clean ``embeddings`` (or the proxies) as anchors, ``mixed`` as the others."""
        check_embeddings_and_labels(embeddings, labels, "embeddings")
        if len(pairs.first) == 0:
            return embeddings.sum() * 0.0
        loss = self.loss
        if isinstance(loss, ProxyAnchorLoss):
            proxies = loss.proxies.to(mixed.dtype)
            anchor_labels = torch.arange(len(proxies), device=labels.device)
            positive, negative = interpolated_targets(anchor_labels, labels, pairs, False)
            cosine = pairwise_cosine_similarity(proxies, mixed)
            pull = weighted_logsumexp(-loss.alpha * (cosine - loss.margin), positive)
            push = weighted_logsumexp(loss.alpha * (cosine + loss.margin), negative)
            if loss.reduction == "sum":
                return pull.sum() + push.sum()
            return pull.sum() / max(int((positive > 0).any(dim=1).sum()), 1) + push.mean()
        positive, negative = interpolated_targets(labels, labels, pairs, True)
        assert isinstance(loss, (MultiSimilarityLoss, ContrastiveLoss))  # the other mixable ones
        dissimilarity = loss.distance.dissimilarity(embeddings, mixed)
        if isinstance(loss, MultiSimilarityLoss):
            shifted = -dissimilarity - loss.base
            pull = weighted_logsumexp(-loss.alpha * shifted, positive) / loss.alpha
            push = weighted_logsumexp(loss.beta * shifted, negative) / loss.beta
            return reduce(pull + push, loss.reduction)
        pull = torch.relu(dissimilarity - loss.pos_margin).pow(2) / 2
        push = torch.relu(loss.neg_margin - dissimilarity).pow(2) / 2
        relevant = (positive > 0) | (negative > 0)
        return reduce((positive * pull + negative * push)[relevant], loss.reduction)
