"""Classification from embeddings: the paper's linear classifier, k-NN and nearest centroid.

k-NN votes among the k nearest gallery items: one vote each (majority) or 1 / (d + eps)
each (distance-weighted); ties go to the class whose members are nearer. Nearest class
centroid predicts argmin_c ||x - mu_c||.
"""

from __future__ import annotations

import warnings
from typing import Literal

import faiss
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from .inputs import require_classes
from .neighbours import knn_search

Weighting = Literal["majority", "distance"]
EPS = 1e-8


def _probe(train_y: np.ndarray, max_iter: int) -> Pipeline:
    require_classes(train_y, 2, "the linear probe (logistic regression)")
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))


def linear_probe_accuracy(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    max_iter: int = 300,
) -> float:
    """Accuracy of a linear (logistic-regression) classifier fit on standardised train features.

    This is Hoffer & Ailon's protocol: a 1-layer linear classifier on the train embeddings.
    """
    return float(linear_probe_correct(train_x, train_y, test_x, test_y, max_iter).mean())


def fit_linear_probe(train_x: np.ndarray, train_y: np.ndarray, max_iter: int = 300) -> Pipeline:
    """The linear probe (standardised features, logistic regression) fit on the train set."""
    classifier = _probe(train_y, max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        classifier.fit(_flat(train_x), train_y)
    return classifier


def linear_probe_correct(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    max_iter: int = 300,
) -> np.ndarray:
    """Per test sample: is the linear probe's prediction right."""
    classifier = fit_linear_probe(train_x, train_y, max_iter)
    return np.asarray(classifier.predict(_flat(test_x)) == test_y)


def linear_probe_cross_validated(
    x: np.ndarray, y: np.ndarray, folds: int = 5, max_iter: int = 300, seed: int = 0
) -> np.ndarray:
    """Per sample correctness of the linear probe when one set is both train and test:
    each sample is predicted by a probe fit on the other folds (stratified)."""
    folds = max(2, min(folds, int(np.unique(y, return_counts=True)[1].min())))
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        predicted = cross_val_predict(_probe(y, max_iter), _flat(x), y, cv=splitter)
    return np.asarray(predicted == y)


def vote(
    neighbour_labels: np.ndarray, distances: np.ndarray, weighting: Weighting = "majority"
) -> np.ndarray:
    """Predicted label per row from the (N, k) labels and distances of its nearest neighbours."""
    classes, column = np.unique(neighbour_labels, return_inverse=True)
    column = column.reshape(neighbour_labels.shape)
    k = neighbour_labels.shape[1]
    if weighting == "distance":
        weight = 1.0 / (distances.astype(np.float64) + EPS)
    elif weighting == "majority":
        # one vote each, plus a tie-break for the class whose members are nearer; the tie-break
        # of a whole row sums to 1/2, so it never outweighs a vote whatever k is
        tie_break = (k - np.arange(k)) / (k * (k + 1))
        weight = np.broadcast_to(1.0 + tie_break, neighbour_labels.shape)
    else:
        raise ValueError(f"weighting must be 'majority' or 'distance'; got {weighting!r}")
    votes = np.zeros((len(neighbour_labels), len(classes)))
    np.add.at(votes, (np.arange(len(votes))[:, None], column), weight)
    return classes[votes.argmax(axis=1)]


def knn_predict(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    k: int,
    weighting: Weighting = "majority",
) -> np.ndarray:
    """Vote of the ``k`` nearest train samples (L2, exact FAISS search, chunked)."""
    train, test = _flat(train_x), _flat(test_x)
    distances, neighbours = knn_search(test, train, min(k, len(train)))
    return vote(np.asarray(train_y)[neighbours], distances, weighting)


def knn_accuracy(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    k: int = 5,
    weighting: Weighting = "majority",
) -> float:
    return float((knn_predict(train_x, train_y, test_x, k, weighting) == test_y).mean())


def knn_leave_one_out_accuracy(x: np.ndarray, y: np.ndarray, k: int = 5) -> float:
    """k-NN accuracy of a labelled set against itself: each sample is voted on by its ``k``
    nearest other samples (cheap enough to log every epoch)."""
    distances, neighbours = knn_search(_flat(x), _flat(x), min(k, len(x) - 1), exclude_self=True)
    return float((vote(np.asarray(y)[neighbours], distances) == y).mean())


def nearest_centroid_correct(
    query: np.ndarray,
    query_labels: np.ndarray,
    gallery: np.ndarray | None = None,
    gallery_labels: np.ndarray | None = None,
) -> np.ndarray:
    """Per query: is the nearest class centroid (mean gallery embedding) of the query's class.

    Without a gallery each query is classified against centroids of the other samples: its
    own class's centroid is recomputed without it (leave-one-out).
    """
    same_set = gallery is None
    gallery = query if gallery is None else gallery
    gallery_labels = query_labels if gallery_labels is None else gallery_labels
    classes, inverse, counts = np.unique(gallery_labels, return_inverse=True, return_counts=True)
    sums = np.zeros((len(classes), gallery.shape[1]))
    np.add.at(sums, inverse, gallery)
    centroids = (sums / counts[:, None]).astype(np.float32)
    if not same_set:
        _, nearest = faiss.knn(np.ascontiguousarray(query), centroids, 1)
        return np.asarray(classes[nearest[:, 0]] == query_labels)
    predicted = np.empty(len(query), dtype=classes.dtype)
    for start in range(0, len(query), 4096):  # a (chunk, classes) block at a time
        rows = np.arange(start, min(start + 4096, len(query)))
        x, own = query[rows].astype(np.float64), inverse[rows]
        squared = (
            (x**2).sum(1)[:, None]
            + (centroids.astype(np.float64) ** 2).sum(1)
            - 2 * x @ centroids.T
        )
        n = counts[own].astype(np.float64)
        loo = (sums[own] - x) / np.maximum(n - 1, 1)[:, None]  # own centroid without the query
        squared[np.arange(len(rows)), own] = np.where(n > 1, ((x - loo) ** 2).sum(1), np.inf)
        predicted[rows] = classes[squared.argmin(axis=1)]
    return np.asarray(predicted == query_labels)


def _flat(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32).reshape(len(x), -1))
