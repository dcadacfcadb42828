"""ElasticFace (Boutros, Damer, Kirchbuchner & Kuijper, "ElasticFace: Elastic Margin Loss for
Deep Face Recognition", CVPR Workshops 2022): ArcFace and CosFace whose margin is drawn per
sample and step from N(m, sigma^2) instead of fixed,

    ElasticFace-Arc:  s cos(theta_y + m_i)        ElasticFace-Cos:  s (cos(theta_y) - m_i)

and the "+" variants, which sort the drawn margins by difficulty: the sample with the smallest
cos(theta_y) (the hardest) gets the largest margin. The paper's settings (s = 64): Arc m = 0.5,
sigma = 0.05 (Arc+ sigma = 0.0175); Cos m = 0.35, sigma = 0.05 (Cos+ sigma = 0.02).
"""

from __future__ import annotations

import torch

from ..checks import check_positive
from .base import Reduction
from .proxy import ArcFaceLoss, CosFaceLoss, MarginSoftmaxLoss


def elastic_margins(
    target_cosine: torch.Tensor,
    mean: float,
    sigma: float,
    plus: bool,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One margin per sample from N(mean, sigma^2); ``plus``: the largest to the sample with
    the smallest cosine to its class, and so on (the "+" variant)."""
    draw = torch.randn(target_cosine.shape, generator=generator, dtype=target_cosine.dtype)
    margins = (mean + sigma * draw).to(target_cosine.device)
    if not plus:
        return margins
    hardest_first = torch.argsort(target_cosine.detach())
    return torch.empty_like(margins).index_put_(
        (hardest_first,), torch.sort(margins, descending=True).values
    )


class ElasticMargin(MarginSoftmaxLoss):
    """The per-sample margin drawn from N(margin, sigma^2) (sorted by difficulty with ``plus``);
    ``generator`` makes the draws reproducible."""

    sigma: float
    plus: bool
    generator: torch.Generator | None

    def set_elastic(self, sigma: float, plus: bool, generator: torch.Generator | None) -> None:
        check_positive("sigma", sigma, allow_zero=True)
        self.sigma, self.plus, self.generator = sigma, plus, generator

    def margins(self, target_cosine: torch.Tensor) -> torch.Tensor:
        return elastic_margins(target_cosine, self.margin, self.sigma, self.plus, self.generator)


class ElasticArcFaceLoss(ElasticMargin, ArcFaceLoss):
    """ElasticFace-Arc: m = 0.5, sigma = 0.05, s = 64 (``plus=True``: use sigma = 0.0175)."""

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        margin: float = 0.5,
        sigma: float = 0.05,
        plus: bool = False,
        scale: float = 64.0,
        reduction: Reduction = "mean",
        generator: torch.Generator | None = None,
    ) -> None:
        ArcFaceLoss.__init__(self, num_classes, embedding_dim, margin, scale, reduction)
        self.set_elastic(sigma, plus, generator)


class ElasticCosFaceLoss(ElasticMargin, CosFaceLoss):
    """ElasticFace-Cos: m = 0.35, sigma = 0.05, s = 64 (``plus=True``: use sigma = 0.02)."""

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        margin: float = 0.35,
        sigma: float = 0.05,
        plus: bool = False,
        scale: float = 64.0,
        reduction: Reduction = "mean",
        generator: torch.Generator | None = None,
    ) -> None:
        CosFaceLoss.__init__(self, num_classes, embedding_dim, margin, scale, reduction)
        self.set_elastic(sigma, plus, generator)
