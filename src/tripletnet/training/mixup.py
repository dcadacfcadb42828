"""Where Metrix mixes (``--mixup``): the inputs, the features entering the net's last weighted
layer, or the embeddings (Venkataramanan et al., ICLR 2022; the loss is ``losses.Metrix``).

``embed_and_mix(model, inputs, pairs, where)`` returns the clean embeddings of the batch and the
embeddings of its mixed examples, with one pass of the net's trunk for feature mixup.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..errors import TripletnetError
from ..losses.metrix import MixPairs, mix
from ..models.heads import EmbeddingModel
from .method_options import MIXUP_WHERE

WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d)

Part = Callable[[torch.Tensor], torch.Tensor]


def feature_split(model: nn.Module) -> tuple[Part, Part]:
    """(trunk, head) with head(trunk(x)) = model(x): the head starts at the last layer with
    weights (the embedding layer) of a sequential net, or at the projection of a backbone model."""
    if isinstance(model, EmbeddingModel) and model.projection is not None:
        projection, l2 = model.projection, model.l2

        def trunk(x: torch.Tensor) -> torch.Tensor:
            return model.pool(model.run(model.backbone, x))

        def head(features: torch.Tensor) -> torch.Tensor:
            out = model.run(projection, features)
            return out if l2 is None else l2(out)

        return trunk, head
    net = getattr(model, "net", None)
    if isinstance(net, nn.Sequential):
        weighted = [i for i, layer in enumerate(net) if isinstance(layer, WEIGHTED)]
        if weighted and weighted[-1] > 0:
            cut = weighted[-1]
            run = getattr(model, "run", None) or (lambda layers, x: layers(x))
            return (lambda x: run(net[:cut], x)), (lambda f: run(net[cut:], f))
    raise TripletnetError(
        f"--mixup feature needs a net whose embedding layer follows a feature extractor (a "
        f"sequential net, or a backbone with a projection to --embedding-dim); "
        f"{type(model).__name__} has none: use --mixup input or embedding"
    )


def embed_and_mix(
    model: nn.Module, inputs: torch.Tensor, pairs: MixPairs, where: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(embeddings of ``inputs``, embeddings of the examples mixed at ``where``)."""
    if where == "input":
        return model(inputs), model(mix(inputs, pairs))
    if where == "feature":
        trunk, head = feature_split(model)
        features = trunk(inputs)
        return head(features), head(mix(features, pairs))
    if where == "embedding":
        embeddings = model(inputs)
        return embeddings, mix(embeddings, pairs)
    raise TripletnetError(f"--mixup must be one of {', '.join(MIXUP_WHERE)}, got {where!r}")
