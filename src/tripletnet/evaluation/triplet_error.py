"""The paper's test measure: the fraction of triplets with d(a, p) >= d(a, n)."""

from __future__ import annotations

import numpy as np


def triplet_error(embeddings: np.ndarray, triplets: np.ndarray) -> float:
    """Fraction of (anchor, positive, negative) index triplets the embedding gets wrong."""
    anchor, positive, negative = (embeddings[triplets[:, i]] for i in range(3))
    d_pos = np.linalg.norm(anchor - positive, axis=1)
    d_neg = np.linalg.norm(anchor - negative, axis=1)
    return float((d_pos >= d_neg).mean())
