"""A run folder: what training writes and every later command reads.

config.json              the run's configuration (``RunConfig``; a valid ``--config``)
checkpoint.safetensors   last finished epoch: weights, optimizer state, history (for --resume)
model.safetensors        the trained embedding net, with its ModelSpec (how to rebuild it)
history.json             one row per epoch (loss, triplet errors, lr, seconds)
command.txt              the command lines that trained it (tripletnet train ..., then resumes)
labelled.npy             semi-supervised runs: which training samples kept their labels
metrics.json, report.md, per_query.npz and the figures   written by evaluation
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import RunFolderError
from ..files import load_npy, read_json_object, write_text_atomic
from ..models import EmbeddingNet
from .checkpoint import CHECKPOINT, MODEL, load_checkpoint, read_metadata
from .config import RunConfig
from .spec import ModelSpec

CONFIG = "config.json"
HISTORY = "history.json"
COMMAND = "command.txt"
LABELLED = "labelled.npy"


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


def record_command(out: Path, command: str, resume: bool) -> None:
    """Write the command line that started the run to ``command.txt`` (a resume appends its
    own line), before any training, so that a run killed midway still says how it began."""
    path = out / COMMAND
    earlier = path.read_text(encoding="utf-8") if resume and path.is_file() else ""
    write_text_atomic(path, earlier + command + "\n")


def read_config(run_dir: Path) -> RunConfig:
    """The configuration a run folder was trained with (version 1 or 2)."""
    path = run_dir / CONFIG
    return RunConfig.from_dict(read_json_object(path), str(path))


def read_spec(weights: Path, dataset: str | None = None) -> ModelSpec:
    """The ModelSpec stored in a checkpoint or model file's metadata."""
    metadata = read_metadata(weights)
    if "spec" not in metadata:
        raise RunFolderError(f"{weights} holds no model spec; is it a tripletnet model file?")
    return ModelSpec.from_dict(metadata["spec"], f"the spec in {weights}", dataset)


@dataclass
class TrainedRun:
    """A finished run loaded back: the net, its spec and its configuration."""

    path: Path
    model: EmbeddingNet
    spec: ModelSpec
    config: RunConfig

    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        """Raw samples as the net saw them in training (the run's normalisation)."""
        return self.spec.normalizer(batch)

    def labelled(self) -> np.ndarray | None:
        """The labelled training samples of a semi-supervised run, else None."""
        path = self.path / LABELLED
        return np.asarray(load_npy(path)) if path.is_file() else None


def load_run(
    path: str | Path, device: str | torch.device = "cpu", trust_model_code: bool | None = None
) -> TrainedRun:
    """Load the trained model of a run folder (weights from safetensors, never unpickled). A
    run whose net is ``package.module:factory`` runs that code: only with ``trust_model_code``
    (None: the variable TRIPLETNET_TRUST_MODEL_CODE, see ``tripletnet.trust``)."""
    path = Path(path)
    weights = path / MODEL
    if not weights.is_file():
        hint = " (training has not finished; --resume it)" if (path / CHECKPOINT).is_file() else ""
        raise RunFolderError(f"{path} is not a finished tripletnet run: no {MODEL}{hint}")
    config = read_config(path)
    spec = read_spec(weights, config.data.dataset)
    model = spec.build(trust_model_code, f"the run {path}")
    load_checkpoint(weights, model)
    # channels-last, as in training: the conv nets embed faster on the CPU (runs/embed.py)
    model.to(device, memory_format=torch.channels_last).eval()  # type: ignore[call-overload]
    return TrainedRun(path, model, spec, config)
