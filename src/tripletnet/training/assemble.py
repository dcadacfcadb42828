"""Training assembled from its parts, the same way for every caller (``train``, the
scikit-learn estimator, the benchmarks): the method's own parameters moved to the net's device,
SGD over the net's parameters and theirs, the ``Step`` (this process's place in a torchrun job,
the precision, torch.compile) and, when ``fit`` runs, the learning-rate schedule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..models import EmbeddingNet
from ..runs.config import OptimOptions
from ..world import SINGLE, World
from .fit import fit
from .methods import Method
from .pipeline import Pipeline
from .precision import compute_dtype
from .schedule import lr_schedule
from .step import Step


@dataclass(frozen=True)
class Optimisation:
    """SGD and its learning-rate schedule, as plain values (``of``: a run's ``optim`` section)."""

    lr: float
    epochs: int = 1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = False
    schedule: str = "cosine"  # cosine, plateau or step (training.schedule)
    min_lr_fraction: float = 0.01
    milestones: tuple[int, ...] = ()
    precision: str = "fp32"  # training.precision
    compile: bool = False

    @classmethod
    def of(cls, optim: OptimOptions) -> Optimisation:
        """A resolved configuration's ``optim`` section (its lr and epochs filled in)."""
        assert optim.lr is not None and optim.epochs is not None
        return cls(
            lr=optim.lr,
            epochs=optim.epochs,
            momentum=optim.momentum,
            weight_decay=optim.weight_decay,
            nesterov=optim.nesterov,
            schedule=optim.lr_schedule,
            min_lr_fraction=optim.min_lr_fraction,
            milestones=tuple(optim.milestones),
            precision=optim.precision,
            compile=optim.compile,
        )


@dataclass
class Training:
    """What the loop trains with: the step (net, method, optimiser), the pipeline and the
    optimisation's settings."""

    step: Step
    pipeline: Pipeline | None
    optimisation: Optimisation

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.step.optimizer

    def fit(
        self,
        epochs: range,
        on_epoch_end: Callable[[int, dict[str, Any]], None],
        seed: int,
        show_progress: bool = True,
        on_steps: Callable[[list[dict[str, float]]], None] | None = None,
        losses: Callable[[], list[float]] = list,
    ) -> None:
        """``training.fit`` over ``epochs``, with the schedule; ``losses``: every epoch's loss
        so far, a resumed run's earlier ones included (the plateau schedule reads them)."""
        assert self.pipeline is not None, "training needs a pipeline"
        o = self.optimisation
        steps = self.step.method.num_batches()
        schedule = lr_schedule(
            o.schedule, o.lr, steps, o.epochs, o.min_lr_fraction, o.milestones, losses
        )
        fit(
            self.step,
            self.pipeline,
            epochs,
            schedule,
            on_epoch_end,
            seed,
            show_progress,
            on_steps=on_steps,
        )


def assemble(
    model: EmbeddingNet,
    method: Method,
    optimisation: Optimisation,
    pipeline: Pipeline | None = None,
    world: World = SINGLE,
) -> Training:
    """The method's own parameters (proxies) on the device of ``model``'s, SGD over both, and
    the step in ``world`` at ``optimisation``'s precision (``pipeline``: what ``fit`` feeds)."""
    device = next(model.parameters()).device
    learned = method.learned()
    if learned is not None:
        learned.to(device)
    parameters = [*model.parameters(), *(learned.parameters() if learned is not None else [])]
    o = optimisation
    optimizer = torch.optim.SGD(
        parameters,
        lr=o.lr,
        momentum=o.momentum,
        weight_decay=o.weight_decay,
        nesterov=o.nesterov,
    )
    precision = compute_dtype(o.precision, device)
    return Training(Step(model, method, optimizer, world, precision, o.compile), pipeline, o)
