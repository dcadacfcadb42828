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
