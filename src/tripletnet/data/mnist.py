"""MNIST, Fashion-MNIST and KMNIST from the official idx ``.gz`` files."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataFileError
from .arrays import DatasetSplits, LabelledArray
from .download import RemoteFile, ensure_file

IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

MIRRORS = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion-mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "kmnist": "http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
}

MD5S = {
    "mnist": (
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "d53e105ee54ea40749a09fcbcd1e9432",
        "9fb629c4189551a2d022fa330f9573f3",
        "ec29112dd5afa0611ce80d1b7f02629c",
    ),
    "fashion-mnist": (
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "25c81989df183df01b3e8a0aad5dffbe",
        "bef4ecab320f06d8554ea6380940ec79",
        "bb300cfdad3c16e7a12a480ee83cd310",
    ),
    "kmnist": (
        "bdb82020997e1d708af4cf47b453dcf7",
        "e144d726b3acfaa3e44228e80efcd344",
        "5c965bf0a639b31b8f53240b1b52f4d7",
        "7320c461ea6c1c855c0b718fb2a4b134",
    ),
}

CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "fashion-mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
    "kmnist": ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"],
}

IDX_MAGIC = {1: 0x00000801, 3: 0x00000803}


def remote_files(name: str) -> list[RemoteFile]:
    return [
        RemoteFile(filename, MIRRORS[name] + filename, md5)
        for filename, md5 in zip(IDX_FILES, MD5S[name], strict=True)
    ]


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read an unsigned-byte idx file (gzipped or not) with ``ndim`` dimensions.

    Format: big-endian magic 0x0000080{ndim}, then ``ndim`` uint32 sizes, then the bytes.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError, zlib.error) as error:
        raise DataFileError(
            f"{path} is not a readable idx file ({error}); download it again"
        ) from error
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DataFileError(f"{path} is truncated: {len(raw)} bytes, shorter than an idx header")
    (magic,) = struct.unpack(">I", raw[:4])
    if magic != IDX_MAGIC[ndim]:
        raise DataFileError(
            f"{path} has magic number {magic:#010x}, expected {IDX_MAGIC[ndim]:#010x} "
            f"(an idx file of uint8 with {ndim} dimensions)"
        )
    shape = struct.unpack(f">{ndim}I", raw[4:header_size])
    expected = int(np.prod(shape))
    if len(raw) - header_size != expected:
        raise DataFileError(
            f"{path} holds {len(raw) - header_size} bytes of data but its header says "
            f"{'x'.join(map(str, shape))} = {expected}: the file is truncated or corrupt"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape).copy()


def load_idx_dataset(
    name: str, data_dir: Path | None, download: bool = False, verify_md5: bool = True
) -> DatasetSplits:
    """Load one of the MNIST family from ``data_dir``; images come back as (N, 1, 28, 28) uint8."""
    if verify_md5:
        paths = [ensure_file(remote, data_dir, download) for remote in remote_files(name)]
    else:
        assert data_dir is not None
        paths = [Path(data_dir) / filename for filename in IDX_FILES]
    train_x, train_y, test_x, test_y = (
        read_idx(path, 3 if "images" in path.name else 1) for path in paths
    )
    for images, labels in ((train_x, train_y), (test_x, test_y)):
        if len(images) != len(labels):
            raise DataFileError(f"{name}: {len(images)} images but {len(labels)} labels")
    return DatasetSplits(
        name=name,
        train=LabelledArray(train_x[:, None], train_y),
        test=LabelledArray(test_x[:, None], test_y),
        num_classes=10,
        class_names=CLASS_NAMES[name],
    )
