"""Write an ``Evaluation`` to a folder: metrics.json, per_query.npz, report.md and the figures."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import sklearn

from ..files import write_atomic, write_json_atomic, write_text_atomic
from .embedding_cache import cached_arrays, projections_key
from .evaluate import Evaluation, compared_rows
from .plots import (
    TSNE_ITERATIONS,
    Projection,
    plot_distance_histograms,
    plot_projection,
    plot_roc,
    plot_training_curves,
    project_2d,
)
from .retrieval_grid import plot_retrieval_grid
from .verification import roc

PER_QUERY = "per_query.npz"
TSNE_POINTS = 1000  # 1000 points: the classes as clear as with 1500, t-SNE in 40 % less time
PROJECTION_FILES = {"embedding_pca": "embedding.png", "embedding_tsne": "embedding_tsne.png"}


def write_evaluation(
    out: Path,
    evaluation: Evaluation,
    title: str,
    query_images: np.ndarray | None = None,
    gallery_images: np.ndarray | None = None,
    history: list[dict[str, float]] | None = None,
    class_names: Sequence[str] = (),
    tsne: bool = True,
    render: Callable[[dict[str, Any]], str] | None = None,
    views: dict[str, Path] | None = None,
) -> dict[str, Any]:
    """Write the figures, per_query.npz, metrics.json and report.md (``render(metrics)``,
    by default ``render_evaluation``); return the metrics. ``views``: the figures that need no
    measure (``draw_views`` of the same title, history and class names), when they were drawn
    beforehand."""
    metrics, results = evaluation.metrics, evaluation.retrieval
    if views is None:
        projections = embedding_projections(evaluation.queries, results.query_labels, tsne)
        views = draw_views(out, title, projections, history, class_names)
    figures = {name: path for name, path in views.items() if name in PROJECTION_FILES}
    far, tar, _ = roc(evaluation.pair_distances, evaluation.pair_same)
    figures["roc"] = plot_roc(
        far, tar, metrics["verification"], out / "roc.png", f"{title}: verification ROC"
    )
    saved = metrics["verification"].get("at_saved_threshold", {}).get("threshold")
    figures["distances"] = plot_distance_histograms(
        evaluation.pair_distances,
        evaluation.pair_same,
        out / "distances.png",
        f"{title}: pair distances",
        saved,
    )
    if query_images is not None and gallery_images is not None:
        figures["retrieval_grid"] = plot_retrieval_grid(
            results,
            query_images,
            gallery_images,
            out / "retrieval.png",
            f"{title}: top-8 retrieval",
        )
    if "training_curves" in views:
        figures["training_curves"] = views["training_curves"]
    metrics["figures"] = {name: path.name for name, path in figures.items()}
    save_per_query(out / PER_QUERY, evaluation)
    write_json_atomic(out / "metrics.json", metrics)
    report = render(metrics) if render is not None else render_evaluation(metrics, title)
    write_text_atomic(out / "report.md", report)
    return metrics


def draw_views(
    out: Path,
    title: str,
    projections: dict[str, Projection],
    history: list[dict[str, float]] | None = None,
    class_names: Sequence[str] = (),
) -> dict[str, Path]:
    """The figures that need no measure: the 2-D views of the queries and, with a ``history``,
    the training curves (drawn while the measures run: ``evaluate_run``)."""
    figures = {
        name: plot_projection(
            projection,
            out / PROJECTION_FILES[name],
            f"{title}: {'PCA' if projection.method == 'pca' else 't-SNE'}",
            class_names,
        )
        for name, projection in projections.items()
    }
    if history:
        figures["training_curves"] = plot_training_curves(
            history, out / "training.png", f"{title}: training"
        )
    return figures


def embedding_projections(
    queries: np.ndarray, labels: np.ndarray, tsne: bool = True
) -> dict[str, Projection]:
    """The 2-D views of the query embeddings that the figures show: PCA, and t-SNE of
    ``TSNE_POINTS`` of them."""
    projections = {"embedding_pca": project_2d(queries, labels, "pca")}
    if tsne:
        projections["embedding_tsne"] = project_2d(queries, labels, "tsne", TSNE_POINTS)
    return projections


def cached_projections(
    embeddings_key: str,
    queries: np.ndarray,
    labels: np.ndarray,
    metric: str = "euclidean",
    tsne: bool = True,
) -> dict[str, Projection]:
    """``embedding_projections`` of the queries as ``metric`` compares them, kept in the
    embeddings' cache beside the queries' embeddings (``embeddings_key``): the same embeddings
    give the same seeded views, and t-SNE is seconds of a core."""
    settings = (metric, tsne, TSNE_POINTS, TSNE_ITERATIONS, sklearn.__version__)

    def compute() -> tuple[dict[str, np.ndarray], dict[str, str]]:
        projections = embedding_projections(compared_rows(queries, metric), labels, tsne)
        arrays = {}
        for name, projection in projections.items():
            arrays[f"{name}.points"] = np.ascontiguousarray(projection.points)
            arrays[f"{name}.labels"] = np.ascontiguousarray(projection.labels)
        methods = {name: projection.method for name, projection in projections.items()}
        return arrays, {"methods": json.dumps(methods)}

    arrays, meta, _ = cached_arrays(projections_key(embeddings_key, *settings), compute)
    return {
        name: Projection(arrays[f"{name}.points"], arrays[f"{name}.labels"], method)
        for name, method in json.loads(meta["methods"]).items()
    }


def save_per_query(path: Path, evaluation: Evaluation) -> Path:
    """Per-query scores, with what a later comparison checks is the same: the query and gallery
    labels, the k of the k-NN classifiers and whether the queries were their own gallery."""
    retrieval = evaluation.retrieval
    arrays = {
        **evaluation.per_query,
        "query_labels": retrieval.query_labels,
        "gallery_labels": retrieval.gallery_labels,
        "k": np.asarray(evaluation.metrics["classifiers"]["k"]),
        "same_set": np.asarray(retrieval.same_set),
    }

    def writer(tmp: Path) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)  # type: ignore[arg-type]
        tmp.write_bytes(buffer.getvalue())

    return write_atomic(path, writer)


def load_per_query(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


PROTOCOL = {
    "query_labels": "query sets",
    "same_set": "galleries (one used the queries as their own gallery)",
    "gallery_labels": "galleries",
    "k": "k for the k-NN classifiers",
}


def protocol_mismatch(first: dict[str, np.ndarray], second: dict[str, np.ndarray]) -> str | None:
    """What differs between two evaluations' protocols, or None. Files written before the
    gallery, k and same-set were recorded are checked on what they have."""
    for key, what in PROTOCOL.items():
        if key in first and key in second and not np.array_equal(first[key], second[key]):
            return what
    return None


def _with_ci(metrics: dict[str, Any], section: str, name: str) -> str:
    value = metrics[section].get(name)
    if value is None:
        return "n/a"
    ci = metrics["confidence_intervals"].get(f"{section}.{name}")
    return f"{value:.2%} [{ci[0]:.2%}, {ci[1]:.2%}]" if ci else f"{value:.2%}"


def render_evaluation(metrics: dict[str, Any], title: str) -> str:
    """The Markdown tables of an evaluation, headline metrics with their bootstrap intervals."""
    retrieval, verification = metrics["retrieval"], metrics["verification"]
    level = f"{metrics['confidence']:.0%}"
    setting = (
        "leave-one-out on the query set"
        if metrics["same_set"]
        else f"against a gallery of {metrics['gallery']}"
    )
    if metrics.get("processes", 1) > 1:  # the same numbers as one process's
        setting += f" (searched by {metrics['processes']} processes, each a share of it)"
    recall = [key for key in retrieval if key.startswith("recall_at_")]
    lines = [
        f"## Embedding metrics: {title}",
        "",
        f"{metrics['queries']} queries, {metrics['embedding_dim']}-d embeddings, retrieval {setting}: "
        f"the {retrieval['k']} nearest items of each query, at least as many as the largest "
        "class has relevant items (R), so that R-Precision and MAP@R are exact. Brackets: "
        f"{level} percentile-bootstrap intervals over queries "
        f"({metrics['bootstrap_resamples']} resamples).",
        "",
        "| retrieval | value |",
        "|---|---:|",
        *(
            f"| {name} | {_with_ci(metrics, 'retrieval', key)} |"
            for name, key in [
                ("Precision@1", "precision_at_1"),
                ("R-Precision", "r_precision"),
                ("MAP@R", "map_at_r"),
                (f"mAP (top {retrieval['k']})", "mean_average_precision"),
                ("MRR", "mean_reciprocal_rank"),
            ]
        ),
        *(
            f"| Recall@{key.removeprefix('recall_at_')} | {_with_ci(metrics, 'retrieval', key)} |"
            for key in recall
        ),
        "",
        f"Queries scored: {retrieval['queries_scored']} of {retrieval['queries']}"
        + (
            f"; labels absent from the gallery (not scored): {retrieval['missing_labels']}"
            if retrieval["missing_labels"]
            else ""
        )
        + ".",
        "",
        "| classifier | accuracy |",
        "|---|---:|",
        f"| {metrics['classifiers']['k']}-NN, majority vote | {_with_ci(metrics, 'classifiers', 'knn_majority_accuracy')} |",
        f"| {metrics['classifiers']['k']}-NN, distance-weighted | {_with_ci(metrics, 'classifiers', 'knn_distance_weighted_accuracy')} |",
        f"| nearest class centroid | {_with_ci(metrics, 'classifiers', 'nearest_centroid_accuracy')} |",
        f"| linear probe (logistic regression) | {_with_ci(metrics, 'classifiers', 'linear_probe_accuracy')} |",
        "",
        f"Clustering (k-means, {metrics['clustering']['clusters']} clusters): NMI {metrics['clustering']['nmi']:.4f}, "
        f"AMI {metrics['clustering']['ami']:.4f}.",
        "",
        f"Verification on {verification['positive_pairs']} same-class and {verification['negative_pairs']} "
        "different-class pairs:",
        "",
        "| ROC AUC | EER | TAR@FAR=1e-3 | TAR@FAR=1e-2 | TAR@FAR=1e-1 | best accuracy (threshold) |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {verification['roc_auc']:.4f} | {verification['eer']:.2%} | {verification['tar_at_far_0.001']:.2%} | "
        f"{verification['tar_at_far_0.01']:.2%} | {verification['tar_at_far_0.1']:.2%} | "
        f"{verification['best_accuracy']:.2%} ({verification['best_threshold']:.4g}) |",
    ]
    lines += opis_lines(metrics.get("opis"))
    saved = verification.get("at_saved_threshold")
    if saved:
        lines += [
            "",
            f"At the saved threshold d <= {saved['threshold']:.4g}: TAR {saved['tar']:.2%}, "
            f"FAR {saved['far']:.2%}, accuracy {saved['accuracy']:.2%}.",
        ]
    lines += [""] + [f"![{name}]({file})" for name, file in metrics.get("figures", {}).items()]
    return "\n".join(lines) + "\n"


def opis_lines(opis: dict[str, Any] | None) -> list[str]:
    """The threshold-consistency sentence of the report (evaluation/opis.py), if measured."""
    if not opis:
        return []
    low, high = opis["far_range"]
    return [
        "",
        f"Threshold consistency (Zhang et al. 2024): OPIS **{opis['opis']:.4g}** (F1 utility, "
        f"thresholds at overall FAR {low:g} to {high:g}, {opis['samples']} samples); one threshold "
        f"for every class, at overall FAR {opis['at_far']:g}, gives per-class FAR from "
        f"{min(r['far'] for r in opis['per_class'].values()):.2%} to "
        f"{max(r['far'] for r in opis['per_class'].values()):.2%} (spread "
        f"{opis['far_spread']:.2%}) and FRR spread {opis['frr_spread']:.2%} over "
        f"{len(opis['per_class'])} classes.",
    ]
