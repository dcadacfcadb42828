"""OPIS (Zhang et al., ICLR 2024) and the per-class FAR / FRR spread against a brute-force count
written plainly: every ordered pair, every threshold, one class at a time."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tripletnet.evaluation.inputs import EvaluationInputError
from tripletnet.evaluation.opis import opis_metrics, threshold_at_far, threshold_consistency


def brute_force(
    x: np.ndarray,
    y: np.ndarray,
    metric: str,
    far_range: tuple[float, float],
    at_far: float,
    steps: int,
) -> dict:
    n = len(x)

    def score(i: int, j: int) -> float:
        if metric == "cosine":
            return float(x[i] @ x[j] / (np.linalg.norm(x[i]) * np.linalg.norm(x[j])))
        return -float(np.linalg.norm(x[i] - x[j]))

    pairs = [(i, j, score(i, j)) for i in range(n) for j in range(n) if i != j]
    negatives = sorted(s for i, j, s in pairs if y[i] != y[j])

    def far(t: float) -> float:
        return sum(s >= t for s in negatives) / len(negatives)

    def lowest_threshold(target: float) -> float:
        # the smallest threshold halfway between two negatives' scores with FAR <= target
        top = negatives[-1] + max(abs(negatives[-1]) * 1e-9, 1e-12)
        distinct = sorted(set(negatives))
        halfway = [(a + b) / 2 for a, b in zip(distinct[:-1], distinct[1:], strict=True)]
        return min(t for t in [*halfway, top] if far(t) <= target)

    t_lo, t_hi = lowest_threshold(far_range[1]), lowest_threshold(far_range[0])
    grid = [t_lo + (t_hi - t_lo) * k / (steps - 1) for k in range(steps)]
    classes = [c for c in sorted(set(y.tolist())) if (y == c).sum() >= 2]
    utility = {}
    for c in classes:
        row = []
        for t in grid:
            tp = sum(1 for i, j, s in pairs if y[i] == c and y[j] == c and s >= t)
            fn = sum(1 for i, j, s in pairs if y[i] == c and y[j] == c and s < t)
            fp = sum(1 for i, j, s in pairs if y[i] == c and y[j] != c and s >= t)
            row.append(2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else 0.0)
        utility[c] = row
    squares = 0.0
    for k in range(steps):
        mean = sum(utility[c][k] for c in classes) / len(classes)
        squares += sum((utility[c][k] - mean) ** 2 for c in classes)
    opis = squares / (steps * len(classes))
    t = lowest_threshold(at_far)
    rates = {}
    for c in classes:
        neg = [s for i, j, s in pairs if y[i] == c and y[j] != c]
        pos = [s for i, j, s in pairs if y[i] == c and y[j] == c]
        rates[str(c)] = {
            "far": sum(s >= t for s in neg) / len(neg),
            "frr": sum(s < t for s in pos) / len(pos),
        }
    return {"opis": opis, "threshold": t, "per_class": rates}


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("seed", [0, 1])
def test_opis_matches_brute_force(metric: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, 40)
    x = rng.normal(size=(40, 3)) + 0.8 * y[:, None] * np.array([1.0, -0.5, 0.2])
    ours = opis_metrics(x, y, metric, far_range=(0.05, 0.4), at_far=0.2, steps=11)
    expected = brute_force(x.astype(np.float32).astype(np.float64), y, metric, (0.05, 0.4), 0.2, 11)
    assert math.isclose(ours["opis"], expected["opis"], rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(ours["threshold"], expected["threshold"], rel_tol=1e-9)
    for label, rates in expected["per_class"].items():
        assert ours["per_class"][label] == pytest.approx(rates)
    fars = [r["far"] for r in expected["per_class"].values()]
    assert ours["far_spread"] == pytest.approx(max(fars) - min(fars))


def test_identical_classes_are_consistent_and_unequal_ones_are_not() -> None:
    rng = np.random.default_rng(0)
    centres = np.eye(4) * 6
    y = np.repeat(np.arange(4), 30)
    alike = centres[y] + rng.normal(size=(120, 4))
    unequal = centres[y] + rng.normal(size=(120, 4)) * np.array([0.2, 0.5, 1.0, 2.5])[y, None]
    assert opis_metrics(unequal, y)["opis"] > 5 * opis_metrics(alike, y)["opis"]
    assert opis_metrics(unequal, y)["frr_spread"] > opis_metrics(alike, y)["frr_spread"]


def test_a_given_threshold_reports_its_far() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(30, 2)), np.repeat(np.arange(3), 10)
    chosen = opis_metrics(x, y, threshold=-1.0)
    assert chosen["threshold"] == -1.0 and 0 <= chosen["at_far"] <= 1
    # the evaluation's hook takes a calibrated distance: L2 d, or the cosine distance 1 - cos
    assert threshold_consistency(x, y, "euclidean", distance_threshold=1.0)["threshold"] == -1.0
    assert threshold_consistency(x, y, "cosine", distance_threshold=0.25)["threshold"] == 0.75


def test_threshold_at_far_accepts_at_most_that_share() -> None:
    negatives = np.arange(100, dtype=np.float64)
    for far in (0.001, 0.01, 0.1, 0.5):
        t = threshold_at_far([negatives], far)
        assert (negatives >= t).mean() <= far < (negatives >= t - 1).mean()


def _sorted_threshold_at_far(negatives: np.ndarray, far: float) -> float:
    """The rule of ``threshold_at_far`` on the fully sorted scores (its first implementation)."""
    ordered = np.sort(negatives)[::-1]
    allowed = int(np.floor(far * len(ordered)))
    if allowed >= len(ordered):
        return float(ordered[-1])
    rejected = ordered[allowed]
    larger = ordered[:allowed][ordered[:allowed] > rejected]
    if len(larger) == 0:
        return float(rejected + max(abs(rejected) * 1e-9, 1e-12))
    return float((rejected + larger[-1]) / 2)


def test_threshold_at_far_selection_equals_the_sorted_rule() -> None:
    """Ties at the threshold and across parts, all equal, empty parts, none or all accepted: the
    threshold found inside the sorted parts is the one of the whole sorted union."""
    rng = np.random.default_rng(1)
    cases = [rng.integers(0, 20, 500).astype(np.float64), rng.normal(size=999), np.ones(50)]
    for negatives in cases:
        for cuts in ([], [0, 0], [1], [7, 100, 101, 300], sorted(rng.integers(0, 50, 9))):
            parts = [np.sort(part) for part in np.split(rng.permutation(negatives), cuts)]
            for far in (0.0, 0.001, 0.013, 0.1, 0.5, 1.0):
                expected = _sorted_threshold_at_far(negatives, far)
                assert threshold_at_far(parts, far) == expected, (cuts, far)
    with pytest.raises(ValueError, match="at least one"):
        threshold_at_far([np.zeros(0)], 0.1)


def test_large_sets_are_subsampled_per_class() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), [300, 200, 100])
    result = opis_metrics(rng.normal(size=(600, 3)), y, max_samples=120)
    assert result["samples"] == 120


@pytest.mark.parametrize(
    ("labels", "kwargs"),
    [
        ([0, 0, 1, 2], {}),  # one class with pairs
        ([0, 0, 1, 1], {"far_range": (0.2, 0.1)}),
        ([0, 0, 1, 1], {"at_far": 0.0}),
        ([0, 0, 1, 1], {"steps": 1}),
    ],
)
def test_bad_input_is_one_clear_error(labels: list[int], kwargs: dict) -> None:
    with pytest.raises(EvaluationInputError):
        opis_metrics(np.random.default_rng(0).normal(size=(len(labels), 2)), labels, **kwargs)
    if not kwargs:
        assert threshold_consistency(np.zeros((4, 2)), np.array(labels), "euclidean") is None
