"""From a batch of sample indices to the tensor the net eats, on the device.

In-memory samples that fit on a GPU (a quarter of its free memory) move there once, as they
are (uint8 images stay uint8); each batch is then gathered, normalised and augmented on the GPU,
and an epoch's indices cross to it in one copy. Larger in-memory sets are gathered on the host
into pinned buffers and copied without blocking. Image files are decoded by DataLoader workers
(in the order the method chose the batches; pinned memory and non-blocking copies for a GPU); an
unreadable image is replaced by another image of its class and counted (``--strict``: an error
naming the file).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..data import ImageFiles, ImageFilesDataset, Normalizer
from ..data.augment import ImageAugmentation, augment
from ..errors import DataFileError
from ..models import channels_last
from ..robustness.corruptions import corrupted


@dataclass
class Augmentation:
    """The training augmentations: random resized crop, flip and colour jitter on raw pixel
    values (0..``top``), then the shift of Hoffer et al. on normalised ones."""

    shift: int = 0
    mirror: bool = False
    crop: bool = False
    jitter: float = 0.0
    top: float | None = None
    corruptions: str | None = None  # "random" or "augmix" (robustness.corruptions)

    def raw(self) -> ImageAugmentation:
        return ImageAugmentation(crop=self.crop, jitter=self.jitter, top=self.top)


def corruption_augmentation(options: Any) -> str | None:
    """The run's ``--augment-corruptions`` (``--augmix``) as ``Augmentation.corruptions``."""
    if not options.augment_corruptions:
        return None
    return "augmix" if options.augmix else "random"


@dataclass
class Pipeline:
    """Batches of indices into ``samples`` (an array or ``ImageFiles``) -> device tensors."""

    samples: Any
    labels: np.ndarray
    normalizer: Normalizer
    device: torch.device
    augmentation: Augmentation = field(default_factory=Augmentation)
    workers: int = 0
    strict: bool = False
    cache_bytes: int = 0  # image files that decode to at most this many bytes are kept
    unreadable: set[int] = field(default_factory=set)  # samples replaced so far

    def __post_init__(self) -> None:
        self.raw_augmentation = self.augmentation.raw()
        self.streamed = isinstance(self.samples, ImageFiles)
        if self.streamed and int(np.prod(self.samples.shape)) <= self.cache_bytes:
            self.samples, self.streamed = self.decode_all(), False
        if not self.streamed:
            self.tensor = torch.from_numpy(np.ascontiguousarray(self.samples))
        self.resident = not self.streamed and fits_on(self.device, self.tensor.nbytes)
        if self.resident:
            self.tensor = self.tensor.to(self.device)
        self.staging = PinnedStaging(self.device) if self.device.type == "cuda" else None

    def decode_all(self) -> np.ndarray:
        """Every image file, decoded once by the workers (unreadable ones substituted)."""
        everything = np.arange(len(self.samples))
        batches = [everything[start : start + 256] for start in range(0, len(everything), 256)]
        return torch.cat([images for _, images in self._decoded(batches)]).numpy()

    def prepare(self, raw: torch.Tensor, train: bool = True) -> torch.Tensor:
        """Raw samples (on any device) -> normalised, augmented, channels-last on the device."""
        batch = raw.to(self.device, non_blocking=True)
        if train and self.raw_augmentation.active:
            batch = self.raw_augmentation(batch.float())
        if train and self.augmentation.corruptions and batch.ndim == 4:
            batch = corrupted(batch, self.augmentation.top, self.augmentation.corruptions)
        batch = self.normalizer(batch)
        if train:
            batch = augment(batch, self.augmentation.shift, self.augmentation.mirror)
        return channels_last(batch)

    def evaluation_prepare(self, raw: torch.Tensor) -> torch.Tensor:
        """``prepare`` without the augmentations, for embedding held-out samples."""
        return self.prepare(raw, train=False)

    def epoch(self, batches: Sequence[np.ndarray]) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        """Each batch of indices with its prepared tensor, in order."""
        if self.resident:
            if not batches:
                return
            everything = torch.from_numpy(np.concatenate(batches)).to(self.device)
            ends = np.cumsum([len(indices) for indices in batches])
            for indices, end in zip(batches, ends, strict=True):
                yield indices, self.prepare(self.tensor[everything[end - len(indices) : end]])
            return
        if not self.streamed:
            for indices in batches:
                rows = torch.from_numpy(indices)
                raw = self.tensor[rows] if self.staging is None else self.staging(self.tensor, rows)
                yield indices, self.prepare(raw)
            return
        for indices, images in self._decoded(batches):
            yield indices, self.prepare(images)

    def _decoded(self, batches: Sequence[np.ndarray]) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        """Each batch's raw images, decoded by the workers in this order."""
        loader = DataLoader(
            ImageFilesDataset(self.samples, strict=self.strict),
            batch_sampler=[list(map(int, indices)) for indices in batches],
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            prefetch_factor=4 if self.workers else None,
            persistent_workers=False,
            generator=torch.Generator(),  # its seed draw leaves torch's global generator alone
        )
        for indices, (images, _, ok) in zip(batches, loader, strict=True):
            if not bool(ok.all()):
                images = self.substitute(images, indices, ok)
            yield indices, images

    def substitute(
        self, images: torch.Tensor, indices: np.ndarray, ok: torch.Tensor
    ) -> torch.Tensor:
        """Replace each unreadable image by a readable one of the same class."""
        images = images.clone()
        for row in np.flatnonzero(~ok.numpy()):
            bad = int(indices[row])
            self.unreadable.add(bad)
            same_class = np.flatnonzero(self.labels == self.labels[bad])
            start = int(np.searchsorted(same_class, bad))
            for candidate in np.roll(same_class, -start)[1:]:
                if int(candidate) in self.unreadable:
                    continue
                sample = self.samples.try_read(int(candidate))
                if sample is not None:
                    images[row] = torch.from_numpy(sample)
                    break
                self.unreadable.add(int(candidate))
            else:
                raise DataFileError(
                    f"every image of class {self.labels[bad]} is unreadable (e.g. "
                    f"{self.samples.path(bad)}); check the files or remove the class"
                )
        return images


