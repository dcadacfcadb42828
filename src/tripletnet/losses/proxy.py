"""Losses with one learned vector (proxy / class weight) per class.

* :class:`ArcFaceLoss` (Deng et al. 2019): softmax cross-entropy on s cos(theta_j), with the
  target's angle widened to cos(theta_y + m) (cos(theta_y) - m sin(m) once theta_y > pi - m).
* :class:`CosFaceLoss` (Wang et al. 2018): the target logit is s (cos(theta_y) - m).
* :class:`ProxyNCALoss` (Movshovitz-Attias et al. 2017): -log softmax_y(-scale ||x - p_j||^2)
  on L2-normalised embeddings and proxies (the softmax form of PML and ProxyNCA++; the paper
  leaves the true proxy out of the denominator).
* :class:`ProxyAnchorLoss` (Kim et al. 2020), with cosine similarity s and P+ the proxies whose
  class is in the batch:
  (1/|P+|) sum_{p in P+} log(1 + sum_{x in X_p+} e^{-alpha (s(x,p) - delta)})
  + (1/|P|) sum_{p in P} log(1 + sum_{x in X_p-} e^{alpha (s(x,p) + delta)}).

The proxies are parameters of the loss: give ``loss.parameters()`` to the optimiser too.
Reference embeddings, when given, count as more samples.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import InvalidInputError, check_positive
from ..comparison import Comparison
from ..distances import pairwise_cosine_similarity, pairwise_squared_euclidean
from .base import MetricLoss, Reduction, masked_logsumexp, reduce


class ProxyLoss(MetricLoss):
    """Holds the (num_classes, embedding_dim) proxies and checks the labels against them."""

    needs_positive_pairs = False  # each sample is compared with the proxies, not other samples
    needs_num_classes = True
    cosine = True  # the proxies and embeddings are compared L2-normalised

    def __init__(self, num_classes: int, embedding_dim: int, reduction: Reduction) -> None:
        super().__init__(reduction)
        if num_classes < 1 or embedding_dim < 1:
            raise InvalidInputError(
                f"num_classes and embedding_dim must be at least 1, got {num_classes}, {embedding_dim}"
            )
        self.proxies = nn.Parameter(
            torch.randn(num_classes, embedding_dim) / math.sqrt(embedding_dim)
        )

    def compute(self, batch: Comparison) -> torch.Tensor:
        embeddings, labels = batch.embeddings, batch.labels
        if not batch.exclude_self:
            embeddings = torch.cat([embeddings, batch.ref_emb])
            labels = torch.cat([labels, batch.ref_labels])
        classes, dim = self.proxies.shape
        if embeddings.shape[1] != dim:
            raise InvalidInputError(
                f"embeddings have dimension {embeddings.shape[1]}, the loss {dim}"
            )
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= classes):
            raise InvalidInputError(
                f"labels must lie in [0, {classes}) for this loss with num_classes={classes}; "
                f"got values in [{int(labels.min())}, {int(labels.max())}]"
            )
        return self.proxy_loss(embeddings, labels, self.proxies.to(embeddings.dtype))

    def proxy_loss(
        self, embeddings: torch.Tensor, labels: torch.Tensor, proxies: torch.Tensor
    ) -> torch.Tensor:
        raise NotImplementedError


class MarginSoftmaxLoss(ProxyLoss):
    """Cross-entropy on scale * cos(theta) with a margin on the target class."""

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        margin: float,
        scale: float,
        reduction: Reduction,
    ) -> None:
        super().__init__(num_classes, embedding_dim, reduction)
        check_positive("margin", margin, allow_zero=True)
        check_positive("scale", scale)
        self.margin, self.scale = margin, scale

    def margins(self, target_cosine: torch.Tensor) -> float | torch.Tensor:
        """The margin of each sample, given the cosine to its own class (here one for all)."""
        return self.margin

    def target_logit(self, cosine: torch.Tensor, margin: float | torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def proxy_loss(
        self, embeddings: torch.Tensor, labels: torch.Tensor, proxies: torch.Tensor
    ) -> torch.Tensor:
        cosine = pairwise_cosine_similarity(embeddings, proxies)
        target = (torch.arange(len(labels), device=labels.device), labels)
        own = cosine[target]
        logits = cosine.index_put(target, self.target_logit(own, self.margins(own))) * self.scale
        return reduce(F.cross_entropy(logits, labels, reduction="none"), self.reduction)


class ArcFaceLoss(MarginSoftmaxLoss):
    """Additive angular margin m = 0.5 rad, scale s = 64 (the paper)."""

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        margin: float = 0.5,
        scale: float = 64.0,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(num_classes, embedding_dim, margin, scale, reduction)

    def target_logit(self, cosine: torch.Tensor, margin: float | torch.Tensor) -> torch.Tensor:
        angle = torch.acos(cosine.clamp(-1.0, 1.0))
        widened = torch.cos(angle + margin)
        sine = torch.sin(torch.as_tensor(margin, dtype=cosine.dtype, device=cosine.device))
        fallback = cosine - margin * sine  # keeps the logit decreasing
        return torch.where(angle <= math.pi - margin, widened, fallback)


class CosFaceLoss(MarginSoftmaxLoss):
    """Additive cosine margin m = 0.35, scale s = 64 (the paper)."""

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        margin: float = 0.35,
        scale: float = 64.0,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(num_classes, embedding_dim, margin, scale, reduction)

    def target_logit(self, cosine: torch.Tensor, margin: float | torch.Tensor) -> torch.Tensor:
        return cosine - margin


class ProxyNCALoss(ProxyLoss):
    """Softmax over -scale * squared distances to the normalised proxies; scale = 1."""

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        scale: float = 1.0,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(num_classes, embedding_dim, reduction)
        check_positive("scale", scale)
        self.scale = scale

    def proxy_loss(
        self, embeddings: torch.Tensor, labels: torch.Tensor, proxies: torch.Tensor
    ) -> torch.Tensor:
        distance = pairwise_squared_euclidean(F.normalize(embeddings), F.normalize(proxies))
        return reduce(
            F.cross_entropy(-self.scale * distance, labels, reduction="none"), self.reduction
        )


class ProxyAnchorLoss(ProxyLoss):
    """alpha = 32, delta = 0.1 (the paper); the result is already an average (``reduction``
    "sum" gives the two sums without dividing).

    >>> loss = ProxyAnchorLoss(num_classes=3, embedding_dim=8)
    >>> loss(torch.randn(6, 8), torch.tensor([0, 0, 1, 1, 2, 2])).requires_grad  # the proxies
    True
    """

    mixable = True

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        margin: float = 0.1,
        alpha: float = 32.0,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(num_classes, embedding_dim, reduction)
        check_positive("margin", margin, allow_zero=True)
        check_positive("alpha", alpha)
        self.margin, self.alpha = margin, alpha

    def proxy_loss(
        self, embeddings: torch.Tensor, labels: torch.Tensor, proxies: torch.Tensor
    ) -> torch.Tensor:
        cosine = pairwise_cosine_similarity(proxies, embeddings)  # (classes, N)
        mine = F.one_hot(labels, len(proxies)).bool().T
        pull = masked_logsumexp(-self.alpha * (cosine - self.margin), mine, add_one=True)
        push = masked_logsumexp(self.alpha * (cosine + self.margin), ~mine, add_one=True)
        if self.reduction == "sum":
            return pull.sum() + push.sum()
        return pull.sum() / max(int(mine.any(dim=1).sum()), 1) + push.mean()
