"""A cache of the raw-input baseline row: the same pixels give the same row in every run.

The row is stored as one JSON file per key, written atomically, in ``$TRIPLETNET_CACHE_DIR``
(default ``$XDG_CACHE_HOME/tripletnet/baselines``, i.e. ``~/.cache/tripletnet/baselines``;
``TRIPLETNET_CACHE_DIR=off`` turns the cache off). The key is a BLAKE2 hash of everything the row
depends on: ``CODE_VERSION`` (raise it when the baseline's computation changes), the evaluation
options, the normalisation, and the data's identity: the bytes of in-memory samples and labels,
or for image files their paths, sizes and modification times. A changed sample changes the key,
so a cached row is never stale.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..data import ImageFiles
from ..errors import TripletnetError
from ..files import read_json, write_json_atomic

CACHE_ENV = "TRIPLETNET_CACHE_DIR"
CODE_VERSION = "raw-baseline-v4"  # v4: the probe preconditioned (probe._preconditioner)
OFF = ("", "0", "off", "none")


def cache_dir() -> Path | None:
    """Where baseline rows are cached, or None when the cache is off."""
    value = os.environ.get(CACHE_ENV)
    if value is not None:
        return None if value.strip().lower() in OFF else Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tripletnet" / "baselines"


def data_identity(x: Any, y: np.ndarray) -> str:
    """A digest of samples ``x`` (an array, or lazy image files) and their labels ``y``."""
    digest = hashlib.blake2b(digest_size=20)
    if isinstance(x, ImageFiles):
        digest.update(repr((x.channels, x.size, len(x))).encode())
        for i in range(len(x)):
            path = x.path(i)
            stat = path.stat() if path.exists() else None
            digest.update(repr((str(path), stat and (stat.st_size, stat.st_mtime_ns))).encode())
    else:
        array = np.ascontiguousarray(np.asarray(x))
        digest.update(repr((array.dtype.str, array.shape)).encode())
        digest.update(array.tobytes())
    labels = np.ascontiguousarray(np.asarray(y, dtype=np.int64))
    digest.update(labels.tobytes())
    return digest.hexdigest()


def cache_key(options: dict[str, Any]) -> str:
    """The hex key of ``options`` (JSON-able, data identities included) and the code version."""
    text = json.dumps({"version": CODE_VERSION, **options}, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


def cached_row(
    options: dict[str, Any], compute: Callable[[], dict[str, Any]]
) -> tuple[dict[str, Any], bool]:
    """The row for ``options`` from the cache, or ``compute()``d and stored; and whether it was
    a cache hit. An unreadable or mismatched cache file is recomputed and replaced."""
    directory = cache_dir()
    if directory is None:
        return compute(), False
    key = cache_key(options)
    path = directory / f"{key}.json"
    if path.is_file():
        try:
            stored = read_json(path)
        except TripletnetError:  # a damaged cache file is recomputed
            stored = None
        if isinstance(stored, dict) and stored.get("key") == key:
            return stored["row"], True
    row = compute()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, {"key": key, "version": CODE_VERSION, "row": row})
    except OSError:  # a read-only cache folder costs time, never the evaluation
        pass
    return row, False
