"""Dataset parsing on small files the tests generate; corrupt input gives clear errors."""

import gzip
import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from tripletnet.data import cifar, load_dataset, mnist, stl10, svhn
from tripletnet.data.download import RemoteFile, ensure_file
from tripletnet.errors import DataFileError, TripletnetError


def write_idx(
    path: Path, array: np.ndarray, magic: int | None = None, compress: bool = True
) -> Path:
    header = struct.pack(">I", magic if magic is not None else 0x800 + array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def test_read_idx_images_and_labels(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = np.arange(7, dtype=np.uint8)
    np.testing.assert_array_equal(mnist.read_idx(write_idx(tmp_path / "i.gz", images), 3), images)
    np.testing.assert_array_equal(
        mnist.read_idx(write_idx(tmp_path / "l", labels, compress=False), 1), labels
    )


def test_read_idx_wrong_magic(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "x.gz", np.zeros((2, 3, 3)), magic=0x0D03)
    with pytest.raises(DataFileError, match="magic number"):
        mnist.read_idx(path, 3)


def test_read_idx_truncated(tmp_path: Path) -> None:
    path = tmp_path / "t.gz"
    write_idx(path, np.zeros((4, 28, 28)))
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(DataFileError, match="truncated"):
        mnist.read_idx(path, 3)


def test_read_idx_corrupt_gzip(tmp_path: Path) -> None:
    path = tmp_path / "c.gz"
    path.write_bytes(gzip.compress(b"\x00" * 1000)[:30])
    with pytest.raises(DataFileError):
        mnist.read_idx(path, 3)


def test_missing_file_names_file_md5_and_url(tmp_path: Path) -> None:
    with pytest.raises(DataFileError) as error:
        load_dataset("mnist", tmp_path)
    message = str(error.value)
    assert "train-images-idx3-ubyte.gz" in message
    assert "f68b3c2dcbeaaa9fbdd348bbdeb94873" in message
    assert "https://" in message


def test_md5_mismatch_is_reported(tmp_path: Path) -> None:
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((2, 28, 28)))
    with pytest.raises(DataFileError, match="md5"):
        load_dataset("mnist", tmp_path)


def test_idx_dataset_loads_when_md5s_match(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    files = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (6, 28, 28)),
        "train-labels-idx1-ubyte.gz": np.array([0, 1, 2, 0, 1, 2]),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (3, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": np.array([2, 1, 0]),
    }
    md5s = tuple(
        hashlib.md5(write_idx(tmp_path / name, array).read_bytes()).hexdigest()
        for name, array in files.items()
    )
    monkeypatch.setitem(mnist.MD5S, "kmnist", md5s)
    data = load_dataset("kmnist", tmp_path)
    assert data.train.x.shape == (6, 1, 28, 28) and data.test.x.shape == (3, 1, 28, 28)
    assert data.class_names[0] == "o"


def test_download_checks_md5_and_writes_atomically(tmp_path: Path) -> None:
    source = tmp_path / "server" / "file.bin"
    source.parent.mkdir()
    source.write_bytes(b"official bytes")
    md5 = hashlib.md5(b"official bytes").hexdigest()
    target_dir = tmp_path / "data"
    path = ensure_file(RemoteFile("file.bin", source.as_uri(), md5), target_dir, fetch=True)
    assert path.read_bytes() == b"official bytes"
    with pytest.raises(DataFileError, match="md5"):
        ensure_file(RemoteFile("other.bin", source.as_uri(), "0" * 32), target_dir, fetch=True)
    assert sorted(p.name for p in target_dir.iterdir()) == ["file.bin"]  # nothing half-written left


def test_cifar_batch_parses_and_refuses_code(tmp_path: Path) -> None:
    data = np.random.default_rng(0).integers(0, 256, (4, 3072), dtype=np.uint8)
    raw = pickle.dumps({b"data": data, b"labels": [0, 1, 2, 3]}, protocol=2)
    images, labels = cifar.read_batch(raw, "batch")
    assert images.shape == (4, 3, 32, 32)
    np.testing.assert_array_equal(images.reshape(4, -1), data)
    np.testing.assert_array_equal(labels, [0, 1, 2, 3])

    class Exploit:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (print, ("pwned",))

    with pytest.raises(DataFileError, match="not a CIFAR-10 batch"):
        cifar.read_batch(pickle.dumps(Exploit()), "evil")
    with pytest.raises(DataFileError, match="shape"):
        cifar.read_batch(pickle.dumps({b"data": data[:, :100], b"labels": [0, 1, 2, 3]}), "short")


def test_svhn_mat_parses_and_maps_label_10_to_0(tmp_path: Path) -> None:
    x = np.random.default_rng(0).integers(0, 256, (32, 32, 3, 5), dtype=np.uint8)
    y = np.array([[1], [10], [3], [10], [9]])
    scipy.io.savemat(tmp_path / "s.mat", {"X": x, "y": y})
    images, labels = svhn.read_mat(tmp_path / "s.mat")
    assert images.shape == (5, 3, 32, 32)
    np.testing.assert_array_equal(images[1, 2], x[:, :, 2, 1])
    np.testing.assert_array_equal(labels, [1, 0, 3, 0, 9])
    (tmp_path / "bad.mat").write_bytes(b"not a mat file at all")
    with pytest.raises(DataFileError):
        svhn.read_mat(tmp_path / "bad.mat")


def test_stl10_binary_parses_column_major(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, (2, 3, 96, 96), dtype=np.uint8)
    # the file stores each channel column-major: write the transposed array
    images.transpose(0, 1, 3, 2).tofile(tmp_path / "x.bin")
    np.testing.assert_array_equal(stl10.read_images(tmp_path / "x.bin"), images)
    np.array([1, 10], dtype=np.uint8).tofile(tmp_path / "y.bin")
    np.testing.assert_array_equal(stl10.read_labels(tmp_path / "y.bin", 2), [0, 9])
    (tmp_path / "short.bin").write_bytes(b"\x00" * 1000)
    with pytest.raises(DataFileError, match="truncated"):
        stl10.read_images(tmp_path / "short.bin")


def test_digits_split_is_stratified() -> None:
    data = load_dataset("digits")
    assert len(data.test) == 450 and len(data.train) == 1347
    share = np.bincount(data.test.y) / np.bincount(np.concatenate([data.train.y, data.test.y]))
    np.testing.assert_allclose(share, 0.25, atol=0.01)


def test_unknown_dataset() -> None:
    with pytest.raises(TripletnetError, match="unknown dataset 'imagenet'"):
        load_dataset("imagenet")


def test_catalogue_records_name_a_loader_and_a_net() -> None:
    """Each built-in dataset's record (data/catalogue.py) names a loader that exists and a net
    that models builds; your own data gets no net until its shape is known."""
    import importlib

    from tripletnet.data.catalogue import BUILT_IN, facts
    from tripletnet.models import ARCHITECTURES

    for name, record in BUILT_IN.items():
        assert record.name == name and record.default_net in ARCHITECTURES
        assert record.loader is not None
        module, function = record.loader.split(":")
        assert callable(getattr(importlib.import_module(f"tripletnet.data.{module}"), function))
    assert facts("a/folder").default_net is None and facts("a/folder").pixel_top == 255.0
