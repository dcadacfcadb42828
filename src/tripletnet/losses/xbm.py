"""Cross-batch memory (Wang et al. 2020, XBM): compare each batch with the embeddings of the
last ``memory_size`` samples (this batch included), kept detached in a first-in first-out queue."""

from __future__ import annotations

import torch
from torch import nn

from ..checks import InvalidInputError, check_embeddings_and_labels
from ..comparison import Comparison
from .base import MetricLoss
from .proxy import ProxyLoss


class CrossBatchMemory(nn.Module):
    """Wraps a pair or triplet loss: ``loss(embeddings, labels)`` compares the batch with itself
    and with the memory, then enqueues the batch. Miners of the wrapped loss see the memory too."""

    def __init__(self, loss: MetricLoss, memory_size: int = 1024) -> None:
        super().__init__()
        if not isinstance(loss, MetricLoss) or isinstance(loss, ProxyLoss):
            raise InvalidInputError(
                "CrossBatchMemory wraps a loss that compares embeddings with each other "
                f"(triplet, contrastive, softmax, MS, circle ...), got {type(loss).__name__}"
            )
        if memory_size < 1:
            raise InvalidInputError(f"memory_size must be at least 1, got {memory_size}")
        self.loss, self.memory_size = loss, memory_size
        self.memory = torch.empty(0)
        self.memory_labels = torch.empty(0, dtype=torch.long)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_embeddings_and_labels(embeddings, labels, "embeddings")
        recent = max(self.memory_size - len(embeddings), 0)  # the memory holds this batch too
        memory = self.memory.to(embeddings).view(-1, embeddings.shape[1])[:recent]
        reference = torch.cat([embeddings, memory])
        ref_labels = torch.cat([labels, self.memory_labels.to(labels)[:recent]])
        loss = self.loss.compute(Comparison(embeddings, labels, reference, ref_labels, True))
        self.memory = torch.cat([embeddings.detach(), memory])[: self.memory_size]
        self.memory_labels = ref_labels[: self.memory_size]
        return loss

    def reset(self) -> None:
        """Empty the memory."""
        self.memory, self.memory_labels = self.memory[:0], self.memory_labels[:0]
