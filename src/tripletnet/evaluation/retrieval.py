"""Retrieval: one ``RetrievalResults`` (neighbour ids, distances, ground truth) that every
retrieval metric reads.

For a query with R relevant gallery items (same label; the query itself excluded in the
leave-one-out case) and hit indicators h_1, h_2, ... over its ranked neighbours:

- Precision@K = (1/K) sum_{i<=K} h_i;  Recall@K (CMC@K) = 1 if any h_i = 1 for i <= K
- R-Precision = (1/R) sum_{i<=R} h_i;  MAP@R = (1/R) sum_{i<=R} P(i) h_i  (Musgrave et al. 2020)
- AP = (1/R) sum_{i<=k} P(i) h_i over the k retrieved (the full-ranking AP once k covers the
  gallery);  RR = 1 / (rank of the first hit), 0 if none in the top k

Queries whose label has no relevant item in the gallery cannot be scored: they are left out of
the averages and reported (``missing_labels``), as pytorch-metric-learning does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .inputs import EvaluationInputError, labelled
from .neighbours import knn_search

DEFAULT_RECALL_KS = (1, 2, 4, 8, 16, 32)


@dataclass
class RetrievalResults:
    """The top-k neighbours of every query and what is needed to score them."""

    ids: np.ndarray  # (N, k) gallery rows, nearest first
    distances: np.ndarray  # (N, k) L2 distances
    query_labels: np.ndarray  # (N,)
    gallery_labels: np.ndarray  # (M,)
    relevant: np.ndarray  # (N,) R: relevant gallery items per query
    same_set: bool = False
    recall_ks: tuple[int, ...] = field(default=DEFAULT_RECALL_KS)

    @property
    def k(self) -> int:
        return int(self.ids.shape[1])

    def hits_of(self, rows: slice | np.ndarray) -> np.ndarray:
        """The hits of the given query rows only."""
        return self.gallery_labels[self.ids[rows]] == self.query_labels[rows, None]

    @property
    def scored(self) -> np.ndarray:
        """Queries that can be scored: their label has at least one relevant gallery item."""
        return self.relevant > 0

    @property
    def missing_labels(self) -> list[int]:
        """Query labels with no relevant item in the gallery."""
        return sorted(int(c) for c in np.unique(self.query_labels[~self.scored]))

    def per_query(self) -> dict[str, np.ndarray]:
        """Each metric for each scored query (for averages, bootstrap and paired tests).

        R-Precision and MAP@R are left out when k is smaller than the largest R.
        """
        rows = np.flatnonzero(self.scored)
        with_r = self.relevant[rows].max(initial=0) <= self.k  # R-Precision, MAP@R need the top R
        names = ["precision_at_1", "mean_average_precision", "mean_reciprocal_rank"]
        names += ["r_precision", "map_at_r"] if with_r else []
        names += [f"{m}_at_{k}" for k in self.recall_ks for m in ("recall", "precision")]
        scores = {name: np.empty(len(rows)) for name in names}
        block = max(1, 2**20 // self.k)  # rows at a time: the (block, k) arrays stay in cache
        for start in range(0, len(rows), block):
            part = slice(start, start + block)
            for name, values in self._block_scores(rows[part], with_r).items():
                scores[name][part] = values
        return scores

    def _block_scores(self, rows: np.ndarray, with_r: bool) -> dict[str, np.ndarray]:
        hits, relevant = self.hits_of(rows), self.relevant[rows]
        ranks = np.arange(1, self.k + 1)
        correct = np.cumsum(hits, axis=1, dtype=np.int64)  # hits among the first i
        weighted = np.where(hits, correct / ranks, 0.0)  # P(i) h_i
        first = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, np.inf)
        scores = {
            "precision_at_1": hits[:, 0].astype(np.float64),
            "mean_average_precision": weighted.sum(axis=1) / relevant,
            "mean_reciprocal_rank": 1.0 / first,
        }
        if with_r:
            at_r = np.take_along_axis(correct, relevant[:, None] - 1, axis=1)[:, 0]
            scores["r_precision"] = at_r / relevant
            scores["map_at_r"] = (
                np.where(ranks <= relevant[:, None], weighted, 0.0).sum(1) / relevant
            )
        for k in self.recall_ks:
            scores[f"recall_at_{k}"] = (correct[:, k - 1] > 0).astype(np.float64)
            scores[f"precision_at_{k}"] = correct[:, k - 1] / k
        return scores

    def summary(self, per_query: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
        """Mean of each metric over the scored queries, with the counts behind it
        (``per_query``: this object's ``per_query()``, when the caller has it already)."""
        scores = self.per_query() if per_query is None else per_query
        means = {name: float(v.mean()) for name, v in scores.items()} if self.scored.any() else {}
        return {
            **means,
            "k": self.k,
            "queries": len(self.query_labels),
            "gallery": len(self.gallery_labels),
            "same_set": self.same_set,
            "queries_scored": int(self.scored.sum()),
            "missing_labels": self.missing_labels,
        }


def retrieve(
    queries: Any,
    query_labels: Any,
    gallery: Any | None = None,
    gallery_labels: Any | None = None,
    k: int | None = None,
    recall_ks: tuple[int, ...] | None = None,
    at_least: int = 1,
) -> RetrievalResults:
    """Search the gallery for every query and return the ``RetrievalResults``.

    Without a gallery the queries are their own gallery, leave-one-out (the query itself is
    excluded by index, even when duplicates exist). ``k`` defaults to what the metrics need:
    the largest R and the largest K of Recall@K. ``recall_ks`` defaults to 1, 2, 4, ..., 32, up
    to the number of gallery candidates; a K asked for explicitly must fit in the gallery.
    ``at_least`` raises the default k (capped by the gallery), e.g. for a k-NN vote or a figure.
    """
    queries, query_labels = labelled(queries, query_labels, "query embeddings", "query labels")
    same_set = gallery is None
    if same_set:
        if gallery_labels is not None:
            raise EvaluationInputError("gallery labels given without gallery embeddings")
        gallery, gallery_labels = queries, query_labels
    else:
        if gallery_labels is None:
            raise EvaluationInputError("gallery embeddings given without gallery labels")
        gallery, gallery_labels = labelled(
            gallery, gallery_labels, "gallery embeddings", "gallery labels"
        )
    candidates = len(gallery) - int(same_set)
    if candidates < 1:
        raise EvaluationInputError("leave-one-out retrieval needs at least two embeddings")
    relevant = _relevant_counts(query_labels, gallery_labels) - int(same_set)
    if recall_ks is None:
        recall_ks = tuple(K for K in DEFAULT_RECALL_KS if candidates >= K)
    elif max(recall_ks) > candidates or min(recall_ks) < 1:
        raise EvaluationInputError(
            f"Recall@K needs 1 <= K <= {candidates} (the gallery candidates); got {recall_ks}"
        )
    if k is None:
        k = max(int(relevant.max()), max(recall_ks), min(at_least, candidates))
    elif k < max(recall_ks):
        raise EvaluationInputError(
            f"k = {k} is smaller than the largest Recall@K ({max(recall_ks)})"
        )
    distances, ids = knn_search(queries, gallery, k, exclude_self=same_set)
    return RetrievalResults(
        ids, distances, query_labels, gallery_labels, relevant, same_set, tuple(recall_ks)
    )


def _relevant_counts(query_labels: np.ndarray, gallery_labels: np.ndarray) -> np.ndarray:
    """How many gallery items share each query's label."""
    classes, counts = np.unique(gallery_labels, return_counts=True)
    position = np.clip(np.searchsorted(classes, query_labels), 0, len(classes) - 1)
    return np.where(classes[position] == query_labels, counts[position], 0)
