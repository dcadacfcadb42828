"""The training methods for few or no labels, built from a TrainConfig."""

from __future__ import annotations

import numpy as np

from .config import TrainConfig
from .methods import TrainingMethod
from .semi_supervised import SemiSupervisedMethod, labelled_subset
from .spatial_contrasting import SpatialContrastingMethod


def build_few_label_method(config: TrainConfig, labels: np.ndarray) -> TrainingMethod:
    """semi-supervised (Hoffer & Ailon 2016) or spatial-contrasting (Hoffer et al. 2016)."""
    if config.method == "spatial-contrasting":
        return SpatialContrastingMethod(len(labels), config)
    labelled = labelled_subset(labels, config.labels_per_class, config.seed)
    return SemiSupervisedMethod(labels, labelled, config)
