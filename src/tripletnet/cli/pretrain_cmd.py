"""``tripletnet pretrain``: learn an embedding net from unlabelled images (labels ignored).

It is ``tripletnet train`` with an unsupervised method and the paper's optimisation (SGD from
lr 0.1, divided by 10 when the loss stops falling); fine-tune the result with
``tripletnet train --init RUN``.
"""

from __future__ import annotations

import click

from ..training.config import LR_SCHEDULES, PRETRAIN_METHODS
from .train_cmd import train_command

SHARED = [
    "dataset",
    "data_dir",
    "download",
    "model",
    "embedding_dim",
    "dropout",
    "final_relu",
    "batch_norm",
    "epochs",
    "momentum",
    "weight_decay",
    "test_triplets",
    "k",
    "seed",
    "device",
    "precision",
    "out",
    "resume",
    "overwrite",
    "no_progress",
    "augment_shift",
    "augment_mirror",
    "init",
    "steps_per_epoch",
]


@click.command("pretrain")
@click.option(
    "--method",
    type=click.Choice(list(PRETRAIN_METHODS)),
    default="spatial-contrasting",
    show_default=True,
    help="spatial-contrasting: Hoffer, Hubara & Ailon (2016).",
)
@click.option(
    "--feature-layer",
    type=int,
    help="Contrast the output of the first N layers (default: the last map with room for 2 patches).",
)
@click.option("--patch-size", type=int, default=1, show_default=True, help="Patch side, in cells.")
@click.option(
    "--patch-pooling",
    type=click.Choice(["avg", "max"]),
    default="avg",
    show_default=True,
    help="How a patch's cells become one feature vector.",
)
@click.option("--batch-size", type=int, default=128, show_default=True, help="Images per batch.")
@click.option("--lr", type=float, default=0.1, show_default=True, help="Initial learning rate.")
@click.option(
    "--lr-schedule", type=click.Choice(list(LR_SCHEDULES)), default="plateau", show_default=True
)
@click.pass_context
def pretrain_command(ctx: click.Context, **options: object) -> None:
    """Pretrain an embedding net without labels, evaluate it and write a run folder."""
    ctx.invoke(train_command, **options)


pretrain_command.params.extend(p for p in train_command.params if p.name in SHARED)
