"""Semi-supervised training by metric embedding (Hoffer & Ailon 2016, arXiv 1611.01449).

A batch, as in the authors' code: B unlabelled images (the whole train set, labels ignored, in
a fresh order each epoch), then for every class one labelled input and one labelled reference,
both drawn afresh from that class's labelled pool; all go through the net in one pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...errors import TripletnetError
from ...files import load_npy, save_npy_atomic
from ...losses.semi_supervised import semi_supervised_loss
from ...runs import LABELLED
from ...runs.options import check_count, check_range
from ..method_options import SEMI_SUPERVISED, SemiSupervisedOptions
from . import register
from .base import Method, MethodContext, Statistics, matched_triplet_error


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


@register
class SemiSupervised(Method, facts=SEMI_SUPERVISED):
    """Batches of [B unlabelled | one labelled input per class | one reference per class].

    With ``unlabelled_weight`` 0 the batches hold the labelled part only: the same net trained
    on the labelled samples alone (no unlabelled image reaches it, not even its batch norm).
    """

    def __init__(self, options: SemiSupervisedOptions, context: MethodContext) -> None:
        super().__init__(options, context)
        self.size = len(context.labels)
        seed = context.seed if options.labels_seed is None else options.labels_seed
        self.use_labelled(labelled_subset(context.labels, options.labels_per_class, seed))

    @classmethod
    def validate(cls, options: SemiSupervisedOptions) -> None:
        check_count("labels-per-class", options.labels_per_class)
        check_range("--unlabelled-weight", options.unlabelled_weight)
        check_count("steps-per-epoch", options.steps_per_epoch)
        check_range("--labels-seed", options.labels_seed)
        if options.labels_seed is not None and options.labels_per_class is None:
            raise TripletnetError(
                "--labels-seed draws the labelled samples; give --labels-per-class too"
            )

    def use_labelled(self, labelled: np.ndarray) -> None:
        """Train with these labelled samples (sorted indices into the pool)."""
        self.labelled = np.asarray(labelled)
        classes, positions = np.unique(self.context.labels[self.labelled], return_inverse=True)
        if len(classes) < 2:
            raise TripletnetError("semi-supervised training needs labelled samples of 2+ classes")
        self.num_classes = len(classes)
        order = np.argsort(positions, kind="stable")
        self.grouped = self.labelled[order]  # labelled indices grouped by class
        self.counts = np.bincount(positions, minlength=self.num_classes)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])

    def labelled_only(self) -> np.ndarray | None:
        return self.labelled if len(self.labelled) < self.size else None

    def save(self, folder: Path) -> None:
        save_npy_atomic(folder / LABELLED, self.labelled)

    def restore(self, folder: Path) -> None:
        self.use_labelled(np.asarray(load_npy(folder / LABELLED)))

    def num_batches(self) -> int:
        full = -(-self.size // self.context.batch_size)
        return min(full, self.options.steps_per_epoch or full)

    def draw_labelled(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One labelled input and one reference per class, distinct when the class has two."""
        first = (rng.random(self.num_classes) * self.counts).astype(np.int64)
        second = first + 1 + (rng.random(self.num_classes) * (self.counts - 1)).astype(np.int64)
        second %= self.counts
        return self.grouped[self.starts + first], self.grouped[self.starts + second]

    def batches(self, epoch: int) -> Iterator[np.ndarray]:
        size, weight = self.context.batch_size, self.options.unlabelled_weight
        rng = np.random.default_rng([self.context.seed, epoch])
        order = rng.permutation(self.size)
        for start in range(0, size * self.num_batches(), size):
            inputs, references = self.draw_labelled(rng)
            unlabelled = order[start : start + size] if weight else order[:0]
            yield np.concatenate([unlabelled, inputs, references]).astype(np.int64)

    def loss(
        self, model: nn.Module, indices: np.ndarray, inputs: torch.Tensor
    ) -> tuple[torch.Tensor, Statistics]:
        embeddings = model(inputs)
        c = self.num_classes
        unlabelled, labelled, references = (
            embeddings[: -2 * c],
            embeddings[-2 * c : -c],
            embeddings[-c:],
        )
        targets = torch.arange(c, device=embeddings.device)
        loss = semi_supervised_loss(
            labelled, targets, unlabelled, references, self.options.unlabelled_weight
        )
        return loss, {"triplet_error": matched_triplet_error(labelled, references)}
