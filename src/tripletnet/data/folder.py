"""An image folder: one subfolder per class (``ROOT/CLASS/.../IMAGE``), any depth below it.

Files whose suffix is not an image format (images.IMAGE_SUFFIXES) and hidden files or folders
(names starting with ".") are ignored. A root whose subfolders are all split names
(``train``, ``test``, ``query``, ``gallery``, with ``train`` among them) is read as
``ROOT/SPLIT/CLASS/...``: its own split, like a CSV's split column.

A class folder may be a symbolic link to a folder elsewhere (a dataset assembled from links), but
not to the root or a folder above it (every image would be in that class too), nor to the same
folder as another class folder or one inside it (its images would be in two classes). Links to
folders below a class folder are not followed (``os.walk``'s default), so a link loop cannot
make the listing endless.
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


def _check_class_folders(root: str, classes: list[str]) -> None:
    """Each class folder of ``root``, links followed, is a folder of its own: not ``root`` or
    a folder above it, not the same as another class folder and not inside one."""
    top = os.path.realpath(root)
    owner: dict[str, str] = {}  # real path -> class name
    for name in classes:
        folder = os.path.join(root, name)
        real = os.path.realpath(folder)
        if top == real or top.startswith(real.rstrip(os.sep) + os.sep):
            raise DataFileError(
                f"class folder {folder} is a link to {real}, which holds {root} itself: every "
                f"image of every class would also be in class {name!r}; remove the link, or "
                f"make {folder} a folder of that class's images"
            )
        if real in owner:
            raise DataFileError(
                f"class folders {os.path.join(root, owner[real])} and {folder} are the same "
                f"folder {real} (through a link): its images would be in two classes; keep one"
            )
        owner[real] = name
    for name in classes:
        real = os.path.realpath(os.path.join(root, name))
        above = os.path.dirname(real)
        while above != os.path.dirname(above):
            if above in owner:
                raise DataFileError(
                    f"class folder {os.path.join(root, name)} is a link to {real}, inside class "
                    f"folder {os.path.join(root, owner[above])}: its images would be in two "
                    "classes; remove the link or move the images"
                )
            above = os.path.dirname(above)


def images_below(folder: str) -> list[str]:
    """The image files in ``folder`` and all its subfolders, sorted; links to folders below
    ``folder`` are not followed (no loops)."""
    found: list[str] = []
    for here, dirs, files in os.walk(folder, followlinks=False):
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
    _check_class_folders(root, classes)
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
