"""The ready-to-run configurations in configs/: each reads and passes every option check."""

from __future__ import annotations

from pathlib import Path

import pytest

from tripletnet.cli.train_cmd import read_config_file

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.toml"))


def test_there_are_configurations() -> None:
    assert len(CONFIGS) >= 8


@pytest.mark.parametrize("path", CONFIGS, ids=[path.stem for path in CONFIGS])
def test_configuration_is_valid(path: Path) -> None:
    config = read_config_file(path).resolved()
    text = path.read_text()
    assert "tripletnet " in text  # says how it is run
    if "pretrain" in path.stem:
        assert config.method == "spatial-contrasting"
        assert "tripletnet pretrain" in text
    if config.optim.lr_schedule == "step":
        assert config.optim.nesterov and config.optim.milestones == [30, 60, 90, 120]
