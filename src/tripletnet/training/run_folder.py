"""A run folder: what training writes and every later command reads.

config.json              the resolved TrainConfig
checkpoint.safetensors   last finished epoch: weights, optimizer state, history (for --resume)
model.safetensors        the trained embedding net, with what is needed to rebuild it
history.json             one row per epoch (loss, triplet errors, lr, seconds)
command.txt              the command line that trained it (tripletnet train ...)
metrics.json, report.md, embedding.png   written by evaluation
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import Normalizer
from ..errors import RunFolderError
from ..files import read_json_object
from ..models import EmbeddingNet, build_model
from .checkpoint import CHECKPOINT, MODEL, load_checkpoint, read_metadata
from .config import TrainConfig

COMMAND = "command.txt"


def prepare_run_folder(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to clobber an existing run unless ``resume`` or ``overwrite`` says so."""
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"{out} is a file; choose a folder for the run with --out")
    if resume:
        if not (out / CHECKPOINT).is_file():
            raise RunFolderError(
                f"cannot resume: {out} has no {CHECKPOINT}; start a new run instead"
            )
        return
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise RunFolderError(
                f"run folder {out} already exists; pass --resume to continue it, "
                "--overwrite to replace it, or --out to choose another folder"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


@dataclass
class TrainedRun:
    """A finished run loaded back: the net, its input normalisation and its configuration."""

    path: Path
    model: nn.Module
    normalizer: Normalizer
    config: TrainConfig
    spec: dict[str, Any]

    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        return self.normalizer(batch)


def model_spec(
    architecture: str,
    input_shape: tuple[int, ...],
    model: EmbeddingNet,
    normalizer: Normalizer,
    class_names: list[str],
) -> dict[str, Any]:
    """What a later command needs to rebuild the net and preprocess new inputs the same way."""
    return {
        "architecture": architecture,
        "input_shape": list(input_shape),
        "embedding_dim": model.embedding_dim,
        "net_options": model.layer_options(),
        "normalizer": normalizer.to_dict(),
        "class_names": class_names,
    }


def build_from_spec(spec: dict[str, Any]) -> EmbeddingNet:
    options = spec.get("net_options", {})  # older specs have none: every net's defaults
    return build_model(
        spec["architecture"], tuple(spec["input_shape"]), spec["embedding_dim"], **options
    )


def load_run(path: str | Path, device: str | torch.device = "cpu") -> TrainedRun:
    """Load the trained model of a run folder (weights from safetensors, never unpickled)."""
    path = Path(path)
    weights = path / MODEL
    if not weights.is_file():
        hint = " (training has not finished; --resume it)" if (path / CHECKPOINT).is_file() else ""
        raise RunFolderError(f"{path} is not a finished tripletnet run: no {MODEL}{hint}")
    spec = read_metadata(weights)["spec"]
    model = build_from_spec(spec)
    load_checkpoint(weights, model)
    model.to(device).eval()
    config = TrainConfig.from_dict(read_json_object(path / "config.json"), f"{path}/config.json")
    return TrainedRun(path, model, Normalizer(**spec["normalizer"]), config, spec)
