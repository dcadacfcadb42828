"""The defaults for your own data (any dataset that is not built in), without torch: what
``TrainConfig`` fills in and what ``tripletnet train --help`` says."""

from __future__ import annotations

from typing import Any

# The defaults that train well on each dataset are its record in data/catalogue.py (epochs, lr,
# embedding_dim). Backbone models (resnets, timm, your own) start at lr 0.01.
# Your own data (a folder, CSV or npz: any dataset that is not built in), with no --method:
# batch mining, which beat pytorch-metric-learning's MNIST example on MNIST as an image folder in
# less time (docs/peer-pml.md). The net is chosen from the samples' shape (models/choice.py).
# The rest applies to this loss; ``--method triplet`` (the paper's) or another loss takes
# mnist's epochs and lr, as before.
OWN_DATA_DEFAULTS: dict[str, Any] = {
    "method": "batch-mining",
    "loss": "triplet-margin",  # the method's options, when it is the method chosen here
    "miner": "semi-hard",
    "epochs": 2,  # the optimisation, for own data trained by batch mining (docs/peer-pml.md)
    "lr": 0.05,
    "metric": "cosine",  # in Euclidean space, semi-hard mining collapsed the embeddings to a point
    "final_relu": False,  # the paper nets' last ReLU: all-zero embeddings, and no gradient, in tries
}
OWN_DATA_METHOD_OPTIONS = ("loss", "miner")


def own_data_summary() -> str:
    """Your own data's defaults in words, for --help and the docs."""
    d = OWN_DATA_DEFAULTS
    return (
        f"{d['method']} with --loss {d['loss']} --miner {d['miner']} --metric {d['metric']} "
        f"--no-final-relu, {d['epochs']} epochs from lr {d['lr']:g}, and the net chosen from "
        "the samples' shape (docs/own-data.md)"
    )
