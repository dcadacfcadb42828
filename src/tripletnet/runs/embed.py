"""Embed samples with a trained net, in batches, without gradients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn


@torch.no_grad()
def embed(
    model: nn.Module,
    x: Any,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int = 1024,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Return the (N, D) float32 embeddings of raw samples ``x`` (an array, a tensor, or a lazy
    array-like such as ``data.ImageFiles`` that decodes a slice at a time); ``prepare``
    normalises a batch as in training."""
    was_training = model.training
    model.eval()
    chunks = []
    for start in range(0, len(x), batch_size):
        batch = torch.as_tensor(np.asarray(x[start : start + batch_size]))
        chunks.append(model(prepare(batch).to(device)).float().cpu())
    model.train(was_training)
    dim = int(getattr(model, "embedding_dim", 0))
    return torch.cat(chunks).numpy() if chunks else np.zeros((0, dim), dtype=np.float32)
