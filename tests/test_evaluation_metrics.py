"""Classification, clustering, verification and confidence metrics against independent
definitions (brute force, scikit-learn, pytorch-metric-learning)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import FaissKMeans
from sklearn.metrics import roc_auc_score, roc_curve

from tripletnet.evaluation.classify import knn_predict, nearest_centroid_correct, vote
from tripletnet.evaluation.clustering import clustering_scores
from tripletnet.evaluation.confidence import bootstrap_ci, bootstrap_cis, paired_comparison
from tripletnet.evaluation.evaluate import evaluate_embeddings
from tripletnet.evaluation.inputs import EvaluationInputError
from tripletnet.evaluation.probe import linear_probe_accuracy
from tripletnet.evaluation.retrieval_grid import spread_queries
from tripletnet.evaluation.verification import (
    PAIR_BLOCK,
    calibrate_threshold,
    load_threshold,
    pair_distances,
    save_threshold,
    verification_metrics,
)


def _pairs(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    same = rng.random(n) < 0.4
    return np.where(same, rng.gamma(2.0, 0.5, n), rng.gamma(4.0, 0.5, n)), same


def test_clustering_agrees_with_pml_nmi_ami() -> None:
    rng = np.random.default_rng(0)
    cluster = np.repeat(np.arange(4), 50)
    x = (np.eye(4, 6)[cluster] * 20 + rng.normal(size=(200, 6))).astype(np.float32)
    labels = np.where(rng.random(200) < 0.15, rng.integers(0, 4, 200), cluster)  # noisy labels
    ours = clustering_scores(x, labels)
    calculator = AccuracyCalculator(
        include=("NMI", "AMI"),
        device=torch.device("cpu"),
        kmeans_func=FaissKMeans(niter=20, nredo=5),  # restarts: both find the same clusters
    )
    theirs = calculator.get_accuracy(x, labels)
    assert ours["nmi"] < 0.99  # the noisy labels make this a real test
    assert ours["nmi"] == pytest.approx(theirs["NMI"], abs=1e-6)
    assert ours["ami"] == pytest.approx(theirs["AMI"], abs=1e-6)


def test_verification_agrees_with_sklearn_and_brute_force() -> None:
    distances, same = _pairs()
    metrics = verification_metrics(distances, same)
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(same, -distances), abs=1e-12)
    thresholds = np.concatenate([[-1.0], np.sort(distances)])
    tar = np.array([(distances[same] <= t).mean() for t in thresholds])
    far = np.array([(distances[~same] <= t).mean() for t in thresholds])
    assert metrics["eer"] == pytest.approx(np.maximum(far, 1 - tar).min())
    assert metrics["best_accuracy"] == pytest.approx(
        max(((distances <= t) == same).mean() for t in thresholds)
    )
    sk_far, sk_tar, _ = roc_curve(same, -distances)
    for target in (1e-2, 1e-1):
        assert metrics[f"tar_at_far_{target:g}"] == pytest.approx(tar[far <= target].max())
        assert metrics[f"tar_at_far_{target:g}"] == pytest.approx(sk_tar[sk_far <= target].max())


def test_pair_distances_in_blocks_equal_the_distance_of_each_pair() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 7)).astype(np.float32)
    pairs = rng.integers(0, 50, (2 * PAIR_BLOCK + 3, 2))
    a, b = x[pairs[:, 0]].astype(np.float64), x[pairs[:, 1]].astype(np.float64)
    l2 = np.sqrt(((a - b) ** 2).sum(1))
    cosine = 1 - (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))
    assert pair_distances(x, pairs).dtype == np.float32
    np.testing.assert_allclose(pair_distances(x, pairs), l2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pair_distances(x, pairs, "cosine"), cosine, rtol=1e-5, atol=1e-6)
    assert pair_distances(x, pairs[:0]).shape == (0,)


def test_calibrated_threshold_meets_its_target_and_round_trips(tmp_path) -> None:
    distances, same = _pairs(seed=1)
    by_far = calibrate_threshold(distances, same, far=0.05)
    accept = distances <= by_far["distance_threshold"]
    assert accept[~same].mean() <= 0.05
    assert by_far["measured"]["tar"] == pytest.approx(accept[same].mean())
    by_precision = calibrate_threshold(distances, same, precision=0.9)
    accept = distances <= by_precision["distance_threshold"]
    assert same[accept].mean() >= 0.9
    save_threshold(tmp_path, by_far)
    assert load_threshold(tmp_path) == by_far
    with pytest.raises(EvaluationInputError, match="exactly one"):
        calibrate_threshold(distances, same)


def test_knn_votes_and_nearest_centroid() -> None:
    labels = np.array([[3, 5, 5]])
    distances = np.array([[0.1, 1.0, 1.0]])
    assert vote(labels, distances, "majority")[0] == 5
    assert vote(labels, distances, "distance")[0] == 3
    assert vote(np.array([[7, 2, 2, 7, 7]]), np.zeros((1, 5)), "majority")[0] == 7
    many = np.array([[0] * 1999 + [1] * 2001])  # the nearer class never outvotes a majority
    assert vote(many, np.zeros(many.shape), "majority")[0] == 1
    assert vote(np.array([[9, 4]]), np.zeros((1, 2)), "majority")[0] == 9  # a tie: the nearer
    gallery = np.array([[0.0], [1.0], [10.0], [11.0]], dtype=np.float32)
    assert knn_predict(gallery, np.array([0, 0, 1, 1]), np.array([[9.0]]), k=3).tolist() == [1]
    x = np.array([[0.0], [0.2], [5.0], [5.2], [2.4]], dtype=np.float32)
    y = np.array([0, 0, 1, 1, 1])  # the last point is nearer class 0's centroid
    assert nearest_centroid_correct(x, y).tolist() == [True, True, True, True, False]
    assert nearest_centroid_correct(x[:1], y[:1], x[1:], y[1:]).tolist() == [True]


def test_bootstrap_interval_and_paired_comparison() -> None:
    rng = np.random.default_rng(0)
    scores = (rng.random(2000) < 0.7).astype(float)
    low, high = bootstrap_ci(scores)
    assert low < scores.mean() < high and high - low < 0.06
    better = np.maximum(scores, (rng.random(2000) < 0.3).astype(float))
    result = paired_comparison(better, scores)
    assert result["better"] == "a" and result["significant"] and result["ci"][0] > 0
    same = paired_comparison(scores, scores[::-1].copy())
    assert not same["significant"] and same["better"] == "neither"


def test_single_class_is_a_clear_error() -> None:
    with pytest.raises(EvaluationInputError, match="at least 2 classes"):
        clustering_scores(np.zeros((5, 2), np.float32), np.zeros(5, int))
    with pytest.raises(EvaluationInputError, match="both same-class and different-class"):
        verification_metrics(np.ones(4), np.ones(4, bool))
    x = np.random.default_rng(0).normal(size=(12, 3))
    with pytest.raises(EvaluationInputError, match="linear probe .* at least 2 classes"):
        linear_probe_accuracy(x, np.zeros(12, int), x, np.arange(12) % 2)
    with pytest.raises(EvaluationInputError, match="query embeddings .* at least 2 classes"):
        evaluate_embeddings(x, np.zeros(12, int))


def test_queries_whose_labels_are_all_absent_from_the_gallery_are_reported() -> None:
    rng = np.random.default_rng(0)
    queries, gallery = rng.normal(size=(40, 4)), rng.normal(size=(60, 4))
    evaluation = evaluate_embeddings(
        queries, np.arange(40) % 2, gallery, 5 + np.arange(60) % 3, pairs=50, linear_probe=False
    )
    retrieval = evaluation.metrics["retrieval"]
    assert retrieval["missing_labels"] == [0, 1] and retrieval["queries_scored"] == 0
    assert "precision_at_1" not in retrieval
    assert evaluation.metrics["classifiers"]["knn_majority_accuracy"] == 0.0


def test_retrieval_grid_queries_cover_the_classes_before_repeating_one() -> None:
    labels = np.repeat(np.arange(10), [45, 46, 44, 46, 45, 46, 45, 45, 43, 45])
    rows = spread_queries(labels, 8, seed=0)
    assert len(set(labels[rows])) == 8 and list(rows) == sorted(set(rows))
    rows = spread_queries(labels, 25, seed=1)
    assert np.bincount(labels[rows], minlength=10).tolist().count(3) == 5  # 25 = 10 + 10 + 5
    assert len(spread_queries(labels[:3], 8)) == 3


def test_retrieval_grid_shows_failures_beside_successes() -> None:
    """Half the grid's queries have a wrong first neighbour, when there are that many."""
    from tripletnet.evaluation.retrieval import retrieve
    from tripletnet.evaluation.retrieval_grid import pick_queries

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 25)
    embeddings = np.eye(4)[labels] * 3 + rng.normal(size=(100, 4))  # some neighbours wrong
    results = retrieve(embeddings.astype(np.float32), labels)
    first_right = results.hits_of(slice(None))[:, 0]
    assert 4 <= (~first_right).sum() <= 96
    rows = pick_queries(results, 8)
    assert len(set(rows)) == 8 and (~first_right[rows]).sum() == 4
    perfect = retrieve(np.eye(4)[labels].astype(np.float32), labels)  # no failure to show
    assert len(pick_queries(perfect, 8)) == 8


def test_bootstrap_intervals_share_resamples_and_equal_one_call_each() -> None:
    """Arrays of one length share the resampled rows: each interval is what the percentile
    bootstrap gives it alone (a reference draw of 64 resamples at a time from the seed)."""
    rng = np.random.default_rng(4)
    scores = {"a": rng.random(300), "b": rng.random(300) > 0.3, "c": rng.random(77)}

    def reference(values: np.ndarray, resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
        draw = np.random.default_rng(seed)
        blocks = [
            draw.integers(0, len(values), (min(64, resamples - s), len(values)))
            for s in range(0, resamples, 64)
        ]
        means = np.concatenate([np.asarray(values, dtype=np.float64)[b].mean(1) for b in blocks])
        tail = (1.0 - 0.95) / 2.0  # as the interval's own arithmetic: 0.025 + 2e-17
        low, high = np.quantile(means, [tail, 1.0 - tail])
        return float(low), float(high)

    together = bootstrap_cis(scores, seed=3)
    for name, values in scores.items():
        assert together[name] == bootstrap_ci(values, seed=3) == reference(values, seed=3)
