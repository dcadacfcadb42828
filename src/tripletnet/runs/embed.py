"""Embed samples with a trained net, in batches, without autograd, channels-last (a conv net's
convolutions and poolings run about 1.7x faster so on the CPU; the values agree to float
rounding)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from ..models import channels_last
from ..progress import progress


@torch.inference_mode()
def embed(
    model: nn.Module,
    x: Any,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int | None = None,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Return the (N, D) float32 embeddings of raw samples ``x`` (an array, a tensor, or a lazy
    array-like such as ``data.ImageFiles`` that decodes a slice at a time); ``prepare``
    normalises a batch as in training. ``batch_size`` defaults to 256 on the CPU (its caches:
    1.2-1.5x faster than 1024 for the MNIST net) and 1024 on an accelerator."""
    batch_size = batch_size or (256 if torch.device(device).type == "cpu" else 1024)
    was_training = model.training
    model.eval()
    chunks = []
    bar = progress(total=len(x), desc="embedding", unit="sample", delay=2)  # not for a moment
    for start in range(0, len(x), batch_size):
        batch = torch.as_tensor(np.asarray(x[start : start + batch_size]))
        chunks.append(model(channels_last(prepare(batch).to(device))).float().cpu())
        bar.update(len(batch))
    bar.close()
    model.train(was_training)
    dim = int(getattr(model, "embedding_dim", 0))
    return torch.cat(chunks).numpy() if chunks else np.zeros((0, dim), dtype=np.float32)
