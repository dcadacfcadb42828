"""A built-in name or a path (image folder, CSV list, .npz arrays) -> DatasetSplits.

Each built-in loader (catalogue.py names them) returns raw arrays (arrays.py); a path goes
through a source module (folder.py, csv_source.py, npz_source.py) into a pool of samples, which
splits.py splits. Adding a source: its module, and one line in ``SOURCES``; adding a built-in
dataset: its loader module, and its record in catalogue.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import TripletnetError
from .arrays import DatasetSplits
from .catalogue import BUILT_IN
from .csv_source import load_csv
from .folder import load_folder
from .npz_source import load_npz
from .sources import SourceOptions, check_fixed_size
from .splits import Pool, resplit, split_pool

Loader = Callable[..., DatasetSplits]

DATASETS: dict[str, Loader] = {name: facts.load for name, facts in BUILT_IN.items()}

Source = Callable[[Path, SourceOptions], Pool]
SOURCES: dict[str, Source] = {"folder": load_folder, ".csv": load_csv, ".npz": load_npz}


def find_source(name: str, data_dir: str | Path | None = None) -> tuple[Path, Source] | None:
    """The path and source module for ``name``: an existing folder, ``.csv`` or ``.npz``
    (relative to the working directory, else to ``data_dir``), or None."""
    candidates = [Path(name).expanduser()]
    if data_dir is not None and not candidates[0].is_absolute():
        candidates.append(Path(data_dir) / name)
    for path in candidates:
        if path.is_dir():
            return path, SOURCES["folder"]
        if path.is_file() and path.suffix.lower() in SOURCES:
            return path, SOURCES[path.suffix.lower()]
    return None


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    download: bool = False,
    options: SourceOptions | None = None,
) -> DatasetSplits:
    """Load a built-in dataset (one of ``DATASETS``) or a path: a folder with one subfolder per
    class, a ``.csv`` of ``path,label[,split]`` or a ``.npz`` of ``x``, ``y`` [, ``split``].

    ``options`` (SourceOptions) choose the image size, the split (None: the source's own, or
    stratified:0.25 for a folder or CSV without one), its seed and strictness.
    """
    options = options or SourceOptions()
    if name in DATASETS:
        data = DATASETS[name](Path(data_dir) if data_dir is not None else None, download=download)
        if isinstance(data.train.x, np.ndarray):
            check_fixed_size(data.train.x, options, name)
        spec = options.split_spec
        return resplit(data, spec, options.seed) if spec is not None else data
    found = find_source(name, data_dir)
    if found is None:
        path = Path(name)
        what = (
            f"{name} is a file, but not a .csv or .npz"
            if path.is_file()
            else f"unknown dataset {name!r}: not a built-in dataset nor an existing folder, "
            ".csv or .npz file"
        )
        raise TripletnetError(
            f"{what}; give one of the built-in datasets ({', '.join(DATASETS)}), a folder with "
            "one subfolder per class, a .csv of path,label or a .npz of x,y"
        )
    path, source = found
    return split_pool(source(path, options), options.split_spec, options.seed)
