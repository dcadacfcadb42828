"""Learning-rate schedules: pure functions of progress or of the loss history, so that a resumed
run continues exactly the same schedule."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence


def cosine_lr(base_lr: float, progress: float, min_fraction: float) -> float:
    """Cosine decay from ``base_lr`` to ``base_lr * min_fraction`` as progress goes 0 -> 1."""
    return base_lr * (min_fraction + (1 - min_fraction) * 0.5 * (1 + math.cos(math.pi * progress)))


def plateau_lr(
    base_lr: float, losses: list[float], min_fraction: float, patience: int = 1
) -> float:
    """``base_lr`` divided by 10 each time the epoch loss has not fallen by 0.1 % for
    ``patience`` epochs (Hoffer et al. 2016), never below ``base_lr * min_fraction``."""
    lr, best, stale = base_lr, math.inf, 0
    for loss in losses:
        best, stale = (loss, 0) if loss < best * (1 - 1e-3) else (best, stale + 1)
        if stale >= patience:
            lr, stale = lr / 10, 0
    return max(lr, base_lr * min_fraction)


def step_lr(base_lr: float, epoch: int, milestones: list[int]) -> float:
    """``base_lr`` divided by 10 at each milestone reached. ``epoch`` counts from 0 and the
    milestones from 1, as in the authors' Lua regimes: with milestones 30, 60, 90, 120 and
    base 0.1, epochs 1-29 train at 0.1, epoch 30 is the first at 0.01, ..., 120 on at 1e-5."""
    return base_lr * 0.1 ** sum(epoch + 1 >= milestone for milestone in milestones)


def lr_schedule(
    kind: str,
    base_lr: float,
    steps: int,
    epochs: int,
    min_fraction: float,
    milestones: Sequence[int] = (),
    losses: Callable[[], list[float]] = list,
) -> Callable[[int, int], float]:
    """``schedule(epoch, step)`` for ``fit``: ``kind`` cosine (over ``epochs`` of ``steps``),
    plateau (on the epoch ``losses`` so far) or step (at the ``milestones``)."""
    total = steps * epochs

    def schedule(epoch: int, step: int) -> float:
        if kind == "plateau":
            return plateau_lr(base_lr, losses(), min_fraction)
        if kind == "step":
            return step_lr(base_lr, epoch, list(milestones))
        return cosine_lr(base_lr, (epoch * steps + step) / total, min_fraction)

    return schedule
