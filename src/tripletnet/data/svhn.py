"""SVHN (cropped digits, 32x32) from the official ``.mat`` files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from ..errors import DataFileError
from .arrays import DatasetSplits, LabelledArray
from .download import RemoteFile, ensure_file

BASE_URL = "http://ufldl.stanford.edu/housenumbers/"
FILES = {
    "train": RemoteFile(
        "train_32x32.mat", BASE_URL + "train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373"
    ),
    "test": RemoteFile(
        "test_32x32.mat", BASE_URL + "test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3"
    ),
    "extra": RemoteFile(
        "extra_32x32.mat", BASE_URL + "extra_32x32.mat", "a93ce644f1a588dc4d68dda5feec44a7"
    ),
}


def read_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read ``X`` (32, 32, 3, N) and ``y`` (N, 1) with labels 1..10 (10 is the digit 0).

    Returns images (N, 3, 32, 32) uint8 and labels 0..9.
    """
    try:
        mat = scipy.io.loadmat(path)
    except Exception as error:  # scipy raises several types for a damaged file
        raise DataFileError(
            f"{path} is not a readable .mat file ({error}); download it again"
        ) from error
    if "X" not in mat or "y" not in mat:
        raise DataFileError(f"{path} has no X and y arrays; it is not an SVHN file")
    images, labels = np.asarray(mat["X"]), np.asarray(mat["y"]).reshape(-1)
    if images.ndim != 4 or images.shape[:3] != (32, 32, 3) or images.shape[3] != len(labels):
        raise DataFileError(f"{path}: X has shape {images.shape} for {len(labels)} labels")
    if labels.min() < 1 or labels.max() > 10:
        raise DataFileError(
            f"{path}: labels must lie in 1..10, found {labels.min()}..{labels.max()}"
        )
    return np.ascontiguousarray(images.transpose(3, 2, 0, 1)).astype(np.uint8), labels.astype(
        np.int64
    ) % 10


def load_svhn(data_dir: Path | None, download: bool = False, extra: bool = False) -> DatasetSplits:
    """SVHN train (plus ``extra`` when asked: the paper trains on train + extra) and test."""
    parts = ["train", "extra"] if extra else ["train"]
    train = [read_mat(ensure_file(FILES[p], data_dir, download)) for p in parts]
    return DatasetSplits(
        name="svhn-extra" if extra else "svhn",
        train=LabelledArray(
            np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])
        ),
        test=LabelledArray(*read_mat(ensure_file(FILES["test"], data_dir, download))),
        num_classes=10,
        class_names=[str(d) for d in range(10)],
    )
