"""A run's epochs: the loop (``Training.fit``) and, after each epoch, the history row (rank 0
embeds the monitored test samples and measures them), the checkpoint and the log line."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from ..data import DatasetSplits
from ..evaluation.classify import knn_accuracy, knn_leave_one_out_accuracy
from ..evaluation.triplet_error import triplet_error
from ..files import write_json_atomic
from ..runs import CHECKPOINT, HISTORY, MODEL, save_checkpoint
from ..runs.data import Embedded, embed_split
from ..sampling import fixed_test_triplets
from .tracking import Logger

if TYPE_CHECKING:
    from .run import Setup

MONITORED = 10_000  # test samples embedded after each epoch (all of them up to this many)


def train_epochs(
    setup: Setup, out: Path, show_progress: bool, log_epochs: bool, loggers: Logger | None
) -> None:
    """Train the epochs ``setup.history`` has not seen yet, then (rank 0) write the model;
    ``loggers``: rank 0's (None on the other ranks, which neither measure nor write)."""
    optim, world, history = setup.config.optim, setup.step.world, setup.history
    assert optim.epochs is not None
    setup.training.fit(
        range(len(history), optim.epochs),
        EpochEnd(setup, out, loggers, log_epochs),
        optim.seed,
        show_progress and world.main,
        on_steps=None if loggers is None else loggers.steps,
        losses=lambda: [row["loss"] for row in history],
    )
    if world.main:
        info = {"spec": setup.spec.to_dict(), "dataset": setup.config.data.dataset}
        save_checkpoint(out / MODEL, setup.model, None, info)


class EpochEnd:
    """``fit``'s ``on_epoch_end``: the history row, and on rank 0 the checkpoint, the loggers'
    epoch and (``log_epochs``) one line."""

    def __init__(self, setup: Setup, out: Path, loggers: Logger | None, log_epochs: bool) -> None:
        self.setup, self.out, self.loggers, self.log_epochs = setup, out, loggers, log_epochs
        self.monitored = monitored(setup.data)
        self.k = min(setup.config.evaluation.k, len(self.monitored) - 1)
        self.labelled = setup.method.labelled_only()
        self.triplets: dict[int, np.ndarray] = {}  # by the number of readable test samples

    def __call__(self, epoch: int, fitted: dict[str, Any]) -> None:
        history = self.setup.history
        if self.loggers is None:  # not rank 0: it alone evaluates and writes
            history.append({"epoch": epoch + 1, **fitted, "test_triplet_error": math.nan})
            return
        row = self.row(epoch, fitted)
        history.append(row)
        self.loggers.epoch(row)
        checkpoint(self.setup, self.out, epoch + 1)
        if self.log_epochs:
            tqdm.write(epoch_line(row, self.setup.config.optim.epochs, self.k))

    def row(self, epoch: int, fitted: dict[str, Any]) -> dict[str, Any]:
        """The epoch's history row: the loop's numbers and the monitored test samples'."""
        pipeline = self.setup.pipeline
        test = embed_split(
            self.setup.model,
            self.monitored,
            pipeline.evaluation_prepare,
            pipeline.device,
            pipeline.workers,
        )
        return {
            "epoch": epoch + 1,
            "loss": fitted["loss"],
            "train_triplet_error": fitted.get("triplet_error", math.nan),
            "test_triplet_error": triplet_error(test.embeddings, self.test_triplets(test.labels)),
            "test_knn_accuracy": knn_leave_one_out_accuracy(test.embeddings, test.labels, self.k),
            **({} if self.labelled is None else {"test_labelled_1nn_error": self.error(test)}),
            "lr": fitted["lr"],
            "seconds": fitted["seconds"],
            "images": fitted["images"],
            "unreadable_images": len(pipeline.unreadable),
        }

    def test_triplets(self, labels: np.ndarray) -> np.ndarray:
        """The fixed test triplets among ``labels`` (drawn once for each number of them)."""
        if len(labels) not in self.triplets:
            config = self.setup.config
            self.triplets[len(labels)] = fixed_test_triplets(
                labels, config.evaluation.test_triplets, config.optim.seed
            )
        return self.triplets[len(labels)]

    def error(self, test: Embedded) -> float:
        """Test error of 1-NN to the labelled training samples (the few-label papers' figure)."""
        assert self.labelled is not None
        setup, pipeline = self.setup, self.setup.pipeline
        train = embed_split(
            setup.model,
            setup.data.train.take(self.labelled),
            pipeline.evaluation_prepare,
            pipeline.device,
            pipeline.workers,
        )
        return 1.0 - knn_accuracy(train.embeddings, train.labels, test.embeddings, test.labels, 1)


def checkpoint(setup: Setup, out: Path, epochs: int) -> None:
    """What resumes the run after ``epochs`` epochs: the checkpoint, and history.json."""
    state = {
        "epoch": epochs,
        "history": setup.history,
        "spec": setup.spec.to_dict(),
        **setup.step.state(),
    }
    save_checkpoint(out / CHECKPOINT, setup.model, setup.optimizer, state, setup.method.learned())
    write_json_atomic(out / HISTORY, setup.history)


def epoch_line(row: dict[str, Any], epochs: int | None, k: int) -> str:
    """The epoch's log line."""
    return (
        f"epoch {row['epoch']}/{epochs}  loss {row['loss']:.4f}  "
        f"train triplet error {row['train_triplet_error']:.4f}  "
        f"test triplet error {row['test_triplet_error']:.4f}  "
        f"test {k}-NN (leave-one-out in test) {row['test_knn_accuracy']:.4f}"
        + few_labels(row)
        + f"  ({row['seconds']:.1f} s)"
    )


def monitored(data: DatasetSplits) -> Any:
    """The test samples embedded after each epoch: all, or MONITORED evenly spaced ones."""
    test = data.test
    if len(test) <= MONITORED:
        return test
    return test.take(np.linspace(0, len(test) - 1, MONITORED).astype(np.int64))


def few_labels(row: dict[str, Any]) -> str:
    """The epoch log's 1-NN error to the labelled samples, in few-label runs."""
    error = row.get("test_labelled_1nn_error")
    return "" if error is None else f"  test error of 1-NN to the labelled {error:.4f}"
