"""Datasets as raw samples plus labels, and the global normalisation the papers use."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import DataFileError
from .image_files import ImageFiles

FIT_SAMPLES = 20_000  # samples (or image files) a normaliser is fitted on


def fit_rows(count: int, max_samples: int, seed: int) -> np.ndarray:
    """All rows, or ``max_samples`` of them drawn at random (seeded), in order."""
    if count <= max_samples:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, max_samples, replace=False))


@dataclass
class LabelledArray:
    """Raw samples ``x`` (N, C, H, W) images or (N, D) vectors, and int64 labels ``y`` (N,).

    Images stay uint8 in memory and are converted to float and normalised one batch at a time;
    ``x`` may also be ImageFiles, which decode on indexing and hold no image in memory.
    """

    x: np.ndarray | ImageFiles
    y: np.ndarray

    def __post_init__(self) -> None:
        self.y = np.asarray(self.y, dtype=np.int64)
        if len(self.x) != len(self.y):
            raise ValueError(f"{len(self.x)} samples but {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.y)

    def take(self, rows: np.ndarray) -> LabelledArray:
        """The samples at ``rows`` (integer indices); image files stay undecoded."""
        rows = np.asarray(rows, dtype=np.int64)
        x = self.x.subset(rows) if isinstance(self.x, ImageFiles) else self.x[rows]
        return LabelledArray(x, self.y[rows])


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
    def fit(cls, x: np.ndarray, max_samples: int = FIT_SAMPLES, seed: int = 0) -> Normalizer:
        """Fit on at most ``max_samples`` random rows of ``x`` (seeded)."""
        values = x[fit_rows(len(x), max_samples, seed)].astype(np.float64)
        return cls(
            mean=float(values.mean()),
            std=float(values.std()) or 1.0,
            low=float(values.min()),
            high=float(values.max()),
        )

    @classmethod
    def fit_images(
        cls, files: ImageFiles, max_samples: int = FIT_SAMPLES, seed: int = 0, workers: int = 0
    ) -> Normalizer:
        """Fit on the same rows as ``fit`` would choose, decoded by ``workers`` processes and
        counted in a 256-bin histogram of their pixels: exact, memory that does not grow with
        the images' size, and the same numbers as ``fit`` on the decoded arrays. Unreadable
        images are skipped."""
        from torch.utils.data import DataLoader

        from .image_files import ImageFilesDataset

        rows = fit_rows(len(files), max_samples, seed)
        counts = torch.zeros(256, dtype=torch.int64)
        loader = DataLoader(
            ImageFilesDataset(files.subset(rows)), batch_size=256, num_workers=workers
        )
        for images, _, ok in loader:
            counts += torch.bincount(images[ok].reshape(-1).long(), minlength=256)
        if not counts.any():
            raise DataFileError(
                f"none of the {len(rows)} images sampled to fit the normalisation is readable "
                f"(e.g. {files.path(int(rows[0]))}); check the image files"
            )
        histogram = counts.numpy()
        values = np.arange(256, dtype=np.float64)
        total = histogram.sum()
        mean = float((values * histogram).sum() / total)
        std = float(np.sqrt((((values - mean) ** 2) * histogram).sum() / total))
        seen = np.flatnonzero(histogram)
        return cls(mean=mean, std=std or 1.0, low=float(seen[0]), high=float(seen[-1]))

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
    """A dataset's train and test splits (and, for STL-10, the unlabelled images).

    ``query`` and ``gallery`` come from a source's split column (then ``test`` is the query
    set when the source has no test rows). ``open_set`` is True when no test class is a train
    class (``--split classes:F``): evaluate retrieval on the unseen classes. Labels index
    ``class_names`` in every split.
    """

    name: str
    train: LabelledArray
    test: LabelledArray
    num_classes: int
    unlabelled: np.ndarray | None = None
    class_names: list[str] = field(default_factory=list)
    query: LabelledArray | None = None
    gallery: LabelledArray | None = None
    open_set: bool = False

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.train.x.shape[1:])

    def normalizer(self, workers: int = 0) -> Normalizer:
        """Fitted on up to FIT_SAMPLES random training samples (image files decoded by
        ``workers`` processes; never every image of a big folder)."""
        if isinstance(self.train.x, ImageFiles):
            return Normalizer.fit_images(self.train.x, workers=workers)
        return Normalizer.fit(self.train.x)
