"""Runs: what a training run leaves behind and every later command reads: its configuration,
its model spec, checkpoints, the run folder, and embedding with the trained net. Below training,
evaluation and search, which share it and import none of each other's internals.

The parts are imported when first used (``lazy_exports``): the configuration alone (what
``tripletnet train --help`` is made from) needs no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

if TYPE_CHECKING:
    from .checkpoint import CHECKPOINT, MODEL, load_checkpoint, read_metadata, save_checkpoint
    from .config import RunConfig
    from .embed import embed
    from .folder import (
        COMMAND,
        CONFIG,
        HISTORY,
        LABELLED,
        TrainedRun,
        load_run,
        prepare_run_folder,
        read_config,
        read_spec,
        record_command,
    )
    from .spec import ModelSpec

__all__ = [
    "CHECKPOINT",
    "COMMAND",
    "CONFIG",
    "HISTORY",
    "LABELLED",
    "MODEL",
    "ModelSpec",
    "RunConfig",
    "TrainedRun",
    "embed",
    "load_checkpoint",
    "load_run",
    "prepare_run_folder",
    "read_config",
    "read_metadata",
    "read_spec",
    "record_command",
    "save_checkpoint",
]
WHERE = {
    **dict.fromkeys(
        ("CHECKPOINT", "MODEL", "load_checkpoint", "read_metadata", "save_checkpoint"),
        ".checkpoint",
    ),
    "RunConfig": ".config",
    "embed": ".embed",
    **dict.fromkeys(
        (
            "COMMAND",
            "CONFIG",
            "HISTORY",
            "LABELLED",
            "TrainedRun",
            "load_run",
            "prepare_run_folder",
            "read_config",
            "read_spec",
            "record_command",
        ),
        ".folder",
    ),
    "ModelSpec": ".spec",
}
__getattr__ = lazy_exports(__name__, WHERE)
