"""The training loop: batches -> loss -> step, epoch after epoch. It knows no method by name.

The loss and the method's statistics accumulate on the device and are read every
``check_every`` steps (and at the end of an epoch), not once per step, so a GPU is never made
to wait for the host; a NaN or infinite loss found then stops the run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch

from ..errors import TripletnetError
from ..progress import progress
from .methods import Statistics
from .pipeline import Pipeline
from .step import Step


class TrainingDiverged(TripletnetError):
    """The loss became NaN or infinite."""


class Tally:
    """Sums of the loss and of each statistic over an epoch, weighted by the batch sizes."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}
        self.images = 0
        self.recent: list[tuple[int, torch.Tensor, float]] = []  # (step, loss, lr) unread

    def add(
        self, loss: torch.Tensor, statistics: Statistics, size: int, step: int, lr: float
    ) -> None:
        self.images += size
        self.recent.append((step, loss.detach(), lr))
        for name, value in {"loss": loss.detach(), **statistics}.items():
            self.sums[name] = self.sums.get(name, 0) + value.float() * size
            self.counts[name] = self.counts.get(name, 0) + size

    def drain(self) -> list[dict[str, float]]:
        """The steps since the last drain, each with its loss and learning rate (one read)."""
        if not self.recent:
            return []
        losses = torch.stack([loss.float() for _, loss, _ in self.recent]).tolist()
        rows = [
            {"step": step, "loss": value, "lr": lr}
            for (step, _, lr), value in zip(self.recent, losses, strict=True)
        ]
        self.recent = []
        return rows

    def means(self) -> dict[str, float]:
        """Each mean, read from the device once."""
        names = list(self.sums)
        values = torch.stack([self.sums[n] for n in names]).tolist() if names else []
        return {n: value / self.counts[n] for n, value in zip(names, values, strict=True)}


def fit(
    step_once: Step,
    pipeline: Pipeline,
    epochs: range,
    schedule: Callable[[int, int], float],
    on_epoch_end: Callable[[int, dict[str, Any]], None],
    seed: int,
    show_progress: bool = True,
    check_every: int = 50,
    on_steps: Callable[[list[dict[str, float]]], None] | None = None,
) -> None:
    """Train with ``step_once`` (the net, the method, the optimiser, this process's place in a
    torchrun job) for ``epochs``; ``schedule(epoch, step)`` gives the learning rate;
    ``on_epoch_end(epoch, row)`` gets the epoch's mean loss and statistics, its last learning
    rate, seconds and images (it evaluates, checkpoints, logs); ``on_steps(rows)`` gets each
    step's loss and learning rate (global step numbers), every ``check_every`` steps.

    In a torchrun job every rank draws the same global batches and embeds its share of each;
    the loss and statistics are the whole batch's, the same on every rank."""
    model, method, world = step_once.model, step_once.method, step_once.world
    steps = method.num_batches()
    for epoch in epochs:
        # dropout and augmentation, also on resume; each rank its own draws (rank 0 of 1: as before)
        torch.manual_seed((seed * 100_003 + epoch) * world.size + world.rank)
        model.train()
        tally, started, lr = Tally(), time.perf_counter(), math.nan
        bar = progress(total=steps, show=show_progress, unit="batch",
                       desc=f"epoch {epoch + 1}/{epochs.stop}")  # fmt: skip
        batches = list(method.batches(epoch))
        shares = [step_once.share(indices) for indices in batches]
        for step, (indices, (_, inputs)) in enumerate(
            zip(batches, pipeline.epoch(shares), strict=True)
        ):
            lr = schedule(epoch, step)
            loss, statistics = step_once(indices, inputs, lr)
            tally.add(loss, statistics, len(indices), epoch * steps + step + 1, lr)
            bar.update()
            if (step + 1) % check_every == 0 or step + 1 == steps:
                means = _checked(tally, epoch, step)
                bar.set_postfix({name: f"{value:.4f}" for name, value in means.items()})
                rows = tally.drain()
                if on_steps is not None:
                    on_steps(rows)
        bar.close()
        row = _checked(tally, epoch, steps - 1)
        model.compute_dtype = None
        seconds = time.perf_counter() - started
        on_epoch_end(epoch, {**row, "lr": lr, "seconds": seconds, "images": tally.images})


def _checked(tally: Tally, epoch: int, step: int) -> dict[str, float]:
    means = tally.means()
    if not math.isfinite(means.get("loss", 0.0)):
        raise TrainingDiverged(
            f"the loss became {means['loss']} in epoch {epoch + 1}, by step {step + 1}"
        )
    return means
