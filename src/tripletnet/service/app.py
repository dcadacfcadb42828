"""The HTTP service: embed images, search the index, add and remove items, and a web page.

    POST   /embed              multipart image              -> its embedding
    POST   /search             multipart image (+ k), or JSON {"vector": [...], "k": 10}
    POST   /items              multipart image (+ label, source), or JSON {"vector": [...], ...}
    DELETE /items/{id}         remove an item (saved at once; ids of the others stay)
    GET    /items/{id}         an item's metadata; /items/{id}/thumbnail.png its picture
    GET    /health             model, dim, count
    GET    /                   the web page; /docs and /openapi.json the API

Work that needs the CPU (decoding, embedding, FAISS, saving) runs in worker threads; the index's
readers-writer lock lets searches run together while an add or a removal runs alone.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from ..search import Embedder, ImageError, IndexChangedError, Item, SearchIndex, decode_image
from ..search.images import png_bytes

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_K = 1000
THUMBNAIL_SCALE = 4

_JSON_OR_IMAGE = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/VectorQuery"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "image": {"type": "string", "format": "binary"},
                        "k": {"type": "integer"},
                        "label": {"type": "integer"},
                        "source": {"type": "string"},
                    },
                    "required": ["image"],
                }
            },
        },
    }
}
_IMAGE_ONLY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"image": {"type": "string", "format": "binary"}},
                    "required": ["image"],
                }
            }
        },
    }
}


DEFAULT_K = 10


class VectorQuery(BaseModel):
    """A query or a new item given as an embedding; ``k`` is read by /search only."""

    vector: list[float]
    k: int | None = None  # default: 10, or the service's --max-k when smaller
    label: int | None = None
    source: str | None = None


class Service:
    """The state behind the routes: the model, the index and where the index is saved."""

    def __init__(self, embedder: Embedder, index: SearchIndex, index_dir: Path, max_k: int):
        self.embedder = embedder
        self.index = index
        self.index_dir = index_dir
        self.max_k = max_k
        self.images = embedder.raw_format.is_image

    def vector(self, values: list[float]) -> np.ndarray:
        if len(values) != self.index.dim:
            raise _unprocessable(
                f"the vector has {len(values)} values; this index holds {self.index.dim}-d vectors"
            )
        array = np.asarray(values, dtype=np.float32)[None]
        if not np.isfinite(array).all():
            raise _unprocessable("the vector must be finite (no NaN or infinity)")
        return array

    def k(self, value: Any) -> int:
        if value is None:
            return min(DEFAULT_K, self.max_k)
        try:
            k = int(value)
        except (TypeError, ValueError):
            raise _unprocessable(f"k must be an integer, got {value!r}") from None
        if not 1 <= k <= self.max_k:
            raise _unprocessable(f"k must be between 1 and {self.max_k}, got {k}")
        return k

    def embed_upload(self, data: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
        """An uploaded image's raw sample and embedding; 415 if it is not an image."""
        if not self.images:
            raise HTTPException(415, "this model does not take images; send a JSON vector")
        try:
            sample = self.embedder.samples([decode_image(data, name)])
        except ImageError as error:
            raise HTTPException(415, str(error)) from error
        return sample, self.embedder.embed_samples(sample)

    def describe(self, item: Item, distance: float | None = None) -> dict[str, Any]:
        """An item as JSON (with its distance to a query, in a search result)."""
        thumbnail = f"/items/{item.id}/thumbnail.png" if item.id in self.index.thumbnails else None
        described = {
            "id": item.id,
            "label": item.label,
            "label_name": self.index.label_name(item.label),
            "source": item.source,
            "thumbnail": thumbnail,
        }
        return described if distance is None else {**described, "distance": distance}

    def item(self, item_id: int) -> dict[str, Any]:
        try:
            return self.describe(self.index.item(item_id))
        except KeyError:
            raise HTTPException(404, f"no item with id {item_id}") from None

    def save(self) -> None:
        """Save the index's changes; 409 if another process has saved the folder since."""
        try:
            self.index.save_changes(self.index_dir)
        except IndexChangedError as error:
            raise HTTPException(
                409, f"{error}. This change is not saved: restart the service to load the index"
            ) from error


def _unprocessable(message: str) -> HTTPException:
    return HTTPException(422, message)


