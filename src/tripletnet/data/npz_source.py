"""A NumPy ``.npz`` file: ``x`` (N, D) features or (N, C, H, W) images, ``y`` (N,) integer or
string labels, optional ``split`` (N,) strings; read with allow_pickle=False, held in memory."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..errors import DataFileError
from .arrays import LabelledArray
from .sources import SourceOptions, check_fixed_size, check_two_per_class, label_codes
from .splits import SPLIT_VALUES, Pool

SAVE_HINT = "save plain arrays, e.g. np.savez(path, x=x.astype(np.float32), y=y)"


def _array(archive: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    try:
        return np.asarray(archive[key])
    except ValueError as error:  # "Object arrays cannot be loaded when allow_pickle=False"
        raise DataFileError(
            f"{path}: array {key!r} holds Python objects (a pickled array), which are never "
            f"loaded, for safety; {SAVE_HINT}"
        ) from error
    except (OSError, zipfile.BadZipFile, EOFError) as error:
        raise DataFileError(f"{path}: array {key!r} is unreadable ({error})") from error


def read_npz(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(x, y, split or None), checked: shapes, dtypes, lengths, finite values."""
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise DataFileError(f"{path} is not a readable .npz file ({error}); {SAVE_HINT}") from error
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataFileError(f"{path} holds a single array, not named arrays x and y; {SAVE_HINT}")
    with archive:
        missing = [key for key in ("x", "y") if key not in archive.files]
        if missing:
            raise DataFileError(
                f"{path} has no array {' or '.join(missing)} (it has: "
                f"{', '.join(archive.files) or 'nothing'}); {SAVE_HINT}"
            )
        x, y = _array(archive, "x", path), _array(archive, "y", path)
        split = _array(archive, "split", path) if "split" in archive.files else None
    if x.ndim not in (2, 4) or x.dtype.kind not in "uif" or not len(x):
        raise DataFileError(
            f"{path}: x has shape {x.shape} and dtype {x.dtype}; it must be a non-empty numeric "
            "(N, D) features or (N, C, H, W) images array"
        )
    if y.ndim != 1 or y.dtype.kind not in "iuUS":
        raise DataFileError(
            f"{path}: y has shape {y.shape} and dtype {y.dtype}; it must be (N,) integer or "
            "string labels"
        )
    for name, array in (("y", y), ("split", split)):
        if array is not None and len(array) != len(x):
            raise DataFileError(f"{path}: x has {len(x)} rows but {name} has {len(array)}")
    if x.dtype != np.uint8:
        x = x.astype(np.float32)
        bad = ~np.isfinite(x)
        if bad.any():
            row = int(np.flatnonzero(bad.reshape(len(x), -1).any(axis=1))[0])
            raise DataFileError(
                f"{path}: x holds {int(bad.sum())} non-finite values (NaN or infinity), the "
                f"first in row {row}; remove or fix those rows"
            )
    return x, y, split


def _split_codes(split: np.ndarray, path: Path) -> np.ndarray:
    if split.dtype.kind not in "US" or split.ndim != 1:
        raise DataFileError(f"{path}: split must be (N,) strings, got dtype {split.dtype}")
    values = np.char.lower(np.char.strip(split.astype(str)))
    codes = np.full(len(values), -1, dtype=np.int8)
    for code, value in enumerate(SPLIT_VALUES):
        codes[values == value] = code
    if (codes < 0).any():
        row = int(np.flatnonzero(codes < 0)[0])
        raise DataFileError(
            f"{path}: unknown split {str(split[row])!r} in row {row}; use "
            f"{', '.join(SPLIT_VALUES)} (or drop the array and pass --split)"
        )
    return codes


def load_npz(path: Path, options: SourceOptions) -> Pool:
    x, labels, split = read_npz(path)
    source = str(path)
    check_fixed_size(x, options, source)
    y, class_names = label_codes(labels)
    check_two_per_class(y, class_names, source, lambda row: f"row {row} of y")
    codes = _split_codes(split, path) if split is not None else None
    return Pool(source, LabelledArray(x, y), class_names, codes)
