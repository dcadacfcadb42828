"""Atomic file writes: write to a temporary file in the same folder, then rename over the target.

A crash mid-write leaves the previous file intact, never a truncated one. What is written gets
the permissions the user's umask gives a new file (``tempfile`` would make it private), and
temporary files a killed process left behind are removed by ``remove_stale_temporaries``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import TripletnetError

TEMPORARY = ".{name}.*.tmp"  # the pattern of atomic_path's temporary files


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def permit(path: str | os.PathLike[str], folder: bool = False) -> None:
    """Give ``path`` the mode a new file (0666) or folder (0777) gets under the umask."""
    os.chmod(path, (0o777 if folder else 0o666) & ~_umask())


def make_temporary_folder(parent: Path, prefix: str) -> Path:
    """``tempfile.mkdtemp`` with the umask's permissions instead of 0700."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    permit(folder, folder=True)
    return folder


@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it onto ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        permit(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def remove_stale_temporaries(folder: Path) -> int:
    """Delete the temporary files that writers killed mid-write (kill -9, power loss) left in
    ``folder``; call it only where no other process writes at the same time. Returns how many."""
    stale = [p for p in folder.glob(TEMPORARY.format(name="*")) if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def write_atomic(target: str | os.PathLike[str], writer: Callable[[Path], Any]) -> Path:
    """Call ``writer(tmp_path)`` and move the result onto ``target`` atomically."""
    with atomic_path(target) as tmp:
        writer(tmp)
    return Path(target)


def write_text_atomic(target: str | os.PathLike[str], text: str) -> Path:
    return write_atomic(target, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json_atomic(target: str | os.PathLike[str], data: Any) -> Path:
    return write_text_atomic(target, json.dumps(data, indent=2, sort_keys=True) + "\n")


def save_npy_atomic(target: str | os.PathLike[str], array: Any) -> Path:
    """np.save to exactly ``target`` (np.save would add .npy to a temporary name)."""
    import numpy as np

    def writer(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.save(handle, array, allow_pickle=False)

    return write_atomic(target, writer)


def read_json(path: str | os.PathLike[str]) -> Any:
    """A JSON file; a missing, unreadable or corrupt one is a TripletnetError naming the file."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise TripletnetError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise TripletnetError(f"cannot read {path} as JSON: {error}") from None


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A TOML file as a table; an unreadable one is a TripletnetError naming the file."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise TripletnetError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise TripletnetError(f"cannot read {path} as TOML: {error}") from None


def read_json_object(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``read_json`` of a file that must hold a JSON object."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise TripletnetError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def load_npy(path: str | os.PathLike[str], mapped: bool = False) -> Any:
    """A user's .npy array, never unpickled; a missing, pickled, compressed (.npz) or corrupt
    file is a TripletnetError that names the file. ``mapped``: memory-mapped, read-only (the
    rows are read from the file when used)."""
    import numpy as np

    try:
        loaded = np.load(path, allow_pickle=False, mmap_mode="r" if mapped else None)
    except FileNotFoundError:
        raise TripletnetError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise TripletnetError(f"{path} is a folder, not a .npy file") from None
    except (ValueError, OSError, EOFError) as error:
        raise TripletnetError(f"cannot read {path} as a .npy array: {error}") from None
    if not isinstance(loaded, np.ndarray):  # an .npz archive
        loaded.close()
        raise TripletnetError(
            f"{path} is an .npz archive, not a .npy array; save one array with np.save"
        )
    return loaded


def load_numeric_npy(path: str | os.PathLike[str], what: str = "values") -> Any:
    """``load_npy`` of an array of numbers (bool, integer or float), all finite."""
    import numpy as np

    array = load_npy(path)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise TripletnetError(f"{path} holds {array.dtype} data; {what} must be numbers")
    if np.issubdtype(array.dtype, np.complexfloating):
        raise TripletnetError(f"{path} holds complex numbers; {what} must be real")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = (
            int((~np.isfinite(array)).reshape(len(array), -1).any(axis=1).sum())
            if array.ndim
            else 1
        )
        raise TripletnetError(
            f"{path} has NaN or infinite values in {bad} rows; {what} must be finite"
        )
    return array
