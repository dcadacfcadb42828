"""Classification from embeddings: the paper's linear classifier (``probe``), k-NN and nearest
centroid.

k-NN votes among the k nearest gallery items: one vote each (majority) or 1 / (d + eps)
each (distance-weighted); ties go to the class whose members are nearer. Nearest class
centroid predicts argmin_c ||x - mu_c||.
"""

from __future__ import annotations

from typing import Literal

import faiss
import numpy as np
import torch

from .neighbours import knn_search

Weighting = Literal["majority", "distance"]
EPS = 1e-8


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
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Vote of the ``k`` nearest train samples (L2, exact search on ``device``, chunked)."""
    train, test = _flat(train_x), _flat(test_x)
    distances, neighbours = knn_search(test, train, min(k, len(train)), device=device)
    return vote(np.asarray(train_y)[neighbours], distances, weighting)


def knn_accuracy(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    k: int = 5,
    weighting: Weighting = "majority",
    device: torch.device | str | None = None,
) -> float:
    predicted = knn_predict(train_x, train_y, test_x, k, weighting, device)
    return float((predicted == test_y).mean())


def knn_leave_one_out_accuracy(
    x: np.ndarray, y: np.ndarray, k: int = 5, device: torch.device | str | None = None
) -> float:
    """k-NN accuracy of a labelled set against itself: each sample is voted on by its ``k``
    nearest other samples (cheap enough to log every epoch)."""
    x = _flat(x)
    distances, neighbours = knn_search(x, x, min(k, len(x) - 1), exclude_self=True, device=device)
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
    # the rows of each class summed in their order (a stable sort, then one reduceat: the
    # sums np.add.at gives, in a fraction of its time)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    by_class = gallery[np.argsort(inverse, kind="stable")].astype(np.float64)
    sums = np.add.reduceat(by_class, starts, axis=0)
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
