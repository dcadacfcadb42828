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
The folder keeps at most ``LIMIT_BYTES``: the least recently used files go first.
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
    cache hit. A damaged or mismatched file is recomputed and replaced; a read-only cache folder
    costs the time, never the evaluation."""
    directory = cache_dir()
    if directory is None:
        return compute(), False
    folder = directory / FOLDER
    path = folder / f"{key}.safetensors"
    stored = _read(path, key)
    if stored is not None:
        path.touch()  # recently used: the last to be evicted
        return stored, True
    embedded = compute()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _write(path, key, embedded)
        _evict(folder, keep=path)
    except OSError:
        pass
    return embedded, False


def _read(path: Path, key: str) -> Embedded | None:
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="np") as stored:
            meta = stored.metadata() or {}
            if meta.get("key") != key:
                return None
            arrays = {name: stored.get_tensor(name) for name in ("embeddings", "labels", "kept")}
            unreadable = json.loads(meta.get("unreadable", "[]"))
    except (OSError, SafetensorError, ValueError):  # damaged: recomputed
        return None
    return Embedded(arrays["embeddings"], arrays["labels"], arrays["kept"], list(unreadable))


def _write(path: Path, key: str, embedded: Embedded) -> None:
    arrays = {
        "embeddings": np.ascontiguousarray(embedded.embeddings, dtype=np.float32),
        "labels": np.ascontiguousarray(embedded.labels),
        "kept": np.ascontiguousarray(embedded.kept, dtype=np.int64),
    }
    meta = {"key": key, "version": CODE_VERSION, "unreadable": json.dumps(embedded.unreadable)}
    data = save_arrays(arrays, metadata=meta)
    write_atomic(path, lambda tmp: tmp.write_bytes(data))


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
