"""Hoffer & Ailon's regime (2015): fresh random triplets every epoch, each image of a triplet
embedded by the one shared net (one forward pass over the 3B images).

``triplet``: the Triplet network's distance-ratio loss on (d+, d-); ``siamese``: the paper's
baseline, Hadsell et al.'s contrastive loss on each triplet's two pairs (a-p similar, a-n not).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from ...data.catalogue import facts
from ...distances import euclidean
from ...losses import distance_ratio_loss, pair_contrastive_loss
from ...runs.options import check_count, check_range
from ...sampling import RandomTripletSampler
from ..method_options import SIAMESE, TRIPLET
from . import register
from .base import Method, MethodContext, Statistics

MAX_TRIPLETS = 100_000_000  # an epoch's (N, 3) int64 indices take 2.4 GB


def default_triplets(dataset: str) -> dict[str, Any]:
    """The dataset's triplets per epoch (its record in data/catalogue.py)."""
    return {"triplets_per_epoch": facts(dataset).triplets_per_epoch}


class RandomTriplets(Method):
    """Batches of ``batch_size`` triplets, as (anchors, positives, negatives) in one batch."""

    groups = 3

    def __init__(self, options: Any, context: MethodContext) -> None:
        super().__init__(options, context)
        self.sampler = RandomTripletSampler(context.labels)
        self.per_epoch = int(options.triplets_per_epoch)

    @classmethod
    def defaults(cls, dataset: str) -> dict[str, Any]:
        return default_triplets(dataset)

    @classmethod
    def validate(cls, options: Any) -> None:
        check_count("triplets-per-epoch", options.triplets_per_epoch, MAX_TRIPLETS)

    def num_batches(self) -> int:
        return -(-self.per_epoch // self.context.batch_size)

    def batches(self, epoch: int) -> Iterator[np.ndarray]:
        triplets = self.sampler.epoch(self.per_epoch, self.context.seed, epoch)
        for start in range(0, len(triplets), self.context.batch_size):
            yield triplets[start : start + self.context.batch_size].T.reshape(-1)

    def attacked_rows(self, size: int, positives: bool) -> torch.Tensor:
        """The anchors (the first third of a batch), and the positives (the second) if asked."""
        part = torch.arange(size) // (size // 3)
        return part <= (1 if positives else 0)

    def loss(
        self, model: nn.Module, indices: np.ndarray, inputs: torch.Tensor
    ) -> tuple[torch.Tensor, Statistics]:
        embeddings = model(inputs).unflatten(0, (3, -1))  # (3, B, D)
        d_pos, d_neg = euclidean(embeddings[:1], embeddings[1:]).unbind()  # both in one pass
        error = (d_pos >= d_neg).float().mean().detach()
        return self.criterion(d_pos, d_neg), {"triplet_error": error}

    def criterion(self, d_pos: torch.Tensor, d_neg: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


@register
class TripletNetwork(RandomTriplets, facts=TRIPLET):
    def criterion(self, d_pos: torch.Tensor, d_neg: torch.Tensor) -> torch.Tensor:
        return distance_ratio_loss(d_pos, d_neg, self.options.loss_form)


@register
class SiameseNetwork(RandomTriplets, facts=SIAMESE):
    @classmethod
    def validate(cls, options: Any) -> None:
        super().validate(options)
        check_range("--margin", options.margin, above=0.0)

    def criterion(self, d_pos: torch.Tensor, d_neg: torch.Tensor) -> torch.Tensor:
        same = torch.cat([torch.ones_like(d_pos), torch.zeros_like(d_neg)]).bool()
        return pair_contrastive_loss(torch.cat([d_pos, d_neg]), same, self.options.margin)
