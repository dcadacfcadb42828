"""Windows of a batch of maps, each at its own offset, gathered in one indexing operation."""

from __future__ import annotations

import torch


def crop_windows(
    maps: torch.Tensor, top: torch.Tensor, left: torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """The ``height`` x ``width`` window of each (C, H, W) map of ``maps`` whose corner is
    (``top[n]``, ``left[n]``); returns (N, C, height, width).
    """
    ys = (top[:, None] + torch.arange(height, device=maps.device))[:, :, None]
    xs = (left[:, None] + torch.arange(width, device=maps.device))[:, None, :]
    images = torch.arange(len(maps), device=maps.device)[:, None, None]
    return maps.permute(0, 2, 3, 1)[images, ys, xs].permute(0, 3, 1, 2)
