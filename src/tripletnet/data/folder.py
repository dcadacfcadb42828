"""An image folder: one subfolder per class (``ROOT/CLASS/.../IMAGE``), any depth below it.

Files whose suffix is not an image format (images.IMAGE_SUFFIXES) and hidden files or folders
(names starting with ".") are ignored. A root whose subfolders are all split names
(``train``, ``test``, ``query``, ``gallery``, with ``train`` among them) is read as
``ROOT/SPLIT/CLASS/...``: its own split, like a CSV's split column.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import DataFileError
from .arrays import LabelledArray
from .images import is_image_file
from .sources import SourceOptions, check_two_per_class, image_files, label_codes
from .splits import SPLIT_VALUES, Pool


def _subfolders(folder: str) -> list[str]:
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))


def images_below(folder: str) -> list[str]:
    """The image files in ``folder`` and all its subfolders, sorted."""
    found: list[str] = []
    for here, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(
            os.path.join(here, f) for f in files if not f.startswith(".") and is_image_file(f)
        )
    return sorted(found)


def list_classes(root: str) -> tuple[list[str], list[str]]:
    """(paths, class name of each) for ``root/CLASS/...``; an empty class folder is an error."""
    classes = _subfolders(root)
    if not classes:
        loose = len([f for f in os.listdir(root) if is_image_file(f)])
        hint = f" (it holds {loose} images directly)" if loose else ""
        raise DataFileError(
            f"{root} has no class subfolders{hint}; put each class's images in a subfolder of "
            f"its own: {os.path.join(root, 'CLASS', 'IMAGE.jpg')}"
        )
    paths: list[str] = []
    labels: list[str] = []
    for name in classes:
        found = images_below(os.path.join(root, name))
        if not found:
            raise DataFileError(
                f"class folder {os.path.join(root, name)} holds no images (files ending in "
                ".png, .jpg, .webp, .bmp, .tif, ...); add images to it or remove it"
            )
        paths.extend(found)
        labels.extend([name] * len(found))
    return paths, labels


def load_folder(root: Path, options: SourceOptions) -> Pool:
    """All images under ``root`` as lazy ImageFiles, labelled by their first-level folder."""
    top = os.path.abspath(root)
    splits = _subfolders(top)
    split_codes: np.ndarray | None = None
    if splits and "train" in splits and set(splits) <= set(SPLIT_VALUES):
        paths: list[str] = []
        labels: list[str] = []
        codes: list[int] = []
        for split in splits:
            found, names = list_classes(os.path.join(top, split))
            paths += found
            labels += names
            codes += [SPLIT_VALUES.index(split)] * len(found)
        split_codes = np.asarray(codes, dtype=np.int8)
    else:
        paths, labels = list_classes(top)
    y, class_names = label_codes(labels)
    source = str(root)
    check_two_per_class(y, class_names, source, lambda row: paths[row], unit="image")
    x = image_files(paths, options, source)
    return Pool(source, LabelledArray(x, y), class_names, split_codes)
