"""Batch-mining training: embed each image of a batch once, mine tuples from the batch's
distance matrix, and apply a metric-learning loss (``--method batch-mining --loss ...``; the
older ``tripletnet train --loss ...`` means the same).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from ... import losses, mining
from ...checks import InvalidInputError
from ...comparison import pair_masks
from ...distances import pairwise_euclidean
from ...errors import TripletnetError
from ...losses.batch_all import batch_all_hinge, count_triplets
from ...losses.catalogue import LOSSES, loss_names
from ...mining.catalogue import MINERS, miners_of
from ...runs.options import check_count, check_range
from ...sampling import PKSampler
from ..method_options import BATCH_MINING, LOSS_NAMES, MIXUP_LOSSES, BatchMiningOptions
from ..mixup import embed_and_mix, feature_split
from . import register
from .base import Method, MethodContext, Statistics

if loss_names(lambda loss: loss.mixable) != MIXUP_LOSSES:  # the list --help shows, checked
    raise RuntimeError(
        "training.method_options.MIXUP_LOSSES must list the losses whose class is mixable: "
        f"{loss_names(lambda loss: loss.mixable)}"
    )


def build_loss(
    loss: str, miner: str | None, num_classes: int = 2, embedding_dim: int = 2
) -> losses.MetricLoss:
    """The loss named ``loss`` with the miner named ``miner`` (None: the loss's own tuples);
    a proxy loss gets ``num_classes`` proxies of ``embedding_dim``."""
    if loss not in LOSSES:
        raise TripletnetError(f"unknown --loss {loss!r}; choose one of: {', '.join(LOSS_NAMES)}")
    if miner is not None and miner not in MINERS:
        raise TripletnetError(f"unknown --miner {miner!r}; choose one of: {', '.join(MINERS)}")
    named = LOSSES[loss]
    if named.loss.needs_num_classes:
        if miner is not None:
            raise TripletnetError(
                f"--loss {loss} compares samples with proxies; it takes no --miner"
            )
        return named.build(None, num_classes, embedding_dim)
    chosen = None if miner is None else MINERS[miner]()
    try:
        return named.build(chosen)
    except InvalidInputError:  # the loss refused the kind of miner: name the ones it takes
        kind = mining.PairMiner if isinstance(chosen, mining.TripletMiner) else mining.TripletMiner
        raise TripletnetError(
            f"--loss {loss} takes a {'pair' if kind is mining.PairMiner else 'triplet'} miner; "
            f"choose --miner from: {', '.join(miners_of(kind))}"
        ) from None


@register
class BatchMining(Method, facts=BATCH_MINING):
    """One forward pass per batch of P x K (or random) samples; the loss mines the tuples
    from the batch's distance matrix (``tripletnet train --method batch-mining --loss ...``)."""

    def __init__(self, options: BatchMiningOptions, context: MethodContext) -> None:
        super().__init__(options, context)
        assert options.loss is not None
        labels = context.labels
        self.labels = torch.from_numpy(np.asarray(labels).astype(np.int64))
        num_classes = max(context.num_classes, 1)
        self.base = build_loss(options.loss, options.miner, num_classes, context.embedding_dim)
        self.criterion = losses.Regularized(
            self.base,
            (options.tcm_weight, losses.ThresholdConsistentMargin()),
            (options.energy_weight, losses.EnergyConfusion()),
        )
        self.metrix = (
            None if options.mixup is None else losses.Metrix(self.base, options.mixup_weight)
        )
        self.rng = np.random.default_rng([context.seed, 20])  # the mixup pairs
        self.sampler = (
            PKSampler(
                labels,
                options.classes_per_batch or min(16, len(np.unique(labels))),
                options.samples_per_class,
                context.seed,
            )
            if options.sampler == "pk"
            else None
        )

    @classmethod
    def validate(cls, options: BatchMiningOptions) -> None:
        if options.loss is None:
            raise TripletnetError(
                f"--method batch-mining needs --loss NAME; choose one of: {', '.join(LOSS_NAMES)}"
            )
        loss = build_loss(options.loss, options.miner)
        check_count("classes-per-batch", options.classes_per_batch)
        check_count("samples-per-class", options.samples_per_class)
        if options.sampler == "pk" and options.samples_per_class < 2 and loss.needs_positive_pairs:
            proxies = ", ".join(loss_names(lambda loss: loss.needs_num_classes))
            raise TripletnetError(
                f"--loss {options.loss} learns from pairs of samples of the same class, and "
                f"--samples-per-class {options.samples_per_class} puts one sample of each class "
                "in a P x K batch, so it has none: give --samples-per-class 2 or more, or a loss "
                f"that compares samples with learned class vectors ({proxies})"
            )
        check_count("steps-per-epoch", options.steps_per_epoch)
        check_range("--tcm-weight", options.tcm_weight)
        check_range("--energy-weight", options.energy_weight)
        check_range("--mixup-weight", options.mixup_weight)
        if options.mixup is not None and options.loss not in MIXUP_LOSSES:
            raise TripletnetError(
                f"--mixup mixes the losses {', '.join(MIXUP_LOSSES)} (Metrix), not --loss "
                f"{options.loss}"
            )

    @classmethod
    def metric(cls, options: BatchMiningOptions) -> str:
        named = LOSSES.get(options.loss or "")
        return "cosine" if named is not None and named.loss.cosine else "euclidean"

    def check(self, model: nn.Module) -> None:
        if self.options.mixup == "feature":
            feature_split(model)

    def learned(self) -> nn.Module | None:
        has_parameters = any(True for _ in self.base.parameters())
        return self.base if has_parameters else None

    def num_batches(self) -> int:
        if self.sampler is not None:
            full = len(self.sampler)
        else:
            full = -(-len(self.labels) // self.context.batch_size)
        return min(full, self.options.steps_per_epoch or full)

    def batches(self, epoch: int) -> Iterator[np.ndarray]:
        yield from itertools.islice(self.all_batches(epoch), self.num_batches())

    def all_batches(self, epoch: int) -> Iterator[np.ndarray]:
        """A full pass over the data: P x K batches, or a seeded permutation."""
        if self.sampler is not None:
            yield from self.sampler.batches(epoch)
            return
        order = np.random.default_rng([self.context.seed, epoch]).permutation(len(self.labels))
        for start in range(0, len(order), self.context.batch_size):
            yield order[start : start + self.context.batch_size]

    def loss(
        self, model: nn.Module, indices: np.ndarray, inputs: torch.Tensor
    ) -> tuple[torch.Tensor, Statistics]:
        labels = self.labels[torch.from_numpy(indices)].to(inputs.device)
        if self.metrix is None or self.options.mixup is None:
            embeddings = model(inputs)
            loss = self.criterion(embeddings, labels)
        else:
            pairs = self.metrix.pairs(labels, self.rng)
            embeddings, mixed = embed_and_mix(model, inputs, pairs, self.options.mixup)
            loss = self.criterion(embeddings, labels) + self.metrix.weight * (
                self.metrix.mixed_loss(embeddings, labels, mixed, pairs)
            )
        error = batch_triplet_error(embeddings.detach(), labels)
        return loss, {} if error is None else {"triplet_error": error}


def batch_triplet_error(embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor | None:
    """Fraction of the batch's triplets with d(a, p) > d(a, n) (Euclidean); None when none."""
    distance = pairwise_euclidean(embeddings)
    masks = pair_masks(labels, labels, exclude_self=True)
    total = count_triplets(*masks)
    if not total:
        return None
    _, wrong = batch_all_hinge(distance, *masks, 0.0)
    return wrong.float() / total
