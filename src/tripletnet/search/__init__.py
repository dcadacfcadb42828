"""Similarity search over embeddings: a persistent FAISS index with stable ids and metadata.

The parts are imported when first used (``lazy_exports``), so that serving an ONNX file
imports no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

if TYPE_CHECKING:
    from .build import Collection, build_index, from_dataset, from_images, from_vectors
    from .embedder import Embedder
    from .images import ImageError, decode_image
    from .index import KINDS, Hit, Item, ModelRef, SearchIndex
    from .store import IndexChangedError, IndexFolderError

__all__ = [
    "KINDS",
    "Collection",
    "Embedder",
    "Hit",
    "ImageError",
    "IndexChangedError",
    "IndexFolderError",
    "Item",
    "ModelRef",
    "SearchIndex",
    "build_index",
    "decode_image",
    "from_dataset",
    "from_images",
    "from_vectors",
]
WHERE = {
    **dict.fromkeys(
        ("Collection", "build_index", "from_dataset", "from_images", "from_vectors"), ".build"
    ),
    "Embedder": ".embedder",
    **dict.fromkeys(("ImageError", "decode_image"), ".images"),
    **dict.fromkeys(("KINDS", "Hit", "Item", "ModelRef", "SearchIndex"), ".index"),
    **dict.fromkeys(("IndexChangedError", "IndexFolderError"), ".store"),
}
__getattr__ = lazy_exports(__name__, WHERE)
