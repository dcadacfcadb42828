"""Datasets: each loader returns a DatasetSplits of raw arrays (see arrays.py)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from ..errors import TripletnetError
from .arrays import DatasetSplits, LabelledArray, Normalizer
from .cifar import load_cifar10
from .digits import load_digits
from .mnist import load_idx_dataset
from .stl10 import load_stl10
from .svhn import load_svhn

Loader = Callable[..., DatasetSplits]

DATASETS: dict[str, Loader] = {
    "digits": load_digits,
    "mnist": partial(load_idx_dataset, "mnist"),
    "fashion-mnist": partial(load_idx_dataset, "fashion-mnist"),
    "kmnist": partial(load_idx_dataset, "kmnist"),
    "cifar10": load_cifar10,
    "svhn": load_svhn,
    "svhn-extra": partial(load_svhn, extra=True),
    "stl10": load_stl10,
}
DATASETS["stl10-unlabelled"] = partial(load_stl10, unlabelled=True)  # + 100,000 for pretraining


def load_dataset(
    name: str, data_dir: str | Path | None = None, download: bool = False
) -> DatasetSplits:
    """Load a dataset by name: one of ``DATASETS``."""
    if name not in DATASETS:
        raise TripletnetError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[name](Path(data_dir) if data_dir is not None else None, download=download)


__all__ = ["DATASETS", "DatasetSplits", "LabelledArray", "Normalizer", "load_dataset"]
