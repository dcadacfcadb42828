"""Training methods: what a batch is and what loss it gives.

A method yields batches for an epoch and turns a batch into a scalar loss plus statistics for
the progress bar. The trainer knows nothing else about it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from ..distances import euclidean
from ..losses import distance_ratio_loss, pair_contrastive_loss
from ..sampling import RandomTripletSampler
from .config import TrainConfig

Inputs = Callable[[np.ndarray], torch.Tensor]  # sample indices -> prepared batch on the device


class TrainingMethod(Protocol):
    def check(self, model: nn.Module, input_shape: tuple[int, ...]) -> None:
        """Raise a TripletnetError if the method's options cannot work with this net."""

    def num_batches(self) -> int: ...

    def batches(self, epoch: int) -> Iterator[Any]: ...

    def loss(
        self, model: nn.Module, batch: Any, inputs: Inputs
    ) -> tuple[torch.Tensor, dict[str, float]]: ...


class RandomTripletMethod:
    """Hoffer & Ailon's regime: fresh random triplets every epoch, each image of a triplet
    embedded by the shared net (one forward pass over the 3B images).

    ``criterion(d_pos, d_neg)`` is the distance-ratio loss for the Triplet network, or the
    contrastive loss on the triplet's two pairs (similar a-p, dissimilar a-n) for the Siamese one.
    """

    def __init__(
        self,
        labels: np.ndarray,
        config: TrainConfig,
        criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    ) -> None:
        self.sampler = RandomTripletSampler(labels)
        self.per_epoch = int(config.triplets_per_epoch or 0)
        self.batch_size = config.batch_size
        self.seed = config.seed
        self.criterion = criterion

    def check(self, model: nn.Module, input_shape: tuple[int, ...]) -> None:
        pass

    def num_batches(self) -> int:
        return -(-self.per_epoch // self.batch_size)

    def batches(self, epoch: int) -> Iterator[np.ndarray]:
        triplets = self.sampler.epoch(self.per_epoch, self.seed, epoch)
        for start in range(0, len(triplets), self.batch_size):
            yield triplets[start : start + self.batch_size]

    def loss(
        self, model: nn.Module, batch: np.ndarray, inputs: Inputs
    ) -> tuple[torch.Tensor, dict[str, float]]:
        # one forward pass over anchors, then positives, then negatives: (3, B, D)
        embeddings = model(inputs(batch.T.reshape(-1))).unflatten(0, (3, -1))
        d_pos, d_neg = euclidean(embeddings[:1], embeddings[1:]).unbind()  # both in one pass
        loss = self.criterion(d_pos, d_neg)
        return loss, {"triplet_error": float((d_pos >= d_neg).float().mean())}


def build_method(
    config: TrainConfig,
    labels: np.ndarray,
    embedding_dim: int,
    labelled: np.ndarray | None = None,
) -> TrainingMethod:
    """The method ``config`` names, for training samples with ``labels``; ``labelled``: the
    semi-supervised method's labelled samples (default: drawn from ``config``'s seed)."""
    if config.loss is not None:
        from .batch_mining import BatchMiningMethod

        return BatchMiningMethod(labels, config, embedding_dim)
    if config.method in ("semi-supervised", "spatial-contrasting"):
        from .few_labels import build_few_label_method

        return build_few_label_method(config, labels, labelled)
    if config.method == "siamese":

        def contrastive(d_pos: torch.Tensor, d_neg: torch.Tensor) -> torch.Tensor:
            same = torch.cat([torch.ones_like(d_pos), torch.zeros_like(d_neg)]).bool()
            return pair_contrastive_loss(torch.cat([d_pos, d_neg]), same, config.margin)

        return RandomTripletMethod(labels, config, contrastive)
    form = config.loss_form
    return RandomTripletMethod(labels, config, lambda p, n: distance_ratio_loss(p, n, form))  # type: ignore[arg-type]
