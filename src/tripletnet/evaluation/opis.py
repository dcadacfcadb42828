"""Operating-Point-Inconsistency Score (OPIS) and the per-class FAR / FRR spread at one threshold.

Zhang et al., "Threshold-Consistent Margin Loss for Open-World Deep Metric Learning" (ICLR 2024):
a verification user accepts a pair as "same" when its score s (cosine similarity, or minus the
L2 distance) is at least one threshold t, the same for every class. With U(c, t) the utility of
class c at t and U_bar(t) its mean over the T classes,

    OPIS = (1 / T) sum_c  integral_{t_lo}^{t_hi} (U(c, t) - U_bar(t))^2 dt / (t_hi - t_lo)

over the calibration range [t_lo, t_hi]: the thresholds at which the overall false-accept rate
lies in ``far_range``. 0: every class is served alike at every threshold of the range. The
utility is the F1 of the class's pairs, 2 TP / (2 TP + FP + FN), where the pairs of class c are
(i, j != i) with i in c: positives j in c, negatives j not in c. The integral is the mean over
``steps`` evenly spaced thresholds. At the threshold where the overall FAR is ``far``, each
class's FAR (negatives accepted) and FRR (positives rejected) and their spread (max - min) say
how unequal one threshold is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .inputs import EvaluationInputError, labelled, require_classes

FAR_RANGE = (1e-3, 1e-1)
AT_FAR = 1e-2
MAX_SAMPLES = 5000  # above: a seeded, stratified subset (the pairs grow as N^2)


def pair_scores(embeddings: np.ndarray, rows: np.ndarray, metric: str) -> np.ndarray:
    """Scores of ``rows`` against every sample: cosine similarity or minus the L2 distance."""
    x = embeddings.astype(np.float64)
    if metric == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return x[rows] @ x.T
    products = x[rows] @ x.T
    products *= 2
    squared = (x[rows] ** 2).sum(1)[:, None] + (x**2).sum(1)[None, :]
    squared -= products  # in place: |a|^2 + |b|^2 - 2 a.b, no temporary the size of the block
    np.maximum(squared, 0.0, out=squared)
    np.sqrt(squared, out=squared)
    return np.negative(squared, out=squared)


def accepted_at(sorted_scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """How many of the (ascending) scores are >= each threshold."""
    return len(sorted_scores) - np.searchsorted(sorted_scores, thresholds, side="left")


def class_scores(
    embeddings: np.ndarray, labels: np.ndarray, metric: str
) -> dict[Any, tuple[np.ndarray, np.ndarray]]:
    """Per class, the sorted scores of its positive and of its negative pairs."""
    out = {}
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        scores = pair_scores(embeddings, rows, metric)
        same = np.broadcast_to(labels == label, scores.shape).copy()
        same[np.arange(len(rows)), rows] = False  # a sample is not its own pair
        different = np.broadcast_to(labels != label, scores.shape)
        positives, negatives = scores[same], scores[different]
        positives.sort()  # in place: no second copy of the pairs
        negatives.sort()
        out[label.item()] = (positives, negatives)
    return out


def subset(labels: np.ndarray, most: int, seed: int) -> np.ndarray:
    """At most ``most`` row ids, the same share of every class (all rows when fewer)."""
    if len(labels) <= most:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    keep = [
        rng.choice(ids, max(1, round(len(ids) * most / len(labels))), replace=False)
        for ids in (np.flatnonzero(labels == label) for label in np.unique(labels))
    ]
    return np.sort(np.concatenate(keep))


def count_at_least(parts: Sequence[np.ndarray], values: np.ndarray) -> np.ndarray:
    """How many scores of the (each ascending) ``parts`` are >= each of ``values``."""
    return sum((accepted_at(part, values) for part in parts), np.zeros(len(values), np.int64))


def threshold_at_far(parts: Sequence[np.ndarray], far: float) -> float:
    """The threshold accepting the most negative pairs whose FAR does not exceed ``far``: halfway
    between the last negative score it rejects and the next larger one (so that rounding in the
    scores does not move a pair across it); just above the largest when none may be accepted.

    ``parts``: the negative scores in ascending arrays (one per class), never merged: the
    largest rejected score r is the largest score with at least ``allowed + 1`` scores >= r,
    found by a bisection inside each part (logarithmic in the number of pairs)."""
    parts = [part for part in parts if len(part)]
    total = sum(len(part) for part in parts)
    if total == 0:
        raise ValueError("threshold_at_far needs at least one negative score")
    allowed = int(np.floor(far * total))  # negatives that may be accepted
    if allowed >= total:
        return float(min(part[0] for part in parts))
    # per part, bisect for the largest index whose score still has allowed + 1 scores >= it
    low = np.full(len(parts), -1)  # an index known to qualify (-1: none yet)
    high = np.array([len(part) for part in parts])  # an index known not to qualify
    while np.any(high - low > 1):
        middle = (low + high) // 2
        searching = high - low > 1
        values = np.array([part[max(i, 0)] for part, i in zip(parts, middle, strict=True)])
        qualifies = count_at_least(parts, values) >= allowed + 1
        low = np.where(searching & qualifies, middle, low)
        high = np.where(searching & ~qualifies, middle, high)
    rejected = max(part[i] for part, i in zip(parts, low, strict=True) if i >= 0)
    after = [np.searchsorted(part, rejected, side="right") for part in parts]
    larger = [part[i] for part, i in zip(parts, after, strict=True) if i < len(part)]
    if not larger:  # ties with it are rejected together
        return float(rejected + max(abs(rejected) * 1e-9, 1e-12))
    return float((rejected + min(larger)) / 2)


def opis_metrics(
    embeddings: Any,
    labels: Any,
    metric: str = "euclidean",
    far_range: tuple[float, float] = FAR_RANGE,
    at_far: float = AT_FAR,
    steps: int = 101,
    max_samples: int = MAX_SAMPLES,
    seed: int = 0,
    threshold: float | None = None,
) -> dict[str, Any]:
    """OPIS over the calibration range ``far_range`` and the per-class FAR / FRR at the score
    ``threshold`` (default: the one where the overall FAR is ``at_far``)."""
    low, high = far_range
    if not 0 < low < high < 1 or not 0 < at_far < 1 or steps < 2:
        raise EvaluationInputError(
            f"OPIS needs 0 < FAR low < FAR high < 1, 0 < FAR < 1 and steps >= 2; got "
            f"far_range={far_range}, at_far={at_far}, steps={steps}"
        )
    x, y = labelled(embeddings, labels, "embeddings", "labels")
    require_classes(y, 2, "OPIS")
    rows = subset(y, max_samples, seed)
    per_class = class_scores(x[rows], y[rows], metric)
    classes = [label for label, (positives, _) in per_class.items() if len(positives)]
    if len(classes) < 2:
        raise EvaluationInputError("OPIS needs at least two classes with two samples or more")
    negatives = [per_class[c][1] for c in per_class]
    t_lo, t_hi = threshold_at_far(negatives, high), threshold_at_far(negatives, low)
    grid = np.linspace(t_lo, t_hi, steps)
    utilities = []
    for label in classes:
        positives, class_negatives = per_class[label]
        tp = accepted_at(positives, grid)
        fp = accepted_at(class_negatives, grid)
        fn = len(positives) - tp
        utilities.append(2 * tp / np.maximum(2 * tp + fp + fn, 1))
    utility = np.array(utilities)
    opis = float(((utility - utility.mean(axis=0)) ** 2).mean())
    if threshold is None:
        threshold = threshold_at_far(negatives, at_far)
    else:
        total = sum(len(part) for part in negatives)
        at_far = float(count_at_least(negatives, np.array([threshold]))[0] / total)
    rates = {}
    for label in classes:
        positives, class_negatives = per_class[label]
        far = accepted_at(class_negatives, np.array([threshold]))[0] / max(len(class_negatives), 1)
        frr = 1 - accepted_at(positives, np.array([threshold]))[0] / len(positives)
        rates[str(label)] = {"far": float(far), "frr": float(frr)}
    fars = [r["far"] for r in rates.values()]
    frrs = [r["frr"] for r in rates.values()]
    return {
        "opis": opis,
        "utility": "f1",
        "far_range": [low, high],
        "threshold_range": [t_lo, t_hi],
        "score": "cosine similarity" if metric == "cosine" else "minus L2 distance",
        "samples": len(rows),
        "at_far": at_far,
        "threshold": threshold,
        "far_spread": float(max(fars) - min(fars)),
        "frr_spread": float(max(frrs) - min(frrs)),
        "per_class": rates,
    }


def threshold_consistency(
    embeddings: np.ndarray,
    labels: np.ndarray,
    metric: str,
    seed: int = 0,
    distance_threshold: float | None = None,
) -> dict[str, Any] | None:
    """``opis_metrics`` with the defaults, at a calibrated distance threshold when given (L2, or
    the cosine distance 1 - cos), or None when fewer than two classes have pairs (the
    evaluation's hook: ``metrics["opis"]``)."""
    if np.sum(np.unique(labels, return_counts=True)[1] >= 2) < 2:
        return None
    threshold = None
    if distance_threshold is not None:
        threshold = 1.0 - distance_threshold if metric == "cosine" else -distance_threshold
    return opis_metrics(embeddings, labels, metric, seed=seed, threshold=threshold)
