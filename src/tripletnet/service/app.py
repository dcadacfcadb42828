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

The routes are in routes/ (state.py's Service is their dependency; bodies.py reads requests);
every error is JSON with a one-line ``detail``, its status set in errors.py: 4xx for bad
requests (413 for a body or an image too large, 415 for what is not an image; 400 for a
``Host`` that is not the service's and 403 for a browser's write from another site: origin.py),
500 (logged) for anything unforeseen.

Work that needs the CPU (decoding, embedding, FAISS, saving) runs in worker threads; the index's
readers-writer lock lets searches run together while an add or a removal runs alone.

Several processes may serve one index folder (``--workers N``, or a CLI writing beside the
service): every read and write goes through search/live.py's LiveIndex, whose writes hold the
folder's lock from catching up with the folder to appending their change to the live version's
change log. So no change is lost and none is stuck: a 409 (the live version moved under a
save) reloads the index, and the client's retry applies to the live version.

The model is a run folder (torch) or an ONNX file from ``tripletnet export`` (onnxruntime); this
module imports torch only for a run folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from fastapi import FastAPI

from ..errors import TripletnetError
from ..search.embedder import Embedder, QueryEmbedder
from ..search.engines import Target, open_live
from ..search.onnx_embedder import OnnxEmbedder
from .auth import Access, RequireToken
from .errors import add_error_handlers
from .limits import BodySizeLimit, JsonErrors
from .observe import Observe
from .origin import CheckOrigin, Hosts
from .routes import ROUTERS
from .routes.search import MAX_BATCH
from .state import Service

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_K = 1000
# /search/batch's body limit: MAX_BATCH vectors at up to JSON_VALUE_BYTES a value (a float64's
# longest JSON form, 24 characters, with its comma and pretty-printing's indentation), plus
# BATCH_EXTRA_BYTES for k and the filters; refused (413) as it streams in past that, or past
# the general limit where that is smaller
JSON_VALUE_BYTES = 32
BATCH_EXTRA_BYTES = 1024 * 1024
SETTINGS_VARIABLE = "TRIPLETNET_SERVE_SETTINGS"


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
    host: str | None = None,
    allowed_hosts: Sequence[str] = (),
    backend: str = "faiss",
    uri: str | None = None,
    milvus_token: str | None = None,
) -> FastAPI:
    """The service for the index in ``index_dir`` and its model: the run in ``run_dir``, or the
    ONNX export ``onnx`` of that run (``run_dir`` None), served with onnxruntime. ``access``
    says which requests need a token; ``mmap`` serves the index memory-mapped, read-only.
    ``host`` (the address it listens on) and ``allowed_hosts`` are the names it answers
    (origin.py; with neither, as in a test, any ``Host``); cross-site writes are always refused.
    ``backend`` "milvus": ``index_dir`` names a collection of the Milvus at ``uri``
    (``milvus_token``, else the MILVUS_TOKEN variable: its token)."""
    hosts = Hosts.for_bind(host, allowed_hosts)
    embedder = load_embedder(run_dir, onnx)
    target = Target(index_dir, backend, uri, milvus_token)
    live = open_live(target, mmap=mmap, model=embedder.ref)
    dim = live.current().dim  # a missing or damaged index, or another model's: an error now
    service = Service(embedder, live, max_k, max_upload_bytes, access or Access())
    app = FastAPI(
        title="tripletnet search",
        description="Search by example with a trained tripletnet embedding model.",
    )
    batch_bytes = MAX_BATCH * dim * JSON_VALUE_BYTES + BATCH_EXTRA_BYTES
    app.add_middleware(
        BodySizeLimit, max_bytes=max_upload_bytes, paths={"/search/batch": batch_bytes}
    )
    app.add_middleware(RequireToken, access=service.access)  # before the body is read
    app.add_middleware(CheckOrigin, hosts=hosts)  # Host, then cross-site writes
    app.add_middleware(JsonErrors)  # it also catches BodySizeLimit's errors
    app.add_middleware(Observe, metrics=service.metrics)  # the outermost: it sees every answer
    app.state.service = service
    add_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    return app


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
