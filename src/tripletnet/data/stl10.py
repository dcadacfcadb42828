"""STL-10 (96x96) from the official binary release: 5,000 train, 8,000 test, 100,000 unlabelled."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np

from ..errors import DataFileError
from .arrays import DatasetSplits, LabelledArray
from .download import RemoteFile, ensure_file

ARCHIVE = RemoteFile(
    "stl10_binary.tar.gz",
    "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",
    "91f7769df0f17e558f3565bffb0c7dfb",
)
FOLDER = "stl10_binary"
IMAGE_BYTES = 3 * 96 * 96
CLASS_NAMES = [
    "airplane",
    "bird",
    "car",
    "cat",
    "deer",
    "dog",
    "horse",
    "monkey",
    "ship",
    "truck",
]


def read_images(path: Path) -> np.ndarray:
    """Images are stored column-major per channel: read (N, 3, 96, 96) and swap H and W."""
    size = path.stat().st_size
    if size == 0 or size % IMAGE_BYTES:
        raise DataFileError(
            f"{path} has {size} bytes, not a whole number of {IMAGE_BYTES}-byte images: "
            "it is truncated; extract it again"
        )
    images = np.fromfile(path, dtype=np.uint8).reshape(-1, 3, 96, 96)
    return np.ascontiguousarray(images.transpose(0, 1, 3, 2))


def read_labels(path: Path, count: int) -> np.ndarray:
    labels = np.fromfile(path, dtype=np.uint8).astype(np.int64)
    if len(labels) != count:
        raise DataFileError(f"{path} has {len(labels)} labels for {count} images")
    if labels.min() < 1 or labels.max() > 10:
        raise DataFileError(
            f"{path}: labels must lie in 1..10, found {labels.min()}..{labels.max()}"
        )
    return labels - 1


def _folder(data_dir: Path | None, download: bool) -> Path:
    if data_dir is not None and (Path(data_dir) / FOLDER).is_dir():
        return Path(data_dir) / FOLDER
    archive = ensure_file(ARCHIVE, data_dir, download)
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(archive.parent, filter="data")
    return archive.parent / FOLDER


def load_stl10(
    data_dir: Path | None, download: bool = False, unlabelled: bool = False
) -> DatasetSplits:
    folder = _folder(data_dir, download)
    splits = {}
    for split in ("train", "test"):
        images_path = folder / f"{split}_X.bin"
        if not images_path.is_file():
            raise DataFileError(f"missing {images_path}; extract {ARCHIVE.filename} again")
        images = read_images(images_path)
        splits[split] = LabelledArray(images, read_labels(folder / f"{split}_y.bin", len(images)))
    return DatasetSplits(
        name="stl10",
        train=splits["train"],
        test=splits["test"],
        num_classes=10,
        unlabelled=read_images(folder / "unlabeled_X.bin") if unlabelled else None,
        class_names=CLASS_NAMES,
    )
