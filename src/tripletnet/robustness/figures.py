"""The report's figures: accuracy against severity per corruption, accuracy against eps per
attack, and a grid of clean / corrupted / adversarial queries with their nearest neighbours."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..evaluation.plots import _save, plt
from ..evaluation.retrieval_grid import draw_cell


def plot_curves(
    xs: Sequence[float],
    curves: Mapping[str, Sequence[float]],
    path: Path,
    title: str,
    xlabel: str,
    ylabel: str = "k-NN accuracy",
) -> Path:
    """One line per named curve over ``xs``."""
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    cmap = plt.get_cmap("tab20")
    for i, (name, ys) in enumerate(curves.items()):
        style = "--" if i >= 10 else "-"
        ax.plot(xs, ys, style, marker="o", markersize=3, color=cmap(i % 20), label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def plot_query_grid(
    blocks: Sequence[tuple[str, np.ndarray, np.ndarray]],
    gallery_images: np.ndarray,
    gallery_labels: np.ndarray,
    query_labels: np.ndarray,
    path: Path,
    title: str,
    neighbours: int = 4,
) -> Path:
    """One row per query; per block (name, (Q, C, H, W) query images, (Q, >= n) neighbour ids)
    the query and its ``neighbours`` nearest gallery images, framed green (same class) or red."""
    rows = len(query_labels)
    columns = len(blocks) * (neighbours + 1)
    fig, axes = plt.subplots(rows, columns, figsize=(0.9 * columns, 1.0 * rows + 0.8), dpi=120,
                             squeeze=False)  # fmt: skip
    for r in range(rows):
        for b, (name, images, ids) in enumerate(blocks):
            cells = [(images[r], "black", f"{name}\nclass {query_labels[r]}")]
            cells += [
                (
                    gallery_images[i],
                    "tab:green" if gallery_labels[i] == query_labels[r] else "tab:red",
                    f"#{rank}",
                )  # fmt: skip
                for rank, i in enumerate(ids[r, :neighbours], start=1)
            ]
            for c, (image, colour, label) in enumerate(cells):
                draw_cell(axes[r, b * (neighbours + 1) + c], image, colour, label, 0.85)
    fig.suptitle(title + "\n(green: neighbour of the query's class, red: another class)",
                 fontsize=9)  # fmt: skip
    return _save(fig, path)
