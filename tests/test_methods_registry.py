"""The method registry: every method is a Method with its Options, its flags reach the command
line, and a method registered from outside trains through ``train`` like the built-in ones."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from tripletnet.cli import cli
from tripletnet.errors import TripletnetError
from tripletnet.files import read_json
from tripletnet.runs.options import flags, option
from tripletnet.training import METHODS, TrainConfig, train
from tripletnet.training.methods import Method, Statistics, register


def test_every_method_has_options_and_its_flags_are_offered() -> None:
    help_text = CliRunner().invoke(cli, ["train", "--help"]).output
    assert set(METHODS) == {
        "triplet",
        "siamese",
        "batch-mining",
        "semi-supervised",
        "spatial-contrasting",
    }
    for method in METHODS.values():
        assert dataclasses.is_dataclass(method.Options) and method.description
        for flag in flags(method.Options):
            assert flag.long in help_text, (method.name, flag.long)
    pretrain = CliRunner().invoke(cli, ["pretrain", "--help"]).output
    assert "--patch-size" in pretrain and "--loss " not in pretrain


def test_an_option_of_another_method_says_which_method_takes_it() -> None:
    with pytest.raises(TripletnetError, match="--margin does not apply to --method triplet; "
                       "it goes with --method siamese"):  # fmt: skip
        TrainConfig(margin=0.5).resolved()
    with pytest.raises(TripletnetError, match="--steps-per-epoch .* semi-supervised or "
                       "spatial-contrasting"):  # fmt: skip
        TrainConfig(steps_per_epoch=3).resolved()
    switched = TrainConfig(method="siamese", margin=0.5, triplets_per_epoch=100)
    switched.method = "triplet"  # the siamese margin goes, the shared option stays
    assert switched.options == {"triplets_per_epoch": 100}


@dataclasses.dataclass
class CentroidOptions:
    pull: float = option(1.0, "How hard each embedding is pulled to its class's mean.")


class CentroidPull(Method):
    """A toy method from outside the package: batches of random samples, each embedding pulled
    towards its class's mean in the batch and the means pushed apart."""

    name = "centroid-pull"
    Options = CentroidOptions
    description = "A test's toy method."

    def num_batches(self) -> int:
        return 4

    def batches(self, epoch: int) -> Iterator[np.ndarray]:
        rng = np.random.default_rng([self.context.seed, epoch])
        for _ in range(4):
            yield rng.choice(len(self.context.labels), 64, replace=False)

    def loss(
        self, model: nn.Module, indices: np.ndarray, inputs: torch.Tensor
    ) -> tuple[torch.Tensor, Statistics]:
        embeddings = model(inputs)
        labels = torch.from_numpy(self.context.labels[indices])
        means = torch.stack([embeddings[labels == c].mean(0) for c in labels.unique()])
        pull = sum((embeddings[labels == c] - m).pow(2).sum(1).mean() for c, m in
                   zip(labels.unique(), means, strict=True))  # fmt: skip
        push = torch.pdist(means).clamp(max=4.0).mean()
        return self.options.pull * pull - push, {"spread": push.detach()}


@pytest.fixture
def registered() -> Iterator[type[Method]]:
    register(CentroidPull)
    yield CentroidPull
    del METHODS["centroid-pull"]


def test_a_method_registered_from_outside_trains_resumes_and_is_recorded(
    registered: Any, tmp_path: Path
) -> None:
    config = TrainConfig(method="centroid-pull", pull=0.5, epochs=2, test_triplets=300)
    summary = train(config, tmp_path / "run", show_progress=False, log_epochs=False)
    assert summary["epochs"] == 2 and np.isfinite(summary["final_loss"])
    saved = read_json(tmp_path / "run" / "config.json")
    assert saved["method"] == {"name": "centroid-pull", "pull": 0.5}
    config.optim.epochs = 3
    train(config, tmp_path / "run", resume=True, show_progress=False, log_epochs=False)
    assert len(read_json(tmp_path / "run" / "history.json")) == 3
