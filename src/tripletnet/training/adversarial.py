"""Adversarial training for any method: each batch's anchors (optionally positives) are moved
by FGSM or PGD to raise the method's own loss, and the net learns from the mix
(1 - w) L(x) + w L(x_adv).

Goodfellow, Shlens & Szegedy (ICLR 2015) train on (1 - w) J(x) + w J(x + eps sign grad J),
w = 0.5; Ho & Vasconcelos, "Contrastive Learning with Adversarial Examples" (NeurIPS 2020)
perturb the samples of contrastive pairs to raise the contrastive loss. Here the loss is the
method's (a triplet, contrastive, batch-mining... loss), so every method gets the defence.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import Normalizer
from ..robustness.attacks import attack
from .methods import Method, Statistics


@dataclass(frozen=True)
class AdversarialSettings:
    """The attack, its radius and bounds in the net's (normalised) input units, and the mix."""

    attack: str  # fgsm or pgd
    eps: float
    steps: int
    positives: bool
    weight: float
    low: float | None = None
    high: float | None = None

    @classmethod
    def of(cls, options: Any, normalizer: Normalizer, top: float | None) -> AdversarialSettings:
        """From the run's robustness options: ``eps`` is a fraction of the pixel range
        [0, ``top``], so in normalised units it is eps top / std, and the bounds are the
        normalised 0 and top (vectors, ``top`` None: eps in normalised units, no bounds)."""
        if top is None:
            return cls(options.adversarial, options.eps, options.adversarial_steps,
                       options.adversarial_positives, options.adversarial_weight)  # fmt: skip
        std = normalizer.std
        return cls(
            options.adversarial,
            options.eps * top / std,
            options.adversarial_steps,
            options.adversarial_positives,
            options.adversarial_weight,
            (0.0 - normalizer.mean) / std,
            (top - normalizer.mean) / std,
        )


class AdversarialTraining(Method):
    """``method`` with its loss replaced by the clean/adversarial mix; all else is its own."""

    def __init__(self, method: Method, settings: AdversarialSettings) -> None:
        super().__init__(method.options, method.context)
        self.inner, self.settings = method, settings

    name = "adversarial"
    Options = object
    description = "adversarial training around another method"

    def check(self, model: nn.Module) -> None:
        self.inner.check(model)

    def learned(self) -> nn.Module | None:
        return self.inner.learned()

    def save(self, folder: Path) -> None:
        self.inner.save(folder)

    def restore(self, folder: Path) -> None:
        self.inner.restore(folder)

    def num_batches(self) -> int:
        return self.inner.num_batches()

    def batches(self, epoch: int) -> Iterator[np.ndarray]:
        return self.inner.batches(epoch)

    def loss(
        self, model: nn.Module, indices: np.ndarray, inputs: torch.Tensor
    ) -> tuple[torch.Tensor, Statistics]:
        s = self.settings
        clean, statistics = self.inner.loss(model, indices, inputs)

        def raised(x: torch.Tensor) -> torch.Tensor:
            return self.inner.loss(model, indices, x)[0]

        rows = self.inner.attacked_rows(len(inputs), s.positives)
        moved = attack(s.attack, raised, inputs, s.eps, s.steps, "linf", s.low, s.high, rows)
        adversarial, adversarial_statistics = self.inner.loss(model, indices, moved)
        mixed = (1 - s.weight) * clean + s.weight * adversarial
        statistics = {**statistics, "adversarial_loss": adversarial.detach()}
        statistics.update({f"adversarial_{k}": v for k, v in adversarial_statistics.items()})
        return mixed, statistics