def fits_on(device: torch.device, nbytes: int) -> bool:
    """Does a tensor of ``nbytes`` belong on ``device`` for the whole run (a GPU with four
    times that free)? The CPU: it is there already."""
    if device.type != "cuda":
        return device.type != "cpu" and nbytes <= 1 << 30  # mps: up to 1 GiB
    free, _ = torch.cuda.mem_get_info(device)
    return 4 * nbytes <= free


class PinnedStaging:
    """Rows of a host tensor gathered into page-locked buffers, two in turn, so that a batch's
    copy to the GPU runs while the next one is gathered; a buffer is reused only once its copy
    has finished (a CUDA event)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.buffers: list[torch.Tensor] = []
        self.copied: list[torch.cuda.Event | None] = [None, None]
        self.turn = 0

    def __call__(self, source: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        self.turn ^= 1
        shape = (len(rows), *source.shape[1:])
        if len(self.buffers) < 2 or self.buffers[0].dtype != source.dtype:
            self.buffers = [torch.empty(0, dtype=source.dtype).pin_memory() for _ in range(2)]
        if self.buffers[self.turn].numel() < int(np.prod(shape)):
            self.buffers[self.turn] = torch.empty(shape, dtype=source.dtype).pin_memory()
        event = self.copied[self.turn]
        if event is not None:
            event.synchronize()  # the buffer's last copy has left it
        buffer = self.buffers[self.turn].view(-1)[: int(np.prod(shape))].view(shape)
        torch.index_select(source, 0, rows, out=buffer)
        batch = buffer.to(self.device, non_blocking=True)
        self.copied[self.turn] = torch.cuda.Event()
        self.copied[self.turn].record()  # type: ignore[union-attr]
        return batch
