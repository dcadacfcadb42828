"""What the routes share: the model, the live index and the service's limits (``Service``),
handed to each route as a FastAPI dependency."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import Depends, HTTPException, Request

from ..search.embedder import QueryEmbedder
from ..search.engines import IndexState, LiveEngine
from ..search.filters import Filter, InvalidInput
from ..search.images import decode_image
from ..search.index import Item, Remembered
from .auth import Access
from .observe import Metrics

DEFAULT_K = 10


class Service:
    """The model, the index (a LiveEngine of either engine: every read and write goes through
    it) and limits."""

    def __init__(
        self,
        embedder: QueryEmbedder,
        live: LiveEngine,
        max_k: int,
        max_upload_bytes: int,
        access: Access,
    ) -> None:
        self.embedder = embedder
        self.live = live
        self.max_k = max_k
        self.max_upload_bytes = max_upload_bytes
        self.access = access
        self.images = embedder.raw_format.is_image
        self.metrics: Metrics | None
        try:
            self.metrics = Metrics(lambda: (len(self.index), _number(self.index)))
        except ImportError:
            self.metrics = None

    @property
    def index(self) -> IndexState:
        """The index as this process holds it (``current()`` brings it up to date first)."""
        return self.live.index

    def current(self) -> IndexState:
        return self.live.current()

    def k(self, value: Any) -> int:
        """A request's k: DEFAULT_K (or max_k where smaller) when it gives none."""
        if value is None:
            return min(DEFAULT_K, self.max_k)
        try:
            k = int(value)
        except (TypeError, ValueError):
            raise InvalidInput(f"k must be an integer, got {value!r}") from None
        if not 1 <= k <= self.max_k:
            raise InvalidInput(f"k must be between 1 and {self.max_k}, got {k}")
        return k

    def embed_upload(self, data: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
        """An uploaded image's raw sample and embedding (an ImageError where it is none)."""
        if not self.images:
            raise HTTPException(415, "this model does not take images; send a JSON vector")
        sample = self.embedder.samples([decode_image(data, name)])
        return sample, self.embedder.embed_samples(sample)

    def describe(
        self, item: Item, distance: float | None = None, index: IndexState | None = None
    ) -> dict[str, Any]:
        """An item as JSON (with its distance to a query, in a search result)."""
        index = index or self.index
        thumbnail = f"/items/{item.id}/thumbnail.png" if item.id in index.thumbnails else None
        described = {
            "id": item.id,
            "label": item.label,
            "label_name": index.label_name(item.label),
            "source": item.source,
            "metadata": item.metadata,
            "thumbnail": thumbnail,
        }
        return described if distance is None else {**described, "distance": distance}

    def replay(self, kept: Remembered, index: IndexState) -> dict[str, Any]:
        """The first answer of an add made under an idempotency key (its item may be gone)."""
        item = kept.items[0]
        thumbnail = f"/items/{item.id}/thumbnail.png" if kept.thumbnails[0] else None
        return {**self.describe(item, index=index), "thumbnail": thumbnail}

    def item(self, item_id: int, index: IndexState | None = None) -> dict[str, Any]:
        index = index or self.current()
        try:
            return self.describe(index.item(item_id), index=index)
        except KeyError:
            raise HTTPException(404, f"no item with id {item_id}") from None


def chosen(labels: Any, where: Any) -> Filter | None:
    """A request's filter (None: it keeps every item)."""
    found = Filter.build(labels, where)
    return None if found.empty else found


def _number(index: IndexState) -> int:
    return int(index.version[1:]) if index.version else 0


async def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def current_index(service: Annotated[Service, Depends(get_service)]) -> IndexState:
    """The index for a read, brought up to date (in a worker thread: it may read the folder)."""
    return service.current()


ServiceDep = Annotated[Service, Depends(get_service)]
CurrentIndex = Annotated[IndexState, Depends(current_index)]
