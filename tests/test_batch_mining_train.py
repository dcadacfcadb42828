"""``tripletnet train --loss ... --miner ... --sampler pk`` on the bundled digits."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from tripletnet.cli import cli, main
from tripletnet.training import train
from tripletnet.training.batch_mining import build_loss
from tripletnet.training.config import TrainConfig


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
