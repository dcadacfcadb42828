"""The paper's test measure: the fraction of triplets with d(a, p) >= d(a, n)."""

from __future__ import annotations

import numpy as np
import torch

from ..distances import pairwise_euclidean


def triplet_error(embeddings: np.ndarray, triplets: np.ndarray) -> float:
    """Fraction of (anchor, positive, negative) index triplets the embedding gets wrong."""
    anchor, positive, negative = (embeddings[triplets[:, i]] for i in range(3))
    d_pos = np.linalg.norm(anchor - positive, axis=1)
    d_neg = np.linalg.norm(anchor - negative, axis=1)
    return float((d_pos >= d_neg).mean())


def matched_triplet_error(first: torch.Tensor, second: torch.Tensor) -> float:
    """For row-matched (N, D) embeddings, the fraction of (i, j != i) triplets with
    ||first_i - second_i|| >= ||first_i - second_j||: the matched row is not the nearer one."""
    with torch.no_grad():
        dist = pairwise_euclidean(first, second)
        n = len(dist)
        wrong = (dist.diagonal()[:, None] >= dist).sum() - n  # each row's diagonal ties itself
        return float(wrong) / max(n * (n - 1), 1)
