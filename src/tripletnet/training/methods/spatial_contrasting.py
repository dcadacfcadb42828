"""Unsupervised pretraining by spatial contrasting (Hoffer, Hubara & Ailon 2016,
arXiv 1610.00243): labels are ignored; each batch contrasts two patches of every image's
feature map at a chosen layer (see losses/spatial_contrasting.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from ...data import DatasetSplits
from ...errors import TripletnetError
from ...losses.spatial_contrasting import Pooling, sample_patch_pairs, spatial_contrasting_loss
from ...models.feature_maps import default_layer, feature_map, patch_positions
from ...runs.options import check_count
from ..method_options import SPATIAL_CONTRASTING, SpatialContrastingOptions
from . import register
from .base import Method, MethodContext, Statistics, matched_triplet_error


@register
class SpatialContrasting(Method, facts=SPATIAL_CONTRASTING):
    """Every epoch, the training images in a fresh order, ``batch_size`` images per batch."""

    distributed = False  # embeds feature-map patches, not one model(inputs) call

    def __init__(self, options: SpatialContrastingOptions, context: MethodContext) -> None:
        super().__init__(options, context)
        self.size = len(context.labels)
        self.layer = options.feature_layer
        self.pooling: Pooling = "max" if options.patch_pooling == "max" else "avg"

    @classmethod
    def validate(cls, options: SpatialContrastingOptions) -> None:
        check_count("patch-size", options.patch_size)
        check_count("feature-layer", options.feature_layer)
        check_count("steps-per-epoch", options.steps_per_epoch)

    @classmethod
    def pool(cls, data: DatasetSplits) -> tuple[Any, np.ndarray]:
        """The train split, plus the dataset's unlabelled images (label -1; STL-10's 100,000)."""
        if data.unlabelled is None:
            return data.train.x, data.train.y
        extra = np.full(len(data.unlabelled), -1, dtype=np.int64)
        x = np.concatenate([data.train.x, data.unlabelled])
        return x, np.concatenate([data.train.y, extra])

    def check(self, model: nn.Module) -> None:
        """Choose the layer (when not given) and check that two patches fit its map."""
        size = self.options.patch_size
        shape = self.context.input_shape
        if self.layer is None:
            self.layer = default_layer(model, shape, size)
        with torch.no_grad():
            was_training = model.training
            model.eval()
            device = next(model.parameters()).device
            features = feature_map(model, torch.zeros(1, *shape, device=device), self.layer)
            model.train(was_training)
        height, width = features.shape[-2:]
        if patch_positions((height, width), size) < 2:
            raise TripletnetError(
                f"--patch-size {size} leaves no room for two different patches in "
                f"layer {self.layer}'s {height}x{width} feature map; choose --patch-size "
                f"{max(1, min(height, width) - 1)} or less, or an earlier --feature-layer"
            )

    def num_batches(self) -> int:
        full = -(-(self.size - 1) // self.context.batch_size)  # no last batch of one image
        return min(full, self.options.steps_per_epoch or full)

    def batches(self, epoch: int) -> Iterator[np.ndarray]:
        size = self.context.batch_size
        order = np.random.default_rng([self.context.seed, epoch]).permutation(self.size)
        stop = min(self.size - 1, size * self.num_batches())
        for start in range(0, stop, size):
            yield order[start : start + size]

    def loss(
        self, model: nn.Module, indices: np.ndarray, inputs: torch.Tensor
    ) -> tuple[torch.Tensor, Statistics]:
        if self.layer is None:
            self.check(model)
        assert self.layer is not None
        features = feature_map(model, inputs, self.layer)
        first, second = sample_patch_pairs(features, self.options.patch_size, self.pooling)
        loss = spatial_contrasting_loss(first, second)
        return loss, {"triplet_error": matched_triplet_error(first, second)}
