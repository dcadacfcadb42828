"""CIFAR-10 from the official python-pickle batches, unpickled with an allow-list."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataFileError
from .arrays import DatasetSplits, LabelledArray
from .download import RemoteFile, ensure_file, md5_of

ARCHIVE = RemoteFile(
    "cifar-10-python.tar.gz",
    "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "c58f30108f718f92721af3b95e74349a",
)
FOLDER = "cifar-10-batches-py"
BATCH_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
CLASS_NAMES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
IMAGES_PER_BATCH = 10_000


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only; anything else is refused."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")


def read_batch(raw: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse one CIFAR batch: ``data`` (N, 3072) uint8 and ``labels`` -> (N, 3, 32, 32), (N,)."""
    try:
        batch = _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except Exception as error:  # any malformed pickle is a data error, never a crash deeper in
        raise DataFileError(
            f"{source} is not a CIFAR-10 batch ({error}); download it again"
        ) from error
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise DataFileError(
            f"{source}: data has shape {data.shape} with {len(labels)} labels, "
            "expected (N, 3072) and N labels"
        )
    return data.reshape(-1, 3, 32, 32), labels


def _batch_bytes(data_dir: Path, download: bool) -> dict[str, bytes]:
    folder = data_dir / FOLDER
    if folder.is_dir():
        out = {}
        for name, md5 in BATCH_MD5.items():
            path = folder / name
            if not path.is_file():
                raise DataFileError(f"missing {path}; extract {ARCHIVE.filename} again")
            if md5_of(path) != md5:
                raise DataFileError(f"{path} fails its md5 check ({md5}); extract it again")
            out[name] = path.read_bytes()
        return out
    archive = ensure_file(ARCHIVE, data_dir, download)
    out = {}
    with tarfile.open(archive, "r:gz") as tar:
        for name in BATCH_MD5:
            member = tar.extractfile(f"{FOLDER}/{name}")
            if member is None:
                raise DataFileError(f"{archive} has no {FOLDER}/{name}")
            out[name] = member.read()
    return out


def load_cifar10(data_dir: Path | None, download: bool = False) -> DatasetSplits:
    """CIFAR-10 from ``cifar-10-python.tar.gz`` or its extracted ``cifar-10-batches-py`` folder."""
    if data_dir is None:
        ensure_file(ARCHIVE, data_dir)  # raises the standard "pass --data-dir" error
    assert data_dir is not None
    batches = {
        name: read_batch(raw, name) for name, raw in _batch_bytes(Path(data_dir), download).items()
    }
    train = [batches[f"data_batch_{i}"] for i in range(1, 6)]
    return DatasetSplits(
        name="cifar10",
        train=LabelledArray(
            np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])
        ),
        test=LabelledArray(*batches["test_batch"]),
        num_classes=10,
        class_names=CLASS_NAMES,
    )
