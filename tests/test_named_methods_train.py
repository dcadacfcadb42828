"""Issue 20's methods in ``tripletnet train``: the regularisers, Metrix's three mixing places,
ElasticFace and SNR as batch-mining losses, and where feature mixup cuts a net."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tripletnet import losses
from tripletnet.errors import TripletnetError
from tripletnet.models.heads import EmbeddingModel
from tripletnet.models.nets import MLP, MnistNet
from tripletnet.training import TrainConfig, train
from tripletnet.training.methods.base import MethodContext
from tripletnet.training.methods.batch_mining import BatchMining, BatchMiningOptions, build_loss
from tripletnet.training.mixup import embed_and_mix, feature_split


@pytest.mark.parametrize(
    ("model", "shape"),
    [
        (MLP(12, 4), (12,)),
        (MnistNet(), (1, 28, 28)),
        (EmbeddingModel(nn.Sequential(nn.Conv2d(1, 6, 3), nn.ReLU()), (1, 8, 8), 5), (1, 8, 8)),
    ],
    ids=["mlp", "mnist", "backbone"],
)
def test_feature_split_composes_to_the_model(model: nn.Module, shape: tuple[int, ...]) -> None:
    model.eval()
    x = torch.randn(5, *shape)
    trunk, head = feature_split(model)
    torch.testing.assert_close(head(trunk(x)), model(x))
    pairs = losses.mixing_pairs(torch.tensor([0, 0, 1, 1, 2]), rng=np.random.default_rng(0))
    for where in ("input", "feature", "embedding"):
        clean, mixed = embed_and_mix(model, x, pairs, where)
        assert clean.shape == (5, model.embedding_dim) and mixed.shape == (5, model.embedding_dim)
    features = trunk(x)  # feature mixup is mixing these, then the head
    torch.testing.assert_close(
        embed_and_mix(model, x, pairs, "feature")[1], head(losses.mix(features, pairs))
    )


def test_feature_mixup_needs_a_layer_after_the_features() -> None:
    bare = EmbeddingModel(nn.Sequential(nn.Conv2d(1, 4, 3)), (1, 8, 8))  # no projection
    with pytest.raises(TripletnetError, match="--mixup feature"):
        feature_split(bare)


def test_proxies_keep_their_state_names_under_the_regularisers() -> None:
    context = MethodContext(np.repeat(np.arange(3), 4), 8, (12,), 12, 0)
    options = BatchMiningOptions(loss="elasticface-arc", tcm_weight=1.0, energy_weight=0.1)
    method = BatchMining(options, context)
    learned = method.learned()
    assert learned is not None and list(learned.state_dict()) == ["proxies"]
    assert isinstance(build_loss("elasticface-cos-plus", None), losses.ElasticCosFaceLoss)
    assert build_loss("elasticface-arc-plus", None).plus  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "options",
    [
        {"loss": "multi-similarity", "tcm_weight": 1.0, "energy_weight": 0.1},
        {"loss": "multi-similarity", "mixup": "feature"},
        {"loss": "proxy-anchor", "mixup": "input", "mixup_weight": 0.5},
        {"loss": "contrastive", "mixup": "embedding"},
        {"loss": "snr-contrastive"},
        {"loss": "elasticface-cos-plus"},
    ],
    ids=lambda o: "-".join(str(v) for v in o.values()),
)
def test_batch_mining_trains_with_the_new_options(tmp_path: Path, options: dict) -> None:
    config = TrainConfig(
        dataset="digits",
        classes_per_batch=5,
        samples_per_class=6,
        epochs=1,
        steps_per_epoch=6,
        test_triplets=500,
        **options,
    )
    train(config, tmp_path / "run", show_progress=False)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(history) == 1 and np.isfinite(history[0]["loss"])
    steps = (tmp_path / "run" / "steps.csv").read_text().splitlines()
    assert len(steps) == 1 + 6  # --steps-per-epoch caps the epoch
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert all(saved["method"][name] == value for name, value in options.items())
