"""P x K class-balanced batches (Hermans et al. 2017): P classes, K samples of each per batch.

Policy, per epoch (seeded by (seed, epoch)):
* every class's samples are shuffled and cut into groups of K, so every sample appears once;
* a group with fewer than K samples (a small class, or a class's last group) is topped up with
  samples of the same class drawn at random, which therefore appear twice in that epoch;
* batches take P groups of P distinct classes, each time from the classes with the most groups
  left (ties and order broken at random); when fewer than P classes have groups left, the batch
  is completed with fresh random groups of other classes;
* with ``world_size`` > 1 the epoch's batches are dealt round-robin to the ranks, the last
  ``len % world_size`` batches are dropped so every rank runs the same number of steps.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from types import FrameType

import numpy as np

from ..checks import InvalidInputError


class PKSampler:
    """Yields index arrays of P * K samples; use as a DataLoader ``batch_sampler``.

    Call ``set_epoch(epoch)`` before each epoch (as with DistributedSampler), or use
    ``batches(epoch)``.
    """

    def __init__(
        self,
        labels: np.ndarray,
        classes_per_batch: int,
        samples_per_class: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or len(labels) == 0:
            raise InvalidInputError(
                f"labels must be a non-empty 1-D array, got shape {labels.shape}"
            )
        if classes_per_batch < 1 or samples_per_class < 1:
            raise InvalidInputError(
                "classes_per_batch (P) and samples_per_class (K) must be at least 1, got "
                f"{classes_per_batch} and {samples_per_class}"
            )
        if not 0 <= rank < world_size:
            raise InvalidInputError(f"rank must be in [0, world_size={world_size}), got {rank}")
        classes, inverse = np.unique(labels, return_inverse=True)
        if len(classes) < classes_per_batch:
            raise InvalidInputError(
                f"a batch needs {classes_per_batch} distinct classes but the labels have only "
                f"{len(classes)}; lower classes_per_batch (P)"
            )
        self.members = [np.flatnonzero(inverse == c) for c in range(len(classes))]
        self.p, self.k = classes_per_batch, samples_per_class
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0
        self._plan: tuple[int, list[np.ndarray]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _groups(self, rng: np.random.Generator, label: int) -> list[np.ndarray]:
        members = rng.permutation(self.members[label])
        groups = [members[start : start + self.k] for start in range(0, len(members), self.k)]
        short = self.k - len(groups[-1])
        if short:
            groups[-1] = np.concatenate([groups[-1], rng.choice(self.members[label], short)])
        return groups

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """All batches of ``epoch`` for this rank (deterministic in seed and epoch)."""
        if self._plan is not None and self._plan[0] == epoch:
            return self._plan[1]
        rng = np.random.default_rng([self.seed, epoch])
        queues = [self._groups(rng, label) for label in range(len(self.members))]
        left = np.array([len(queue) for queue in queues])
        batches = []
        while left.any():
            order = np.lexsort((rng.random(len(left)), -left))  # most groups left first
            chosen = [c for c in order[: self.p] if left[c] > 0]
            extra = rng.choice(np.flatnonzero(left == 0), self.p - len(chosen), replace=False)
            parts = [queues[c][len(queues[c]) - left[c]] for c in chosen]
            parts += [self._groups(rng, c)[0] for c in extra]
            left[chosen] -= 1
            batches.append(np.concatenate(parts)[rng.permutation(self.p * self.k)])
        usable = len(batches) - len(batches) % self.world_size
        mine = batches[self.rank : usable : self.world_size]
        self._plan = (epoch, mine)
        return mine

    def batches(self, epoch: int) -> Iterator[np.ndarray]:
        yield from self.epoch_batches(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        _refuse_as_sampler(sys._getframe(1))
        for batch in self.epoch_batches(self.epoch):
            yield batch.tolist()

    def __len__(self) -> int:
        return len(self.epoch_batches(self.epoch))


def _refuse_as_sampler(caller: FrameType | None) -> None:
    """A DataLoader given the sampler as ``sampler=`` (pytorch-metric-learning's
    MPerClassSampler goes there) wraps it in a BatchSampler, which would batch our whole P x K
    index lists together; it must be ``batch_sampler=``. The BatchSampler is the caller."""
    from torch.utils.data import BatchSampler

    if caller is not None and isinstance(caller.f_locals.get("self"), BatchSampler):
        raise InvalidInputError(
            "PKSampler yields whole P x K batches: pass it to the DataLoader as "
            "batch_sampler=PKSampler(...), not sampler= (and without batch_size)"
        )
