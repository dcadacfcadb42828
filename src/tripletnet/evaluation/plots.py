"""Figures: the 2-D view of the test embeddings coloured by class (the paper's figures)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402

from ..files import write_atomic  # noqa: E402


def plot_embedding_2d(
    embeddings: np.ndarray,
    labels: np.ndarray,
    path: Path,
    title: str,
    class_names: Sequence[str] = (),
    max_points: int = 5000,
    seed: int = 0,
) -> Path:
    """Scatter the first two principal components of ``embeddings``, one colour per class."""
    if len(embeddings) > max_points:
        rows = np.random.default_rng(seed).choice(len(embeddings), max_points, replace=False)
        embeddings, labels = embeddings[rows], labels[rows]
    points = PCA(n_components=2, random_state=seed).fit_transform(embeddings)
    classes = np.unique(labels)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    fig, ax = plt.subplots(figsize=(7, 6), dpi=120)
    for i, cls in enumerate(classes):
        mask = labels == cls
        name = class_names[cls] if cls < len(class_names) else str(cls)
        ax.scatter(
            points[mask, 0], points[mask, 1], s=6, alpha=0.7, color=cmap(i % cmap.N), label=name
        )
    ax.set_xlabel("principal component 1")
    ax.set_ylabel("principal component 2")
    ax.set_title(title)
    if len(classes) <= 20:
        ax.legend(
            title="class", markerscale=3, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5)
        )
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return Path(path)
