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


def _tensors(
    model: nn.Module, optimizer: torch.optim.Optimizer | None, loss: nn.Module | None
) -> dict[str, torch.Tensor]:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if loss is not None:
        tensors.update(
            {f"loss.{k}": v.detach().cpu().contiguous() for k, v in loss.state_dict().items()}
        )
    if optimizer is not None:
        names = {id(p): n for n, p in _parameters(model, loss).items()}
        for group in optimizer.param_groups:
            for param in group["params"]:
                for key, value in optimizer.state.get(param, {}).items():
                    if isinstance(value, torch.Tensor) and value.dim() > 0:
                        tensors[f"optim.{names[id(param)]}.{key}"] = (
                            value.detach().cpu().contiguous()
                        )
    return tensors


def _parameters(model: nn.Module, loss: nn.Module | None) -> dict[str, nn.Parameter]:
    """The trained parameters by name: the net's, and a loss's own (proxies) as ``loss.NAME``."""
    params = dict(model.named_parameters())
    if loss is not None:
        params.update({f"loss.{n}": p for n, p in loss.named_parameters()})
    return params


def save_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    metadata: dict[str, Any],
    loss: nn.Module | None = None,
) -> Path:
    """Write weights (+ optimizer state, + a loss's own parameters such as proxies) and
    ``metadata`` (JSON) to one safetensors file."""
    tensors = _tensors(model, optimizer, loss)
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
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    loss: nn.Module | None = None,
) -> dict[str, Any]:
    """Restore ``model`` (and ``optimizer``, and a loss's own parameters) in place from
    ``path``; return its metadata."""
    metadata = read_metadata(path)
    tensors = load_file(str(path))
    model.load_state_dict(
        {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    )
    if loss is not None:
        loss.load_state_dict(
            {k[len("loss.") :]: v for k, v in tensors.items() if k.startswith("loss.")}
        )
    if optimizer is not None:
        params = _parameters(model, loss)
        for key, value in tensors.items():
            if key.startswith("optim."):
                name, state_key = key[len("optim.") :].rsplit(".", 1)
                optimizer.state[params[name]][state_key] = value.to(params[name].device)
    return metadata
