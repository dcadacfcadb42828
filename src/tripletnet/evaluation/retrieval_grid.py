"""The retrieval grid: each query image with its nearest gallery images, framed green when the
neighbour has the query's class and red when not. Half the rows are failures (a wrong first
neighbour) where there are any: they are what a user studies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .plots import _save, plt
from .retrieval import RetrievalResults


def _as_image(x: np.ndarray) -> np.ndarray:
    """(C, H, W), (H, W), (H, W, C) or flat (H * W,) pixels as an (H, W[, 3]) image in [0, 1];
    a flat vector of another length is shown as one strip."""
    image = np.asarray(x, dtype=np.float64)
    if image.ndim == 1:
        side = int(round(np.sqrt(len(image))))
        image = image.reshape(side, side) if side * side == len(image) else image[None, :]
    if image.ndim == 3 and image.shape[0] in (1, 3):
        image = np.moveaxis(image, 0, -1)
    image = image.squeeze()
    low, high = image.min(), image.max()
    return (image - low) / (high - low) if high > low else np.zeros_like(image)


def draw_cell(ax: Any, image: np.ndarray, colour: str, label: str, size: float = 1.0) -> None:
    """One image of a grid, framed in ``colour``, titled ``label`` (``size`` scales both)."""
    ax.imshow(_as_image(image), cmap="gray", aspect="auto")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(3 * size)
    ax.set_title(label, fontsize=7 * size)


def spread_queries(labels: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """``count`` random rows of ``labels`` (sorted), one per class before any class repeats."""
    order = np.random.default_rng(seed).permutation(len(labels))
    shuffled = np.asarray(labels)[order]
    by_class = np.argsort(shuffled, kind="stable")
    # the rank of each row among the rows of its class, in shuffled order: 0 for the first
    rank = np.empty(len(order), dtype=np.int64)
    rank[by_class] = np.arange(len(order)) - np.searchsorted(shuffled[by_class], shuffled[by_class])
    return np.sort(order[np.argsort(rank, kind="stable")[:count]])


def pick_queries(results: RetrievalResults, count: int, seed: int = 0) -> np.ndarray:
    """``count`` query rows: up to half of them with a wrong first neighbour, the rest with a
    right one (more of either when the other runs short), each part spread over the classes."""
    first_right = results.hits_of(slice(None))[:, 0]
    wrong, right = np.flatnonzero(~first_right), np.flatnonzero(first_right)
    take_wrong = min(len(wrong), max(count // 2, count - len(right)))
    chosen = [
        part[spread_queries(results.query_labels[part], size, seed)]
        for part, size in ((wrong, take_wrong), (right, count - take_wrong))
        if size and len(part)
    ]
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def plot_retrieval_grid(
    results: RetrievalResults,
    query_images: np.ndarray,
    gallery_images: np.ndarray,
    path: Path,
    title: str,
    queries: int = 8,
    neighbours: int = 8,
    seed: int = 0,
) -> Path:
    """One row per query: the query, then its top ``neighbours`` results. The queries are
    random, from as many classes as possible, half of them failures (``pick_queries``)."""
    neighbours = min(neighbours, results.k)
    rows = pick_queries(results, queries, seed)
    fig, axes = plt.subplots(
        len(rows),
        neighbours + 1,
        figsize=(1.2 * (neighbours + 1), 1.3 * len(rows) + 0.6),
        dpi=120,
        squeeze=False,
    )
    hits = results.hits_of(rows)
    for row, query, query_hits in zip(axes, rows, hits, strict=True):
        verdict = "" if query_hits[0] else "\n(top-1 wrong)"
        cells = [
            (query_images[query], "black", f"query{verdict}\nclass {results.query_labels[query]}")
        ]
        for rank, gallery_row in enumerate(results.ids[query, :neighbours], start=1):
            colour = "tab:green" if query_hits[rank - 1] else "tab:red"
            cells.append((gallery_images[gallery_row], colour, f"#{rank}"))
        for ax, (image, colour, label) in zip(row, cells, strict=False):
            draw_cell(ax, image, colour, label)
    fig.suptitle(
        title + "\n(green: same class as the query, red: different class; "
        "half the rows are queries whose first neighbour is wrong)",
        fontsize=9,
    )
    return _save(fig, path)
