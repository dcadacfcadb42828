"""The ready-to-run configurations in configs/: each reads and passes every option check."""

from __future__ import annotations

from pathlib import Path

import pytest

from tripletnet.cli.train_cmd import read_config_file
from tripletnet.errors import TripletnetError
from tripletnet.runs.config import VERSION, RunConfig

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


def test_a_configuration_from_a_newer_tripletnet_is_refused(tmp_path: Path) -> None:
    assert RunConfig.from_dict({"version": VERSION}).method == "triplet"
    newer = tmp_path / "newer.toml"
    newer.write_text(f"version = {VERSION + 1}\n[optim]\nepochs = 2\n")
    with pytest.raises(TripletnetError, match=rf"newer\.toml is version {VERSION + 1} .*up to "):
        read_config_file(newer)
    with pytest.raises(TripletnetError, match="upgrade tripletnet"):
        RunConfig.from_dict({"version": 99, "dataset": "digits"}, "config.json")
    for odd in ("2", 0, 1.5, True):
        with pytest.raises(TripletnetError, match="version must be a whole number"):
            RunConfig.from_dict({"version": odd})
