"""Shared fixtures: tiny, fast training configurations on the bundled digits."""

import os
from pathlib import Path

import pytest
import torch

from tripletnet.training import TrainConfig

torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def baseline_cache_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Raw-input baseline rows are cached in this session's folder, never in ~/.cache."""
    folder = tmp_path_factory.mktemp("baseline-cache")
    os.environ["TRIPLETNET_CACHE_DIR"] = str(folder)
    return folder


@pytest.fixture
def tiny_config() -> TrainConfig:
    return TrainConfig(
        dataset="digits", epochs=2, triplets_per_epoch=512, batch_size=64, test_triplets=500
    )


@pytest.fixture
def tiny_cli_args(tmp_path: Path) -> list[str]:
    return [
        "--epochs",
        "2",
        "--triplets-per-epoch",
        "512",
        "--test-triplets",
        "500",
        "--no-progress",
    ]
