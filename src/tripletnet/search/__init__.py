"""Similarity search over embeddings: a persistent FAISS index with stable ids and metadata."""

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
