"""The ``train`` options for learning with few labels (docs/few-labels.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from ..training.config import LR_SCHEDULES

F = TypeVar("F", bound=Callable[..., object])

FEW_LABEL_OPTIONS = [
    click.option(
        "--init",
        type=click.Path(file_okay=False, exists=True, path_type=Path),
        callback=lambda ctx, param, value: None if value is None else str(value),
        help="Start from the weights of this finished run (e.g. a `tripletnet pretrain` run).",
    ),
    click.option(
        "--labels-per-class",
        type=int,
        help="semi-supervised: label only this many seeded samples per class (default: all).",
    ),
    click.option(
        "--unlabelled-weight",
        type=float,
        default=1.0,
        show_default=True,
        help="semi-supervised: lambda, the weight of the unlabelled entropy (0: labels alone).",
    ),
    click.option(
        "--lr-schedule",
        type=click.Choice(list(LR_SCHEDULES)),
        default="cosine",
        show_default=True,
        help="cosine decay, or divide by 10 when the epoch loss stops falling (plateau).",
    ),
    click.option(
        "--augment-shift",
        type=int,
        default=0,
        show_default=True,
        help="Shift training images by up to this many pixels (small translations).",
    ),
    click.option("--augment-mirror", is_flag=True, help="Mirror half the training images."),
    click.option(
        "--steps-per-epoch",
        type=int,
        help="semi-supervised / pretrain: at most this many batches an epoch (default: a pass).",
    ),
]


def few_label_options(command: F) -> F:
    """Add the few-label options to a click command."""
    for option in reversed(FEW_LABEL_OPTIONS):
        command = option(command)
    return command
