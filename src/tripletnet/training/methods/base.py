"""What a training method is: its options, its batches, its loss, its parameters, its statistics.

The loop (``training.fit``) knows nothing else about a method. A batch is a flat array of
training-sample indices, in the order the method wants them embedded; the pipeline turns it into
an image (or vector) tensor on the device, and ``loss`` turns that into a scalar and statistics.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ...data import DatasetSplits
from ...distances import pairwise_euclidean
from ..method_options import MethodFacts


@dataclass(frozen=True)
class MethodContext:
    """What a method is built for: the training pool's labels (-1: unlabelled), the embedding
    size, the input shape and the run's batch size and seed."""

    labels: np.ndarray
    embedding_dim: int
    input_shape: tuple[int, ...]
    batch_size: int
    seed: int

    @property
    def num_classes(self) -> int:
        labelled = self.labels[self.labels >= 0]
        return int(labelled.max()) + 1 if len(labelled) else 0


Statistics = dict[str, torch.Tensor]  # name -> a 0-d tensor on the device (the batch's mean)


class Method(ABC):
    """A training method. Subclasses set ``name``, ``Options`` (a dataclass of
    ``runs.options.option`` fields) and ``description``, or take them from a
    ``MethodFacts`` (``class M(Method, facts=...)``, as the built-in ones do), and register
    with ``training.methods.register``."""

    name: ClassVar[str]
    Options: ClassVar[type]
    description: ClassVar[str]
    pretraining: ClassVar[bool] = False  # learns without labels (tripletnet pretrain)
    groups: ClassVar[int] = 1  # a batch is this many equal blocks (3: anchors|positives|negatives)
    distributed: ClassVar[bool] = True  # its loss calls model(inputs) once (torchrun can split it)

    def __init_subclass__(cls, facts: MethodFacts | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if facts is not None:
            cls.name, cls.description = facts.name, facts.description
            cls.Options, cls.pretraining = facts.Options, facts.pretraining

    def __init__(self, options: Any, context: MethodContext) -> None:
        self.options = options
        self.context = context

    @classmethod
    def defaults(cls, dataset: str) -> dict[str, Any]:
        """Option values that depend on the dataset (None options not given are filled)."""
        return {}

    @classmethod
    def metric(cls, options: Any) -> str:
        """The geometry the method trains: "euclidean", or "cosine" for losses on cosine
        similarity (the run then L2-normalises its embeddings)."""
        return "euclidean"

    @classmethod
    def validate(cls, options: Any) -> None:
        """Raise a TripletnetError for option values that cannot work."""
        return None

    @classmethod
    def pool(cls, data: DatasetSplits) -> tuple[Any, np.ndarray]:
        """The samples it trains on and their labels (-1: unlabelled): the train split."""
        return data.train.x, data.train.y

    def check(self, model: nn.Module) -> None:
        """Raise a TripletnetError if the options cannot work with this net."""
        return None

    def learned(self) -> nn.Module | None:
        """A module with parameters the method trains beside the net (proxies), else None."""
        return None

    def save(self, folder: Path) -> None:
        """Write what a resumed run and the evaluation need (e.g. labelled.npy) to ``folder``."""
        return None

    def restore(self, folder: Path) -> None:
        """Read back what ``save`` wrote, when resuming."""
        return None

    def labelled_only(self) -> np.ndarray | None:
        """The pool indices of the labelled samples when only some are labelled (few-label
        runs: each epoch then logs the test error of 1-NN to them, the papers' protocol)."""
        return None

    def attacked_rows(self, size: int, positives: bool) -> torch.Tensor:
        """Which of a batch's ``size`` inputs adversarial training perturbs (a bool mask): the
        anchors (here every sample: each is an anchor of its own pairs); ``positives`` adds the
        positives where a method has rows of its own for them."""
        return torch.ones(size, dtype=torch.bool)

    @abstractmethod
    def num_batches(self) -> int:
        """Batches in an epoch."""

    @abstractmethod
    def batches(self, epoch: int) -> Iterator[np.ndarray]:
        """The epoch's batches of sample indices (the same for the same seed and epoch)."""

    @abstractmethod
    def loss(
        self, model: nn.Module, indices: np.ndarray, inputs: torch.Tensor
    ) -> tuple[torch.Tensor, Statistics]:
        """The scalar loss of one batch, and its statistics (e.g. the triplet error)."""


def matched_triplet_error(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """For row-matched (N, D) embeddings, the fraction of (i, j != i) triplets with
    ||first_i - second_i|| >= ||first_i - second_j||: the matched row is not the nearer one."""
    with torch.no_grad():
        dist = pairwise_euclidean(first, second)
        n = len(dist)
        wrong = (dist.diagonal()[:, None] >= dist).sum() - n  # each row's diagonal ties itself
        return wrong.float() / max(n * (n - 1), 1)
