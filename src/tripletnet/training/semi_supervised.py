"""Semi-supervised training by metric embedding (Hoffer & Ailon 2016, arXiv 1611.01449).

A batch, as in the authors' code: B unlabelled images (the whole train set, labels ignored, in
a fresh order each epoch), then for every class one labelled input and one labelled reference,
both drawn afresh from that class's labelled pool; all go through the net in one pass.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from ..errors import TripletnetError
from ..evaluation.triplet_error import matched_triplet_error
from ..losses.semi_supervised import semi_supervised_loss
from .config import TrainConfig
from .methods import Inputs

LABELLED = "labelled.npy"  # the run folder's record of which train samples were labelled


def labelled_subset(labels: np.ndarray, per_class: int | None, seed: int) -> np.ndarray:
    """Sorted indices of ``per_class`` samples of every class, drawn with ``seed``
    (``None``: every sample is labelled)."""
    labels = np.asarray(labels)
    if per_class is None:
        return np.arange(len(labels))
    rng = np.random.default_rng([seed, 6])
    chosen = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        if len(members) < per_class:
            raise TripletnetError(
                f"class {cls} has only {len(members)} training samples; "
                f"--labels-per-class must be at most {len(members)}"
            )
        chosen.append(rng.choice(members, per_class, replace=False))
    return np.sort(np.concatenate(chosen))


class SemiSupervisedMethod:
    """Batches of [B unlabelled | one labelled input per class | one reference per class].

    With ``unlabelled_weight`` 0 the batches hold the labelled part only: the same net trained
    on the labelled samples alone (no unlabelled image reaches it, not even its batch norm).
    """

    def __init__(self, labels: np.ndarray, labelled: np.ndarray, config: TrainConfig) -> None:
        self.size = len(labels)
        self.labelled = np.asarray(labelled)
        classes, positions = np.unique(labels[self.labelled], return_inverse=True)
        if len(classes) < 2:
            raise TripletnetError("semi-supervised training needs labelled samples of 2+ classes")
        self.num_classes = len(classes)
        order = np.argsort(positions, kind="stable")
        self.pool = self.labelled[order]  # labelled indices grouped by class
        self.counts = np.bincount(positions, minlength=self.num_classes)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        self.batch_size = config.batch_size
        self.unlabelled_weight = config.unlabelled_weight
        self.seed = config.seed
        self.max_batches = config.steps_per_epoch

    def check(self, model: nn.Module, input_shape: tuple[int, ...]) -> None:
        pass

    def num_batches(self) -> int:
        full = -(-self.size // self.batch_size)
        return min(full, self.max_batches or full)

    def draw_labelled(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One labelled input and one reference per class, distinct when the class has two."""
        first = (rng.random(self.num_classes) * self.counts).astype(np.int64)
        second = first + 1 + (rng.random(self.num_classes) * (self.counts - 1)).astype(np.int64)
        second %= self.counts
        return self.pool[self.starts + first], self.pool[self.starts + second]

    def batches(self, epoch: int) -> Iterator[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.size)
        for start in range(0, self.batch_size * self.num_batches(), self.batch_size):
            inputs, references = self.draw_labelled(rng)
            unlabelled = (
                order[start : start + self.batch_size] if self.unlabelled_weight else order[:0]
            )
            yield np.concatenate([unlabelled, inputs, references]).astype(np.int64)

    def loss(
        self, model: nn.Module, batch: np.ndarray, inputs: Inputs
    ) -> tuple[torch.Tensor, dict[str, float]]:
        embeddings = model(inputs(batch))
        c = self.num_classes
        unlabelled, labelled, references = (
            embeddings[: -2 * c],
            embeddings[-2 * c : -c],
            embeddings[-c:],
        )
        targets = torch.arange(c, device=embeddings.device)
        loss = semi_supervised_loss(
            labelled, targets, unlabelled, references, self.unlabelled_weight
        )
        return loss, {"triplet_error": matched_triplet_error(labelled, references)}
