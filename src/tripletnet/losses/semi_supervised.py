"""Semi-supervised learning by metric embedding (Hoffer & Ailon 2016, arXiv 1611.01449).

With one labelled reference z_c per class, a sample x gets the distance distribution

    P(x; z)_c = e^{-||F(x) - F(z_c)||} / sum_k e^{-||F(x) - F(z_k)||}     (plain L2)

A labelled x pays the cross-entropy -log P(x; z)_{class(x)}; an unlabelled x pays the entropy
H(P(x; z)) = -sum_c P_c log P_c, which pulls it towards one reference. The total is
labelled + lambda * unlabelled (the authors' code: lambda = 1), each term a mean over its samples.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..distances import pairwise_euclidean


def distance_log_probs(embeddings: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """(N, C) log P(x; z): the log-softmax of minus the distances to the C references."""
    return F.log_softmax(-pairwise_euclidean(embeddings, references), dim=1)


def semi_supervised_loss(
    labelled: torch.Tensor,
    targets: torch.Tensor,
    unlabelled: torch.Tensor,
    references: torch.Tensor,
    unlabelled_weight: float = 1.0,
) -> torch.Tensor:
    """Cross-entropy of the labelled (L, D) embeddings against their ``targets`` (rows of the
    (C, D) ``references``) plus ``unlabelled_weight`` times the mean entropy for the (U, D)
    unlabelled ones (U may be 0).
    """
    if references.ndim != 2 or len(references) < 2:
        raise ValueError(f"references must be (C >= 2, D), got {tuple(references.shape)}")
    if len(labelled) != len(targets):
        raise ValueError(f"{len(labelled)} labelled embeddings but {len(targets)} targets")
    loss = F.nll_loss(distance_log_probs(labelled, references), targets)
    if len(unlabelled) and unlabelled_weight:
        log_p = distance_log_probs(unlabelled, references)
        entropy = -(log_p.exp() * log_p).sum(dim=1).mean()
        loss = loss + unlabelled_weight * entropy
    return loss
