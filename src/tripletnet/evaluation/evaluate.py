"""Every metric on a query set and a gallery (or one set, leave-one-out), from arrays or tensors.

One k-NN search serves retrieval and the k-NN classifiers; k-means gives NMI/AMI; sampled pairs
give verification; per-query scores give bootstrap intervals and paired comparisons.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from ..checks import check_choice
from ..collective import gathered
from ..metric_names import METRICS
from ..world import SINGLE, World
from .classify import class_sums, nearest_centroid_correct, nearest_centroid_of, vote
from .clustering import clustering_scores
from .confidence import bootstrap_cis
from .inputs import (
    EvaluationInputError,
    as_embeddings,
    as_labels,
    check_layout,
    labelled,
    require_classes,
)
from .neighbours import check_dimensions, eval_device
from .opis import threshold_consistency
from .probe import linear_probe_correct, linear_probe_cross_validated
from .retrieval import RetrievalResults, retrieve, retrieve_shard
from .shards import block_rows, blocks, budget_bytes, in_memory
from .verification import accuracy_at_threshold, pair_distances, sample_pairs, verification_metrics

GRID_NEIGHBOURS = 8
CONCURRENT_DEVICES = ("cpu", "cuda")  # where the search runs in a thread beside the rest (MPS
# is not documented as safe to drive from two threads)
T = TypeVar("T")


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Each row divided by its L2 norm (a zero row stays zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def _submit(
    pool: ThreadPoolExecutor | None, task: Callable[..., T], *args: Any, **kw: Any
) -> Future[T]:
    """``task(*args, **kw)`` in the pool's thread, or here and now (a done future) without one."""
    if pool is not None:
        return pool.submit(task, *args, **kw)
    done: Future[T] = Future()
    done.set_result(task(*args, **kw))
    return done


def compared_rows(x: np.ndarray, metric: str) -> np.ndarray:
    """The rows as ``metric`` compares them: unit rows for "cosine" (L2 on unit vectors orders
    neighbours as cosine similarity does), as given for "euclidean"."""
    return unit_rows(x) if metric == "cosine" else x


HEADLINE = (
    "retrieval.precision_at_1",
    "retrieval.recall_at_1",
    "retrieval.recall_at_8",
    "retrieval.r_precision",
    "retrieval.map_at_r",
    "retrieval.mean_average_precision",
    "retrieval.mean_reciprocal_rank",
    "classifiers.knn_majority_accuracy",
    "classifiers.knn_distance_weighted_accuracy",
    "classifiers.nearest_centroid_accuracy",
    "classifiers.linear_probe_accuracy",
)


@dataclass
class Evaluation:
    """What ``evaluate_embeddings`` measured: the metrics, the per-query scores behind them,
    the retrieval results and the verification pairs' distances (for the figures)."""

    metrics: dict[str, Any]
    queries: np.ndarray
    per_query: dict[str, np.ndarray]
    retrieval: RetrievalResults
    pair_distances: np.ndarray
    pair_same: np.ndarray


# The products that cost run in torch; numpy's and scipy's OpenBLAS threads, spinning between
# their small calls (the probe's L-BFGS-B, OPIS), would take the second core from torch's
# (13.1 vs 15.0 s for `tripletnet evaluate` of a MNIST run on a 2-core CPU)
ONE_BLAS_THREAD = threadpool_limits.wrap(limits=1, user_api="blas")


