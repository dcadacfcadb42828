"""``tripletnet train --loss ... --miner ... --sampler pk`` on the bundled digits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tripletnet.cli import cli, main
from tripletnet.errors import TripletnetError
from tripletnet.losses.catalogue import loss_names
from tripletnet.training import TrainConfig, train
from tripletnet.training.methods.batch_mining import LOSS_NAMES, build_loss


def test_batch_mining_training_learns(tmp_path: Path) -> None:
    config = TrainConfig(
        dataset="digits",
        loss="multi-similarity",
        miner="multi-similarity",
        classes_per_batch=10,
        samples_per_class=6,
        epochs=2,
        test_triplets=2000,
    )
    summary = train(config, tmp_path / "run", show_progress=False)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(history) == 2
    assert summary["test_triplet_error"] < 0.15


def test_cli_refuses_a_miner_of_the_wrong_kind(tmp_path: Path) -> None:
    args = [
        "train",
        "--loss",
        "triplet-margin",
        "--miner",
        "multi-similarity",
        "--out",
        str(tmp_path / "r"),
    ]
    assert main(args) == 2
    assert not (tmp_path / "r").exists()


def test_every_named_loss_builds() -> None:
    for loss in ("triplet-margin", "contrastive", "supcon", "lifted-structure", "circle"):
        assert build_loss(loss, None) is not None
    assert build_loss("triplet-margin", "semi-hard").miner is not None
    assert CliRunner().invoke(cli, ["train", "--help"]).output.count("--miner") >= 1


def test_proxy_loss_trains_its_proxies_and_resumes(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    config = TrainConfig(
        dataset="digits", loss="proxy-anchor", epochs=2, test_triplets=2000, batch_size=64
    )
    summary = train(config, tmp_path / "run", show_progress=False)
    assert summary["test_triplet_error"] < 0.2
    saved = load_file(str(tmp_path / "run" / "checkpoint.safetensors"))
    assert saved["loss.proxies"].shape == (10, 64)  # digits: 10 classes, 64-d embedding
    assert "optim.loss.proxies.momentum_buffer" in saved  # the proxies were trained

    config.optim.epochs = 3  # continued to a third epoch
    train(config, tmp_path / "run", resume=True, show_progress=False)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3]
    resumed = load_file(str(tmp_path / "run" / "checkpoint.safetensors"))
    assert not resumed["loss.proxies"].equal(saved["loss.proxies"])  # continued, not restarted


def test_proxy_losses_build_and_refuse_a_miner(tmp_path: Path) -> None:
    for loss in ("arcface", "cosface", "proxy-nca", "proxy-anchor"):
        criterion = build_loss(loss, None, num_classes=5, embedding_dim=8)
        assert next(criterion.parameters()).shape == (5, 8)
    args = ["train", "--loss", "arcface", "--miner", "batch-hard", "--out", str(tmp_path / "r")]
    assert main(args) == 2


def test_one_sample_per_class_is_refused_for_losses_that_need_positive_pairs(
    tmp_path: Path,
) -> None:
    """A P x K batch with K = 1 holds no same-class pair: the pair and triplet losses would be 0
    (or only push), so they are refused before any work; proxy losses train on it."""
    proxy_losses = loss_names(lambda loss: loss.needs_num_classes)
    for loss in LOSS_NAMES:
        needs = build_loss(loss, None).needs_positive_pairs
        assert needs == (loss not in proxy_losses), loss
        config = TrainConfig(dataset="digits", loss=loss, samples_per_class=1)
        if needs:
            with pytest.raises(TripletnetError, match="--samples-per-class 2 or more"):
                config.resolved()
        else:
            config.resolved()
    TrainConfig(dataset="digits", loss="triplet-margin", samples_per_class=2).resolved()
    TrainConfig(
        dataset="digits", loss="triplet-margin", samples_per_class=1, sampler="random"
    ).resolved()  # K applies to the pk sampler only
    args = ["train", "--loss", "supcon", "--samples-per-class", "1", "--out", str(tmp_path / "r")]
    assert main(args) == 2
    assert not (tmp_path / "r").exists()


def test_catalogue_facts_agree_with_what_the_losses_do() -> None:
    """A loss's facts (class attributes, read through losses/catalogue.py): Metrix takes the
    mixable ones; the ones that need the class count learn proxies; cosine ones train in cosine."""
    from tripletnet import losses
    from tripletnet.checks import InvalidInputError
    from tripletnet.losses.catalogue import LOSSES
    from tripletnet.training.methods.batch_mining import BatchMining, BatchMiningOptions

    for name, named in LOSSES.items():
        loss = named.build(None, num_classes=3, embedding_dim=4)
        assert isinstance(loss, named.loss)
        assert any(True for _ in loss.parameters()) == named.loss.needs_num_classes, name
        try:
            losses.Metrix(loss)
            mixed = True
        except InvalidInputError:
            mixed = False
        assert mixed == named.loss.mixable, name
        metric = BatchMining.metric(BatchMiningOptions(loss=name))
        assert metric == ("cosine" if named.loss.cosine else "euclidean"), name
