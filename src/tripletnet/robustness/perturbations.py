"""Perturbation stability, ImageNet-P style (Hendrycks & Dietterich, ICLR 2019): sequences of
small changes to each query, and how often the k-NN decision and the top-5 neighbours move.

Sequences of ``frames`` images per query: ``noise`` (independent Gaussian noise, std 0.03, on
each frame; frame 1 is clean), ``shift`` (translated by 0.25 pixel more each frame, at 28 px)
and ``brightness`` (+0.02 each frame). The flip probability of a sequence is the fraction of
frames j >= 2 whose prediction differs from that of frame j - 1, or, for noise (whose frames
are not temporally related), from that of the clean frame 1, as in the paper; the top-5
overlap is |top5(x_j) & top5(x_ref)| / 5 with the same reference frame.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .corruptions import _along, _scale

SEQUENCES = ("noise", "shift", "brightness")


def sequence(x: torch.Tensor, kind: str, frames: int, seed: int) -> torch.Tensor:
    """(frames, N, C, H, W): the ``kind`` sequence of each image of ``x`` ([0, 1] pixels)."""
    generator = torch.Generator().manual_seed(seed)
    steps = torch.arange(frames, dtype=x.dtype)
    if kind == "noise":
        noise = torch.randn((frames, *x.shape), generator=generator).to(x.device, x.dtype)
        noise[0] = 0
        return (x[None] + 0.03 * noise).clamp(0, 1)
    if kind == "brightness":
        return (x[None] + 0.02 * steps.to(x.device).view(-1, 1, 1, 1, 1)).clamp(0, 1)
    if kind == "shift":
        angle = torch.rand(len(x), generator=generator).to(x.device, x.dtype) * 2 * torch.pi
        direction = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
        return torch.stack(
            [_along(x, (0.25 * _scale(x) * float(t) * direction)[:, None, :]) for t in steps]
        )
    raise ValueError(f"sequence kind must be one of {', '.join(SEQUENCES)}, got {kind!r}")


def stability(
    predictions: np.ndarray, neighbours: np.ndarray, consecutive: bool
) -> dict[str, float]:
    """Flip probability and top-5 overlap from (frames, N) predictions and (frames, N, >=5)
    neighbour ids; ``consecutive``: compare each frame with the previous one, else with
    frame 0."""
    reference = slice(0, -1) if consecutive else slice(0, 1)
    before_p, after_p = predictions[reference], predictions[1:]
    flips = float(np.mean(after_p != before_p))
    top = neighbours[..., :5]
    before, after = np.broadcast_to(top[reference], top[1:].shape), top[1:]
    shared = (after[..., :, None] == before[..., None, :]).any(-1).sum(-1)
    return {"flip_probability": flips, "top5_overlap": float(np.mean(shared / top.shape[-1]))}


def measure_sequences(
    x: torch.Tensor,
    frames: int,
    seed: int,
    predict: Callable[[torch.Tensor], tuple[np.ndarray, np.ndarray]],
) -> dict[str, dict[str, float]]:
    """Stability of each sequence kind; ``predict`` maps a batch to (predicted labels,
    neighbour ids (N, >= 5))."""
    out = {}
    for kind in SEQUENCES:
        frames_x = sequence(x, kind, frames, seed)
        labels, ids = zip(*(predict(frame) for frame in frames_x), strict=True)
        out[kind] = stability(np.stack(labels), np.stack(ids), consecutive=kind != "noise")
    return out
