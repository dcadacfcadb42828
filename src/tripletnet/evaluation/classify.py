"""Classification from embeddings: the paper's linear classifier (``probe``), k-NN and nearest
centroid.

k-NN votes among the k nearest gallery items: one vote each (majority) or 1 / (d + eps)
each (distance-weighted); ties go to the class whose members are nearer. Nearest class
centroid predicts argmin_c ||x - mu_c||.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import faiss
import numpy as np
import torch

from ..collective import gathered, summed
from ..world import SINGLE, World
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
    if not same_set:
        return nearest_centroid_of(query, query_labels, classes, sums, counts)
    centroids = (sums / counts[:, None]).astype(np.float32)
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


def nearest_centroid_of(
    query: np.ndarray, query_labels: np.ndarray, classes: np.ndarray, sums: Any, counts: Any
) -> np.ndarray:
    """Per query: is the nearest centroid mu_c = sums_c / counts_c (each class's gallery rows
    summed and counted) that of the query's class."""
    centroids = (np.asarray(sums) / np.asarray(counts)[:, None]).astype(np.float32)
    _, nearest = faiss.knn(np.ascontiguousarray(query), centroids, 1)
    return np.asarray(classes[nearest[:, 0]] == query_labels)


def class_sums(
    blocks: Iterable[tuple[np.ndarray, np.ndarray]], dim: int, world: World = SINGLE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(classes, per-class sums of the rows in float64, per-class counts) of a gallery read as
    blocks of (rows, labels) of width ``dim``, summed over every process's blocks."""
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, int] = {}
    for rows, labels in blocks:
        found, inverse, sizes = np.unique(labels, return_inverse=True, return_counts=True)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        by_class = rows[np.argsort(inverse, kind="stable")]
        totals = np.add.reduceat(by_class, starts, axis=0, dtype=np.float64)
        for label, total, size in zip(found.tolist(), totals, sizes.tolist(), strict=True):
            sums[label] = sums[label] + total if label in sums else total
            counts[label] = counts.get(label, 0) + size
    everyone = gathered(world, sorted(sums))
    classes = np.unique(np.concatenate([np.asarray(c, dtype=np.int64) for c in everyone]))
    local_sums, local_counts = np.zeros((len(classes), dim)), np.zeros(len(classes))
    at = np.searchsorted(classes, np.asarray(sorted(sums), dtype=np.int64))
    for row, label in zip(at.tolist(), sorted(sums), strict=True):
        local_sums[row], local_counts[row] = sums[label], counts[label]
    return classes, summed(world, local_sums), summed(world, local_counts)


def _flat(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32).reshape(len(x), -1))
