"""The training methods for few or no labels, built from a TrainConfig."""

from __future__ import annotations

import numpy as np

from ..data import DatasetSplits
from .config import PRETRAIN_METHODS, TrainConfig
from .methods import TrainingMethod
from .semi_supervised import SemiSupervisedMethod, labelled_subset
from .spatial_contrasting import SpatialContrastingMethod


def build_few_label_method(
    config: TrainConfig, labels: np.ndarray, labelled: np.ndarray | None = None
) -> TrainingMethod:
    """semi-supervised (Hoffer & Ailon 2016) or spatial-contrasting (Hoffer et al. 2016)."""
    if config.method == "spatial-contrasting":
        return SpatialContrastingMethod(len(labels), config)
    if labelled is None:
        labelled = labelled_subset(labels, config.labels_per_class, config.seed)
    return SemiSupervisedMethod(labels, labelled, config)


def training_pool(config: TrainConfig, data: DatasetSplits) -> tuple[np.ndarray, np.ndarray]:
    """The images (and labels) a method trains on: the train split, plus the unlabelled images
    (label -1) for the methods that ignore labels, when the dataset has them (STL-10)."""
    if config.method not in PRETRAIN_METHODS or data.unlabelled is None:
        return data.train.x, data.train.y
    extra = np.full(len(data.unlabelled), -1, dtype=np.int64)
    return np.concatenate([data.train.x, data.unlabelled]), np.concatenate([data.train.y, extra])
