"""Similarity search over embeddings: a persistent FAISS index with stable ids and metadata.

index.py: the in-memory index (FAISS, items, filters, re-ranking); folder.py: its versioned
folder and change log; live.py: LiveIndex, the index in a folder as every command and the
service read and change it.

The parts are imported when first used (``lazy_exports``), so that serving an ONNX file
imports no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

if TYPE_CHECKING:
    from .build import Collection, build_index, from_dataset, from_images, from_vectors
    from .embedder import Embedder
    from .folder import SearchIndex
    from .images import ImageError, decode_image
    from .index import KINDS, Hit, Item, MemoryIndex, ModelRef
    from .live import LiveIndex
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
    "LiveIndex",
    "MemoryIndex",
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
    **dict.fromkeys(("KINDS", "Hit", "Item", "MemoryIndex", "ModelRef"), ".index"),
    "SearchIndex": ".folder",
    "LiveIndex": ".live",
    **dict.fromkeys(("IndexChangedError", "IndexFolderError"), ".store"),
}
__getattr__ = lazy_exports(__name__, WHERE)
