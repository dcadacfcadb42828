"""The few collectives a sharded evaluation needs, on a ``World`` (each a no-op on one process):
sums over the ranks, and rows or objects gathered from every rank in rank order. A rank that
dies makes them one ``PeerLost`` error (``world.translated_failures``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from .world import World, translated_failures


def summed(world: World, values: np.ndarray) -> np.ndarray:
    """``values`` summed over the ranks (every rank gets the sum), in float64."""
    total = np.asarray(values, dtype=np.float64)
    if not world.distributed:
        return total
    tensor = torch.from_numpy(np.ascontiguousarray(total)).to(_device())
    with translated_failures(world):
        dist.all_reduce(tensor)
    return tensor.cpu().numpy()


def gathered(world: World, value: Any) -> list[Any]:
    """Every rank's ``value`` (any picklable object), in rank order, on every rank."""
    if not world.distributed:
        return [value]
    values: list[Any] = [None] * world.size
    with translated_failures(world):
        dist.all_gather_object(values, value)
    return values


def gathered_rows(world: World, rows: np.ndarray) -> np.ndarray:
    """The ranks' ``rows`` (arrays of one dtype and trailing shape, any length) concatenated in
    rank order, on every rank."""
    if not world.distributed:
        return rows
    sizes = [int(n) for n in gathered(world, len(rows))]
    local = torch.from_numpy(np.ascontiguousarray(rows)).to(_device())
    padded = torch.zeros((max(sizes), *local.shape[1:]), dtype=local.dtype, device=local.device)
    padded[: len(local)] = local
    parts = [torch.empty_like(padded) for _ in sizes]
    with translated_failures(world):
        dist.all_gather(parts, padded)
    return torch.cat([part[:n] for part, n in zip(parts, sizes, strict=True)]).cpu().numpy()


def on_main(world: World, tensors: tuple[torch.Tensor, ...]) -> list[tuple[torch.Tensor, ...]]:
    """Every rank's ``tensors`` (the same shapes and dtypes on every rank), gathered on rank 0
    in rank order (on the backend's device); the other ranks get an empty list."""
    if not world.distributed:
        return [tensors]
    received: list[list[torch.Tensor]] = []
    with translated_failures(world):
        for tensor in tensors:
            local = tensor.to(_device()).contiguous()
            parts = [torch.empty_like(local) for _ in range(world.size)] if world.main else None
            dist.gather(local, parts, dst=0)
            received.append(parts or [])
    return [tuple(column) for column in zip(*received, strict=True)] if world.main else []


def _device() -> torch.device:
    """Where the backend takes its tensors: this process's GPU for NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
