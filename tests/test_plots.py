"""The figures' layout: what each panel of the training curves shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pytest

from tripletnet.evaluation import plots


def test_training_curves_give_accuracy_and_error_panels_of_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    figures: list[Any] = []

    def keep(fig: Any, path: Path) -> Path:
        figures.append(fig)
        return path

    monkeypatch.setattr(plots, "_save", keep)
    history = [
        {
            "epoch": epoch,
            "loss": 1 / epoch,
            "lr": 0.1 / epoch,
            "test_knn_accuracy": 0.99 + epoch / 1000,
            "test_triplet_error": 0.01 / epoch,
            "train_triplet_error": 0.02 / epoch,
        }
        for epoch in (1, 2, 3)
    ]
    plots.plot_training_curves(history, tmp_path / "a.png", "a")
    history[2]["train_triplet_error"] = 0.0  # a zero cannot go on a log scale
    plots.plot_training_curves(history, tmp_path / "b.png", "b")
    positive, with_zero = (fig.axes for fig in figures)
    assert [ax.get_ylabel() for ax in positive] == ["loss", "accuracy", "error", "learning rate"]
    assert positive[2].get_yscale() == "log" and with_zero[2].get_yscale() == "linear"
    legend = positive[2].get_legend()
    assert [text.get_text() for text in legend.get_texts()] == [
        "test triplet error",
        "train triplet error",
    ]
    low, high = positive[1].get_ylim()
    assert low > 0.98 and high < 1.0  # the accuracy axis is not stretched down to the errors
    for fig in figures:
        plt.close(fig)


def test_retrieval_grid_subtitle_counts_the_rows_that_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The subtitle gives the real number of rows whose first neighbour is wrong: none for a
    perfect embedding, not 'half'."""
    import numpy as np

    from tripletnet.evaluation import retrieval_grid
    from tripletnet.evaluation.retrieval import retrieve

    titles: list[str] = []

    def keep(fig: Any, path: Path) -> Path:
        titles.append(fig._suptitle.get_text())
        plt.close(fig)
        return path

    monkeypatch.setattr(retrieval_grid, "_save", keep)
    labels = np.repeat(np.arange(4), 25)
    images = np.random.default_rng(0).random((100, 8, 8))
    perfect = retrieve(np.eye(4)[labels].astype(np.float32), labels)
    retrieval_grid.plot_retrieval_grid(perfect, images, images, tmp_path / "a.png", "perfect")
    embeddings = np.eye(4)[labels] * 3 + np.random.default_rng(0).normal(size=(100, 4))
    noisy = retrieve(embeddings.astype(np.float32), labels)
    rows = retrieval_grid.pick_queries(noisy, 8)
    failed = int((~noisy.hits_of(rows)[:, 0]).sum())
    retrieval_grid.plot_retrieval_grid(noisy, images, images, tmp_path / "b.png", "noisy")
    assert "no row's first neighbour is wrong" in titles[0] and "half" not in titles[0]
    assert f"{failed} of the 8 rows are queries whose first neighbour is wrong" in titles[1]
    assert retrieval_grid.grid_subtitle(1, 8).endswith(
        "1 of the 8 rows is a query whose first neighbour is wrong)"
    )
    assert "every row's first neighbour is wrong (3 of 3)" in retrieval_grid.grid_subtitle(3, 3)
