"""POST /items (add, by a vector or an image; an Idempotency-Key makes a retry safe),
GET /items/{id} and its thumbnail, DELETE /items/{id}."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from ...search.engines import IndexState
from ...search.filters import InvalidInput, check_metadata, parse_label
from ...search.images import png_bytes
from ...search.index import ChosenIdError
from ..bodies import (
    MAX_SOURCE,
    ItemForm,
    VectorQuery,
    form_id,
    form_metadata,
    read_body,
    request_body,
)
from ..state import CurrentIndex, ServiceDep

THUMBNAIL_SCALE = 4
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # 1 to 255 printable ASCII characters

router = APIRouter()


@router.post("/items", status_code=201, openapi_extra=request_body(VectorQuery, ItemForm))
async def add_item(request: Request, service: ServiceDep) -> JSONResponse:
    key = request.headers.get("idempotency-key")
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidInput("Idempotency-Key must be 1 to 255 printable ASCII characters")
    body = await read_body(request, takes=("id", "label", "source", "metadata"))
    thumbnails = None
    if isinstance(body, VectorQuery):
        vector, label, source = service.index.check_vectors(body.vector), body.label, body.source
        metadata, wanted = body.metadata, body.id
        what = hashlib.sha256(vector.tobytes()).hexdigest()
    else:
        fields = body.fields
        wanted, label = form_id(fields.get("id")), parse_label(fields.get("label") or None)
        metadata = form_metadata(fields.get("metadata"))
        source = str(fields.get("source") or body.filename)
        if len(source) > MAX_SOURCE:
            raise InvalidInput(f"source must be at most {MAX_SOURCE} characters, got {len(source)}")
        sample, vector = await run_in_threadpool(service.embed_upload, body.image, body.filename)
        thumbnails = service.embedder.thumbnails(sample)
        what = "image:" + hashlib.sha256(body.image).hexdigest()
    checked = check_metadata(metadata)
    digest = hashlib.sha256(
        json.dumps([what, wanted, label, source, checked], sort_keys=True).encode()
    ).hexdigest()
    made: list[int] = []

    def add(index: IndexState) -> tuple[int, dict[str, Any], bool]:
        """(status, answer, whether it is a repeated answer), under the folder's lock."""
        kept = None if key is None else index.remembered(key)
        if kept is not None:
            if kept.digest != digest:
                raise InvalidInput(
                    "this Idempotency-Key was used with another request; use a new key "
                    "for a new item"
                )
            return 201, service.replay(kept, index), True
        if wanted is not None and wanted in index.items:  # an upsert: the item stays
            there = index.items[wanted]
            if (there.label, there.source, there.metadata) != (label, source, checked):
                raise ChosenIdError(
                    f"item {wanted} exists with another label, source or metadata; "
                    "remove it first to replace it"
                )
            return 200, service.describe(there, index=index), True
        ids = index.add(
            vector, [label], [source], thumbnails, [checked],
            ids=None if wanted is None else [wanted], key=key, digest=digest,
        )  # fmt: skip
        made.extend(int(i) for i in ids)
        return 201, service.item(int(ids[0]), index), False

    def committed(index: IndexState) -> bool:
        return bool(made) and all(i in index.items for i in made)

    status, answer, repeated = await run_in_threadpool(service.live.write, add, committed)
    headers = {"Idempotent-Replayed": "true"} if repeated else None
    return JSONResponse(answer, status_code=status, headers=headers)


@router.get("/items/{item_id}")
def get_item(item_id: int, service: ServiceDep, index: CurrentIndex) -> dict[str, Any]:
    return service.item(item_id, index)


@router.get("/items/{item_id}/thumbnail.png", response_class=Response)
def get_thumbnail(item_id: int, index: CurrentIndex) -> Response:
    picture = index.thumbnails.get(item_id)
    if picture is None:
        raise HTTPException(404, f"no thumbnail for item {item_id}")
    return Response(png_bytes(picture, THUMBNAIL_SCALE), media_type="image/png")


@router.delete("/items/{item_id}")
def delete_item(item_id: int, service: ServiceDep) -> dict[str, Any]:
    """Remove an item (recorded at once; the ids of the others stay)."""

    def remove(index: IndexState) -> dict[str, Any]:
        if not index.remove([item_id]):
            raise HTTPException(404, f"no item with id {item_id}")
        return {"removed": item_id, "count": len(index)}

    return service.live.write(remove, lambda index: item_id not in index.items)
