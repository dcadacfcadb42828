"""What an attack on an embedding raises: differentiable stand-ins for the k-NN decision and
for a search's result list.

``centroid_loss``: the k-NN decision's surrogate, a softmax over the negative distances to the
clean gallery's class centroids, p(c | x) = softmax_c(-||f(x) - mu_c||); the attack raises the
cross-entropy -log p(y | x) of the query's own class. ``neighbour_loss``: the retrieval attack,
-mean_j ||f(x) - g_j|| over the query's clean nearest gallery items g_j; raising it pushes the
query's embedding away from the items it found when clean.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

Embedding = Callable[[torch.Tensor], torch.Tensor]


def class_centroids(features: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """The mean gallery embedding of each class (C, D) and the classes, sorted."""
    classes = np.unique(labels)
    centroids = np.stack([features[labels == c].mean(axis=0) for c in classes])
    return torch.from_numpy(centroids).float(), classes


def centroid_loss(
    embed: Embedding, centroids: torch.Tensor, classes: np.ndarray, labels: np.ndarray
) -> Callable[[torch.Tensor], torch.Tensor]:
    """x -> the summed cross-entropy of each query's class under softmax(-distance to the
    centroids) (a sum, so each query's gradient is its own)."""
    target = torch.from_numpy(np.searchsorted(classes, labels))

    def loss(x: torch.Tensor) -> torch.Tensor:
        z = embed(x)
        logits = -torch.cdist(z, centroids.to(z.device))
        return F.cross_entropy(logits, target.to(z.device), reduction="sum")

    return loss


def neighbour_loss(
    embed: Embedding, neighbours: torch.Tensor
) -> Callable[[torch.Tensor], torch.Tensor]:
    """x -> the summed mean distance from each query's embedding to its (N, m, D) clean
    nearest gallery embeddings (to be raised)."""

    def loss(x: torch.Tensor) -> torch.Tensor:
        z = embed(x)
        gap = z[:, None, :] - neighbours.to(z.device)
        return torch.sqrt((gap**2).sum(-1) + 1e-12).mean(1).sum()

    return loss
