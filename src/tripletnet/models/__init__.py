"""Embedding nets by name, so that a run folder can rebuild the exact model it saved.

The papers' nets (``mnist``, ``cifar``, ...), our ResNet backbones (``resnet18``, ``resnet50``)
and networks from outside (``timm:NAME``, ``package.module:factory``); the last three get an
embedding head (:class:`EmbeddingModel`). ``normalize=True`` ends any of them with L2
normalisation, for the cosine geometry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from ..errors import TripletnetError
from .external import (
    EXTERNAL_FORMS,
    TIMM_PREFIX,
    build_external,
    check_model_code,
    import_factory,
    is_external,
    is_own_code,
    load_weights,
    timm_classifier_prefixes,
)
from .heads import EmbeddingModel, L2Normalize, is_normalized, normalize_output
from .nets import LAYER_OPTIONS, MLP, CifarNet, EmbeddingNet, MnistNet, SmallConvNet, channels_last
from .resnet import RESNETS, ResNet, build_resnet, load_torchvision_weights
from .semisup import SemiSupMnistNet

ARCHITECTURES: tuple[str, ...] = ("mlp", "small-conv", "mnist", "cifar", "stl10")
ARCHITECTURES += ("semisup-mnist",)  # Hoffer & Ailon 2016, semi-supervised
ARCHITECTURES += RESNETS  # He et al. 2016, with an embedding head
MODEL_FORMS = (*ARCHITECTURES, *EXTERNAL_FORMS)  # everything --model takes, for help text

WITH_LAYER_OPTIONS = ("mnist", "cifar", "stl10")  # the nets with LAYER_OPTIONS (final ReLU, BN)


def check_layer_options(architecture: str, options: Mapping[str, Any]) -> None:
    """Refuse a layer choice (final ReLU, batch norm; not None) for a net that lacks it."""
    for name in LAYER_OPTIONS:
        if options.get(name) is not None and architecture not in WITH_LAYER_OPTIONS:
            flag = name.replace("_", "-")
            raise TripletnetError(
                f"the {architecture!r} net has no {flag} choice; "
                f"--{flag}/--no-{flag} applies to: {', '.join(WITH_LAYER_OPTIONS)}"
            )


def is_backbone_model(architecture: str) -> bool:
    """Is ``architecture`` built as backbone + :class:`EmbeddingModel` head (our ResNets,
    ``timm:NAME``, ``package.module:factory``) rather than one of the papers' nets?"""
    return architecture in RESNETS or is_external(architecture)


def build_model(
    architecture: str,
    input_shape: tuple[int, ...],
    embedding_dim: int | None = None,
    **options: Any,
) -> EmbeddingNet:
    """Build an embedding net for inputs of ``input_shape`` (C, H, W) or (D,).

    ``options`` (None: the default) go to a paper net's constructor, except three that every
    model takes: ``normalize`` (end with L2 normalisation), ``weights`` (a safetensors file to
    start from: torchvision's names for ``resnet18``/``resnet50``, the network's own
    ``state_dict()`` names otherwise; loaded into the backbone before the head is made) and
    ``factory_args`` (keyword arguments for ``package.module:factory`` or ``timm:NAME``).
    For a backbone model, ``embedding_dim`` None (or the backbone's width) keeps its features
    with no projection.
    """
    options = {name: value for name, value in options.items() if value is not None}
    normalize = options.pop("normalize", False)
    weights = options.pop("weights", None)
    factory_args = options.pop("factory_args", None)
    if not isinstance(normalize, bool):
        raise TripletnetError(f"normalize must be True or False, got {normalize!r}")
    if factory_args is not None and not (
        isinstance(factory_args, Mapping) and all(isinstance(key, str) for key in factory_args)
    ):
        raise TripletnetError(
            f"--factory-args must be a JSON object of keyword arguments, got {factory_args!r}"
        )
    check_layer_options(architecture, options)
    if is_backbone_model(architecture):
        return _backbone_model(
            architecture, input_shape, embedding_dim, normalize, weights, factory_args, options
        )
    if factory_args:
        raise TripletnetError(
            f"--factory-args applies to package.module:factory and timm:NAME models, not to "
            f"the {architecture!r} net"
        )
    model = _paper_net(architecture, input_shape, embedding_dim, options)
    if weights is not None:
        load_weights(model, weights)
    return normalize_output(model) if normalize else model


def _backbone_model(
    architecture: str,
    input_shape: tuple[int, ...],
    embedding_dim: int | None,
    normalize: bool,
    weights: str | None,
    factory_args: Mapping[str, Any] | None,
    options: Mapping[str, Any],
) -> EmbeddingModel:
    """A ResNet or an external network, its ``weights`` loaded, under an EmbeddingModel head."""
    if options:
        flags = ", ".join("--" + name.replace("_", "-") for name in options)
        where = " (pass it in --factory-args)" if is_external(architecture) else ""
        raise TripletnetError(f"the {architecture!r} model has no {flags} option{where}")
    if architecture in RESNETS:
        if factory_args:
            raise TripletnetError(
                f"the {architecture!r} model takes no --factory-args; only the input channels "
                "(from the data) and --weights shape it"
            )
        if len(input_shape) != 3:
            raise TripletnetError(
                f"the {architecture!r} model takes images (C, H, W), got shape {input_shape}"
            )
        resnet = build_resnet(architecture, input_shape[0])
        if weights is not None:
            load_torchvision_weights(resnet, weights)
        backbone: nn.Module = resnet
    else:
        backbone = build_external(architecture, input_shape, factory_args)
        if weights is not None:
            timm = architecture.startswith(TIMM_PREFIX)
            load_weights(backbone, weights, timm_classifier_prefixes(backbone) if timm else ())
    return EmbeddingModel(backbone, input_shape, embedding_dim, normalize)


def _paper_net(
    architecture: str,
    input_shape: tuple[int, ...],
    embedding_dim: int | None,
    options: dict[str, Any],
) -> EmbeddingNet:
    """One of the papers' nets (and the small ones), ``options`` going to its constructor."""
    dims: dict[str, Any] = {} if embedding_dim is None else {"embedding_dim": embedding_dim}
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
        f"unknown model {architecture!r}; choose one of: {', '.join(MODEL_FORMS)}"
    )


__all__ = [
    "ARCHITECTURES",
    "EXTERNAL_FORMS",
    "MODEL_FORMS",
    "RESNETS",
    "EmbeddingModel",
    "EmbeddingNet",
    "L2Normalize",
    "ResNet",
    "MLP",
    "CifarNet",
    "MnistNet",
    "SemiSupMnistNet",
    "SmallConvNet",
    "build_external",
    "build_model",
    "build_resnet",
    "check_model_code",
    "import_factory",
    "is_backbone_model",
    "is_external",
    "is_normalized",
    "is_own_code",
    "load_torchvision_weights",
    "load_weights",
    "normalize_output",
    "LAYER_OPTIONS",
    "check_layer_options",
    "channels_last",
]
