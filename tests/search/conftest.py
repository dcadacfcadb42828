"""Fixtures for the search tests: a tiny trained digits run and an index built from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tripletnet.search import Embedder, build_index, from_dataset
from tripletnet.training import TrainConfig, train


def train_tiny_run(out: Path, seed: int = 0) -> Path:
    """A digits MLP trained for one short epoch: seconds on a CPU, good enough to cluster."""
    config = TrainConfig(
        dataset="digits", epochs=2, triplets_per_epoch=2048, embedding_dim=16, seed=seed
    )
    train(config, out, show_progress=False)
    return out


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_run(tmp_path_factory.mktemp("run") / "digits")


@pytest.fixture(scope="session")
def other_run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_run(tmp_path_factory.mktemp("run") / "digits-other", seed=1)


@pytest.fixture(scope="session")
def embedder(run_dir: Path) -> Embedder:
    return Embedder.from_run(run_dir)


@pytest.fixture
def index_dir(tmp_path: Path, embedder: Embedder) -> Path:
    """A saved exact index of the 450 digits test images (with thumbnails)."""
    index = build_index(embedder, from_dataset(embedder, "digits"))
    folder = tmp_path / "index"
    index.save(folder)
    return folder
