"""Device names (``--device``): ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, checked
against what this machine has before any work starts. Imports torch only to check one, so that
option help can name them (``DEVICE_HELP``) without it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import TripletnetError

if TYPE_CHECKING:
    import torch

DEVICE_HELP = "auto (a GPU when there is one), cpu, cuda, cuda:N or mps"


def resolve_device(name: str) -> torch.device:
    """The torch device ``name`` names; a clear error for a name torch does not know or a
    device this machine lacks."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise TripletnetError(f"unknown --device {name!r}; choose {DEVICE_HELP}") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = (
                "without CUDA" if torch.version.cuda is None else f"with CUDA {torch.version.cuda}"
            )
            raise TripletnetError(
                f"--device {name}: CUDA is not available here (torch {torch.__version__} is built "
                f"{build}, and no GPU is visible); use --device cpu or auto"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise TripletnetError(
                f"--device {name}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}"
            )
        return device
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise TripletnetError(f"--device {name}: Apple's MPS is not available here; use cpu")
        return device
    raise TripletnetError(f"--device {name}: tripletnet runs on {DEVICE_HELP}")
