"""Checkpoints: one safetensors file per save (weights, optimizer state, JSON metadata inside),
written atomically, so a crash loses at most the current epoch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
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


def _unreadable(path: Path, error: Exception) -> RunFolderError:
    return RunFolderError(
        f"{path} is not a readable safetensors file ({error}); it may be truncated or not a "
        "tripletnet checkpoint: copy it again, or retrain"
    )


def read_metadata(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise RunFolderError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
    except SafetensorError as error:
        raise _unreadable(path, error) from error
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
    try:
        tensors = load_file(str(path))
    except SafetensorError as error:
        raise _unreadable(path, error) from error
    _restore(path, model, "model.", tensors)
    if loss is not None:
        _restore(path, loss, "loss.", tensors)
    if optimizer is not None:
        params = _parameters(model, loss)
        for key, value in tensors.items():
            if key.startswith("optim."):
                name, state_key = key[len("optim.") :].rsplit(".", 1)
                optimizer.state[params[name]][state_key] = value.to(params[name].device)
    return metadata


def _restore(path: Path, module: nn.Module, prefix: str, tensors: dict[str, torch.Tensor]) -> None:
    """Load the ``prefix``ed tensors into ``module``; a net that does not fit them (another
    architecture or layer options than the file's metadata says) is one clear error."""
    state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    expected = module.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    reshaped = [k for k in state.keys() & expected.keys() if state[k].shape != expected[k].shape]
    if missing or unexpected or reshaped:
        found = {"missing": missing, "unexpected": unexpected, "of another shape": sorted(reshaped)}
        summary = "; ".join(
            f"{what}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for what, keys in found.items()
            if keys
        )
        raise RunFolderError(
            f"the weights in {path} do not fit the {type(module).__name__} its metadata describes "
            f"({summary}); was the file written by another tripletnet version, or edited?"
        )
    module.load_state_dict(state)
