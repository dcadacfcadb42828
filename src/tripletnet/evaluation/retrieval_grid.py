"""The retrieval grid: each query image with its nearest gallery images, framed green when the
neighbour has the query's class and red when not. Half the rows are failures (a wrong first
neighbour) where there are that many: they are what a user studies. The subtitle says how many
rows failed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.colors import to_rgb

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
    random, from as many classes as possible, half of them failures (``pick_queries``). The
    cells are composed into one image (one axes, not one per cell: far less drawing)."""
    neighbours = min(neighbours, results.k)
    rows = pick_queries(results, queries, seed)
    hits = results.hits_of(rows)
    cells = []
    for query, query_hits in zip(rows, hits, strict=True):
        verdict = "" if query_hits[0] else "\n(top-1 wrong)"
        line = [
            (query_images[query], "black", f"query{verdict}\nclass {results.query_labels[query]}")
        ]
        for rank, gallery_row in enumerate(results.ids[query, :neighbours], start=1):
            colour = "tab:green" if query_hits[rank - 1] else "tab:red"
            line.append((gallery_images[gallery_row], colour, f"#{rank}"))
        cells.append(line)
    fig, ax = plt.subplots(
        figsize=(1.2 * (neighbours + 1), 1.3 * len(rows) + 0.6), dpi=120, squeeze=True
    )
    mosaic, centres = compose_cells(cells)
    ax.imshow(mosaic, interpolation="nearest")
    for (x, y), label in centres:
        ax.text(x, y, label, ha="center", va="bottom", fontsize=7)
    ax.set_axis_off()
    fig.suptitle(title + "\n" + grid_subtitle(int((~hits[:, 0]).sum()), len(rows)), fontsize=9)
    return _save(fig, path)


def grid_subtitle(failed: int, rows: int) -> str:
    """The grid's key, with the number of its ``rows`` whose first neighbour is wrong
    (``failed``): half of them where there are that many failures, fewer or more otherwise."""
    if failed == 0:
        failures = "no row's first neighbour is wrong"
    elif failed == rows:
        failures = f"every row's first neighbour is wrong ({rows} of {rows})"
    else:
        verb = "is a query" if failed == 1 else "are queries"
        failures = f"{failed} of the {rows} rows {verb} whose first neighbour is wrong"
    return f"(green: same class as the query, red: different class; {failures})"


def compose_cells(
    cells: list[list[tuple[np.ndarray, str, str]]],
) -> tuple[np.ndarray, list[tuple[tuple[float, float], str]]]:
    """Rows of (image, frame colour, label) cells as one RGB image in [0, 1] (white between
    the cells, room above each for its label), and where each label goes (its bottom centre,
    in the image's pixels)."""
    images = [[_as_rgb(image) for image, _, _ in line] for line in cells]
    height = max((im.shape[0] for line in images for im in line), default=1)
    width = max((im.shape[1] for line in images for im in line), default=1)
    frame = max(1, round(min(height, width) / 14))
    cell_h, cell_w = height + 2 * frame, width + 2 * frame
    band, gap = round(0.6 * cell_h), round(0.15 * cell_w)  # label band above, gap beside
    columns = max((len(line) for line in cells), default=1)
    mosaic = np.ones((len(cells) * (band + cell_h), columns * (cell_w + gap) - gap, 3))
    centres = []
    for r, (line, line_images) in enumerate(zip(cells, images, strict=True)):
        for c, ((_, colour, label), image) in enumerate(zip(line, line_images, strict=True)):
            top, left = r * (band + cell_h) + band, c * (cell_w + gap)
            mosaic[top : top + cell_h, left : left + cell_w] = to_rgb(colour)
            h, w = image.shape[:2]
            y, x = top + frame + (height - h) // 2, left + frame + (width - w) // 2
            mosaic[y : y + h, x : x + w] = image
            centres.append(((left + cell_w / 2 - 0.5, top - 1.0), label))
    return mosaic, centres


def _as_rgb(x: np.ndarray) -> np.ndarray:
    """``_as_image`` as (H, W, 3)."""
    image = _as_image(x)
    return np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image[:, :, :3]
