"""Datasets: a built-in name or a path (image folder, CSV list, .npz arrays) -> DatasetSplits.

The parts are imported when first used (``lazy_exports``): the image decoder alone needs no
torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

if TYPE_CHECKING:
    from .arrays import DatasetSplits, LabelledArray, Normalizer
    from .image_files import ImageFiles, ImageFilesDataset, ImageSizeError, image_loader
    from .images import MAX_PIXELS, UnreadableImageError, open_image, to_array
    from .load import DATASETS, SOURCES, find_source, load_dataset
    from .sources import SourceOptions

__all__ = [
    "DATASETS",
    "MAX_PIXELS",
    "SOURCES",
    "DatasetSplits",
    "ImageFiles",
    "ImageFilesDataset",
    "ImageSizeError",
    "LabelledArray",
    "Normalizer",
    "SourceOptions",
    "UnreadableImageError",
    "find_source",
    "image_loader",
    "load_dataset",
    "open_image",
    "to_array",
]
WHERE = {
    **dict.fromkeys(("DatasetSplits", "LabelledArray", "Normalizer"), ".arrays"),
    **dict.fromkeys(
        ("ImageFiles", "ImageFilesDataset", "ImageSizeError", "image_loader"), ".image_files"
    ),
    **dict.fromkeys(("MAX_PIXELS", "UnreadableImageError", "open_image", "to_array"), ".images"),
    **dict.fromkeys(("DATASETS", "SOURCES", "find_source", "load_dataset"), ".load"),
    "SourceOptions": ".sources",
}
__getattr__ = lazy_exports(__name__, WHERE)
