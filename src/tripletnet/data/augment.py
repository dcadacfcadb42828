"""Mild augmentation for fine-tuning (Hoffer, Hubara & Ailon 2016): small translations and
horizontal mirroring of a normalised (N, C, H, W) batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..windows import crop_windows


def augment(batch: torch.Tensor, max_shift: int = 0, mirror: bool = False) -> torch.Tensor:
    """Shift each image by up to ``max_shift`` pixels each way (edges replicated) and, with
    ``mirror``, flip half of them left-right. Uses torch's global generator (seeded by the trainer).
    Vectors (N, D) and ``max_shift=0, mirror=False`` pass through unchanged.
    """
    if batch.ndim != 4 or (max_shift == 0 and not mirror):
        return batch
    n, _, height, width = batch.shape
    if max_shift:
        padded = F.pad(batch, (max_shift,) * 4, mode="replicate")
        top, left = torch.randint(0, 2 * max_shift + 1, (2, n)).to(batch.device)
        batch = crop_windows(padded, top, left, height, width)
    if mirror:
        flip = (torch.rand(n) < 0.5).to(batch.device)[:, None, None, None]
        batch = torch.where(flip, batch.flip(-1), batch)
    return batch
