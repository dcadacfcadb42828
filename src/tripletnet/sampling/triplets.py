"""Hoffer & Ailon's random triplets, drawn afresh each epoch.

Class uniform among the classes with at least two samples; anchor and positive uniform and
distinct within it; the negative's class uniform among the other classes, then a uniform sample.
"""

from __future__ import annotations

import numpy as np

from ..errors import TripletnetError


class RandomTripletSampler:
    """Draws (anchor, positive, negative) index triplets for ``labels``; vectorised, seeded."""

    def __init__(self, labels: np.ndarray) -> None:
        labels = np.asarray(labels)
        if labels.ndim != 1:
            raise TripletnetError(f"labels must be 1-D, got shape {labels.shape}")
        self.classes, counts = np.unique(labels, return_counts=True)
        self.order = np.argsort(labels, kind="stable")  # sample indices grouped by class
        self.starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self.counts = counts
        self.anchor_classes = np.flatnonzero(counts >= 2)  # positions in self.classes
        if len(self.anchor_classes) == 0 or len(self.classes) < 2:
            raise TripletnetError(
                "triplets need at least two classes and one class with two samples; "
                f"got {len(self.classes)} classes with counts {counts.tolist()}"
            )

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Return an (n, 3) int64 array of sample indices (anchor, positive, negative)."""
        anchor_class = self.anchor_classes[rng.integers(0, len(self.anchor_classes), n)]
        count = self.counts[anchor_class]
        anchor_pos = (rng.random(n) * count).astype(np.int64)
        positive_pos = (anchor_pos + 1 + (rng.random(n) * (count - 1)).astype(np.int64)) % count
        other = rng.integers(0, len(self.classes) - 1, n)
        negative_class = other + (other >= anchor_class)
        negative_pos = (rng.random(n) * self.counts[negative_class]).astype(np.int64)
        start = self.starts
        return np.stack(
            [
                self.order[start[anchor_class] + anchor_pos],
                self.order[start[anchor_class] + positive_pos],
                self.order[start[negative_class] + negative_pos],
            ],
            axis=1,
        )

    def epoch(self, n: int, seed: int, epoch: int) -> np.ndarray:
        """The triplets of one epoch: the same (seed, epoch) always gives the same triplets."""
        return self.sample(n, np.random.default_rng([seed, epoch]))


def fixed_test_triplets(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """The fixed set of test triplets (the paper: 64,000), independent of the training epochs."""
    return RandomTripletSampler(labels).sample(n, np.random.default_rng([seed, 2**31 - 1]))
