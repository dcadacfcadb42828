"""The HTTP service: embed images, search the index, add and remove items, and a web page.

    POST   /embed              multipart image              -> its embedding
    POST   /search             multipart image (+ k; ?labels=1,2&where={...}), or JSON
                               {"vector": [...], "k": 10, "labels": [..], "where": {..}}
    POST   /search/batch       JSON {"vectors": [[...], ...], "k": 10, "labels", "where"}
    POST   /items              multipart image (+ label, source, metadata), or JSON
                               {"vector": [...], "label", "source", "metadata": {..}}
    DELETE /items/{id}         remove an item (saved at once; ids of the others stay)
    GET    /items/{id}         an item's metadata; /items/{id}/thumbnail.png its picture
    GET    /health             model, dim, count, which requests need a token
    GET    /metrics            Prometheus text format (observe.py)
    GET    /                   the web page; /docs and /openapi.json the API

Every error is JSON with a one-line ``detail``: 4xx for bad requests (413 for a body or an image
too large, 415 for what is not an image), 500 (logged) for anything unforeseen.

Work that needs the CPU (decoding, embedding, FAISS, saving) runs in worker threads; the index's
readers-writer lock lets searches run together while an add or a removal runs alone.

Several processes may serve one index folder (``--workers N``, or a CLI writing beside the
service): a write holds the folder's lock from catching up with the folder to appending its
change to the live version's change log (search/changelog.py), first applying the records
other processes appended (or reloading, where another version became live); when the folder
moved on, one reading thread catches up while the others answer from the state they have.
So no change is lost and none is stuck: a 409 (the live version moved under a save) reloads
the index, and the client's retry applies to the live version.

The model is a run folder (torch) or an ONNX file from ``tripletnet export`` (onnxruntime); this
module imports torch only for a run folder.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError
from starlette.datastructures import UploadFile

from ..errors import TripletnetError
from ..search.embedder import Embedder, QueryEmbedder
from ..search.filters import Filter, check_metadata
from ..search.images import ImageError, ImageTooLargeError, decode_image, png_bytes
from ..search.index import MAX_LABEL, Item, SearchIndex
from ..search.onnx_embedder import OnnxEmbedder
from ..search.store import IndexChangedError, IndexFolderError, index_lock
from .auth import Access

log = logging.getLogger("tripletnet.service")
MAX_BATCH = 1000  # query vectors in one /search/batch request

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_K = 1000
LABEL_RULE = f"label must be an integer from 0 to {MAX_LABEL}"
MAX_SOURCE = 1000  # characters in an item's source
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
                        "metadata": {"type": "string", "description": "a JSON object"},
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


def label_value(value: Any) -> int | None:
    """A label from JSON or a form field (None, an int or a string of one) in 0..MAX_LABEL."""
    if value is None:
        return None
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        number = int(value)
    if number is None or not 0 <= number <= MAX_LABEL:
        raise ValueError(f"{LABEL_RULE}, got {value!r}")
    return number


class VectorQuery(BaseModel):
    """A query (vector, k: /search) or a new item (vector, label, source: /items)."""

    model_config = ConfigDict(extra="forbid")

    vector: list[Annotated[float, Field(strict=True)]]  # numbers: no true, no "1"
    k: int | None = Field(None, strict=True)  # default: 10, or the service's --max-k when smaller
    label: int | None = Field(None, ge=0, le=MAX_LABEL)
    source: str | None = Field(None, max_length=MAX_SOURCE)
    metadata: dict[str, Any] | None = None
    labels: list[Annotated[int, Field(strict=True)]] | None = None
    where: dict[str, Any] | None = None

    @field_validator("label", mode="before")
    @classmethod
    def _check_label(cls, value: Any) -> int | None:
        try:
            return label_value(value)
        except ValueError as error:
            raise PydanticCustomError("label", "{message}", {"message": str(error)}) from None


class BatchQuery(BaseModel):
    """Many query vectors in one request: /search/batch."""

    model_config = ConfigDict(extra="forbid")

    vectors: list[list[Annotated[float, Field(strict=True)]]]
    k: int | None = Field(None, strict=True)
    labels: list[Annotated[int, Field(strict=True)]] | None = None
    where: dict[str, Any] | None = None


class Service:
    """The state behind the routes: the model, the index and where the index is saved."""

    def __init__(
        self,
        embedder: QueryEmbedder,
        index: SearchIndex,
        index_dir: Path,
        max_k: int,
        mmap: bool = False,
    ) -> None:
        self.embedder = embedder
        self.index = index
        self.index_dir = index_dir
        self.max_k = max_k
        self.mmap = mmap
        self.images = embedder.raw_format.is_image
        self._reloading = threading.Lock()
        self._writing = threading.Lock()  # held by this process's writer (one at a time)

    def current(self) -> SearchIndex:
        """The index for a read, brought up to date first if another process changed the folder.

        Reads never wait for that: while one thread catches up, the others answer from the
        state they have (a read may lag another process's change by one catch-up)."""
        if self._writing.locked():  # this process's own save: the writer brings it up to date
            return self.index
        if self.index.behind() and self._reloading.acquire(blocking=False):
            try:
                if self.index.behind():
                    self.catch_up()
            except IndexFolderError as error:  # e.g. a version removed while it was read
                serving = self.index.version
                log.warning("could not update the index (%s); serving %s", error, serving)
            finally:
                self._reloading.release()
        return self.index

    def catch_up(self) -> None:
        """Apply the changes other processes logged, or load the live version if it moved."""
        if not self.index.catch_up():
            self.reload()

    def reload(self) -> None:
        index = SearchIndex.load(self.index_dir, mmap=self.mmap)
        index.check_model(self.embedder.ref)
        if _version(index) >= _version(self.index):  # a slower reload never goes back
            self.index = index
        log.info("reloaded the index: version %s, %d items", index.version, len(index))

    def write(self, change: Callable[[SearchIndex], Any]) -> Any:
        """Apply ``change`` to the live version and save it, holding the folder's lock
        throughout; if anything fails, reload what is on disk so no refused change stays."""
        if self.mmap:
            raise HTTPException(
                405,
                "this service serves a memory-mapped index read-only; restart it without --mmap",
            )
        with index_lock(self.index_dir), self._writing:
            try:
                self.catch_up()  # a write applies to the live state, so it waits for it
                index = self.index
                result = change(index)
                if index.unsaved:
                    index.save_changes(self.index_dir)
                return result
            except IndexChangedError as error:  # its message would show the folder's full path
                self.reload()
                raise HTTPException(
                    409,
                    f"the index {self.index_dir.name} was changed by another process; the "
                    "service has loaded the live version: repeat the request",
                ) from error
            except BaseException:
                if self.index.unsaved:  # a change made in memory but not saved: drop it
                    self.reload()
                raise

    def where(self, labels: Any, where: Any) -> Filter | None:
        try:
            chosen = Filter.build(labels, where)
        except TripletnetError as error:
            raise _unprocessable(str(error)) from None
        return None if chosen.empty else chosen

    def query_filter(self, request: Request) -> Filter | None:
        """An upload's filter, from the query string: ?labels=1,2&where={"shop":"lyon"}."""
        params = request.query_params
        labels: list[Any] | None = None
        if "labels" in params:
            labels = [label_value(part) for part in params["labels"].split(",") if part.strip()]
        where = None
        if "where" in params:
            try:
                where = json.loads(params["where"])
            except ValueError:
                raise _unprocessable('where must be a JSON object, e.g. {"shop": "lyon"}') from None
        return self.where(labels, where)

    def vector(self, values: list[float]) -> np.ndarray:
        if len(values) != self.index.dim:
            raise _unprocessable(
                f"the vector has {len(values)} values; this index holds {self.index.dim}-d vectors"
            )
        array = np.asarray(values, dtype=np.float64)[None]
        if not np.isfinite(array).all():
            raise _unprocessable("the vector must be finite (no NaN or infinity)")
        if np.abs(array).max() > np.finfo(np.float32).max:
            raise _unprocessable("the vector must be finite in float32 (values within ±3.4e38)")
        return array.astype(np.float32)

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
        """An uploaded image's raw sample and embedding; 415 if not an image, 413 if too large."""
        if not self.images:
            raise HTTPException(415, "this model does not take images; send a JSON vector")
        try:
            sample = self.embedder.samples([decode_image(data, name)])
        except ImageTooLargeError as error:
            raise HTTPException(413, str(error)) from error
        except ImageError as error:
            raise HTTPException(415, str(error)) from error
        return sample, self.embedder.embed_samples(sample)

    def describe(
        self, item: Item, distance: float | None = None, index: SearchIndex | None = None
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

    def item(self, item_id: int, index: SearchIndex | None = None) -> dict[str, Any]:
        index = index or self.current()
        try:
            return self.describe(index.item(item_id), index=index)
        except KeyError:
            raise HTTPException(404, f"no item with id {item_id}") from None


def _unprocessable(message: str) -> HTTPException:
    return HTTPException(422, message)


async def _read_query(
    request: Request, takes: Sequence[str]
) -> tuple[VectorQuery | None, dict[str, Any]]:
    """A JSON VectorQuery, or (None, the multipart fields with the image's bytes and name).

    ``takes`` names the fields the route reads besides the vector or image: any other is a 422,
    not silently ignored."""
    route = f"{request.method} {request.url.path}"
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            query = VectorQuery.model_validate_json(await request.body())
        except ValidationError as error:
            raise RequestValidationError(error.errors()) from error
        _refuse_unknown(route, query.model_fields_set - {"vector"}, takes)
        return query, {}
    if content_type == "multipart/form-data":
        form = await request.form()
        upload = form.get("image")
        if not isinstance(upload, UploadFile):
            raise _unprocessable("send the image as a multipart file field named 'image'")
        _refuse_unknown(route, set(form.keys()) - {"image"}, takes)
        for key in form:
            if len(form.getlist(key)) > 1:
                raise _unprocessable(f"send one '{key}' field, not {len(form.getlist(key))}")
        fields: dict[str, Any] = {}
        for key, value in form.items():
            if key != "image" and not isinstance(value, str):
                raise _unprocessable(f"'{key}' must be a plain form field, not a file")
            fields[key] = value
        fields["image"] = await upload.read()
        fields["filename"] = upload_name(upload.filename)
        return None, fields
    raise HTTPException(
        415, "send JSON ({'vector': [...]}) or multipart/form-data with an 'image' file"
    )


def _refuse_unknown(route: str, given: set[str], takes: Sequence[str]) -> None:
    unknown = sorted(given - set(takes))
    if unknown:
        allowed = ", ".join(takes) or "nothing else"
        raise _unprocessable(f"{route} does not take {', '.join(unknown)} (it takes {allowed})")


def upload_name(filename: str | None) -> str:
    """An upload's file name without folders or '..', for messages and item sources."""
    name = re.split(r"[\\/]", filename or "")[-1]
    name = "".join(char for char in name if char.isprintable()).strip(". ")
    return name or "upload"


def _validation_detail(errors: Sequence[Any]) -> str:
    """Pydantic's errors as one line: 'vector: Input should be a valid list; ...'."""
    lines = []
    for error in errors:
        where = ".".join(str(part) for part in error["loc"] if part not in ("body", "path"))
        where = where or "JSON body"  # the body's own errors: not JSON, not an object
        message = str(error["msg"])
        lines.append(message if message.startswith(where) else f"{where}: {message}")
    return "; ".join(lines)


def load_embedder(
    run_dir: str | Path | None = None, onnx: str | Path | None = None
) -> QueryEmbedder:
    """The model of a run folder (torch), or of an ONNX file from ``tripletnet export``
    (onnxruntime; torch is not imported): exactly one of the two."""
    if (run_dir is None) == (onnx is None):
        raise TripletnetError("give exactly one of a run folder or an ONNX file (--onnx)")
    if onnx is not None:
        return OnnxEmbedder.from_file(onnx)
    assert run_dir is not None
    return Embedder.from_run(run_dir)


def create_app(
    run_dir: str | Path | None,
    index_dir: str | Path,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    max_k: int = MAX_K,
    *,
    onnx: str | Path | None = None,
    access: Access | None = None,
    mmap: bool = False,
) -> FastAPI:
    """The service for the index in ``index_dir`` and its model: the run in ``run_dir``, or the
    ONNX export ``onnx`` of that run (``run_dir`` None), served with onnxruntime. ``access``
    says which requests need a token; ``mmap`` serves the index memory-mapped, read-only."""
    from .auth import RequireToken
    from .limits import BodySizeLimit, JsonErrors
    from .observe import Metrics, Observe

    access = access or Access()
    embedder = load_embedder(run_dir, onnx)
    index = SearchIndex.load(index_dir, mmap=mmap)
    index.check_model(embedder.ref)
    service = Service(embedder, index, Path(index_dir), max_k, mmap)
    app = FastAPI(
        title="tripletnet search",
        description="Search by example with a trained tripletnet embedding model.",
    )
    try:
        metrics: Metrics | None = Metrics(lambda: (len(service.index), _version(service.index)))
    except ImportError:
        metrics = None
    app.add_middleware(BodySizeLimit, max_bytes=max_upload_bytes)
    app.add_middleware(RequireToken, access=access)  # before the body is read
    app.add_middleware(JsonErrors)  # it also catches BodySizeLimit's errors
    app.add_middleware(Observe, metrics=metrics)  # the outermost: it sees every answer
    app.state.service = service

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_detail(error.errors())}, status_code=422)

    page = resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home() -> str:
        return page

    @app.get("/health")
    def health() -> dict[str, Any]:
        index = service.current()
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
            "max_k": max_k,
            "max_upload_bytes": max_upload_bytes,
            "token_required": {"writes": access.token is not None, "reads": access.protect_reads},
            "read_only": mmap,
        }

    @app.get("/metrics", response_class=Response)
    def get_metrics() -> Response:
        if metrics is None:
            raise HTTPException(
                501, "metrics need prometheus-client: pip install 'tripletnet[serve]'"
            )
        service.current()
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    @app.post("/embed", openapi_extra=_IMAGE_ONLY)
    async def embed_image(request: Request) -> dict[str, Any]:
        query, fields = await _read_query(request, takes=())
        if query is not None:
            raise HTTPException(415, "POST /embed takes a multipart image upload")
        _, vector = await run_in_threadpool(
            service.embed_upload, fields["image"], fields["filename"]
        )
        return {"dim": int(vector.shape[1]), "embedding": vector[0].tolist()}

    @app.post("/search", openapi_extra=_JSON_OR_IMAGE)
    async def search(request: Request) -> dict[str, Any]:
        query, fields = await _read_query(request, takes=("k", "labels", "where"))
        if query is not None:
            k, vector = service.k(query.k), service.vector(query.vector)
            where = service.where(query.labels, query.where)
        else:
            k = service.k(fields.get("k"))
            try:
                where = service.query_filter(request)
            except ValueError as error:
                raise _unprocessable(f"labels: {error}") from None
            _, vector = await run_in_threadpool(
                service.embed_upload, fields["image"], fields["filename"]
            )
        index = await run_in_threadpool(service.current)
        hits = await run_in_threadpool(index.search, vector, k, where)
        found = [service.describe(hit.item, hit.distance, index) for hit in hits[0]]
        return {"k": k, "results": found}

    @app.post("/search/batch")
    async def search_batch(query: BatchQuery) -> dict[str, Any]:
        if not 1 <= len(query.vectors) <= MAX_BATCH:
            raise _unprocessable(f"send 1 to {MAX_BATCH} vectors, got {len(query.vectors)}")
        k, where = service.k(query.k), service.where(query.labels, query.where)
        vectors = np.concatenate([service.vector(values) for values in query.vectors])
        index = await run_in_threadpool(service.current)
        hits = await run_in_threadpool(index.search, vectors, k, where)
        results = [[service.describe(h.item, h.distance, index) for h in row] for row in hits]
        return {"k": k, "results": results}

    @app.post("/items", status_code=201, openapi_extra=_JSON_OR_IMAGE)
    async def add_item(request: Request) -> dict[str, Any]:
        query, fields = await _read_query(request, takes=("label", "source", "metadata"))
        thumbnails = None
        if query is not None:
            vector, label, source = service.vector(query.vector), query.label, query.source
            metadata = query.metadata
        else:
            try:
                label = label_value(fields.get("label") or None)
            except ValueError as error:
                raise _unprocessable(str(error)) from None
            metadata = _form_metadata(fields.get("metadata"))
            source = str(fields.get("source") or fields["filename"])
            if len(source) > MAX_SOURCE:
                raise _unprocessable(
                    f"source must be at most {MAX_SOURCE} characters, got {len(source)}"
                )
            sample, vector = await run_in_threadpool(
                service.embed_upload, fields["image"], fields["filename"]
            )
            thumbnails = embedder.thumbnails(sample)
        try:
            checked = check_metadata(metadata)
        except TripletnetError as error:
            raise _unprocessable(str(error)) from None

        def add(index: SearchIndex) -> dict[str, Any]:
            ids = index.add(vector, [label], [source], thumbnails, [checked])
            return service.item(int(ids[0]), index)

        return await run_in_threadpool(service.write, add)

    @app.get("/items/{item_id}")
    def get_item(item_id: int) -> dict[str, Any]:
        return service.item(item_id)

    @app.get("/items/{item_id}/thumbnail.png", response_class=Response)
    def get_thumbnail(item_id: int) -> Response:
        picture = service.current().thumbnails.get(item_id)
        if picture is None:
            raise HTTPException(404, f"no thumbnail for item {item_id}")
        return Response(png_bytes(picture, THUMBNAIL_SCALE), media_type="image/png")

    @app.delete("/items/{item_id}")
    def delete_item(item_id: int) -> dict[str, Any]:
        def remove(index: SearchIndex) -> dict[str, Any]:
            if not index.remove([item_id]):
                raise HTTPException(404, f"no item with id {item_id}")
            return {"removed": item_id, "count": len(index)}

        return service.write(remove)

    _add_vector_schema(app)
    return app


def _version(index: SearchIndex) -> int:
    return int(index.version[1:]) if index.version else 0


def _form_metadata(text: Any) -> Any:
    """An upload's metadata: a form field holding a JSON object."""
    if text is None or text == "":
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise _unprocessable('metadata must be a JSON object, e.g. {"shop": "lyon"}') from None


SETTINGS_VARIABLE = "TRIPLETNET_SERVE_SETTINGS"


def app_from_environment() -> FastAPI:
    """The app of one of ``tripletnet serve --workers N``'s processes: the command's settings
    come in TRIPLETNET_SERVE_SETTINGS (JSON; the token itself never: a file name, or the
    TRIPLETNET_TOKEN variable the workers inherit)."""
    from .auth import load_token
    from .observe import configure_logging

    settings = json.loads(os.environ[SETTINGS_VARIABLE])
    configure_logging(settings.pop("access_log"))
    token_file = settings.pop("token_file")
    access = Access(
        load_token(None if token_file is None else Path(token_file)), settings.pop("protect_reads")
    )
    return create_app(**settings, access=access)


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
