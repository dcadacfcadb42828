"""This process's place in a torch.distributed job launched by ``torchrun``: which rank of how
many, how the job starts and stops, and which contiguous share of N items is this rank's.

    torchrun --nproc_per_node 2 -m tripletnet train|embed|index build|evaluate ...

A rank that dies or stops answering ends the job: torchrun stops the others, and a collective
that waits longer than ``TRIPLETNET_DIST_TIMEOUT`` seconds (default 600) raises ``PeerLost``
instead of hanging.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from .errors import TripletnetError

TIMEOUT_VARIABLE = "TRIPLETNET_DIST_TIMEOUT"
DEFAULT_TIMEOUT = 600.0


class PeerLost(TripletnetError):
    """Another process of a distributed job died or stopped answering."""


@dataclass(frozen=True)
class World:
    """This process's place in the job: ``rank`` of ``size`` (1: no torch.distributed)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes files and prints."""
        return self.rank == 0

    def positions(self, batch: int, groups: int = 1) -> np.ndarray:
        """This rank's rows of a global batch of ``batch`` rows laid out as ``groups`` equal
        blocks (3 for (anchors | positives | negatives)): every ``size``-th row of each block,
        so a rank gets whole triplets and a share of each class of a P x K batch."""
        return np.arange(batch).reshape(groups, -1)[:, self.rank :: self.size].reshape(-1)

    def shard(self, items: int) -> range:
        """This rank's contiguous share of ``items`` rows: rank r of W gets
        [floor(r N / W), floor((r + 1) N / W)), so the shards are disjoint, cover every row
        once, and differ in size by at most one."""
        return range(self.rank * items // self.size, (self.rank + 1) * items // self.size)

    def device(self, device: torch.device) -> torch.device:
        """A CUDA device becomes this process's GPU (``LOCAL_RANK``) in a distributed job."""
        if self.distributed and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device


SINGLE = World()


def world_from_environment() -> World:
    """The World torchrun's variables describe (RANK, WORLD_SIZE, LOCAL_RANK); SINGLE without."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise TripletnetError(
            "RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers (torchrun sets them)"
        ) from None
    if size < 1 or not 0 <= rank < size:
        raise TripletnetError(f"RANK {rank} of WORLD_SIZE {size} is not a place in the job")
    return World(rank, size, local_rank) if size > 1 else SINGLE


def timeout_seconds() -> float:
    value = os.environ.get(TIMEOUT_VARIABLE, str(DEFAULT_TIMEOUT))
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise TripletnetError(f"{TIMEOUT_VARIABLE} must be a number of seconds > 0, got {value!r}")
    return seconds


def start(device: torch.device) -> World:
    """Join the job torchrun started (NCCL on CUDA, gloo otherwise); SINGLE when there is none.
    Rank 0's variables (MASTER_ADDR, MASTER_PORT) tell every rank where to meet."""
    world = world_from_environment()
    if not world.distributed or dist.is_initialized():
        return world
    if device.type == "cuda":
        torch.cuda.set_device(world.local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    seconds = timeout_seconds()
    with translated_failures(world, seconds):
        dist.init_process_group(
            backend,
            timeout=datetime.timedelta(seconds=seconds),
            rank=world.rank,
            world_size=world.size,
        )
    return world


def stop() -> None:
    """Leave the job (a no-op outside one)."""
    if dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def translated_failures(world: World, seconds: float | None = None) -> Iterator[None]:
    """A collective that failed because another rank died or timed out becomes one clear
    ``PeerLost`` error (the CLI prints it as one line) instead of a backend traceback."""
    try:
        yield
    except RuntimeError as error:
        if not world.distributed or not _lost_peer(error):
            raise
        wait = seconds if seconds is not None else timeout_seconds()
        raise PeerLost(
            f"rank {world.rank} of {world.size}: another process of the job died or did not "
            f"answer within {wait:g} s ({TIMEOUT_VARIABLE}), so the job stops; run the same "
            f"torchrun command again (train: with --resume --out RUN) ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''})"
        ) from None


def _lost_peer(error: RuntimeError) -> bool:
    """Did this error come from a collective whose peer died or timed out (not, say, from
    running out of memory)?"""
    if isinstance(error, dist.DistError):
        return True
    text = str(error).lower()
    return any(word in text for word in ("gloo", "nccl", "connection", "timed out", "timeout"))


def barrier(world: World) -> None:
    if world.distributed:
        with translated_failures(world):
            dist.barrier()
