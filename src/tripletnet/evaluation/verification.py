"""Verification: is a pair of samples the same class? Decide "same" when the L2 distance d <= t.

Over labelled pairs, FAR(t) = share of different-class pairs accepted, TAR(t) = share of
same-class pairs accepted. Reported: ROC AUC; EER = min_t max(FAR, 1 - TAR) (the ROC point
nearest the crossing, no interpolation); TAR at FAR <= 1e-3 / 1e-2 / 1e-1 (the best TAR whose
FAR does not exceed the target); the best-threshold accuracy. A calibrated threshold (to a target
FAR or precision) is saved as ``threshold.json`` in a run folder and read back by later commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from ..errors import TripletnetError
from ..files import read_json, write_json_atomic
from ..sampling import fixed_test_triplets
from .inputs import EvaluationInputError, require_classes

FARS = (1e-3, 1e-2, 1e-1)
THRESHOLD_FILE = "threshold.json"


def sample_pairs(labels: np.ndarray, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` same-class and ``n`` different-class index pairs from Hoffer's fixed random
    triplets: (anchor, positive) and (anchor, negative). Returns (2n, 2) pairs and ``same``."""
    require_classes(labels, 2, "verification pairs")
    triplets = fixed_test_triplets(labels, n, seed)
    pairs = np.concatenate([triplets[:, [0, 1]], triplets[:, [0, 2]]])
    return pairs, np.arange(2 * n) < n


PAIR_BLOCK = 4096  # pairs a block: 2 x 4096 gathered 128-d rows, 4 MiB in float32


def pair_distances(
    embeddings: np.ndarray, pairs: np.ndarray, metric: str = "euclidean"
) -> np.ndarray:
    """The distance of each (i, j) row pair: L2, or for ``metric`` "cosine" the cosine distance
    1 - a.b / (||a|| ||b||). ``PAIR_BLOCK`` pairs at a time: the gathered rows stay in the cache
    (the same values as all pairs at once, each row's sums are its own)."""

    def distances(block: np.ndarray) -> np.ndarray:
        first, second = embeddings[block[:, 0]], embeddings[block[:, 1]]
        if metric == "cosine":
            norms = np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1)
            return 1.0 - (first * second).sum(axis=1) / np.maximum(norms, 1e-12)
        return np.linalg.norm(first - second, axis=1)

    starts = range(0, max(len(pairs), 1), PAIR_BLOCK)
    return np.concatenate([distances(pairs[start : start + PAIR_BLOCK]) for start in starts])


def roc(distances: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(FAR, TAR, distance threshold) at every distinct threshold, from scikit-learn's roc_curve
    on the score -d; the first point accepts nothing (threshold -inf)."""
    same = np.asarray(same, dtype=bool)
    if same.all() or not same.any():
        raise EvaluationInputError("verification needs both same-class and different-class pairs")
    far, tar, score = roc_curve(same, -np.asarray(distances, np.float64), drop_intermediate=False)
    return far, tar, -score


def verification_metrics(distances: np.ndarray, same: np.ndarray) -> dict[str, Any]:
    """ROC AUC, EER, TAR@FAR, best-threshold accuracy and the thresholds behind them."""
    far, tar, threshold = roc(distances, same)
    positives, negatives = int(np.sum(same)), int(np.size(same) - np.sum(same))
    worst = np.maximum(far, 1.0 - tar)
    eer_at = int(worst.argmin())
    accuracy = (tar * positives + (1.0 - far) * negatives) / (positives + negatives)
    best_at = int(accuracy.argmax())
    metrics: dict[str, Any] = {
        "roc_auc": float(roc_auc_score(same, -np.asarray(distances, np.float64))),
        "eer": float(worst[eer_at]),
        "eer_threshold": _finite(threshold[eer_at]),
        "best_accuracy": float(accuracy[best_at]),
        "best_threshold": _finite(threshold[best_at]),
        "positive_pairs": positives,
        "negative_pairs": negatives,
    }
    for target in FARS:
        metrics[f"tar_at_far_{target:g}"] = float(tar[far <= target].max())
    return metrics


def calibrate_threshold(
    distances: np.ndarray,
    same: np.ndarray,
    far: float | None = None,
    precision: float | None = None,
) -> dict[str, Any]:
    """The distance threshold that accepts the most same-class pairs while keeping FAR <= ``far``
    or precision >= ``precision`` (exactly one of them) on these pairs."""
    if (far is None) == (precision is None):
        raise EvaluationInputError("calibrate to exactly one target: a FAR or a precision")
    rates, tar, threshold = roc(distances, same)
    positives, negatives = int(np.sum(same)), int(np.size(same) - np.sum(same))
    accepted = tar * positives + rates * negatives
    with np.errstate(invalid="ignore", divide="ignore"):
        pair_precision = np.where(accepted > 0, tar * positives / accepted, 1.0)
    if far is not None:
        if not 0.0 <= far <= 1.0:
            raise EvaluationInputError(f"target FAR must be in [0, 1]; got {far}")
        allowed = rates <= far
        target = {"far": far}
    else:
        assert precision is not None
        if not 0.0 < precision <= 1.0:
            raise EvaluationInputError(f"target precision must be in (0, 1]; got {precision}")
        allowed = pair_precision >= precision
        target = {"precision": precision}
    at = int(np.flatnonzero(allowed)[np.argmax(tar[allowed])])
    return {
        "distance_threshold": _finite(threshold[at]),
        "rule": "same class when the L2 distance between embeddings <= distance_threshold",
        "target": target,
        "measured": {
            "far": float(rates[at]),
            "tar": float(tar[at]),
            "precision": float(pair_precision[at]),
        },
        "pairs": {"positive": positives, "negative": negatives},
    }


def accuracy_at_threshold(
    distances: np.ndarray, same: np.ndarray, threshold: float
) -> dict[str, float]:
    """TAR, FAR and accuracy of the rule d <= ``threshold`` on these pairs."""
    same = np.asarray(same, dtype=bool)
    accept = np.asarray(distances) <= threshold
    return {
        "threshold": float(threshold),
        "tar": float(accept[same].mean()),
        "far": float(accept[~same].mean()),
        "accuracy": float((accept == same).mean()),
    }


def save_threshold(run_dir: str | Path, calibration: dict[str, Any]) -> Path:
    """Write the calibration to RUN_DIR/threshold.json (atomically)."""
    return write_json_atomic(Path(run_dir) / THRESHOLD_FILE, calibration)


def load_threshold(run_dir: str | Path) -> dict[str, Any] | None:
    """The calibration saved with a run, or None when it has none."""
    path = Path(run_dir) / THRESHOLD_FILE
    if not path.is_file():
        return None
    calibration = read_json(path)
    if not isinstance(calibration, dict) or not isinstance(
        calibration.get("distance_threshold"), (int, float)
    ):
        raise TripletnetError(f"{path} is not a tripletnet threshold file; calibrate again")
    return calibration


def _finite(threshold: float) -> float:
    """A threshold as a JSON-safe number: the "accept nothing" point (-inf) becomes -1."""
    return float(threshold) if np.isfinite(threshold) else -1.0
