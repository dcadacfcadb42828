"""Energy confusion regulariser (Chen & Deng, "Energy Confused Adversarial Metric Learning for
Zero-Shot Image Retrieval and Clustering", AAAI 2019, ECAML), after the authors' Caffe layer
(chenbinghui1/ECAML, src/energy_confusion.cpp):

    E = 1/2 mean_{(i, j) same class} ||f_i - f_j||^2 + 1/2 mean_{(i, j) different class} ||f_i - f_j||^2
    L_ec = log E

Each pair's energy 0.5 ||f_i - f_j||^2 is weighted by 1 / (the batch's number of same-class,
or of different-class, pairs), and the layer's gradient is divided by E: it minimises log E.
Minimising it pulls every pair together, the "confusion" that a metric loss (pushing
different classes apart) plays against, so that the metric does not over-fit the seen classes.
Add it to a base loss with :class:`.Regularized` (the paper's total: L_metric + lambda L_ec;
their Cars-196 example uses lambda = 0.13).

Where this differs from the authors' layer: it sums over every pair of the batch rather than 10
random partners per sample (the same expectation, without the sampling noise), and its gradient
reaches the whole net (theirs is applied to a branch of the embedding layer). Features are
used as they come, as in their layer; ``normalize=True`` puts them on the unit sphere first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..comparison import Comparison
from ..distances import EPS, pairwise_squared_euclidean
from .base import MetricLoss


class EnergyConfusion(MetricLoss):
    """log of the mean same-class and different-class pair energies (0 without pairs)."""

    def __init__(self, normalize: bool = False) -> None:
        super().__init__("mean")
        self.normalize = normalize

    def compute(self, batch: Comparison) -> torch.Tensor:
        x, y = batch.embeddings, batch.ref_emb
        if self.normalize:
            x, y = F.normalize(x, dim=1, eps=EPS), F.normalize(y, dim=1, eps=EPS)
        energy = 0.5 * pairwise_squared_euclidean(x, None if batch.exclude_self else y)
        masks = batch.masks()
        total = energy.new_zeros(())
        for mask in (masks.positive, masks.negative):
            total = total + torch.where(mask, energy, 0.0).sum() / mask.sum().clamp_min(1)
        return torch.log(total + EPS)
