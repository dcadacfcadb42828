"""Input checks shared by losses, miners and samplers: fail early with a message that says
what was expected, what came, and how to fix it."""

from __future__ import annotations

import torch

from .errors import TripletnetError


class InvalidInputError(TripletnetError, ValueError):
    """An argument has the wrong shape, dtype or value."""


def check_embeddings_and_labels(embeddings: torch.Tensor, labels: torch.Tensor, name: str) -> None:
    """``embeddings``: finite floating (N, D); ``labels``: integer (N,) on the same device."""
    if not isinstance(embeddings, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise InvalidInputError(f"{name} and its labels must be torch tensors")
    if embeddings.ndim != 2 or not embeddings.is_floating_point():
        raise InvalidInputError(
            f"{name} must be a floating-point (N, D) tensor, got dtype {embeddings.dtype} and "
            f"shape {tuple(embeddings.shape)}; flatten the model's output to (batch, dim)"
        )
    if labels.ndim != 1 or labels.dtype == torch.bool or labels.is_floating_point():
        raise InvalidInputError(
            f"labels of {name} must be an integer (N,) tensor, got dtype {labels.dtype} and shape "
            f"{tuple(labels.shape)}; pass class ids, e.g. labels.long().view(-1)"
        )
    if len(labels) != len(embeddings):
        raise InvalidInputError(
            f"{name} has {len(embeddings)} rows but its labels have {len(labels)}; give one label per row"
        )
    if not bool(torch.isfinite(embeddings).all()):
        raise InvalidInputError(
            f"{name} contain NaN or infinite values; the model diverged (lower the learning rate) "
            "or its input has NaNs"
        )


def check_positive(name: str, value: float, allow_zero: bool = False) -> None:
    """Raise unless ``value`` > 0 (or >= 0 with ``allow_zero``)."""
    if not (value >= 0 if allow_zero else value > 0):
        bound = "non-negative" if allow_zero else "positive"
        raise InvalidInputError(f"{name} must be {bound}, got {value}")


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InvalidInputError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
