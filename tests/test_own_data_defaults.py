"""Your own data's defaults: the net chosen from the samples' shape, the batch-mining recipe
without method flags, the raw-input row of large image sets, and the two k-NN figures named
apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tripletnet.cli import main
from tripletnet.evaluation import report
from tripletnet.evaluation.plots import HISTORY_LABELS
from tripletnet.files import read_json
from tripletnet.models import build_model
from tripletnet.models.choice import architecture_for, choice_line
from tripletnet.training import TrainConfig
from tripletnet.training.config import OWN_DATA_DEFAULTS

FOLDER = "/data/my-photos"  # a path: own data (resolved() never reads it)


@pytest.mark.parametrize(
    ("shape", "net"),
    [
        ((64,), "mlp"),
        ((1, 1, 1), "mlp"),
        ((1, 8, 8), "small-conv"),
        ((3, 16, 16), "small-conv"),
        ((1, 19, 40), "small-conv"),
        ((1, 28, 28), "mnist"),
        ((1, 20, 20), "mnist"),
        ((3, 28, 28), "mnist"),
        ((1, 32, 32), "mnist"),
        ((3, 32, 32), "cifar"),
        ((4, 32, 32), "cifar"),
        ((3, 40, 32), "mnist"),
        ((1, 48, 48), "mnist"),
        ((1, 49, 49), "resnet18"),
        ((3, 96, 96), "resnet18"),
        ((3, 224, 224), "resnet18"),
    ],
)
def test_the_net_is_chosen_from_the_shape(shape: tuple[int, ...], net: str) -> None:
    assert architecture_for(shape) == net


@pytest.mark.parametrize("channels", [1, 3])
def test_every_chosen_paper_net_accepts_its_shape(channels: int) -> None:
    sides = [1, 2, 3, 7, 8, 19, 20, 21, 27, 28, 31, 32, 33, 47, 48]
    for height in sides:
        for width in sides:
            shape = (channels, height, width)
            net = architecture_for(shape)
            model = build_model(net, shape).eval()
            with torch.no_grad():
                out = model(torch.zeros(2, *shape))
            assert out.shape == (2, model.embedding_dim), (shape, net)


def test_the_choice_is_one_line() -> None:
    assert choice_line("mnist", (1, 28, 28)) == (
        "net: mnist (28x28 greyscale images; --model to choose another)"
    )
    assert choice_line("cifar", (3, 32, 32)).startswith("net: cifar (32x32 colour images;")
    assert choice_line("mlp", (64,)).startswith("net: mlp (64-d vectors;")


def test_own_data_without_a_method_gets_the_own_data_recipe() -> None:
    config = TrainConfig.from_options(dataset=FOLDER).resolved((1, 28, 28))
    assert config.method == OWN_DATA_DEFAULTS["method"] == "batch-mining"
    assert (config.options["loss"], config.options["miner"]) == ("triplet-margin", "semi-hard")
    assert config.optim.epochs == OWN_DATA_DEFAULTS["epochs"]
    assert config.optim.lr == OWN_DATA_DEFAULTS["lr"]
    assert config.model.model == "mnist" and config.model.final_relu is False
    assert config.metric == "cosine"
    # saved and read back (config.json), it stays what it resolved to
    again = TrainConfig.from_dict(config.to_dict()).resolved((1, 28, 28))
    assert again.to_dict() == config.to_dict()
    # a [method]-less TOML table is the same as no flag
    table = TrainConfig.from_dict({"data": {"dataset": FOLDER}}).resolved((1, 28, 28))
    assert table.method == "batch-mining"
    # large images: a ResNet from lr 0.01 (the backbone rule)
    large = TrainConfig.from_options(dataset=FOLDER).resolved((3, 128, 128))
    assert large.model.model == "resnet18" and large.optim.lr == 0.01
    assert large.model.final_relu is None  # a choice of the paper nets only


def test_the_paper_method_stays_one_flag_away_and_the_built_in_datasets_keep_it() -> None:
    paper = TrainConfig.from_options(dataset=FOLDER, method="triplet").resolved((1, 28, 28))
    assert paper.method == "triplet" and (paper.optim.epochs, paper.optim.lr) == (25, 0.1)
    by_option = TrainConfig.from_options(dataset=FOLDER, triplets_per_epoch=1000).resolved()
    assert by_option.method == "triplet"  # a triplet option chooses the method
    mnist = TrainConfig.from_options(dataset="mnist").resolved()
    assert mnist.method == "triplet" and mnist.architecture == "mnist"
    assert (mnist.optim.epochs, mnist.optim.lr) == (25, 0.1)
    given = TrainConfig.from_options(dataset=FOLDER, epochs=7, lr=0.2).resolved((1, 28, 28))
    assert (given.method, given.optim.epochs, given.optim.lr) == ("batch-mining", 7, 0.2)
    loss = TrainConfig.from_options(dataset=FOLDER, loss="contrastive").resolved((1, 28, 28))
    assert loss.options["miner"] is None  # the user's loss, with no miner of ours
    assert (loss.optim.epochs, loss.optim.lr, loss.metric) == (25, 0.1, "euclidean")
    assert loss.model.final_relu is None
    miner = TrainConfig.from_options(dataset=FOLDER, miner="batch-hard").resolved((1, 28, 28))
    assert (miner.options["loss"], miner.options["miner"]) == ("triplet-margin", "batch-hard")
    assert (miner.optim.epochs, miner.metric) == (OWN_DATA_DEFAULTS["epochs"], "cosine")
    pk = TrainConfig.from_options(dataset=FOLDER, samples_per_class=4).resolved()
    assert pk.method == "batch-mining" and pk.options["samples_per_class"] == 4


def test_training_prints_the_chosen_net_and_names_the_two_knn_figures_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 30)
    x = (rng.random((len(y), 1, 8, 8)) * 60 + y[:, None, None, None] * 40).astype(np.uint8)
    np.savez(tmp_path / "tiny.npz", x=x, y=y)
    run = tmp_path / "run"
    monkeypatch.setattr(report, "RAW_BASELINE_LIMIT", 10**9)
    args = ["train", "--dataset", str(tmp_path / "tiny.npz"), "--epochs", "1"]
    assert main([*args, "--test-triplets", "200", "--no-progress", "--out", str(run)]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("net: ")]
    assert lines == ["net: small-conv (8x8 greyscale images; --model to choose another)"]
    assert out.index("net: ") < out.index("epoch 1/1")
    assert "test 5-NN (leave-one-out in test)" in out and "k-NN (test vs train)" in out
    assert "| triplet-margin (semi-hard miner) embedding |" in out
    config = read_json(run / "config.json")
    assert config["method"]["name"] == "batch-mining" and config["model"]["model"] == "small-conv"
    assert "raw inputs (baseline) |" in (run / "report.md").read_text()
    assert HISTORY_LABELS["test_knn_accuracy"] == "test k-NN (leave-one-out in test)"


def test_the_raw_row_of_a_large_image_set_is_measured_on_a_stated_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    rng = np.random.default_rng(1)
    root = tmp_path / "photos"
    for label in range(3):
        (root / f"c{label}").mkdir(parents=True)
        for row in range(20):
            pixels = (rng.random((8, 8)) * 80 + label * 80).astype(np.uint8)
            Image.fromarray(pixels).save(root / f"c{label}" / f"{row}.png")
    monkeypatch.setattr(report, "RAW_BASELINE_LIMIT", 30)  # 60 images: over the limit
    run = tmp_path / "run"
    args = ["train", "--dataset", str(root), "--epochs", "1", "--workers", "0"]
    assert main([*args, "--test-triplets", "100", "--no-progress", "--out", str(run)]) == 0
    out = capsys.readouterr().out
    metrics = read_json(run / "metrics.json")
    raw = metrics["classification"]["raw"]
    # stratified:0.25 by default: 45 train and 15 test images, sampled in proportion to 30
    assert raw["sample"] == {"seed": 0, "limit": 30, "queries": [7, 15], "gallery": [22, 45]}
    name = "raw inputs (baseline; a random sample, seed 0: 7 of 15 test, 22 of 45 train)"
    assert name in out and name in (run / "report.md").read_text()
