"""Unsupervised pretraining by spatial contrasting (Hoffer, Hubara & Ailon 2016,
arXiv 1610.00243): labels are ignored; each batch contrasts two patches of every image's
feature map at a chosen layer (see losses/spatial_contrasting.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from ..errors import TripletnetError
from ..evaluation.triplet_error import matched_triplet_error
from ..losses.spatial_contrasting import Pooling, sample_patch_pairs, spatial_contrasting_loss
from ..models.feature_maps import default_layer, feature_map, patch_positions
from .config import TrainConfig
from .methods import Inputs


class SpatialContrastingMethod:
    """Every epoch, the train images in a fresh order, ``batch_size`` images per batch."""

    def __init__(self, size: int, config: TrainConfig) -> None:
        self.size = size
        self.batch_size = config.batch_size
        self.seed = config.seed
        self.layer = config.feature_layer
        self.patch_size = config.patch_size
        self.pooling: Pooling = "max" if config.patch_pooling == "max" else "avg"
        self.max_batches = config.steps_per_epoch

    def check(self, model: nn.Module, input_shape: tuple[int, ...]) -> None:
        """Choose the layer (when not given) and check that two patches fit its map."""
        if self.layer is None:
            self.layer = default_layer(model, input_shape, self.patch_size)
        with torch.no_grad():
            was_training = model.training
            model.eval()
            device = next(model.parameters()).device
            features = feature_map(model, torch.zeros(1, *input_shape, device=device), self.layer)
            model.train(was_training)
        height, width = features.shape[-2:]
        if patch_positions((height, width), self.patch_size) < 2:
            raise TripletnetError(
                f"--patch-size {self.patch_size} leaves no room for two different patches in "
                f"layer {self.layer}'s {height}x{width} feature map; choose --patch-size "
                f"{max(1, min(height, width) - 1)} or less, or an earlier --feature-layer"
            )

    def num_batches(self) -> int:
        full = -(-(self.size - 1) // self.batch_size)  # no last batch of one image
        return min(full, self.max_batches or full)

    def batches(self, epoch: int) -> Iterator[np.ndarray]:
        order = np.random.default_rng([self.seed, epoch]).permutation(self.size)
        stop = min(self.size - 1, self.batch_size * self.num_batches())
        for start in range(0, stop, self.batch_size):
            yield order[start : start + self.batch_size]

    def loss(
        self, model: nn.Module, batch: np.ndarray, inputs: Inputs
    ) -> tuple[torch.Tensor, dict[str, float]]:
        images = inputs(batch)
        if self.layer is None:
            self.check(model, tuple(images.shape[1:]))
        assert self.layer is not None
        features = feature_map(model, images, self.layer)
        first, second = sample_patch_pairs(features, self.patch_size, self.pooling)
        loss = spatial_contrasting_loss(first, second)
        return loss, {"triplet_error": matched_triplet_error(first, second)}
