"""A run's data, read back as it was trained, and a split embedded with its net."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..data import DatasetSplits, ImageFiles, ImageFilesDataset, LabelledArray, SourceOptions
from ..data import load_dataset as load_source
from ..models import channels_last
from ..progress import progress
from .config import RunConfig
from .embed import embed


def load_data(config: RunConfig) -> DatasetSplits:
    """The dataset of a run, split as its options say (the same seed, the same split)."""
    data = config.data
    options = SourceOptions(data.image_size, data.split, config.optim.seed, data.strict)
    return load_source(data.dataset, data.data_dir, data.download, options)


@dataclass
class Embedded:
    """A split's embeddings and labels, without the samples whose file could not be read."""

    embeddings: np.ndarray
    labels: np.ndarray
    kept: np.ndarray  # rows of the split that are here (all, unless files were unreadable)
    unreadable: list[str]  # paths of the files left out


@torch.no_grad()
def embed_split(
    model: nn.Module,
    part: LabelledArray,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device | str = "cpu",
    workers: int = 0,
    batch_size: int = 256,
) -> Embedded:
    """Embed a split; image files are decoded by ``workers`` processes and an unreadable one
    is left out (and named), never embedded as a blank."""
    if not isinstance(part.x, ImageFiles):
        rows = np.arange(len(part))
        return Embedded(embed(model, part.x, prepare, device=device), part.y, rows, [])
    was_training = model.training
    model.eval()
    loader = DataLoader(
        ImageFilesDataset(part.x), batch_size=batch_size, num_workers=workers, shuffle=False
    )
    chunks, kept = [], []
    bar = progress(total=len(part), desc="embedding", unit="image", delay=2)
    for images, indices, ok in loader:
        if bool(ok.any()):
            chunks.append(model(channels_last(prepare(images[ok]).to(device))).float().cpu())
            kept.append(indices[ok].numpy())
        bar.update(len(indices))
    bar.close()
    model.train(was_training)
    rows = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
    dim = int(getattr(model, "embedding_dim", 0))
    embeddings = torch.cat(chunks).numpy() if chunks else np.zeros((0, dim), np.float32)
    missing = np.setdiff1d(np.arange(len(part)), rows)
    return Embedded(embeddings, part.y[rows], rows, [str(part.x.path(int(i))) for i in missing])
