"""``--init RUN``: start training from the weights of an earlier (e.g. pretrained) run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from ..errors import RunFolderError
from .checkpoint import MODEL, load_checkpoint, read_metadata
from .run_folder import build_from_spec


def load_pretrained(model: nn.Module, run_dir: str | Path, spec: dict[str, Any]) -> None:
    """Copy the finished run's weights into ``model``, whose ``spec`` must match the run's."""
    weights = Path(run_dir) / MODEL
    if not weights.is_file():
        raise RunFolderError(f"--init {run_dir}: no {MODEL} there; is it a finished run?")
    saved = read_metadata(weights)["spec"]
    for key in ("architecture", "input_shape", "embedding_dim"):
        if saved[key] != spec[key]:
            raise RunFolderError(
                f"--init {run_dir}: its {key} is {saved[key]!r} but this run's is {spec[key]!r}; "
                "pass the same --dataset, --model and --embedding-dim as the pretraining"
            )
    layers = build_from_spec(saved).layer_options()  # older specs: the net's defaults
    if layers != spec["net_options"]:
        raise RunFolderError(
            f"--init {run_dir}: its layer options are {layers} but this run's are "
            f"{spec['net_options']}; pass the same --final-relu and --batch-norm as the pretraining"
        )
    load_checkpoint(weights, model)
