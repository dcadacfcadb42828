"""The setting every robustness measurement shares: a run's net as a differentiable function of
pixels in [0, 1], a clean gallery, a sample of queries, and the metrics of one condition.

Queries are a seeded, class-spread sample of the run's query split; the gallery is a seeded
sample of its gallery split (closed set: the train split), clean. A condition (a corruption at a
severity, a perturbation frame, an attack at an eps) changes only the queries: k-NN accuracy
(majority of the k nearest), linear-probe accuracy (a logistic regression fit once on the clean
gallery) and Recall@1 / MAP@R of the changed queries against the clean gallery.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data import DatasetSplits, ImageFiles, LabelledArray
from ..errors import TripletnetError
from ..evaluation.classify import vote
from ..evaluation.probe import LinearProbe, fit_linear_probe
from ..evaluation.retrieval import RetrievalResults, retrieve
from ..evaluation.retrieval_grid import spread_queries
from ..models import channels_last
from ..runs import TrainedRun


class RobustnessError(TripletnetError):
    """A run or an option the robustness report cannot work with."""


@dataclass
class Pixels:
    """Samples as float pixels in [0, 1] (N, C, H, W) and their labels."""

    x: torch.Tensor
    y: np.ndarray


def sample_rows(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """``count`` rows (all when fewer), spread over the classes, sorted."""
    return spread_queries(labels, min(count, len(labels)), seed)


def pixels(part: LabelledArray, rows: np.ndarray, top: float) -> Pixels:
    """The chosen rows of a split as [0, 1] pixels (image files are decoded)."""
    x = part.x[rows] if isinstance(part.x, ImageFiles) else np.asarray(part.x)[rows]
    return Pixels(torch.as_tensor(np.asarray(x)).float() / top, part.y[rows])


class Embedder:
    """A run's net as a function of [0, 1] pixels: normalised as in training, differentiable."""

    def __init__(self, run: TrainedRun, device: torch.device, batch_size: int = 500) -> None:
        if run.spec.pixel_top is None or len(run.spec.input_shape) != 3:
            raise RobustnessError(
                f"{run.path} was trained on vectors {tuple(run.spec.input_shape)}; corruptions "
                "and pixel attacks need an image run"
            )
        self.model = run.model.to(device).eval()
        self.top, self.device, self.batch_size = float(run.spec.pixel_top), device, batch_size
        self.normalizer = run.spec.normalizer
        self.cosine = run.spec.metric == "cosine"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings of a [0, 1] batch (gradients flow); unit rows for a cosine run."""
        z = self.model(channels_last(self.normalizer(x.to(self.device) * self.top))).float()
        return torch.nn.functional.normalize(z, dim=1) if self.cosine else z

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> np.ndarray:
        chunks = [self(x[i : i + self.batch_size]).cpu() for i in range(0, len(x), self.batch_size)]
        return torch.cat(chunks).numpy()


@dataclass
class Gallery:
    """The clean gallery's features, labels and what is fit on them once."""

    features: np.ndarray
    labels: np.ndarray
    k: int
    probe: LinearProbe | None  # the fitted linear probe, or None (raw pixels: k-NN only)

    def measure(self, features: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        """k-NN and linear-probe accuracy, Recall@1 and MAP@R of these query features."""
        results = self.search(features, labels)
        scores = results.per_query()
        predicted = vote(self.labels[results.ids[:, : self.k]], results.distances[:, : self.k])
        row = {
            "knn_accuracy": float(np.mean(predicted == labels)),
            "recall_at_1": float(scores["recall_at_1"].mean()),
        }
        if "map_at_r" in scores:
            row["map_at_r"] = float(scores["map_at_r"].mean())
        if self.probe is not None:
            row["linear_probe_accuracy"] = float(np.mean(self.probe.predict(features) == labels))
        return row

    def search(self, features: np.ndarray, labels: np.ndarray) -> RetrievalResults:
        return retrieve(features, labels, self.features, self.labels, at_least=self.k)


def gallery_of(features: np.ndarray, labels: np.ndarray, k: int, probe: bool) -> Gallery:
    return Gallery(features, labels, k, fit_linear_probe(features, labels) if probe else None)


def split_parts(data: DatasetSplits, seed: int) -> tuple[LabelledArray, LabelledArray]:
    """The query and gallery splits: query/gallery columns, else test against train (closed
    set), else (open set) the test split halved: a seeded half of queries, the rest gallery."""
    if data.query is not None and data.gallery is not None:
        return data.query, data.gallery
    if not data.open_set:
        return data.test, data.train
    order = np.random.default_rng(seed).permutation(len(data.test))
    half = np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2 :])
    return tuple(_subset(data.test, rows) for rows in half)  # type: ignore[return-value]


def _subset(part: LabelledArray, rows: np.ndarray) -> LabelledArray:
    x = part.x.subset(rows) if isinstance(part.x, ImageFiles) else np.asarray(part.x)[rows]
    return LabelledArray(x, part.y[rows])
