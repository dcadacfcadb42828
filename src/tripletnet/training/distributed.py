"""Training on several processes with torch.distributed, launched by ``torchrun``.

    torchrun --nproc_per_node 2 -m tripletnet train --dataset mnist ...

Every rank draws the same global batch (the same seed), embeds its own share of it through
DistributedDataParallel, and gathers every rank's embeddings, so the method's loss sees the
whole batch (cross-rank negatives for the batch-mining losses) and every rank computes the same
loss. The gather carries gradients back to the rank that made each embedding: its backward sums
the ranks' gradients of the gathered batch (an all-reduce) and keeps the rows this rank made, so
a rank's net gradient is ``W * dL/dθ`` through its own rows and DDP's average over the W ranks
is the single-process gradient ``dL/dθ``. A loss's own parameters (proxies) live outside the
net: every rank computes their full gradient, and ``average_gradients`` keeps them identical.

Rank 0 alone writes the run folder. The job itself (ranks, start, stop, a lost peer) is
``tripletnet.world``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..world import World


class _Gather(torch.autograd.Function):
    """All ranks' rows, concatenated by rank; the backward sums the ranks' gradients of the
    result and returns this rank's rows (``sizes``: each rank's number of rows)."""

    @staticmethod
    def forward(ctx: Any, local: torch.Tensor, sizes: list[int], rank: int) -> torch.Tensor:
        padded = local.new_zeros((max(sizes), *local.shape[1:]))
        padded[: len(local)] = local
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded.contiguous())
        ctx.sizes, ctx.rank = sizes, rank
        return torch.cat([part[:size] for part, size in zip(parts, sizes, strict=True)])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)  # SUM: every rank's loss depends on every row
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]], None, None


def gather(local: torch.Tensor, sizes: list[int], rank: int) -> torch.Tensor:
    """Every rank's ``local`` rows (rank ``r`` has ``sizes[r]``) in rank order, with gradients
    flowing back to the rank that made each row."""
    result: torch.Tensor = _Gather.apply(local, sizes, rank)
    return result


class ShardedNet(nn.Module):
    """The net as a method sees it in a distributed step: called with this rank's share of a
    batch, it returns the embeddings of the whole batch in its original order."""

    def __init__(self, net: nn.Module, world: World, batch: int, groups: int) -> None:
        super().__init__()
        self.net, self.world = net, world
        shares = [World(r, world.size).positions(batch, groups) for r in range(world.size)]
        self.sizes = [len(share) for share in shares]
        self.order = torch.from_numpy(np.argsort(np.concatenate(shares)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = gather(self.net(x), self.sizes, self.world.rank)
        if self.order.device != rows.device:
            self.order = self.order.to(rows.device)  # once, not a copy per step
        return rows[self.order]


def average_gradients(module: nn.Module | None, world: World) -> None:
    """Average the gradients of parameters outside DDP (a loss's proxies) over the ranks, in
    one all-reduce; every rank computed the full gradient, so this keeps them identical."""
    if module is None or not world.distributed:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world.size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()
