"""What every data source shares: its options, label coding, and the checks a source must pass.

A source (folder.py, csv_source.py, npz_source.py) turns a path into a ``splits.Pool``: all its
labelled samples, class names, and its split column if it has one. ``load_dataset`` then splits
the pool (splits.py). Adding a source is one module plus a line in ``data.SOURCES``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import DataFileError, TripletnetError
from .image_files import ImageFiles, ImageSizeError, size_mismatch
from .images import ImageHeader, UnreadableImageError, read_header
from .splits import SplitSpec, parse_split

PROBED_IMAGES = 100  # headers read to choose 1 or 3 channels (and check sizes early)


@dataclass(frozen=True)
class SourceOptions:
    """How to read a source: ``image_size`` (resize and centre-crop image files to N x N; None
    keeps their size, which must then be the same for all), ``split`` (None: the source's own
    split; ``stratified:F`` or ``classes:F``), ``seed`` for the split, and ``strict`` (an
    unreadable image is an error, not a skipped sample)."""

    image_size: int | None = None
    split: str | None = None
    seed: int = 0
    strict: bool = False

    def __post_init__(self) -> None:
        if self.image_size is not None and (
            isinstance(self.image_size, bool) or int(self.image_size) != self.image_size
        ):
            raise TripletnetError(f"--image-size must be a whole number, got {self.image_size!r}")
        if self.image_size is not None and self.image_size < 1:
            raise TripletnetError(f"--image-size must be at least 1 pixel, got {self.image_size}")
        if self.split is not None:
            parse_split(self.split)  # a bad spec fails here, before any file is read

    @property
    def split_spec(self) -> SplitSpec | None:
        return parse_split(self.split) if self.split is not None else None


def label_codes(labels: Sequence[str] | np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Map labels to int64 codes 0..C-1 in sorted order; returns (codes, class names).

    Labels that are all integers (or integer strings, e.g. CSV cells) sort by value, so
    ``2`` comes before ``10``; other labels sort as strings.
    """
    array = np.asarray(labels)
    if array.dtype.kind in "iu":
        values, codes = np.unique(array, return_inverse=True)
        return codes.astype(np.int64), [str(v) for v in values]
    if array.dtype.kind == "S":
        array = np.char.decode(array, "utf-8")
    texts = [str(label) for label in array.tolist()]
    unique = set(texts)
    try:
        names = sorted(unique, key=lambda text: (int(text), text))
    except ValueError:
        names = sorted(unique)
    lookup = {name: code for code, name in enumerate(names)}
    return np.fromiter((lookup[t] for t in texts), dtype=np.int64, count=len(texts)), names


def check_two_per_class(
    y: np.ndarray,
    class_names: list[str],
    source: str,
    example: Callable[[int], str],
    unit: str = "sample",
) -> None:
    """Refuse a class with a single sample: a triplet needs an anchor and a positive of a class.
    ``example(row)`` names that sample (a file, a CSV line, an array row)."""
    counts = np.bincount(y, minlength=len(class_names))
    lonely = np.flatnonzero(counts == 1)
    if lonely.size:
        code = int(lonely[0])
        row = int(np.flatnonzero(y == code)[0])
        others = f" (and {lonely.size - 1} other classes)" if lonely.size > 1 else ""
        raise DataFileError(
            f"{source}: class {class_names[code]!r} has only one {unit}, {example(row)}{others}; "
            "a triplet needs two of a class (an anchor and its positive): add another or "
            "remove the class"
        )


def image_files(
    paths: Sequence[str], options: SourceOptions, source: str, probe: int = PROBED_IMAGES
) -> ImageFiles:
    """ImageFiles over ``paths`` after reading the headers of ``probe`` of them, evenly spaced
    over the sorted paths: 1 channel when all are single-channel (GREY_MODES), else 3.

    Without ``options.image_size`` the probed images must share one size (the first readable
    one's); the rest are checked as they are decoded. An unreadable probed header is skipped,
    or raised with ``options.strict``. No pixel is decoded here.
    """
    ordered = sorted(paths)
    picks = np.unique(np.linspace(0, len(ordered) - 1, min(len(ordered), probe)).round())
    headers: list[tuple[str, ImageHeader]] = []
    failure: UnreadableImageError | None = None
    for row in picks.astype(np.int64):
        try:
            headers.append((ordered[row], read_header(ordered[row])))
        except UnreadableImageError as error:
            if options.strict:
                raise
            failure = failure or error
    if not headers:
        raise DataFileError(
            f"{source}: none of the {len(picks)} images probed is readable: {failure}"
        )
    channels = 1 if all(header.channels == 1 for _, header in headers) else 3
    if options.image_size is not None:
        return ImageFiles(paths, channels, options.image_size)
    first, reference = headers[0]
    frame = (reference.height, reference.width)
    for path, header in headers[1:]:
        if (header.height, header.width) != frame:
            raise ImageSizeError(size_mismatch(path, (header.height, header.width), first, frame))
    return ImageFiles(paths, channels, None, frame=frame, frame_source=first)


def check_fixed_size(x: np.ndarray, options: SourceOptions, source: str) -> None:
    """``--image-size`` resizes image files only: refuse it for arrays of another size."""
    size = options.image_size
    if size is None or (x.ndim == 4 and x.shape[2:] == (size, size)):
        return
    held = "features" if x.ndim == 2 else f"{x.shape[2]}x{x.shape[3]} images"
    raise TripletnetError(
        f"--image-size {size} resizes image files, but {source} holds {held} in arrays; "
        "leave out --image-size (or resize the arrays before saving them)"
    )
