"""Gradient attacks on inputs: FGSM and PGD, L-infinity or L2, with pixel bounds and a row mask.

Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples" (ICLR 2015):
the fast gradient sign method x' = x + eps sign(grad_x L). Madry et al., "Towards Deep Learning
Models Resistant to Adversarial Attacks" (ICLR 2018): projected gradient descent, ``steps``
steps of size ``alpha`` (default 2.5 eps / steps), each projected back onto the eps-ball and
the valid pixel range. The attacks raise whatever scalar ``loss`` the caller gives: a method's
training loss (adversarial training), a surrogate of the k-NN decision or a retrieval loss
(``robustness.adversarial``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

NORMS = ("linf", "l2")
Loss = Callable[[torch.Tensor], torch.Tensor]


def _gradient(loss: Loss, x: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(x), x)
    return torch.nan_to_num(grad)


def _per_row(t: torch.Tensor) -> torch.Tensor:
    """Each row's L2 norm, shaped to broadcast over the row."""
    return t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (t.ndim - 1)))


def _step(grad: torch.Tensor, size: float, norm: str) -> torch.Tensor:
    return size * (grad.sign() if norm == "linf" else grad / _per_row(grad))


def _project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    if norm == "linf":
        return delta.clamp(-eps, eps)
    return delta * (eps / _per_row(delta)).clamp(max=1.0)


def pgd(
    loss: Loss,
    x: torch.Tensor,
    eps: float,
    steps: int = 10,
    alpha: float | None = None,
    norm: str = "linf",
    low: float | None = None,
    high: float | None = None,
    rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """``x`` moved within the ``norm`` ball of radius ``eps`` to raise ``loss(x)``: ``steps``
    signed (L-inf) or normalised (L2) gradient steps of ``alpha``, each projected onto the ball
    and onto [``low``, ``high``]. ``rows`` (a bool mask over the batch) limits the attack to
    those rows. ``eps = 0`` returns ``x`` unchanged. Returns a detached tensor."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
    x = x.detach()
    if eps == 0 or steps == 0:
        return x.clone()
    alpha = 2.5 * eps / steps if alpha is None else alpha
    keep = None if rows is None else rows.to(x.device).view(-1, *([1] * (x.ndim - 1)))
    delta = torch.zeros_like(x)
    for _ in range(steps):
        step = _step(_gradient(loss, x + delta), alpha, norm)
        delta = _project(delta + (step if keep is None else step * keep), eps, norm)
        if low is not None or high is not None:
            delta = (x + delta).clamp(low, high) - x
    return (x + delta).detach()


def fgsm(
    loss: Loss,
    x: torch.Tensor,
    eps: float,
    norm: str = "linf",
    low: float | None = None,
    high: float | None = None,
    rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """The fast gradient sign method: one step of size ``eps`` (``pgd`` with steps=1)."""
    return pgd(loss, x, eps, 1, eps, norm, low, high, rows)


def attack(
    name: str,
    loss: Loss,
    x: torch.Tensor,
    eps: float,
    steps: int = 10,
    norm: str = "linf",
    low: float | None = None,
    high: float | None = None,
    rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """``fgsm`` or ``pgd`` by name."""
    if name == "fgsm":
        return fgsm(loss, x, eps, norm, low, high, rows)
    if name == "pgd":
        return pgd(loss, x, eps, steps, None, norm, low, high, rows)
    raise ValueError(f"attack must be fgsm or pgd, got {name!r}")
