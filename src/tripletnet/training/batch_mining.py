"""Batch-mining training: embed each image of a batch once, mine tuples from the batch's
distance matrix, and apply a metric-learning loss (``tripletnet train --loss ... --miner ...``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from .. import losses, mining
from ..checks import InvalidInputError
from ..comparison import pair_masks
from ..distances import pairwise_euclidean
from ..errors import TripletnetError
from ..losses.batch_all import batch_all_hinge, count_triplets
from ..sampling import PKSampler

if TYPE_CHECKING:
    from .config import TrainConfig
    from .methods import Inputs

# each takes ``miner=`` and rejects a miner of the wrong kind itself
LOSSES: dict[str, Callable[..., losses.MetricLoss]] = {
    "triplet-margin": losses.TripletMarginLoss,
    "triplet-soft-margin": partial(losses.TripletMarginLoss, soft_margin=True),
    "distance-ratio": losses.DistanceRatioTripletLoss,
    "contrastive": losses.ContrastiveLoss,
    "lifted-structure": losses.LiftedStructureLoss,
    "ntxent": losses.NTXentLoss,
    "npair": losses.NPairLoss,
    "supcon": losses.SupConLoss,
    "multi-similarity": losses.MultiSimilarityLoss,
    "circle": losses.CircleLoss,
}
# losses with learned per-class vectors: built for (num_classes, embedding_dim), trained with the net
PROXY_LOSSES: dict[str, Callable[[int, int], losses.MetricLoss]] = {
    "arcface": losses.ArcFaceLoss,
    "cosface": losses.CosFaceLoss,
    "proxy-nca": losses.ProxyNCALoss,
    "proxy-anchor": losses.ProxyAnchorLoss,
}
LOSS_NAMES = (*LOSSES, *PROXY_LOSSES)
MINERS: dict[str, type[mining.Miner]] = {
    "batch-all": mining.BatchAllMiner,
    "batch-hard": mining.BatchHardMiner,
    "semi-hard": mining.SemiHardMiner,
    "easy-positive": mining.EasyPositiveMiner,
    "distance-weighted": mining.DistanceWeightedMiner,
    "multi-similarity": mining.MultiSimilarityMiner,
    "pair-margin": mining.PairMarginMiner,
}
SAMPLERS = ("pk", "random")


def build_loss(
    loss: str, miner: str | None, num_classes: int = 2, embedding_dim: int = 2
) -> losses.MetricLoss:
    """The loss named ``loss`` with the miner named ``miner`` (None: the loss's own tuples);
    a proxy loss gets ``num_classes`` proxies of ``embedding_dim``."""
    if loss not in LOSS_NAMES:
        raise TripletnetError(f"unknown --loss {loss!r}; choose one of: {', '.join(LOSS_NAMES)}")
    if miner is not None and miner not in MINERS:
        raise TripletnetError(f"unknown --miner {miner!r}; choose one of: {', '.join(MINERS)}")
    if loss in PROXY_LOSSES:
        if miner is not None:
            raise TripletnetError(
                f"--loss {loss} compares samples with proxies; it takes no --miner"
            )
        return PROXY_LOSSES[loss](num_classes, embedding_dim)
    chosen = None if miner is None else MINERS[miner]()
    try:
        return LOSSES[loss](miner=chosen)
    except InvalidInputError:  # the loss refused the kind of miner: name the ones it takes
        kind = mining.PairMiner if isinstance(chosen, mining.TripletMiner) else mining.TripletMiner
        options = [name for name, miner_class in MINERS.items() if issubclass(miner_class, kind)]
        raise TripletnetError(
            f"--loss {loss} takes a {'pair' if kind is mining.PairMiner else 'triplet'} miner; "
            f"choose --miner from: {', '.join(options)}"
        ) from None


def check_batch_mining_options(config: TrainConfig) -> None:
    """Raise a TripletnetError for batch-mining options that cannot work."""
    if config.loss is None:
        for option, given in (("miner", config.miner), ("sampler", config.sampler)):
            if given is not None:
                raise TripletnetError(f"--{option} needs --loss NAME (batch-mining training)")
        return
    build_loss(config.loss, config.miner)
    if config.sampler not in SAMPLERS:
        raise TripletnetError(f"--sampler must be one of: {', '.join(SAMPLERS)}")
    for name, value in (
        ("classes-per-batch", 1 if config.classes_per_batch is None else config.classes_per_batch),
        ("samples-per-class", config.samples_per_class),
    ):
        if value < 1:
            raise TripletnetError(f"--{name} must be at least 1, got {value}")


class BatchMiningMethod:
    """One forward pass per batch of P x K (or random) samples; the loss mines the tuples."""

    def __init__(self, labels: np.ndarray, config: TrainConfig, embedding_dim: int) -> None:
        assert config.loss is not None
        self.labels = torch.from_numpy(np.asarray(labels).astype(np.int64))
        num_classes = int(self.labels.max()) + 1 if len(self.labels) else 1
        self.criterion = build_loss(config.loss, config.miner, num_classes, embedding_dim)
        self.seed = config.seed
        self.batch_size = config.batch_size
        self.sampler = (
            PKSampler(
                labels,
                config.classes_per_batch or min(16, len(np.unique(labels))),
                config.samples_per_class,
                config.seed,
            )
            if config.sampler == "pk"
            else None
        )

    def check(self, model: nn.Module, input_shape: tuple[int, ...]) -> None:
        pass

    def num_batches(self) -> int:
        if self.sampler is not None:
            return len(self.sampler)
        return -(-len(self.labels) // self.batch_size)

    def batches(self, epoch: int) -> Iterator[np.ndarray]:
        if self.sampler is not None:
            yield from self.sampler.batches(epoch)
            return
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.labels))
        for start in range(0, len(order), self.batch_size):
            yield order[start : start + self.batch_size]

    def loss(
        self, model: nn.Module, batch: np.ndarray, inputs: Inputs
    ) -> tuple[torch.Tensor, dict[str, float]]:
        embeddings = model(inputs(batch))
        labels = self.labels[torch.from_numpy(batch)].to(embeddings.device)
        loss = self.criterion(embeddings, labels)
        return loss, {"triplet_error": batch_triplet_error(embeddings.detach(), labels)}


def batch_triplet_error(embeddings: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of the batch's triplets with d(a, p) > d(a, n) (Euclidean); NaN when none."""
    distance = pairwise_euclidean(embeddings)
    masks = pair_masks(labels, labels, exclude_self=True)
    _, wrong = batch_all_hinge(distance, *masks, 0.0)
    total = count_triplets(*masks)
    return int(wrong) / total if total else float("nan")
