"""In-memory datasets: raw arrays plus the global normalisation the papers use."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class LabelledArray:
    """Raw samples ``x`` (N, C, H, W) images or (N, D) vectors, and int64 labels ``y`` (N,).

    Images stay uint8 in memory; they are converted to float and normalised one batch at a time.
    """

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        self.y = np.asarray(self.y, dtype=np.int64)
        if len(self.x) != len(self.y):
            raise ValueError(f"{len(self.x)} samples but {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Normalizer:
    """Global zero mean, unit variance (one mean and one std over all pixels), as in the papers.

    ``low`` and ``high`` record the range of the raw training values (None in runs saved before
    they were recorded), so that inputs on another scale can be noticed (``range_warning``).
    """

    mean: float
    std: float
    low: float | None = None
    high: float | None = None

    @classmethod
    def fit(cls, x: np.ndarray, max_samples: int = 20_000, seed: int = 0) -> Normalizer:
        sample = x
        if len(x) > max_samples:
            rows = np.random.default_rng(seed).choice(len(x), max_samples, replace=False)
            sample = x[np.sort(rows)]
        values = sample.astype(np.float64)
        return cls(
            mean=float(values.mean()),
            std=float(values.std()) or 1.0,
            low=float(values.min()),
            high=float(values.max()),
        )

    def __call__(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        tensor = torch.as_tensor(x).float()
        return (tensor - self.mean) / self.std

    def range_warning(self, x: np.ndarray) -> str | None:
        """A sentence when the values of ``x`` span less than a tenth or more than ten times the
        training range (e.g. images scaled to 0..1 for a model trained on 0..255), else None."""
        if self.low is None or self.high is None or not len(x):
            return None
        low, high = float(np.min(x)), float(np.max(x))
        trained = self.high - self.low
        if trained <= 0 or 0.1 * trained <= high - low <= 10 * trained:
            return None
        return (
            f"the input's values run from {low:g} to {high:g}, but the model was trained on "
            f"values from {self.low:g} to {self.high:g}; rescale the input to that range, or "
            "its embeddings will not be comparable"
        )

    def to_dict(self) -> dict[str, float | None]:
        return {"mean": self.mean, "std": self.std, "low": self.low, "high": self.high}


@dataclass
class DatasetSplits:
    """A dataset's train and test splits (and, for STL-10, the unlabelled images)."""

    name: str
    train: LabelledArray
    test: LabelledArray
    num_classes: int
    unlabelled: np.ndarray | None = None
    class_names: list[str] = field(default_factory=list)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.train.x.shape[1:])

    def normalizer(self) -> Normalizer:
        return Normalizer.fit(self.train.x)
