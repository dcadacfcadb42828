"""Index engines behind one interface (base.py): ``faiss``, the embedded default (a versioned
folder, search/live.py), and ``milvus`` (a collection of Milvus Lite or a Milvus server,
milvus.py; the ``milvus`` extra). The CLI and the service open an index with :func:`open_live`
and store a new one with :func:`create_live`; nothing else of theirs knows the engine.

An index is named by a location: a FAISS folder's path, or with ``milvus`` a collection name
(``uri``: a Milvus Lite ``.db`` file or ``http://HOST:19530``; ``token``: the server's, or the
MILVUS_TOKEN variable).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import TripletnetError
from ..index import ModelRef
from .base import IndexState, LiveEngine

if TYPE_CHECKING:
    from ..build import Collection
    from ..folder import SearchIndex

ENGINES = ("faiss", "milvus")
TOKEN_VARIABLE = "MILVUS_TOKEN"

__all__ = ["ENGINES", "IndexState", "LiveEngine", "Target", "create_live", "open_live", "prepare"]


class Target:
    """Where an index lives: ``backend`` (an engine's name), ``location`` (a FAISS folder, or a
    Milvus collection's name), and for Milvus ``uri`` and ``token``."""

    def __init__(
        self,
        location: str | Path,
        backend: str = "faiss",
        uri: str | None = None,
        token: str | None = None,
    ) -> None:
        if backend not in ENGINES:
            raise TripletnetError(
                f"unknown backend {backend!r}; choose one of: {', '.join(ENGINES)}"
            )
        if backend == "faiss" and uri is not None:
            raise TripletnetError("--uri names a Milvus database: give it with --backend milvus")
        if backend == "milvus" and uri is None:
            raise TripletnetError(
                "--backend milvus needs --uri: a Milvus Lite file (NAME.db) or http://HOST:19530"
            )
        self.location = location
        self.backend = backend
        self.uri = uri
        self.token = token if token is not None else os.environ.get(TOKEN_VARIABLE) or None

    @classmethod
    def from_options(
        cls, location: str | Path, backend: str, uri: str | None, token_file: Path | None
    ) -> Target:
        """The CLI's --backend, --uri and --token-file (the token: the file's first line)."""
        token = None
        if token_file is not None:
            try:
                token = token_file.read_text(encoding="utf-8").strip() or None
            except (OSError, UnicodeDecodeError) as error:
                raise TripletnetError(f"--token-file {token_file}: {error}") from None
        return cls(location, backend, uri, token)

    @property
    def milvus(self) -> bool:
        return self.backend == "milvus"

    @property
    def collection(self) -> str:
        """A Milvus collection's name: the location as given."""
        return str(self.location)

    def settings(self) -> dict[str, str | None]:
        """What a worker process needs to open the same index (never the token itself)."""
        return {"backend": self.backend, "uri": self.uri}


def open_live(target: Target, mmap: bool = False, model: ModelRef | None = None) -> LiveEngine:
    """The live index at ``target`` (read at first use)."""
    if target.milvus:
        from .milvus import MilvusLive

        assert target.uri is not None
        return MilvusLive(target.collection, target.uri, target.token, mmap, model)
    from ..live import LiveIndex

    return LiveIndex(target.location, mmap=mmap, model=model)


def prepare(target: Target, overwrite: bool = False) -> None:
    """Refuse, before any work, to build where an index may not go: a FAISS folder that holds
    other files (or an index, without ``overwrite``), a Milvus collection name that is none (or
    one already there, without ``overwrite``), a Milvus that does not answer."""
    if not target.milvus:
        from ..store import prepare_index_folder

        prepare_index_folder(Path(target.location), overwrite)
        return
    from .milvus import MilvusLive

    assert target.uri is not None
    live = MilvusLive(target.collection, target.uri, target.token)
    if live.exists() and not overwrite:
        raise TripletnetError(
            f"{target.uri} already holds collection {target.collection!r}; pass --overwrite "
            "to replace it"
        )


def create_live(
    target: Target,
    collection: Collection,
    *,
    dim: int,
    kind: str,
    metric: str,
    model: ModelRef | None,
    class_names: list[str],
    params: dict[str, int] | None = None,
    refine_store: str | None = None,
) -> tuple[LiveEngine, IndexState]:
    """Store ``collection`` as a new index at ``target`` (replacing one there: ``prepare``
    first); the live index and its state."""
    if not target.milvus:
        from ..folder import SearchIndex
        from ..live import LiveIndex
        from ..vectors import DEFAULT_STORE

        if kind not in ("exact", "hnsw", "ivfpq"):
            raise TripletnetError(
                f"the faiss engine has no {kind} index (it has exact, hnsw, ivfpq); "
                "use --backend milvus for it"
            )
        index: SearchIndex = SearchIndex(
            dim, kind, model, params, metric=metric, refine_store=refine_store or DEFAULT_STORE
        )
        index.class_names = class_names
        index.add(collection.vectors, collection.labels, collection.sources, collection.thumbnails)
        return LiveIndex.create(target.location, index), index
    from ..index import MemoryIndex
    from .milvus import MilvusLive

    if refine_store is not None or (params and "refine" in params):
        raise TripletnetError("the milvus engine does not re-rank: leave out --refine")
    MemoryIndex(dim, "exact", metric=metric).check_vectors(collection.vectors)  # before storing
    assert target.uri is not None
    live = MilvusLive.create(
        target.collection,
        target.uri,
        target.token,
        dim=dim,
        kind=kind,
        metric=metric,
        model=model,
        params=params,
        class_names=class_names,
        count=len(collection.vectors),
    )
    state = live.index
    try:
        state.add(collection.vectors, collection.labels, collection.sources, collection.thumbnails)
    except BaseException:
        live.drop()  # no half-built collection stays
        raise
    return live, state
