"""Figures: the 2-D view of the embeddings coloured by class (PCA or t-SNE, the paper's figures),
the ROC curve, the distance histograms of same- and different-class pairs, training curves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from ..files import write_atomic  # noqa: E402


@dataclass
class Projection:
    """Embeddings projected to 2-D for a figure: the points, their labels, the method."""

    points: np.ndarray
    labels: np.ndarray
    method: str  # "pca" or "tsne"


def project_2d(
    embeddings: np.ndarray,
    labels: np.ndarray,
    method: str = "pca",
    max_points: int = 5000,
    seed: int = 0,
) -> Projection:
    """At most ``max_points`` embeddings (a seeded sample) projected on their first two principal
    components (``method="pca"``) or by scikit-learn's t-SNE (``"tsne"``)."""
    if len(embeddings) > max_points:
        rows = np.random.default_rng(seed).choice(len(embeddings), max_points, replace=False)
        embeddings, labels = embeddings[rows], labels[rows]
    return Projection(_project(embeddings, method, seed), labels, method)


def plot_projection(
    projection: Projection, path: Path, title: str, class_names: Sequence[str] = ()
) -> Path:
    """Scatter a ``Projection``, one colour per class."""
    points, labels = projection.points, projection.labels
    classes = np.unique(labels)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    fig, ax = plt.subplots(figsize=(7, 6), dpi=120)
    for i, cls in enumerate(classes):
        mask = labels == cls
        name = class_names[cls] if cls < len(class_names) else str(cls)
        ax.scatter(
            points[mask, 0], points[mask, 1], s=6, alpha=0.7, color=cmap(i % cmap.N), label=name
        )
    axis_name = "principal component" if projection.method == "pca" else "t-SNE dimension"
    ax.set_xlabel(f"{axis_name} 1")
    ax.set_ylabel(f"{axis_name} 2")
    ax.set_title(title)
    if len(classes) <= 20:
        ax.legend(
            title="class", markerscale=3, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5)
        )
    return _save(fig, path)


TSNE_ITERATIONS = 500  # 250 with early exaggeration, 250 after: half scikit-learn's default
TSNE_THREADS = 1  # scikit-learn's OpenMP Barnes-Hut: 1 thread took 3.4 s for 1500 points on a
# busy 2-core machine where 2 threads took 22 s (threads waiting on each other)


def _project(embeddings: np.ndarray, method: str, seed: int) -> np.ndarray:
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(embeddings)
    if method == "tsne":
        perplexity = max(1.0, min(30.0, (len(embeddings) - 1) / 3))
        tsne = TSNE(
            2, perplexity=perplexity, init="pca", random_state=seed, max_iter=TSNE_ITERATIONS
        )
        with threadpool_limits(TSNE_THREADS, user_api="openmp"):  # this thread's OpenMP only
            return tsne.fit_transform(embeddings)
    raise ValueError(f"method must be 'pca' or 'tsne'; got {method!r}")


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return Path(path)


def plot_roc(
    far: np.ndarray, tar: np.ndarray, metrics: dict[str, Any], path: Path, title: str
) -> Path:
    """TAR against FAR (log scale) with the EER point and the TAR@FAR operating points."""
    fig, ax = plt.subplots(figsize=(6.5, 5), dpi=120)
    shown = far > 0
    ax.plot(far[shown], tar[shown], color="tab:blue", label=f"ROC (AUC {metrics['roc_auc']:.4f})")
    eer = metrics["eer"]
    ax.scatter([eer], [1 - eer], color="tab:red", zorder=3, label=f"EER {eer:.2%}")
    for target in (1e-3, 1e-2, 1e-1):
        value = metrics[f"tar_at_far_{target:g}"]
        ax.scatter([target], [value], marker="s", color="tab:green", zorder=3)
        ax.annotate(f"{value:.1%}", (target, value), textcoords="offset points", xytext=(4, -12))
    ax.scatter([], [], marker="s", color="tab:green", label="TAR at FAR 1e-3, 1e-2, 1e-1")
    ax.set_xscale("log")
    ax.set_xlim(max(far[shown].min(), 1e-5) if shown.any() else 1e-5, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("false accept rate (different-class pairs accepted)")
    ax.set_ylabel("true accept rate (same-class pairs accepted)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_distance_histograms(
    distances: np.ndarray, same: np.ndarray, path: Path, title: str, threshold: float | None = None
) -> Path:
    """Histograms of the L2 distances of same-class and different-class pairs."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5), dpi=120)
    bins = np.linspace(0.0, float(np.max(distances)) * 1.02 + 1e-12, 60).tolist()
    ax.hist(
        distances[same], bins=bins, alpha=0.6, color="tab:green", label="same class", density=True
    )
    ax.hist(
        distances[~same],
        bins=bins,
        alpha=0.6,
        color="tab:red",
        label="different class",
        density=True,
    )
    if threshold is not None and threshold >= 0:
        ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3g}")
    ax.set_xlabel("L2 distance between the embeddings of a pair")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)


# the legend of a history.json key, where its name alone would be ambiguous: the per-epoch
# k-NN accuracy is leave-one-out among the test samples, not the report's test-vs-train k-NN
HISTORY_LABELS = {"test_knn_accuracy": "test k-NN (leave-one-out in test)"}


def plot_training_curves(history: list[dict[str, float]], path: Path, title: str) -> Path:
    """Loss, accuracy, error and learning rate per epoch from a run's history.json.

    Accuracies and errors get panels of their own (an accuracy near 1 and an error near 0 on one
    axis would both look flat); errors are on a log scale when they are all positive."""
    epochs = [row["epoch"] for row in history]

    def named(word: str) -> list[str]:
        return sorted({key for row in history for key in row if word in key})

    panels = [
        ("loss", ["loss"]),
        ("accuracy", named("accuracy")),
        ("error", named("error")),
        ("learning rate", ["lr"]),
    ]
    panels = [(name, [key for key in keys if key in history[0]]) for name, keys in panels]
    panels = [(name, keys) for name, keys in panels if keys]
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.5 * len(panels), 3.8), dpi=120, squeeze=False
    )
    for ax, (name, keys) in zip(axes[0], panels, strict=True):
        for key in keys:
            ax.plot(
                epochs,
                [row[key] for row in history],
                marker="o",
                markersize=3,
                label=HISTORY_LABELS.get(key, key.replace("_", " ")),
            )
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(name)
        if name == "error" and all(row[key] > 0 for row in history for key in keys):
            ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
        if name in ("accuracy", "error"):  # name the measure (test k-NN, train triplet, ...)
            ax.legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)
