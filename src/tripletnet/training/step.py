"""One optimisation step: this rank's share of a batch -> loss -> gradients -> update.

The same code for one process and for a torchrun job (``training.distributed``), and for each
precision (``training.precision``): fp16 scales the loss with a GradScaler so that small
gradients survive; bf16 and fp32 need none. ``compile``: the net runs through torch.compile.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..models import EmbeddingNet
from ..world import SINGLE, World
from .distributed import ShardedNet, average_gradients
from .methods import Method, Statistics


class Step:
    """``step(indices, inputs)``: one update of ``model`` (and the method's own parameters)
    from a global batch's ``indices`` and this rank's ``inputs`` (its ``share``)."""

    def __init__(
        self,
        model: EmbeddingNet,
        method: Method,
        optimizer: torch.optim.Optimizer,
        world: World = SINGLE,
        compute_dtype: torch.dtype | None = None,
        compile: bool = False,
    ) -> None:
        self.model, self.method, self.optimizer, self.world = model, method, optimizer, world
        self.compute_dtype = compute_dtype
        self.learned = method.learned()
        device = next(model.parameters()).device
        self.net: nn.Module = model
        if world.distributed:
            self.net = DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        if compile:  # DDP's wrapper inside: its gradient buckets split the compiled graph
            self.net = torch.compile(self.net)  # type: ignore[assignment]
        self.scaler = torch.amp.GradScaler(device.type, enabled=compute_dtype == torch.float16)
        self.sharded: dict[int, ShardedNet] = {}  # by batch length

    def share(self, indices: np.ndarray) -> np.ndarray:
        """The rows of the global batch ``indices`` that this rank embeds."""
        if not self.world.distributed:
            return indices
        return indices[self.world.positions(len(indices), self.method.groups)]

    def view(self, batch: int) -> nn.Module:
        """The net the method calls: the whole batch's embeddings from this rank's share."""
        if not self.world.distributed:
            return self.net
        if batch not in self.sharded:
            self.sharded[batch] = ShardedNet(self.net, self.world, batch, self.method.groups)
        return self.sharded[batch]

    def __call__(
        self, indices: np.ndarray, inputs: torch.Tensor, lr: float
    ) -> tuple[torch.Tensor, Statistics]:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.model.compute_dtype != self.compute_dtype:
            self.model.compute_dtype = self.compute_dtype
        loss, statistics = self.method.loss(self.view(len(indices)), indices, inputs)
        self.optimizer.zero_grad(set_to_none=True)
        if not self.scaler.is_enabled():
            loss.backward()
            average_gradients(self.learned, self.world)
            self.optimizer.step()
            return loss, statistics
        self.scaler.scale(loss).backward()
        average_gradients(self.learned, self.world)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss, statistics

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps to resume bit-exactly (the fp16 loss scale)."""
        return {"grad_scaler": self.scaler.state_dict()} if self.scaler.is_enabled() else {}

    def restore(self, state: dict[str, Any]) -> None:
        if self.scaler.is_enabled() and "grad_scaler" in state:
            self.scaler.load_state_dict(state["grad_scaler"])
