"""Confidence: percentile-bootstrap intervals over queries, and a paired test of two runs.

A headline metric is a mean of per-query scores s_i; resampling the queries with replacement
B times gives the interval [q_(a/2), q_(1-a/2)] of the resampled means (Efron 1979). Two runs
scored on the same queries are compared by the paired differences d_i = a_i - b_i: a bootstrap
interval for mean(d) and a sign-flip randomisation test (under H0 each d_i is as likely -d_i).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .inputs import EvaluationInputError

BLOCK = 64  # resamples drawn at a time: a (64, N) index block


def bootstrap_cis(
    scores: dict[str, np.ndarray], confidence: float = 0.95, resamples: int = 1000, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """``bootstrap_ci`` of each array of ``scores``: arrays of one length share the resampled
    rows (drawn once, from ``seed``, as each call of ``bootstrap_ci`` would draw them), so the
    intervals are the same as one call each, in a fraction of the time."""
    arrays = {name: np.asarray(v, dtype=np.float64) for name, v in scores.items()}
    if any(len(v) == 0 for v in arrays.values()):
        raise EvaluationInputError("a confidence interval needs at least one score")
    means = {name: np.empty(resamples) for name in arrays}
    for n in {len(v) for v in arrays.values()}:
        same_length = [name for name, v in arrays.items() if len(v) == n]
        rng = np.random.default_rng(seed)
        for start in range(0, resamples, BLOCK):
            rows = rng.integers(0, n, (min(BLOCK, resamples - start), n))
            for name in same_length:
                means[name][start : start + len(rows)] = arrays[name][rows].mean(1)
    tail = (1.0 - confidence) / 2.0
    intervals = {}
    for name, m in means.items():
        low, high = np.quantile(m, [tail, 1.0 - tail])
        intervals[name] = (float(low), float(high))
    return intervals


def bootstrap_ci(
    values: np.ndarray, confidence: float = 0.95, resamples: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of ``values``."""
    return bootstrap_cis({"values": values}, confidence, resamples, seed)["values"]


def paired_comparison(
    a: np.ndarray,
    b: np.ndarray,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Compare two runs' per-query scores on the same queries (same order)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise EvaluationInputError(
            f"paired comparison needs scores of the same queries; got {a.shape} and {b.shape}"
        )
    diff = a - b
    rng = np.random.default_rng(seed)
    low, high = bootstrap_ci(diff, confidence, resamples, seed)
    flipped = np.concatenate(
        [
            np.abs(
                (rng.choice([-1.0, 1.0], size=(min(64, resamples - s), len(diff))) * diff).mean(1)
            )
            for s in range(0, resamples, 64)
        ]
    )
    p_value = float((1 + np.sum(flipped >= abs(diff.mean()) - 1e-12)) / (resamples + 1))
    significant = p_value < alpha
    better = ("a" if diff.mean() > 0 else "b") if significant else "neither"
    return {
        "mean_a": float(a.mean()),
        "mean_b": float(b.mean()),
        "difference": float(diff.mean()),
        "ci": [low, high],
        "p_value": p_value,
        "significant": significant,
        "better": better,
        "queries": len(diff),
    }
