"""Embed arrays with a trained net, in batches, without gradients."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn


@torch.no_grad()
def embed(
    model: nn.Module,
    x: np.ndarray | torch.Tensor,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int = 1024,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Return the (N, D) float32 embeddings of raw samples ``x``; ``prepare`` normalises a batch."""
    was_training = model.training
    model.eval()
    source = torch.as_tensor(x)
    chunks = [
        model(prepare(source[start : start + batch_size]).to(device)).float().cpu()
        for start in range(0, len(source), batch_size)
    ]
    model.train(was_training)
    return torch.cat(chunks).numpy() if chunks else np.zeros((0, 0), dtype=np.float32)
