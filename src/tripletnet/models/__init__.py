"""Embedding nets by name, so that a run folder can rebuild the exact model it saved."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import TripletnetError
from .nets import LAYER_OPTIONS, MLP, CifarNet, EmbeddingNet, MnistNet, SmallConvNet, channels_last
from .semisup import SemiSupMnistNet

ARCHITECTURES: tuple[str, ...] = ("mlp", "small-conv", "mnist", "cifar", "stl10")
ARCHITECTURES += ("semisup-mnist",)  # Hoffer & Ailon 2016, semi-supervised

WITH_LAYER_OPTIONS = ("mnist", "cifar", "stl10")  # the nets with LAYER_OPTIONS (final ReLU, BN)

DEFAULT_ARCHITECTURE = {
    "digits": "small-conv",
    "mnist": "mnist",
    "fashion-mnist": "mnist",
    "kmnist": "mnist",
    "cifar10": "cifar",
    "svhn": "cifar",
    "svhn-extra": "cifar",
    "stl10": "stl10",
}
DEFAULT_ARCHITECTURE["stl10-unlabelled"] = "stl10"


def check_layer_options(architecture: str, options: Mapping[str, Any]) -> None:
    """Refuse a layer choice (final ReLU, batch norm; not None) for a net that lacks it."""
    for name in LAYER_OPTIONS:
        if options.get(name) is not None and architecture not in WITH_LAYER_OPTIONS:
            flag = name.replace("_", "-")
            raise TripletnetError(
                f"the {architecture!r} net has no {flag} choice; "
                f"--{flag}/--no-{flag} applies to: {', '.join(WITH_LAYER_OPTIONS)}"
            )


def build_model(
    architecture: str,
    input_shape: tuple[int, ...],
    embedding_dim: int | None = None,
    **options: Any,
) -> EmbeddingNet:
    """Build an embedding net for inputs of ``input_shape`` (C, H, W) or (D,); ``options`` go to
    the net's constructor (None: the net's default)."""
    dims: dict[str, Any] = {} if embedding_dim is None else {"embedding_dim": embedding_dim}
    options = {name: value for name, value in options.items() if value is not None}
    check_layer_options(architecture, options)
    if architecture == "mlp":
        features = 1
        for size in input_shape:
            features *= size
        return MLP(features, **dims, **options)
    if len(input_shape) != 3:
        raise TripletnetError(
            f"the {architecture!r} net takes images (C, H, W), got shape {input_shape}"
        )
    if architecture == "small-conv":
        return SmallConvNet(input_shape[0], **dims, **options)
    if architecture == "mnist":
        return MnistNet(input_shape[0], **dims, **options)
    if architecture == "semisup-mnist":
        if "dropout" in options:
            raise TripletnetError("the semisup-mnist net has no dropout (it uses batch norm)")
        return SemiSupMnistNet(input_shape[0], **dims, **options)
    if architecture in ("cifar", "stl10"):
        stride = 3 if architecture == "stl10" else 1
        return CifarNet(input_shape[0], first_stride=stride, **dims, **options)
    raise TripletnetError(
        f"unknown model {architecture!r}; choose one of: {', '.join(ARCHITECTURES)}"
    )


__all__ = [
    "ARCHITECTURES",
    "DEFAULT_ARCHITECTURE",
    "EmbeddingNet",
    "MLP",
    "CifarNet",
    "MnistNet",
    "SemiSupMnistNet",
    "SmallConvNet",
    "build_model",
    "LAYER_OPTIONS",
    "check_layer_options",
    "channels_last",
]
