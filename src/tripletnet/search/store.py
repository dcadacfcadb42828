"""Versioned index folders: a crash mid-write leaves the previous version in use.

    INDEX_DIR/CURRENT      one line naming the live version, replaced atomically
    INDEX_DIR/v000007/     manifest.json, index.faiss, items.json, thumbnails.npy (optional),
                           changes.log (the adds and removals since: see changelog.py)
    INDEX_DIR/.lock        held by a writer (filelock), so writers in different processes queue

A save writes every file of the new version into a hidden temporary folder, fsyncs them,
renames the folder to its version name and only then points CURRENT at it. Readers follow
CURRENT, so they see the old set of files or the new set, never a mix. A save names the version
its state was read from; if another process has made a newer one live since, the save is
refused instead of silently dropping that process's changes. A version and its change log
together are the index: a save either appends to the live version's log or, to compact it,
writes the whole state as the next version.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from ..errors import TripletnetError
from ..files import make_temporary_folder, remove_stale_temporaries, write_text_atomic

POINTER = "CURRENT"
LOCK = ".lock"
KEEP_VERSIONS = 2
_VERSION = re.compile(r"^v(\d{6,})$")

FileWriter = Callable[[Path], None]


class IndexFolderError(TripletnetError, ValueError):
    """An index folder is missing, incomplete or would be overwritten."""


class IndexChangedError(IndexFolderError):
    """Another process saved a newer version of the index since this state was read."""


def _versions(root: Path) -> list[int]:
    found = (_VERSION.match(entry.name) for entry in root.iterdir() if entry.is_dir())
    return sorted(int(match.group(1)) for match in found if match)


def _fsync_dir(folder: Path) -> None:
    if os.name == "posix":
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def index_lock(root: str | os.PathLike[str]) -> FileLock:
    """The folder's write lock: one per path and process (re-entrant in a thread, exclusive
    between threads and processes), so a writer can hold it across load, change and save."""
    return FileLock(Path(root) / LOCK, is_singleton=True)


def current_version(root: str | os.PathLike[str]) -> Path:
    """The folder of the live version, or a clear error if ``root`` holds no index."""
    root = Path(root)
    name = live_version_name(root)
    if name is None:
        raise IndexFolderError(
            f"{root} is not a tripletnet index (no {POINTER} file); "
            "build one with 'tripletnet index build'"
        )
    folder = root / name
    if not _VERSION.match(name) or not folder.is_dir():
        raise IndexFolderError(f"{root / POINTER} names {name!r}, which is not a version in {root}")
    return folder


def live_version_name(root: Path) -> str | None:
    """What CURRENT names (None where there is no CURRENT)."""
    pointer = root / POINTER
    return pointer.read_text(encoding="utf-8").strip() if pointer.is_file() else None


def write_version(root: str | os.PathLike[str], files: dict[str, FileWriter]) -> Path:
    """Write ``files`` (name -> writer(path)) as a new version of ``root`` and make it live
    (under the folder's lock; a writer that must not drop another's version calls
    ``check_live`` holding it first)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with index_lock(root):
        return _write_locked(root, files)


def check_live(root: Path, based_on: str) -> None:
    """IndexChangedError unless ``based_on`` is the live version (call it holding the lock)."""
    live = live_version_name(root)
    if live != based_on:
        raise IndexChangedError(
            f"{root} was changed by another process: {live} is live, this index was read "
            f"from {based_on}; load it again and repeat the change"
        )


def _write_locked(root: Path, files: dict[str, FileWriter]) -> Path:
    for stale in root.glob(".tmp-v*"):  # left by a crash mid-save
        shutil.rmtree(stale, ignore_errors=True)
    remove_stale_temporaries(root)  # a CURRENT half-written by a crash
    number = max(_versions(root), default=0) + 1
    staging = make_temporary_folder(root, prefix=f".tmp-v{number:06d}-")
    try:
        for name, writer in files.items():
            writer(staging / name)
            with open(staging / name, "rb+") as handle:
                os.fsync(handle.fileno())
        _fsync_dir(staging)
        final = root / f"v{number:06d}"
        os.replace(staging, final)
        _fsync_dir(root)
        write_text_atomic(root / POINTER, final.name + "\n")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for old in _versions(root)[:-KEEP_VERSIONS]:
        shutil.rmtree(root / f"v{old:06d}", ignore_errors=True)
    return final


def prepare_index_folder(root: Path, overwrite: bool) -> None:
    """Refuse to replace an existing index (or any non-empty folder) unless ``overwrite``.

    Nothing is deleted here: the new index is saved as the next version and made live only
    when it is complete, so a build that fails leaves the old index in place."""
    if root.exists() and not root.is_dir():
        raise IndexFolderError(f"{root} is a file; choose a folder for the index")
    if root.is_dir() and any(root.iterdir()):
        if not overwrite:
            raise IndexFolderError(
                f"{root} already exists and is not empty; pass --overwrite to replace it "
                "or choose another --out"
            )
        if not (root / POINTER).is_file():
            raise IndexFolderError(
                f"{root} is not a tripletnet index; refusing to delete its contents"
            )
