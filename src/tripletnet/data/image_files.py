"""A lazy, array-like set of image files: indexing decodes, nothing else is held in memory.

The paths live in one byte buffer and an offset array (no Python object per file), so a
million-image folder costs tens of megabytes, pickles to DataLoader workers cheaply, and forked
workers do not copy it page by page as they touch reference counts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import DataFileError
from .images import UnreadableImageError, open_image, read_header, to_array

Index = int | np.integer | slice | np.ndarray | Sequence[int]


class ImageSizeError(DataFileError):
    """Images of different sizes without ``--image-size`` to bring them to one."""


def size_mismatch(path: str, size: tuple[int, int], first: str, frame: tuple[int, int]) -> str:
    return (
        f"{path} is {size[1]}x{size[0]} pixels but {first} is {frame[1]}x{frame[0]}: the images "
        "differ in size; pass --image-size N to resize and centre-crop every image to N x N"
    )


class ImageFiles:
    """N image files seen as an (N, C, H, W) uint8 array that decodes on indexing.

    ``x[i]`` is a (C, H, W) array, ``x[rows]`` (slice, list or integer array) a (k, C, H, W)
    stack; both raise UnreadableImageError for the first bad file. With ``size`` every image is
    resized and centre-cropped to size x size (``images.to_array``); with ``size=None`` all must
    share the first image's size (``frame`` gives it when the caller already read it).
    """

    ndim = 4
    dtype = np.dtype(np.uint8)

    def __init__(
        self,
        paths: Sequence[str | Path],
        channels: int,
        size: int | None,
        *,
        frame: tuple[int, int] | None = None,
        frame_source: str | None = None,
    ) -> None:
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        if size is not None and size < 1:
            raise ValueError(f"size must be a positive number of pixels, got {size}")
        encoded = [os.fsencode(os.fspath(path)) for path in paths]
        lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
        self._offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self._blob = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()
        self.channels = channels
        self.size = size
        self._frame = (size, size) if size is not None else frame
        self._first = frame_source  # the file the frame was taken from, for error messages

    # -- paths --------------------------------------------------------------------------
    def path(self, i: int) -> Path:
        return Path(self._path_str(i))

    def _path_str(self, i: int) -> str:
        start, stop = self._offsets[i], self._offsets[i + 1]
        return os.fsdecode(self._blob[start:stop].tobytes())

    @property
    def paths(self) -> list[Path]:
        return [self.path(i) for i in range(len(self))]

    def subset(self, rows: np.ndarray | Sequence[int]) -> ImageFiles:
        """The files at ``rows`` (no decoding), with the same channels, size and frame."""
        rows = self._rows(np.asarray(rows, dtype=np.int64))
        starts = self._offsets[rows]
        lengths = self._offsets[rows + 1] - starts
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        # byte k of the new buffer comes from starts[r] + (k - offsets[r]) for its row r
        gather = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        out = object.__new__(ImageFiles)
        out._offsets, out._blob = offsets, self._blob[gather]
        out.channels, out.size = self.channels, self.size
        out._frame, out._first = self._frame, self._first
        return out

    # -- array-like --------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._offsets) - 1

    @property
    def frame(self) -> tuple[int, int]:
        """(H, W) of every sample: (size, size), or the first image's size."""
        if self._frame is None:
            if not len(self):
                raise DataFileError("an empty set of image files has no image size")
            self._first = self._path_str(0)
            header = read_header(self._first)
            self._frame = (header.height, header.width)
        return self._frame

    @property
    def shape(self) -> tuple[int, int, int, int]:
        height, width = self.frame
        return (len(self), self.channels, height, width)

    def read(self, i: int) -> np.ndarray:
        """Decode file ``i`` to (C, H, W) uint8; UnreadableImageError names a bad file."""
        path = self._path_str(i)
        try:
            sample = to_array(open_image(path), self.channels, self.size)
        except UnreadableImageError as error:
            raise UnreadableImageError(
                f"{error}; replace or remove the file (without --strict it is skipped and counted)"
            ) from error
        frame = self.frame
        if sample.shape[1:] != frame:
            first = self._first or "the first image"
            raise ImageSizeError(size_mismatch(path, sample.shape[1:], first, frame))
        return sample

    def try_read(self, i: int) -> np.ndarray | None:
        """Like ``read``, but None for an unreadable file (a size mismatch still raises)."""
        try:
            return self.read(i)
        except UnreadableImageError:
            return None

    def _rows(self, rows: np.ndarray) -> np.ndarray:
        if rows.dtype == bool:
            if len(rows) != len(self):
                raise IndexError(f"a mask of {len(rows)} for {len(self)} files")
            return np.flatnonzero(rows)
        if rows.size and (rows.max() >= len(self) or rows.min() < -len(self)):
            raise IndexError(f"index out of range for {len(self)} files")
        return np.where(rows < 0, rows + len(self), rows).astype(np.int64)

    def __getitem__(self, index: Index) -> np.ndarray:
        if isinstance(index, (int, np.integer)):
            i = int(index)
            if not -len(self) <= i < len(self):
                raise IndexError(f"index {i} out of range for {len(self)} files")
            return self.read(i % len(self))
        if isinstance(index, slice):
            rows = np.arange(len(self))[index]
        else:
            rows = self._rows(np.asarray(index))
        out = np.empty((len(rows), *self.shape[1:]), dtype=np.uint8)
        for k, row in enumerate(rows):
            out[k] = self.read(int(row))
        return out

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self.read(i)

    def __repr__(self) -> str:
        size = f"{self.size}x{self.size}" if self.size else "own size"
        return f"ImageFiles({len(self)} files, {self.channels} channel(s), {size})"

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__)  # two numpy arrays and a few scalars: cheap to pickle


class ImageFilesDataset(Dataset[tuple[torch.Tensor, int, bool]]):
    """A torch Dataset over ImageFiles: item ``i`` is (uint8 tensor (C, H, W), i, ok).

    An unreadable file gives a zero image and ``ok=False`` (the training pipeline substitutes and
    counts those); with ``strict`` it raises UnreadableImageError naming the file instead.
    ``labels`` (N,) are kept beside for samplers; batches carry the index to look them up.
    """

    def __init__(self, files: ImageFiles, labels: np.ndarray | None = None, strict: bool = False):
        if labels is not None and len(labels) != len(files):
            raise ValueError(f"{len(files)} files but {len(labels)} labels")
        self.files = files
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.strict = strict

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, bool]:
        sample = self.files.read(i) if self.strict else self.files.try_read(i)
        if sample is None:
            return torch.zeros(self.files.shape[1:], dtype=torch.uint8), i, False
        return torch.from_numpy(sample), i, True


def image_loader(
    files: ImageFiles,
    batch_size: int = 256,
    workers: int = 2,
    strict: bool = False,
    shuffle: bool = False,
    pin_memory: bool = False,
) -> DataLoader[tuple[torch.Tensor, int, bool]]:
    """A DataLoader of (uint8 images (B, C, H, W), indices (B,), ok (B,)) whose ``workers``
    processes decode the files; pin memory only when the batches go to a GPU."""
    return DataLoader(
        ImageFilesDataset(files, strict=strict),
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=workers,
        pin_memory=pin_memory,
    )
