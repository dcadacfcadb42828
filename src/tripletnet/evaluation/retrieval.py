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

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch

from ..collective import gathered, gathered_rows
from ..world import SINGLE, World
from .inputs import EvaluationInputError, as_embeddings, as_labels, labelled
from .neighbours import (
    MAX_CHUNK,
    as_rows,
    check_dimensions,
    eval_device,
    knn_chunks,
    squared_distances,
)
from .shards import budget_bytes, merged_on_main, shard_neighbours

DEFAULT_RECALL_KS = (1, 2, 4, 8, 16, 32)


@dataclass
class RetrievalResults:
    """The nearest neighbours of every query, the per-query scores computed from its top ``k``
    (``k``: what the metrics needed), and what is needed to score them."""

    ids: np.ndarray  # (N, kept) gallery rows, nearest first (kept <= k: for votes and figures)
    distances: np.ndarray  # (N, kept) L2 distances
    query_labels: np.ndarray  # (N,)
    gallery_labels: np.ndarray  # (M,)
    relevant: np.ndarray  # (N,) R: relevant gallery items per query
    scores: dict[str, np.ndarray]  # metric -> (scored queries,) values, from the top k
    k: int  # neighbours searched per query
    same_set: bool = False
    recall_ks: tuple[int, ...] = field(default=DEFAULT_RECALL_KS)

    def hits_of(self, rows: slice | np.ndarray) -> np.ndarray:
        """The hits among the kept neighbours of the given query rows only."""
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
        return self.scores

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


def hit_scores(
    hits: torch.Tensor, relevant: torch.Tensor, recall_ks: tuple[int, ...], with_r: bool
) -> dict[str, torch.Tensor]:
    """Every retrieval metric (module docstring) of each row of ``hits`` (Q, k), given the
    relevant counts R (Q,), all R >= 1; in float64, on the tensors' device."""
    ranks = torch.arange(1, hits.shape[1] + 1, device=hits.device, dtype=torch.float64)
    correct = hits.cumsum(1, dtype=torch.int32)  # hits among the first i
    summed = (correct / ranks).mul_(hits).cumsum_(1)  # sum of P(j) h_j over j <= i
    first = (hits.to(torch.uint8).argmax(1) + 1).to(torch.float64)
    first = torch.where(hits.any(1), first, torch.inf)
    relevant = relevant.to(torch.float64)
    scores = {
        "precision_at_1": hits[:, 0].to(torch.float64),
        "mean_average_precision": summed[:, -1] / relevant,
        "mean_reciprocal_rank": 1.0 / first,
    }
    if with_r:
        at_r = relevant.long()[:, None] - 1
        scores["r_precision"] = correct.gather(1, at_r)[:, 0] / relevant
        scores["map_at_r"] = summed.gather(1, at_r)[:, 0] / relevant
    for K in recall_ks:
        scores[f"recall_at_{K}"] = (correct[:, K - 1] > 0).to(torch.float64)
        scores[f"precision_at_{K}"] = correct[:, K - 1] / K
    return scores


def score_names(recall_ks: tuple[int, ...], with_r: bool) -> list[str]:
    """The metrics ``hit_scores`` returns, in order."""
    names = ["precision_at_1", "mean_average_precision", "mean_reciprocal_rank"]
    names += ["r_precision", "map_at_r"] if with_r else []
    return names + [f"{m}_at_{K}" for K in recall_ks for m in ("recall", "precision")]


