"""Intermediate feature maps of a sequential embedding net, for losses on spatial features."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import TripletnetError
from .nets import EmbeddingNet


def _layers(model: nn.Module) -> nn.Sequential:
    net = getattr(model, "net", None)
    if not isinstance(net, nn.Sequential):
        raise TripletnetError(
            f"{type(model).__name__} has no sequential .net; spatial features need one of "
            "the conv nets (mnist, semisup-mnist, cifar, stl10)"
        )
    return net


def feature_map(model: nn.Module, x: torch.Tensor, layer: int) -> torch.Tensor:
    """The output of the first ``layer`` modules of ``model.net``: an (N, C, H, W) map."""
    net = _layers(model)
    if not 1 <= layer <= len(net):
        raise TripletnetError(f"layer must be in 1..{len(net)} for this net, got {layer}")
    out = model.run(net[:layer], x) if isinstance(model, EmbeddingNet) else net[:layer](x)
    if out.ndim != 4:
        raise TripletnetError(
            f"layer {layer} gives shape {tuple(out.shape)}, not a spatial (N, C, H, W) map; "
            "choose an earlier layer"
        )
    return out


def patch_positions(size: tuple[int, ...] | torch.Size, patch_size: int) -> int:
    """How many places a ``patch_size`` square patch has in a map of ``size`` (H, W)."""
    height, width = size
    return max(0, height - patch_size + 1) * max(0, width - patch_size + 1)


@torch.no_grad()
def default_layer(model: nn.Module, input_shape: tuple[int, ...], patch_size: int = 1) -> int:
    """The deepest layer whose output is a spatial map with room for two different
    ``patch_size`` x ``patch_size`` patches."""
    net = _layers(model)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out, best = torch.zeros(1, *input_shape, device=device), 0
    for index, module in enumerate(net, start=1):
        out = module(out)
        if out.ndim == 4 and patch_positions(out.shape[-2:], patch_size) > 1:
            best = index
    model.train(was_training)
    if best == 0:
        raise TripletnetError(
            f"{type(model).__name__} has no spatial feature map with room for two "
            f"{patch_size}x{patch_size} patches; choose a smaller --patch-size"
        )
    return best
