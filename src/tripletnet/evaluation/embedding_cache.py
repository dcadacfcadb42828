"""A cache of a run's embeddings: the same weights on the same samples give the same embeddings.

``tripletnet train`` ends with an evaluation, so the embeddings of the evaluation splits exist
when it finishes; a later ``tripletnet evaluate`` of the run (other options, a calibration, a
threshold) reads them back instead of running the net over every sample again.

One safetensors file per key in the ``embeddings`` folder beside the baseline rows
(``$TRIPLETNET_CACHE_DIR/embeddings``, default ``~/.cache/tripletnet/baselines/embeddings``;
``TRIPLETNET_CACHE_DIR=off`` turns both caches off), written atomically. The key is a BLAKE2 hash
of ``CODE_VERSION``, the bytes of the run's weights file (the net and its normalisation), the
device type that embeds (a GPU's float rounding differs from the CPU's) and the split's identity
(``baseline_cache.data_identity``: its samples' bytes, or image files' paths, sizes and times).
The folder keeps at most ``LIMIT_BYTES``: the least recently used files go first. The figures'
2-D views of the test embeddings (PCA, t-SNE) are kept the same way (``projections_key``:
the embeddings' key and the projection's settings), through the same ``cached_arrays``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save as save_arrays

from ..files import write_atomic
from ..runs.data import Embedded
from .baseline_cache import cache_dir

CODE_VERSION = "embeddings-v1"
FOLDER = "embeddings"
LIMIT_BYTES = 2 * 2**30  # the folder's size, at most
Arrays = dict[str, np.ndarray]  # what one cache file holds: named arrays


def file_digest(path: Path) -> str:
    """A BLAKE2 digest of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def embeddings_key(weights: str, data: str, device: torch.device) -> str:
    """The hex key of a weights digest, a split's identity and the embedding device's type."""
    text = json.dumps([CODE_VERSION, weights, data, device.type])
    return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


def cached_embeddings(key: str, compute: Callable[[], Embedded]) -> tuple[Embedded, bool]:
    """The embeddings stored under ``key``, or ``compute()``d and stored; and whether it was a
    cache hit (``cached_arrays``)."""

    def arrays() -> tuple[Arrays, dict[str, str]]:
        embedded = compute()
        return {
            "embeddings": np.ascontiguousarray(embedded.embeddings, dtype=np.float32),
            "labels": np.ascontiguousarray(embedded.labels),
            "kept": np.ascontiguousarray(embedded.kept, dtype=np.int64),
        }, {"unreadable": json.dumps(embedded.unreadable)}

    stored, meta, hit = cached_arrays(key, arrays)
    unreadable = json.loads(meta.get("unreadable", "[]"))
    embedded = Embedded(stored["embeddings"], stored["labels"], stored["kept"], list(unreadable))
    return embedded, hit


def projections_key(embeddings: str, *settings: object) -> str:
    """The hex key of a split's 2-D views: its embeddings' key and the projection's settings
    (the method's options and the version of the library that projects)."""
    text = json.dumps([CODE_VERSION, "projections", embeddings, *map(str, settings)])
    return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


def cached_arrays(
    key: str, compute: Callable[[], tuple[Arrays, dict[str, str]]]
) -> tuple[Arrays, dict[str, str], bool]:
    """The arrays and metadata stored under ``key``, or ``compute()``d and stored; and whether
    it was a cache hit. A damaged or mismatched file is recomputed and replaced; a read-only
    cache folder costs the time, never the evaluation."""
    directory = cache_dir()
    if directory is None:
        return *compute(), False
    folder = directory / FOLDER
    path = folder / f"{key}.safetensors"
    stored = _read(path, key)
    if stored is not None:
        path.touch()  # recently used: the last to be evicted
        return *stored, True
    arrays, meta = compute()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        data = save_arrays(arrays, metadata={**meta, "key": key, "version": CODE_VERSION})
        write_atomic(path, lambda tmp: tmp.write_bytes(data))
        _evict(folder, keep=path)
    except OSError:
        pass
    return arrays, meta, False


def _read(path: Path, key: str) -> tuple[Arrays, dict[str, str]] | None:
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="np") as stored:
            meta = stored.metadata() or {}
            if meta.get("key") != key:
                return None
            names = stored.keys()  # a safe_open is not iterable
            return {name: stored.get_tensor(name) for name in names}, meta
    except (OSError, SafetensorError, ValueError):  # damaged: recomputed
        return None


def _evict(folder: Path, keep: Path, limit: int = LIMIT_BYTES) -> None:
    """Delete the least recently used files until the folder holds at most ``limit`` bytes
    (``keep``, the file just written, stays)."""
    files = sorted(folder.glob("*.safetensors"), key=lambda p: p.stat().st_mtime)
    total = sum(p.stat().st_size for p in files)
    for old in files:
        if total <= limit:
            break
        if old != keep:
            total -= old.stat().st_size
            old.unlink(missing_ok=True)
