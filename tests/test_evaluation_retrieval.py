"""Retrieval metrics agree with pytorch-metric-learning's AccuracyCalculator; edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

from tripletnet.evaluation.inputs import EvaluationInputError
from tripletnet.evaluation.neighbours import knn_search
from tripletnet.evaluation.retrieval import retrieve

PML_KEYS = {
    "precision_at_1": "precision_at_1",
    "r_precision": "r_precision",
    "mean_average_precision_at_r": "map_at_r",
}


def _blobs(n: int, classes: int, dim: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    centres = rng.normal(size=(classes, dim)) * 1.5
    return (centres[labels] + rng.normal(size=(n, dim))).astype(np.float32), labels


def _pml(query, query_labels, reference=None, reference_labels=None, k="max_bin_count"):
    calculator = AccuracyCalculator(
        include=(*PML_KEYS, "mean_average_precision", "mean_reciprocal_rank"),
        k=k,
        device=torch.device("cpu"),
    )
    return calculator.get_accuracy(query, query_labels, reference, reference_labels)


@pytest.mark.parametrize("same_set", [True, False])
def test_agrees_with_pml(same_set: bool) -> None:
    x, y = _blobs(600, 7)
    if same_set:
        ours, theirs = retrieve(x, y).summary(), _pml(x, y)
    else:
        ours = retrieve(x[:200], y[:200], x[200:], y[200:]).summary()
        theirs = _pml(x[:200], y[:200], x[200:], y[200:])
    for pml_key, key in PML_KEYS.items():
        assert ours[key] == pytest.approx(theirs[pml_key], abs=1e-6)


@pytest.mark.parametrize("same_set", [True, False])
def test_map_and_mrr_agree_with_pml_at_same_k(same_set: bool) -> None:
    x, y = _blobs(300, 5, seed=1)
    gallery = {} if same_set else {"gallery": x[100:], "gallery_labels": y[100:]}
    queries = (x, y) if same_set else (x[:100], y[:100])
    ours = retrieve(*queries, **gallery, k=50, recall_ks=(1, 2, 4)).summary()
    theirs = _pml(*queries, gallery.get("gallery"), gallery.get("gallery_labels"), k=50)
    assert ours["mean_average_precision"] == pytest.approx(
        theirs["mean_average_precision"], abs=1e-6
    )
    assert ours["mean_reciprocal_rank"] == pytest.approx(theirs["mean_reciprocal_rank"], abs=1e-6)
    largest = np.unique(queries[1] if same_set else y[100:], return_counts=True)[1].max()
    assert ("map_at_r" in ours) == (largest - same_set <= 50)  # MAP@R only when k covers R


def test_full_ranking_map_matches_sklearn_average_precision() -> None:
    from sklearn.metrics import average_precision_score

    x, y = _blobs(80, 3, seed=2)
    results = retrieve(x[:20], y[:20], x[20:], y[20:], k=60)
    expected = [
        average_precision_score(y[20:] == y[i], -np.linalg.norm(x[20:] - x[i], axis=1))
        for i in range(20)
    ]
    assert results.summary()["mean_average_precision"] == pytest.approx(np.mean(expected), abs=1e-6)


def test_leave_one_out_excludes_the_query_even_with_duplicates() -> None:
    x = np.zeros((4, 2), dtype=np.float32)  # four identical embeddings
    y = np.array([0, 0, 1, 1])
    _, ids = knn_search(x, x, 3, exclude_self=True)
    assert all(i not in row for i, row in enumerate(ids))
    results = retrieve(x, y)
    assert results.relevant.tolist() == [1, 1, 1, 1]


def test_recall_at_k_is_cmc() -> None:
    gallery = np.array([[0.0], [1.0], [2.0], [3.0]], dtype=np.float32)
    results = retrieve(
        np.array([[0.1]], dtype=np.float32), [7], gallery, [1, 2, 7, 7], recall_ks=(1, 2, 4)
    )
    summary = results.summary()
    assert (summary["recall_at_1"], summary["recall_at_2"], summary["recall_at_4"]) == (0, 0, 1)
    assert summary["precision_at_4"] == 0.5
    assert summary["mean_reciprocal_rank"] == pytest.approx(1 / 3)


def test_query_labels_missing_from_gallery_are_reported() -> None:
    x, y = _blobs(50, 2)
    queries_y = y.copy()
    queries_y[:5] = 9
    summary = retrieve(x, queries_y, x, y).summary()
    assert summary["missing_labels"] == [9]
    assert summary["queries_scored"] == 45


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda x, y: retrieve(np.full((3, 2), np.nan), [0, 1, 0]), "NaN or inf"),
        (lambda x, y: retrieve(x, y[:-1]), "must match"),
        (lambda x, y: retrieve(x, y, np.zeros((0, 8)), []), "empty"),
        (lambda x, y: retrieve(x, y, k=10_000), "k = 10000"),
        (lambda x, y: retrieve(x[:1], y[:1]), "at least two"),
        (lambda x, y: retrieve(x, y, x[:, :3], y), "dimension"),
        (lambda x, y: retrieve(x, y, recall_ks=(1, 500)), "Recall@K"),
    ],
)
def test_bad_input_gives_clear_errors(call, message: str) -> None:
    x, y = _blobs(40, 2)
    with pytest.raises(EvaluationInputError, match=message):
        call(x, y)