def retrieve(
    queries: Any,
    query_labels: Any,
    gallery: Any | None = None,
    gallery_labels: Any | None = None,
    k: int | None = None,
    recall_ks: tuple[int, ...] | None = None,
    at_least: int = 1,
    device: torch.device | str | None = None,
) -> RetrievalResults:
    """Search the gallery for every query and return the ``RetrievalResults``.

    Without a gallery the queries are their own gallery, leave-one-out (the query itself is
    excluded by index, even when duplicates exist). ``k`` defaults to what the metrics need:
    the largest R and the largest K of Recall@K. ``recall_ks`` defaults to 1, 2, 4, ..., 32, up
    to the number of gallery candidates; a K asked for explicitly must fit in the gallery.
    ``at_least`` raises the default k (capped by the gallery), e.g. for a k-NN vote or a figure.

    The search and the scores run on ``device`` (default cpu), a chunk of queries at a time;
    only the first max(``at_least``, largest Recall@K) neighbours are kept in the results.
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
    relevant = _relevant_counts(query_labels, gallery_labels) - int(same_set)
    k, recall_ks, kept = _depth(relevant, candidates, k, recall_ks, at_least)
    device = eval_device(device)
    q, g = as_rows(queries, device), as_rows(gallery, device)
    chunks = knn_chunks(q, g, k, same_set)
    ids, distances, scores = _scored(
        chunks, q, query_labels, gallery_labels, relevant, k, kept, recall_ks
    )
    return RetrievalResults(
        ids, distances, query_labels, gallery_labels, relevant, scores, k, same_set, recall_ks
    )


def retrieve_shard(
    queries: Any,
    query_labels: Any,
    gallery: Any | None = None,
    gallery_labels: Any | None = None,
    k: int | None = None,
    recall_ks: tuple[int, ...] | None = None,
    at_least: int = 1,
    device: torch.device | str | None = None,
    world: World = SINGLE,
    memory_mb: float | None = None,
    prepare: Callable[[np.ndarray], np.ndarray] | None = None,
) -> RetrievalResults | None:
    """``retrieve`` with the gallery split over the processes of a job (``shards``): every
    process gives all the queries and its own rows of the gallery (rank order is gallery order;
    None: leave-one-out, and each process takes its ``World.shard`` of the queries), searches
    them ``memory_mb`` MiB at a time (None: its rows at once), and rank 0 gets the results of
    the whole gallery, the same as ``retrieve``'s; the other processes get None.

    ``gallery`` may be a memory-mapped array (``np.load(path, mmap_mode="r")``): it is read a
    block at a time, each block checked and turned into compared rows by ``prepare`` (default:
    the checks of ``retrieve``)."""
    queries, query_labels = labelled(queries, query_labels, "query embeddings", "query labels")
    same_set = gallery is None
    if gallery is None:
        if gallery_labels is not None:
            raise EvaluationInputError("gallery labels given without gallery embeddings")
        mine = world.shard(len(queries))
        gallery, offset, labels = queries[mine.start : mine.stop], mine.start, query_labels
        prepare = np.asarray
    else:
        if gallery_labels is None:
            raise EvaluationInputError("gallery embeddings given without gallery labels")
        shape = np.shape(gallery)
        if len(shape) != 2:
            raise EvaluationInputError(f"gallery embeddings must be 2-D (N, D); got {shape}")
        check_dimensions(queries.shape, shape)
        own = as_labels(gallery_labels, shape[0], "gallery labels")
        offset = sum(gathered(world, shape[0])[: world.rank])
        labels = gathered_rows(world, own)
    if prepare is None:
        prepare = partial(as_embeddings, name="gallery embeddings")
    candidates = len(labels) - int(same_set)
    relevant = _relevant_counts(query_labels, labels) - int(same_set)
    k, recall_ks, kept = _depth(relevant, candidates, k, recall_ks, at_least)
    q = as_rows(queries, eval_device(device))
    budget = budget_bytes(memory_mb)
    best = shard_neighbours(q, gallery, offset, k, prepare, same_set, budget)
    found = merged_on_main(world, *best, k)
    if found is None:
        return None
    ranked = _chunked(q, *found)
    ids, distances, scores = _scored(ranked, q, query_labels, labels, relevant, k, kept, recall_ks)
    return RetrievalResults(
        ids, distances, query_labels, labels, relevant, scores, k, same_set, recall_ks
    )


def _chunked(
    queries: torch.Tensor, scores: torch.Tensor, ids: torch.Tensor
) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:
    """``knn_chunks``'s chunks from the merged (N, k) scores and ids of a sharded search."""
    size = max(1, min(MAX_CHUNK, len(queries)))
    for start in range(0, len(queries), size):
        rows = slice(start, start + size)
        yield rows, squared_distances(scores[rows], queries[rows]), ids[rows]


def _depth(
    relevant: np.ndarray,
    candidates: int,
    k: int | None,
    recall_ks: tuple[int, ...] | None,
    at_least: int,
) -> tuple[int, tuple[int, ...], int]:
    """The search's k, the Recall@K's K and the neighbours kept (``retrieve``)."""
    if candidates < 1:
        raise EvaluationInputError("leave-one-out retrieval needs at least two embeddings")
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
    elif k > candidates:
        raise EvaluationInputError(
            f"k = {k} but there are {candidates} gallery items to retrieve from; "
            f"choose 1 <= k <= {candidates}"
        )
    return k, recall_ks, min(k, max(at_least, max(recall_ks)))


def _scored(
    chunks: Iterable[tuple[slice, torch.Tensor, torch.Tensor]],
    queries: torch.Tensor,
    query_labels: np.ndarray,
    gallery_labels: np.ndarray,
    relevant: np.ndarray,
    k: int,
    kept: int,
    recall_ks: tuple[int, ...],
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The kept neighbours (ids, distances) of every query and the scores of the scored ones,
    from each chunk of queries' (rows, squared distances, ids) of its k nearest."""
    device = queries.device
    scored = relevant > 0
    with_r = int(relevant[scored].max(initial=0)) <= k  # R-Precision, MAP@R need the top R
    names = score_names(recall_ks, with_r)
    scores = {name: np.empty(int(scored.sum())) for name in names}
    ids = np.empty((len(queries), kept), dtype=np.int64)
    distances = np.empty((len(queries), kept), dtype=np.float32)
    q_labels = torch.as_tensor(query_labels, device=device)
    g_labels = torch.as_tensor(gallery_labels, device=device)
    r = torch.as_tensor(relevant, device=device)
    done = 0  # scored queries before this chunk
    for rows, squared, found in chunks:
        ids[rows] = found[:, :kept].cpu().numpy()
        distances[rows] = squared[:, :kept].sqrt().cpu().numpy()
        labels, counts = q_labels[rows], r[rows]
        keep = counts > 0
        if not keep.all():  # a query whose label the gallery lacks is not scored
            found, labels, counts = found[keep], labels[keep], counts[keep]
        hits = torch.take(g_labels, found) == labels[:, None]  # faster than g_labels[found]
        for name, values in hit_scores(hits, counts, recall_ks, with_r).items():
            scores[name][done : done + len(values)] = values.cpu().numpy()
        done += len(found)
    return ids, distances, scores


def _relevant_counts(query_labels: np.ndarray, gallery_labels: np.ndarray) -> np.ndarray:
    """How many gallery items share each query's label."""
    classes, counts = np.unique(gallery_labels, return_counts=True)
    position = np.clip(np.searchsorted(classes, query_labels), 0, len(classes) - 1)
    return np.where(classes[position] == query_labels, counts[position], 0)
