"""Checkpoints: one safetensors file per save (weights, optimizer state, JSON metadata inside),
written atomically, so a crash loses at most the current epoch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from ..errors import RunFolderError
from ..files import write_atomic

CHECKPOINT = "checkpoint.safetensors"
MODEL = "model.safetensors"


def _tensors(model: nn.Module, optimizer: torch.optim.Optimizer | None) -> dict[str, torch.Tensor]:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if optimizer is not None:
        names = {id(p): n for n, p in model.named_parameters()}
        for group in optimizer.param_groups:
            for param in group["params"]:
                for key, value in optimizer.state.get(param, {}).items():
                    if isinstance(value, torch.Tensor) and value.dim() > 0:
                        tensors[f"optim.{names[id(param)]}.{key}"] = (
                            value.detach().cpu().contiguous()
                        )
    return tensors


def save_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None, metadata: dict[str, Any]
) -> Path:
    """Write weights (+ optimizer state) and ``metadata`` (JSON) to one safetensors file."""
    tensors = _tensors(model, optimizer)
    header = {"tripletnet": json.dumps(metadata, sort_keys=True)}
    return write_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata=header))


def read_metadata(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise RunFolderError(f"no checkpoint at {path}")
    with safe_open(str(path), framework="pt") as handle:
        header = handle.metadata() or {}
    if "tripletnet" not in header:
        raise RunFolderError(f"{path} is not a tripletnet checkpoint (no metadata)")
    return json.loads(header["tripletnet"])


def load_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None
) -> dict[str, Any]:
    """Restore ``model`` (and ``optimizer``) in place from ``path``; return its metadata."""
    metadata = read_metadata(path)
    tensors = load_file(str(path))
    model.load_state_dict(
        {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    )
    if optimizer is not None:
        params = dict(model.named_parameters())
        for key, value in tensors.items():
            if key.startswith("optim."):
                name, state_key = key[len("optim.") :].rsplit(".", 1)
                optimizer.state[params[name]][state_key] = value.to(params[name].device)
    return metadata