def evaluate_embeddings(
    queries: Any,
    query_labels: Any,
    gallery: Any | None = None,
    gallery_labels: Any | None = None,
    k: int = 5,
    pairs: int = 10_000,
    linear_probe: bool = True,
    threshold: float | None = None,
    confidence: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
    metric: str = "euclidean",
    device: torch.device | str | None = None,
    memory_mb: float | None = None,
) -> Evaluation:
    """Retrieval, k-NN (majority and distance-weighted), nearest centroid, linear probe,
    NMI/AMI, verification on ``pairs`` same- and ``pairs`` different-class query pairs, and
    percentile-bootstrap intervals of the per-query metrics.

    ``metric`` "cosine" compares L2-normalised embeddings: neighbours are ranked by cosine
    similarity and every distance reported (retrieval, verification, thresholds) is the cosine
    distance 1 - cos. ``threshold`` (a calibrated distance) adds the pairs' accuracy at it.
    The k-NN search, the retrieval scores and the linear probe run on ``device`` (default cpu).
    ``memory_mb``: read the gallery (an array or a memory-mapped .npy) this many MiB at a time
    (``evaluate_shard``); None: at once.
    """
    evaluation = evaluate_shard(
        queries, query_labels, gallery, gallery_labels, k=k, pairs=pairs,
        linear_probe=linear_probe, threshold=threshold, confidence=confidence,
        resamples=resamples, seed=seed, metric=metric, device=device, memory_mb=memory_mb,
    )  # fmt: skip
    assert evaluation is not None  # one process: the main one
    return evaluation