async def _read_query(request: Request) -> tuple[VectorQuery | None, dict[str, Any]]:
    """A JSON VectorQuery, or (None, the multipart fields with the image's bytes)."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            return VectorQuery.model_validate_json(await request.body()), {}
        except ValidationError as error:
            raise RequestValidationError(error.errors()) from error
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("image")
        if not isinstance(upload, UploadFile):
            raise _unprocessable("send the image as a multipart file field named 'image'")
        fields: dict[str, Any] = {key: value for key, value in form.items() if key != "image"}
        fields["image"] = await upload.read()
        fields["filename"] = Path(upload.filename or "upload").name
        return None, fields
    raise HTTPException(
        415, "send JSON ({'vector': [...]}) or multipart/form-data with an 'image' file"
    )


def create_app(
    run_dir: str | Path,
    index_dir: str | Path,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    max_k: int = MAX_K,
) -> FastAPI:
    """The service for the model of ``run_dir`` and the index in ``index_dir`` (same model)."""
    from .limits import BodySizeLimit

    embedder = Embedder.from_run(run_dir)
    index = SearchIndex.load(index_dir)
    index.check_model(embedder.ref)
    service = Service(embedder, index, Path(index_dir), max_k)
    app = FastAPI(
        title="tripletnet search",
        description="Search by example with a trained tripletnet embedding model.",
    )
    app.add_middleware(BodySizeLimit, max_bytes=max_upload_bytes)
    app.state.service = service
    page = resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home() -> str:
        return page

    @app.get("/health")
    def health() -> dict[str, Any]:
        spec = embedder.run.spec
        return {
            "status": "ok",
            "model": {
                "fingerprint": embedder.ref.fingerprint,
                "architecture": spec["architecture"],
                "input_shape": spec["input_shape"],
                "run_dir": embedder.ref.run_dir,
            },
            "dim": index.dim,
            "count": len(index),
            "kind": index.kind,
            "accepts_images": service.images,
            "max_k": max_k,
            "max_upload_bytes": max_upload_bytes,
        }

    @app.post("/embed", openapi_extra=_IMAGE_ONLY)
    async def embed_image(request: Request) -> dict[str, Any]:
        query, fields = await _read_query(request)
        if query is not None:
            raise HTTPException(415, "POST /embed takes a multipart image upload")
        _, vector = await run_in_threadpool(
            service.embed_upload, fields["image"], fields["filename"]
        )
        return {"dim": int(vector.shape[1]), "embedding": vector[0].tolist()}

    @app.post("/search", openapi_extra=_JSON_OR_IMAGE)
    async def search(request: Request) -> dict[str, Any]:
        query, fields = await _read_query(request)
        if query is not None:
            k, vector = service.k(query.k), service.vector(query.vector)
        else:
            k = service.k(fields.get("k"))
            _, vector = await run_in_threadpool(
                service.embed_upload, fields["image"], fields["filename"]
            )
        hits = await run_in_threadpool(index.search, vector, k)
        return {"k": k, "results": [service.describe(hit.item, hit.distance) for hit in hits[0]]}

    @app.post("/items", status_code=201, openapi_extra=_JSON_OR_IMAGE)
    async def add_item(request: Request) -> dict[str, Any]:
        query, fields = await _read_query(request)
        thumbnails = None
        if query is not None:
            vector, label, source = service.vector(query.vector), query.label, query.source
        else:
            sample, vector = await run_in_threadpool(
                service.embed_upload, fields["image"], fields["filename"]
            )
            thumbnails = embedder.thumbnails(sample)
            label = _optional_int(fields.get("label"), "label")
            source = str(fields.get("source") or fields["filename"])
        ids = await run_in_threadpool(index.add, vector, [label], [source], thumbnails)
        await run_in_threadpool(service.save)
        return service.item(int(ids[0]))

    @app.get("/items/{item_id}")
    def get_item(item_id: int) -> dict[str, Any]:
        return service.item(item_id)

    @app.get("/items/{item_id}/thumbnail.png", response_class=Response)
    def get_thumbnail(item_id: int) -> Response:
        picture = index.thumbnails.get(item_id)
        if picture is None:
            raise HTTPException(404, f"no thumbnail for item {item_id}")
        return Response(png_bytes(picture, THUMBNAIL_SCALE), media_type="image/png")

    @app.delete("/items/{item_id}")
    def delete_item(item_id: int) -> dict[str, Any]:
        if not index.remove([item_id]):
            raise HTTPException(404, f"no item with id {item_id}")
        service.save()
        return {"removed": item_id, "count": len(index)}

    _add_vector_schema(app)
    return app


def _optional_int(value: Any, name: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _unprocessable(f"{name} must be an integer, got {value!r}") from None


def _add_vector_schema(app: FastAPI) -> None:
    """Put VectorQuery into the OpenAPI components, where the request bodies refer to it."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components["VectorQuery"] = VectorQuery.model_json_schema()
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
