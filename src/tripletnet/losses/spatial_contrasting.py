"""Spatial contrasting (Hoffer, Hubara & Ailon 2016, arXiv 1610.00243).

Two patches of the same image should be nearer to each other than to patches of other images.
For N images with patch features f_i(1), f_i(2) (pooled inside each patch of a conv feature map)
and Dist(i, j) = ||f_i(1) - f_j(2)|| (plain L2, safe square root):

    L = 1/2 [ -1/N sum_i log softmax_j(-Dist(i, j))[i]  -  1/N sum_j log softmax_i(-Dist(i, j))[j] ]

the batch form of the paper's -log( e^{-||f1(1)-f1(2)||} / sum_k e^{-||f1(1)-fk(2)||} ),
made symmetric by contrasting both rows and columns.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..distances import pairwise_euclidean
from ..windows import crop_windows

Pooling = Literal["avg", "max"]
POOLINGS = ("avg", "max")


def spatial_contrasting_loss(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Symmetric spatial-contrasting loss for (N, D) features of two patches of N images."""
    if first.ndim != 2 or first.shape != second.shape:
        raise ValueError(
            f"first and second must be (N, D) of the same shape, got {tuple(first.shape)} "
            f"and {tuple(second.shape)}"
        )
    if len(first) < 2:
        raise ValueError("spatial contrasting needs at least 2 images to contrast")
    logits = -pairwise_euclidean(first, second)
    target = torch.arange(len(first), device=first.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def sample_patch_pairs(
    feature_map: torch.Tensor,
    patch_size: int = 1,
    pooling: Pooling = "avg",
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two random ``patch_size`` x ``patch_size`` patches per image of an (N, C, H, W) map, each
    pooled to a C-vector, at two different places. Returns two (N, C) tensors.
    """
    if feature_map.ndim != 4:
        raise ValueError(f"feature_map must be (N, C, H, W), got {tuple(feature_map.shape)}")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    n, _, height, width = feature_map.shape
    rows, cols = height - patch_size + 1, width - patch_size + 1
    if patch_size < 1 or rows < 1 or cols < 1:
        raise ValueError(
            f"patch size {patch_size} does not fit the {height}x{width} feature map; "
            "choose a smaller patch or an earlier layer"
        )
    places = rows * cols
    if places < 2:
        raise ValueError(
            f"a {patch_size}x{patch_size} patch fits the {height}x{width} feature map in one "
            "place only, so both patches would be the same and the loss trivial; choose a "
            "smaller patch or an earlier layer"
        )
    device = feature_map.device
    first = torch.randint(places, (n,), generator=generator).to(device)
    offset = torch.randint(1, places, (n,), generator=generator).to(device)
    second = (first + offset) % places
    return (
        _pool_patches(feature_map, first // cols, first % cols, patch_size, pooling),
        _pool_patches(feature_map, second // cols, second % cols, patch_size, pooling),
    )


def _pool_patches(
    feature_map: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size: int, pooling: Pooling
) -> torch.Tensor:
    patches = crop_windows(feature_map, top, left, size, size)
    return patches.mean(dim=(2, 3)) if pooling == "avg" else patches.amax(dim=(2, 3))


class SpatialContrastingLoss(nn.Module):
    """The loss on a batch's (N, C, H, W) feature map: sample two patches per image, contrast."""

    def __init__(self, patch_size: int = 1, pooling: Pooling = "avg") -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.patch_size = patch_size
        self.pooling: Pooling = pooling

    def forward(
        self, feature_map: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        first, second = sample_patch_pairs(feature_map, self.patch_size, self.pooling, generator)
        return spatial_contrasting_loss(first, second)