@ONE_BLAS_THREAD
def evaluate_shard(
    queries: Any,
    query_labels: Any,
    gallery: Any | None = None,
    gallery_labels: Any | None = None,
    k: int = 5,
    pairs: int = 10_000,
    linear_probe: bool = True,
    threshold: float | None = None,
    confidence: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
    metric: str = "euclidean",
    device: torch.device | str | None = None,
    memory_mb: float | None = None,
    world: World = SINGLE,
) -> Evaluation | None:
    """``evaluate_embeddings`` by every process of a job (``world``), the same numbers as one
    process's: each gives all the queries and its own rows of the gallery, in rank order (or no
    gallery: leave-one-out, each searching its ``World.shard`` of the queries). The gallery's
    top k (``retrieve_shard``), class sums (nearest centroid) and the probe's sums are merged
    across the processes; rank 0 gets the Evaluation and measures what needs the queries alone
    (clustering, verification, OPIS, intervals); the others get None.

    With ``memory_mb`` (or in a job) the gallery may be memory-mapped: it is read, checked and
    searched a block of rows at a time, within about ``memory_mb`` MiB (the probe alone loads
    this process's rows whole: leave it out of a gallery beyond memory)."""
    check_choice("metric", metric, METRICS)
    queries, query_labels = labelled(queries, query_labels, "query embeddings", "query labels")
    require_classes(query_labels, 2, "evaluating the query embeddings (clustering, verification)")
    if gallery is None and gallery_labels is not None:
        raise EvaluationInputError("gallery labels given without gallery embeddings")
    streamed = gallery is not None and (world.distributed or memory_mb is not None)
    if gallery is not None:
        if gallery_labels is None:
            raise EvaluationInputError("gallery embeddings given without gallery labels")
        if streamed:  # checked a block at a time, as it is read
            check_layout(np.asarray(gallery), "gallery embeddings")  # a map: nothing read
            gallery_labels = as_labels(gallery_labels, len(gallery), "gallery labels")
        else:
            gallery, gallery_labels = labelled(
                gallery, gallery_labels, "gallery embeddings", "gallery labels"
            )
        check_dimensions(queries.shape, np.shape(gallery))
    queries = compared_rows(queries, metric)
    if gallery is not None and not streamed:
        gallery = compared_rows(gallery, metric)
    candidates = len(queries) - 1
    if gallery is not None:
        candidates = sum(gathered(world, len(gallery)))
    if not 1 <= k <= candidates:
        raise EvaluationInputError(
            f"k = {k}, but the k-NN classifiers have {candidates} gallery items to vote; "
            f"choose k from 1 to {candidates}"
        )

    def prepare(block: np.ndarray) -> np.ndarray:  # a block of the gallery, as compared
        return compared_rows(as_embeddings(block, "gallery embeddings"), metric)

    search: Callable[..., RetrievalResults | None] = retrieve
    options: dict[str, Any] = {"at_least": max(k, GRID_NEIGHBOURS), "device": device}
    if world.distributed or memory_mb is not None:
        search = retrieve_shard
        options |= {"world": world, "memory_mb": memory_mb, "prepare": prepare}
    # the search (native code that releases the GIL) runs beside the measures that need no
    # neighbours: on a 2-core CPU about a third less time than one after the other (in a job
    # one after the other: the processes' collectives must come in the same order)
    beside = eval_device(device).type in CONCURRENT_DEVICES and not world.distributed
    with ThreadPoolExecutor(1) if beside else nullcontext() as background:
        searched = _submit(background, search, queries, query_labels, gallery, gallery_labels,
                           **options)  # fmt: skip
        if gallery is None or gallery_labels is None:
            centroid = nearest_centroid_correct(queries, query_labels) if world.main else None
        elif streamed:
            # a quarter of the search's blocks: the class sums read the gallery beside it
            budget = budget_bytes(memory_mb)
            size = block_rows(len(gallery), queries.shape[1], budget and budget // 4)
            read = ((rows, gallery_labels[at : at + len(rows)])
                    for at, rows in blocks(gallery, size, prepare))  # fmt: skip
            sums = class_sums(read, queries.shape[1], world)
            centroid = nearest_centroid_of(queries, query_labels, *sums) if world.main else None
        else:
            centroid = nearest_centroid_correct(queries, query_labels, gallery, gallery_labels)
        probe = None
        if linear_probe and gallery is None and world.main:
            probe = linear_probe_cross_validated(queries, query_labels, seed=seed, device=device)
        elif linear_probe and gallery is not None and gallery_labels is not None:
            rows = prepare(in_memory(gallery, 0, len(gallery))) if streamed else gallery
            probe = linear_probe_correct(
                rows, gallery_labels, queries, query_labels, device=device, world=world
            )
        if not world.main:
            return None
        assert centroid is not None
        pair_ids, same = sample_pairs(query_labels, pairs, seed)
        pair_d = pair_distances(queries, pair_ids, metric)
        clustering = clustering_scores(queries, query_labels, seed)
        opis = threshold_consistency(queries, query_labels, metric, seed, threshold)
        results = searched.result()
    assert results is not None
    if metric == "cosine":
        results.distances = results.distances**2 / 2  # ||a - b||^2 / 2 = 1 - cos on unit rows
    k = min(k, results.k)
    neighbour_labels = results.gallery_labels[results.ids[:, :k]]
    distances = results.distances[:, :k]
    retrieval_scores = results.per_query()
    per_query = {f"retrieval.{name}": v for name, v in retrieval_scores.items()}
    per_query["classifiers.knn_majority_accuracy"] = (
        vote(neighbour_labels, distances, "majority") == query_labels
    )
    per_query["classifiers.knn_distance_weighted_accuracy"] = (
        vote(neighbour_labels, distances, "distance") == query_labels
    )
    per_query["classifiers.nearest_centroid_accuracy"] = centroid
    if probe is not None:
        per_query["classifiers.linear_probe_accuracy"] = probe
    metrics: dict[str, Any] = {
        "metric": metric,
        "processes": world.size,
        "queries": len(queries),
        "gallery": len(results.gallery_labels),
        "same_set": results.same_set,
        "embedding_dim": int(queries.shape[1]),
        "retrieval": results.summary(retrieval_scores),
        "classifiers": {"k": k},
        "clustering": clustering,
        "verification": verification_metrics(pair_d, same),
        "opis": opis,
        "confidence": confidence,
        "bootstrap_resamples": resamples,
        "confidence_intervals": {},
    }
    for name, scores in per_query.items():
        section, metric = name.split(".")
        if section == "classifiers":
            metrics["classifiers"][metric] = float(np.mean(scores))
    headline = {name: v for name, v in per_query.items() if name in HEADLINE and len(v)}
    intervals = bootstrap_cis(headline, confidence, resamples, seed)  # no scored query: none
    metrics["confidence_intervals"] = {name: list(ci) for name, ci in intervals.items()}
    if threshold is not None:
        metrics["verification"]["at_saved_threshold"] = accuracy_at_threshold(
            pair_d, same, threshold
        )
    as_float = {name: np.asarray(v, dtype=np.float64) for name, v in per_query.items()}
    return Evaluation(metrics, queries, as_float, results, pair_d, same)
