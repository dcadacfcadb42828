"""An embedding head on any backbone, and L2 normalisation for any embedding net.

``EmbeddingModel``: backbone features f (global-average-pooled if the backbone returns maps),
then an optional linear projection ``z = W f + b`` to ``embedding_dim``, then optionally
``z / max(||z||_2, eps)``, so that Euclidean distance between outputs is the cosine geometry:
``||u - v||^2 = 2 - 2 cos(u, v)`` for unit vectors.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import TripletnetError
from .nets import EmbeddingNet

EPS = 1e-12  # F.normalize's guard: a zero row stays zero instead of becoming NaN


class L2Normalize(nn.Module):
    """Each row scaled to unit L2 norm: ``x / max(||x||_2, eps)`` (computed in float32)."""

    def __init__(self, eps: float = EPS) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):  # the norm in float32 under bf16 too
            return F.normalize(x.float(), p=2.0, dim=1, eps=self.eps)


class GlobalAvgPool(nn.Module):
    """(N, C, H, W) maps -> (N, C) by their spatial mean; (N, F) features pass through."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)) if x.ndim == 4 else x


def _first_tensor(module: nn.Module) -> torch.Tensor | None:
    return next(itertools.chain(module.parameters(), module.buffers()), None)


@torch.no_grad()
def feature_dim(backbone: nn.Module, input_shape: tuple[int, ...]) -> int:
    """F, the width of the backbone's output, found by one forward pass on zeros(2,
    *input_shape) in eval mode (the training mode is restored). (N, C, H, W) maps count C."""
    reference = _first_tensor(backbone)
    device = reference.device if reference is not None else torch.device("cpu")
    dtype = reference.dtype if reference is not None and reference.is_floating_point() else None
    was_training = backbone.training
    backbone.eval()
    try:
        out = backbone(torch.zeros(2, *input_shape, device=device, dtype=dtype))
    except RuntimeError as error:
        raise TripletnetError(
            f"the backbone {type(backbone).__name__} fails on inputs of shape {input_shape}: "
            f"{str(error).splitlines()[0]}"
        ) from error
    finally:
        backbone.train(was_training)
    if not isinstance(out, torch.Tensor) or out.ndim not in (2, 4) or out.shape[0] != 2:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise TripletnetError(
            f"the backbone {type(backbone).__name__} returned {got} for a batch of 2; it must "
            "return (N, F) features or (N, C, H, W) feature maps"
        )
    return int(out.shape[1])


class EmbeddingModel(EmbeddingNet):
    """``backbone`` -> global average pooling (for maps) -> [Linear(F, embedding_dim)] ->
    [L2 normalisation]: an embedding net on any feature extractor.

    ``embedding_dim`` None or F keeps the backbone's F features, with no projection (so that a
    model rebuilt from its recorded ``embedding_dim`` has the same layers). Mixed precision
    (``compute_dtype``) runs the backbone and the projection under autocast and returns float32.
    The model has no sequential ``.net`` (losses on spatial feature maps need the papers' conv
    nets), and no layer options.
    """

    def __init__(
        self,
        backbone: nn.Module,
        input_shape: tuple[int, ...],
        embedding_dim: int | None = None,
        normalize: bool = False,
    ) -> None:
        super().__init__()
        if embedding_dim is not None and embedding_dim < 1:
            raise TripletnetError(f"--embedding-dim must be at least 1, got {embedding_dim}")
        self.backbone = backbone
        self.input_shape = tuple(input_shape)
        self.feature_dim = feature_dim(backbone, self.input_shape)
        self.pool = GlobalAvgPool()
        if embedding_dim is None:
            embedding_dim = self.feature_dim
        self.projection = (
            None
            if embedding_dim == self.feature_dim
            else nn.Linear(self.feature_dim, embedding_dim)
        )
        self.l2 = L2Normalize() if normalize else None
        self.normalize = normalize
        self.embedding_dim = embedding_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.pool(self.run(self.backbone, x))
        if self.projection is not None:
            features = self.run(self.projection, features)
        return features if self.l2 is None else self.l2(features)


def normalize_output(model: EmbeddingNet) -> EmbeddingNet:
    """Append L2 normalisation to a sequential embedding net (``model.net``), in place: its
    weights and their names are unchanged, so runs with and without it load each other's."""
    if getattr(model, "normalize", False):
        return model
    net = getattr(model, "net", None)
    if not isinstance(net, nn.Sequential):
        raise TripletnetError(
            f"{type(model).__name__} has no sequential .net to append L2 normalisation to"
        )
    net.append(L2Normalize())
    object.__setattr__(model, "normalize", True)  # a plain flag; EmbeddingNet does not declare it
    return model


def is_normalized(model: nn.Module) -> bool:
    """Does ``model`` end with L2 normalisation (so its embeddings are compared by cosine)?"""
    return bool(getattr(model, "normalize", False))


__all__ = [
    "EmbeddingModel",
    "GlobalAvgPool",
    "L2Normalize",
    "feature_dim",
    "is_normalized",
    "normalize_output",
]
