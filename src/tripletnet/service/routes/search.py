"""POST /embed (an image's embedding), /search (by a vector or an image) and /search/batch."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from ...search.filters import InvalidInput
from ..bodies import (
    BatchQuery,
    ImageForm,
    SearchForm,
    VectorQuery,
    query_filter,
    read_body,
    request_body,
)
from ..state import CurrentIndex, ServiceDep, chosen

MAX_BATCH = 1000  # query vectors in one /search/batch request

router = APIRouter()


@router.post("/embed", openapi_extra=request_body(None, ImageForm))
async def embed(request: Request, service: ServiceDep) -> dict[str, Any]:
    upload = await read_body(request, takes=())
    if isinstance(upload, VectorQuery):
        raise HTTPException(415, "POST /embed takes a multipart image upload")
    _, vector = await run_in_threadpool(service.embed_upload, upload.image, upload.filename)
    return {"dim": int(vector.shape[1]), "embedding": vector[0].tolist()}


@router.post("/search", openapi_extra=request_body(VectorQuery, SearchForm))
async def search(request: Request, service: ServiceDep, index: CurrentIndex) -> dict[str, Any]:
    body = await read_body(request, takes=("k", "labels", "where"))
    if isinstance(body, VectorQuery):
        k, vector = service.k(body.k), index.check_vectors(body.vector)
        where = chosen(body.labels, body.where)
    else:
        k, where = service.k(body.fields.get("k")), chosen(*query_filter(request))
        _, vector = await run_in_threadpool(service.embed_upload, body.image, body.filename)
    hits = await run_in_threadpool(index.search, vector, k, where)
    return {"k": k, "results": [service.describe(h.item, h.distance, index) for h in hits[0]]}


@router.post("/search/batch")
async def search_batch(
    query: BatchQuery, service: ServiceDep, index: CurrentIndex
) -> dict[str, Any]:
    if not 1 <= len(query.vectors) <= MAX_BATCH:
        raise InvalidInput(f"send 1 to {MAX_BATCH} vectors, got {len(query.vectors)}")
    k, where = service.k(query.k), chosen(query.labels, query.where)
    vectors = np.concatenate([index.check_vectors(values) for values in query.vectors])
    hits = await run_in_threadpool(index.search, vectors, k, where)
    results = [[service.describe(h.item, h.distance, index) for h in row] for row in hits]
    return {"k": k, "results": results}
