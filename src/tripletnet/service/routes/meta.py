"""GET / (the web page), /health and /metrics."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, Response

from ..state import CurrentIndex, ServiceDep

router = APIRouter()


@cache
def _page() -> str:
    return resources.files("tripletnet.service").joinpath("page.html").read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def home() -> str:
    return _page()


@router.get("/health")
def health(service: ServiceDep, index: CurrentIndex) -> dict[str, Any]:
    embedder, access = service.embedder, service.access
    return {
        "status": "ok",
        "model": {
            "fingerprint": embedder.ref.fingerprint,
            "architecture": embedder.architecture,
            "input_shape": list(embedder.input_shape),
            "metric": embedder.metric,
            "run": embedder.run_name,  # not the full path: it is the server's
            "runtime": embedder.runtime,
        },
        "dim": index.dim,
        "count": len(index),
        "kind": index.kind,
        "version": index.version,
        "accepts_images": service.images,
        "max_k": service.max_k,
        "max_upload_bytes": service.max_upload_bytes,
        "token_required": {"writes": access.token is not None, "reads": access.protect_reads},
        "read_only": service.live.mmap,
    }


@router.get("/metrics", response_class=Response)
def metrics(service: ServiceDep, _: CurrentIndex) -> Response:
    if service.metrics is None:
        raise HTTPException(501, "metrics need prometheus-client: pip install 'tripletnet[serve]'")
    body, content_type = service.metrics.exposition()
    return Response(body, media_type=content_type)
