"""The ``milvus`` engine: an index as one collection of Milvus, through pymilvus's MilvusClient.

``uri`` a ``.db`` path: Milvus Lite, inside this process (one process at a time opens a file);
``http(s)://HOST:19530``: a Milvus Standalone or Distributed server (``token``: "user:password"
or an API key). Milvus is the durable store: an add is an insert, a removal a delete, and there
is no change log to compact or repair.

The collection ``NAME`` holds the items:

    id (INT64, primary key), vector (FLOAT_VECTOR), label (INT64, nullable), source (VARCHAR,
    nullable), metadata (JSON, nullable), thumbnail (VARCHAR: "" or H,W,C:base64 of uint8)

and, in its properties, the manifest (``tripletnet.manifest``: format, kind, dim, metric, params,
class names and the model binding: fingerprint, spec, run), checked against a query model
exactly as a FAISS folder's manifest is. Its companion ``NAME__tripletnet`` holds the next id
(ids are never reused) and the idempotency keys with what their adds made.

Kinds: exact -> FLAT, ivfflat -> IVF_FLAT, hnsw -> HNSW, ivfpq -> IVF_PQ (no re-ranking). Cosine
runs search by inner product (IP) on unit vectors and report 1 - cos; Euclidean ones by L2 and
report the square root of Milvus's squared L2: the FAISS engine's distances.

Filters become Milvus expressions (``label in [..]``, ``metadata["key"] == value``) built from
escaped literals (no value is ever pasted into an expression unescaped); what Milvus cannot
tell apart (true and 1, a null and a missing field) is kept out of the expression and checked
on the results, the search widened until k items pass (up to Milvus's top-k limit).
"""

from __future__ import annotations

import base64
import json
import logging
import math
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ...errors import TripletnetError
from ..filters import Filter, InvalidInput, Scalar, check_label, check_metadata
from ..index import (
    DEFAULT_PARAMS,
    MAX_ID,
    ChosenIdError,
    Hit,
    Item,
    MemoryIndex,
    ModelRef,
    Remembered,
    _ivfpq_shape,
)

T = TypeVar("T")
FORMAT = 1
MANIFEST = "tripletnet.manifest"
COMPANION = "__tripletnet"  # NAME + COMPANION: next id and idempotency keys
KINDS = ("exact", "ivfflat", "hnsw", "ivfpq")
INDEX_TYPES = {"exact": "FLAT", "ivfflat": "IVF_FLAT", "hnsw": "HNSW", "ivfpq": "IVF_PQ"}
PARAMS: dict[str, dict[str, int]] = {
    **{kind: dict(params) for kind, params in DEFAULT_PARAMS.items() if kind != "ivfpq"},
    "ivfflat": {"nlist": 0, "nprobe": 16},
    "ivfpq": {"nlist": 0, "m": 0, "nbits": 0, "nprobe": 16},
}
MAX_TOPK = 16_384  # Milvus's largest limit of a search
MAX_TEXT = 65_535  # a VARCHAR's largest length
INSERT_ROWS = 10_000  # rows a single insert carries
QUERY_IDS = 1_000  # ids a single query asks for
CONNECT_TIMEOUT = 10.0
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,200}")
INT64 = 2**63 - 1
ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
INSTALL = "the milvus engine needs the 'milvus' extra: pip install \"tripletnet[milvus]\""

log = logging.getLogger("tripletnet.search")


def check_name(name: str) -> str:
    """A collection name Milvus takes: a letter or _, then letters, digits and _."""
    if not NAME.fullmatch(name) or name.endswith(COMPANION):
        raise TripletnetError(
            f"{name!r} is not a Milvus collection name: use letters, digits and _ (not starting "
            f"with a digit, not ending in {COMPANION})"
        )
    return name


def is_lite(uri: str) -> bool:
    """A Milvus Lite file (run in this process), not a server's address."""
    return re.match(r"(https?|tcp|grpc)://", uri) is None


def connect(uri: str, token: str | None = None) -> Any:
    """A MilvusClient for ``uri`` (a ``.db`` file: Milvus Lite in this process), or one
    error line: the extra is missing, the URI is not one, or nothing answers there."""
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise TripletnetError(INSTALL) from None
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)  # its errors become ours
    remote = not is_lite(uri)
    if not remote:
        if not uri.endswith(".db"):
            raise TripletnetError(
                f"--uri {uri}: give a Milvus Lite file (NAME.db) or a server (http://HOST:19530)"
            )
        if not Path(uri).resolve().parent.is_dir():
            raise TripletnetError(f"--uri {uri}: its folder does not exist")
    # Milvus Lite answers from a thread of this process: a busy machine may keep it waiting
    timeout = CONNECT_TIMEOUT if remote else 6 * CONNECT_TIMEOUT
    try:
        return MilvusClient(uri=uri, token=token or "", timeout=timeout)
    except Exception as error:
        if remote:
            raise TripletnetError(f"cannot reach Milvus at {uri}: {_reason(error)}") from None
    try:  # Milvus Lite's server thread in this process stopped answering: start a new one
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(uri)
        return MilvusClient(uri=uri, token=token or "", timeout=timeout)
    except Exception as error:
        raise TripletnetError(f"cannot reach Milvus at {uri}: {_reason(error)}") from None


def _reason(error: BaseException) -> str:
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return " ".join(str(message).split())[:300]


@contextmanager
def _milvus(what: str) -> Iterator[None]:
    """Milvus's errors as one TripletnetError line that says what was being done."""
    try:
        yield
    except TripletnetError:
        raise
    except Exception as error:
        if type(error).__module__.startswith(("pymilvus", "grpc", "milvus_lite")):
            raise TripletnetError(f"Milvus could not {what}: {_reason(error)}") from None
        raise


# -- filters -----------------------------------------------------------------------------------


def literal(value: Scalar) -> str | None:
    """A filter value as a Milvus literal, escaped; None where it has none that Milvus
    compares as tripletnet does (null, integers beyond int64, text with other control
    characters): that value is checked on the results instead."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if -INT64 <= value <= INT64 else None
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    if any(ord(c) < 32 and c not in ESCAPES for c in value):
        return None
    return '"' + "".join(ESCAPES.get(c, c) for c in value) + '"'


def expression(where: Filter | None) -> str:
    """A Milvus filter expression that keeps every item ``where`` keeps (and maybe a few more:
    the results are checked against ``where`` itself)."""
    if where is None or where.empty:
        return ""
    parts = []
    if where.labels is not None:
        parts.append(f"label in [{', '.join(str(int(label)) for label in sorted(where.labels))}]")
    for key, values in where.where:
        field = f"metadata[{literal(key)}]"
        literals = [literal(value) for value in values]
        if None in literals:  # a value Milvus cannot state: only the field's presence
            parts.append(f"exists {field}" if None not in values else "")
            continue
        parts.append("(" + " or ".join(f"{field} == {text}" for text in literals) + ")")
    return " and ".join(part for part in parts if part)


# -- rows ----------------------------------------------------------------------------------------


def _thumbnail_text(picture: np.ndarray | None) -> str:
    if picture is None:
        return ""
    array = np.ascontiguousarray(picture, dtype=np.uint8)
    text = ",".join(map(str, array.shape)) + ":" + base64.b64encode(array.tobytes()).decode()
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"a thumbnail of shape {array.shape} is too large for Milvus")
    return text


def _thumbnail(text: str) -> np.ndarray | None:
    if not text:
        return None
    shape, _, data = text.partition(":")
    values = np.frombuffer(base64.b64decode(data), dtype=np.uint8)
    return values.reshape(tuple(int(n) for n in shape.split(",")))


def _item(row: Mapping[str, Any]) -> Item:
    label = row.get("label")
    return Item(int(row["id"]), None if label is None else int(label), row.get("source"),
                row.get("metadata"))  # fmt: skip


class MilvusItems(Mapping[int, Item]):
    """The items of a collection by id, each asked of Milvus."""

    def __init__(self, index: MilvusIndex) -> None:
        self._index = index

    def __getitem__(self, item_id: int) -> Item:
        rows = self._index._get([item_id], ["label", "source", "metadata"])
        if not rows:
            raise KeyError(item_id)
        return _item(rows[0])

    def __contains__(self, item_id: object) -> bool:
        if not isinstance(item_id, int | np.integer):
            return False
        return bool(self._index._get([int(item_id)], []))

    def __iter__(self) -> Iterator[int]:
        client, name = self._index.client, self._index.name
        with _milvus("list the items"):
            pages = client.query_iterator(name, batch_size=QUERY_IDS, output_fields=["id"])
            try:
                while page := pages.next():
                    yield from (int(row["id"]) for row in page)
            finally:
                pages.close()

    def __len__(self) -> int:
        return len(self._index)


class MilvusThumbnails(Mapping[int, np.ndarray]):
    """The thumbnails of a collection by id. Whether the hits of the latest searches have one
    is asked in one query, the first time one of them is looked up (a search result's page)."""

    def __init__(self, index: MilvusIndex) -> None:
        self._index = index
        self._known: dict[int, bool] = {}
        self._asked: set[int] = set()
        self._lock = threading.Lock()

    def hits(self, ids: Sequence[int]) -> None:
        with self._lock:
            if len(self._known) > 100_000:
                self._known.clear()
            self._asked.update(i for i in ids if i not in self._known)

    def forget(self, ids: Sequence[int]) -> None:
        with self._lock:
            for item_id in ids:
                self._known.pop(int(item_id), None)

    def __contains__(self, item_id: object) -> bool:
        if not isinstance(item_id, int | np.integer):
            return False
        item_id = int(item_id)
        with self._lock:
            if item_id not in self._known:
                asked = sorted(self._asked | {item_id})[:QUERY_IDS]
                self._asked.difference_update(asked)
                with _milvus("read thumbnails"):
                    rows = self._index.client.query(
                        self._index.name,
                        filter=f'id in [{", ".join(map(str, asked))}] and thumbnail != ""',
                        output_fields=["id"],
                    )
                having = {int(row["id"]) for row in rows}
                self._known.update((i, i in having) for i in asked)
            return self._known[item_id]

    def __getitem__(self, item_id: int) -> np.ndarray:
        rows = self._index._get([int(item_id)], ["thumbnail"])
        picture = _thumbnail(rows[0]["thumbnail"]) if rows else None
        if picture is None:
            raise KeyError(item_id)
        return picture

    def __iter__(self) -> Iterator[int]:
        with _milvus("list the thumbnails"):
            rows = self._index.client.query(
                self._index.name, filter='thumbnail != ""', output_fields=["id"]
            )
        return iter(int(row["id"]) for row in rows)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class MilvusIndex:
    """The state of one collection: reads and writes go to Milvus as they are made (the
    :class:`~..engines.base.IndexState` of the milvus engine)."""

    version = None  # no folder versions: Milvus keeps the one state
    logged = 0  # nor a change log

    def __init__(self, client: Any, name: str, manifest: Mapping[str, Any]) -> None:
        self.client = client
        self.name = name
        self.dim = int(manifest["dim"])
        self.kind = str(manifest["kind"])
        self.metric = str(manifest["metric"])
        self.params = {str(k): int(v) for k, v in manifest["params"].items()}
        self.class_names = list(manifest.get("class_names", []))
        model = manifest.get("model")
        self.model = None if model is None else ModelRef(**model)
        self._checker = MemoryIndex(self.dim, "exact", metric=self.metric)
        self.items = MilvusItems(self)
        self.thumbnails = MilvusThumbnails(self)

    # -- opening and creating -----------------------------------------------------------------

    @classmethod
    def open(cls, client: Any, name: str, uri: str) -> MilvusIndex:
        """The collection ``name`` (loaded for search), or a TripletnetError that says why not."""
        with _milvus(f"open collection {name}"):
            if not client.has_collection(name) or not client.has_collection(name + COMPANION):
                raise TripletnetError(
                    f"{uri} has no tripletnet collection {name!r}; build one with "
                    f"'tripletnet index build ... --backend milvus --uri {uri} --out {name}'"
                )
            properties = client.describe_collection(name).get("properties") or {}
            if MANIFEST not in properties:
                raise TripletnetError(f"collection {name!r} in {uri} was not made by tripletnet")
            manifest = json.loads(properties[MANIFEST])
            if manifest.get("format") != FORMAT:
                raise TripletnetError(
                    f"collection {name!r} has index format {manifest.get('format')!r}; this "
                    f"tripletnet reads {FORMAT}"
                )
            for collection in (name, name + COMPANION):
                client.load_collection(collection)
        return cls(client, name, manifest)

    @classmethod
    def create(
        cls,
        client: Any,
        name: str,
        dim: int,
        kind: str,
        metric: str,
        model: ModelRef | None,
        params: Mapping[str, int] | None = None,
        class_names: Sequence[str] = (),
        count: int = 0,
    ) -> MilvusIndex:
        """A new, empty collection (replacing one of that name); ``count``: the number of
        vectors about to be added, which chooses an IVF's cells where ``params`` do not."""
        from pymilvus import DataType

        if kind not in KINDS:
            raise TripletnetError(f"unknown index kind {kind!r}; the milvus engine has {KINDS}")
        unknown = set(params or {}) - set(PARAMS[kind])
        if unknown:
            raise TripletnetError(
                f"the milvus engine takes no parameter(s) {sorted(unknown)} for a {kind} index"
                + ("; it does not re-rank (--refine)" if "refine" in unknown else "")
            )
        chosen = {**PARAMS[kind], **(params or {})}
        if kind in ("ivfflat", "ivfpq"):
            nlist, m, nbits = _ivfpq_shape(dim, max(count, 1))
            chosen["nlist"] = chosen["nlist"] or nlist
            if kind == "ivfpq":
                chosen["m"], chosen["nbits"] = chosen["m"] or m, chosen["nbits"] or nbits
                if dim % chosen["m"]:
                    raise TripletnetError(f"ivfpq: m={chosen['m']} must divide the dimension {dim}")
        manifest = {
            "format": FORMAT,
            "kind": kind,
            "dim": dim,
            "metric": metric,
            "params": chosen,
            "class_names": list(class_names),
            "model": None if model is None else asdict(model),
        }
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("label", DataType.INT64, nullable=True)
        schema.add_field("source", DataType.VARCHAR, max_length=MAX_TEXT, nullable=True)
        schema.add_field("metadata", DataType.JSON, nullable=True)
        schema.add_field("thumbnail", DataType.VARCHAR, max_length=MAX_TEXT)
        indexes = client.prepare_index_params()
        indexes.add_index(
            "vector",
            index_type=INDEX_TYPES[kind],
            metric_type="IP" if metric == "cosine" else "L2",
            params=_build_params(kind, chosen),
        )
        companion = client.create_schema(auto_id=False, enable_dynamic_field=False)
        companion.add_field("key", DataType.VARCHAR, is_primary=True, max_length=512)
        companion.add_field("value", DataType.VARCHAR, max_length=MAX_TEXT)
        companion.add_field("vector", DataType.FLOAT_VECTOR, dim=2)  # Milvus needs one
        flat = client.prepare_index_params()
        flat.add_index("vector", index_type="FLAT", metric_type="L2")
        with _milvus(f"create collection {name}"):
            for collection in (name, name + COMPANION):
                if client.has_collection(collection):
                    client.drop_collection(collection)
            client.create_collection(
                name + COMPANION, schema=companion, index_params=flat, consistency_level="Strong"
            )
            client.insert(name + COMPANION, [_record("next_id", 0)])
            client.create_collection(
                name,
                schema=schema,
                index_params=indexes,
                consistency_level="Strong",
                properties={MANIFEST: json.dumps(manifest)},
            )
        return cls.open(client, name, "Milvus")

    # -- reading ------------------------------------------------------------------------------

    def __len__(self) -> int:
        with _milvus("count the items"):
            rows = self.client.query(self.name, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def _get(self, ids: Sequence[int], fields: list[str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        if any(not 0 <= int(i) <= INT64 for i in ids):  # no item has one: Milvus refuses it
            ids = [int(i) for i in ids if 0 <= int(i) <= INT64]
            if not ids:
                return []
        with _milvus("read items"):
            rows: list[dict[str, Any]] = self.client.get(
                self.name, ids=[int(i) for i in ids], output_fields=fields or ["id"]
            )
        return rows

    def item(self, item_id: int) -> Item:
        return self.items[item_id]

    def label_name(self, label: int | None) -> str | None:
        if label is None:
            return None
        return self.class_names[label] if 0 <= label < len(self.class_names) else str(label)

    def check_vectors(self, vectors: Any) -> np.ndarray:
        return self._checker.check_vectors(vectors)

    def check_model(self, model: ModelRef) -> None:
        checker = MemoryIndex(self.dim, "exact", model=self.model, metric=self.metric)
        checker.check_model(model)

    def search(
        self, queries: np.ndarray, k: int = 10, where: Filter | None = None
    ) -> list[list[Hit]]:
        """The ``k`` nearest items of each query (among those ``where`` keeps), nearest first."""
        if k < 1:
            raise InvalidInput(f"k must be at least 1, got {k}")
        if k > MAX_TOPK:
            raise InvalidInput(f"the milvus engine finds at most k={MAX_TOPK} neighbours")
        queries = self.check_vectors(queries)
        where = None if where is None or where.empty else where
        expr = expression(where)
        first = self._rows(queries, k, expr)
        found = self._hits(first, where)
        for row, query in enumerate(queries):  # a filter Milvus only narrows: widen the search
            limit, returned = k, len(first[row])
            while len(found[row]) < k and returned == limit and limit < MAX_TOPK:
                limit = min(MAX_TOPK, limit * 4)
                rows = self._rows(query[None], limit, expr)
                found[row], returned = self._hits(rows, where)[0], len(rows[0])
        self.thumbnails.hits([hit.item.id for hits in found for hit in hits])
        return [hits[:k] for hits in found]

    def _rows(self, queries: np.ndarray, limit: int, expr: str) -> list[list[dict[str, Any]]]:
        with _milvus("search"):
            found: list[list[dict[str, Any]]] = self.client.search(
                self.name,
                data=queries.tolist(),
                filter=expr,
                limit=limit,
                output_fields=["label", "source", "metadata"],
                search_params={"params": self._search_params(limit)},
            )
        return [list(rows) for rows in found]

    def _hits(self, found: list[list[dict[str, Any]]], where: Filter | None) -> list[list[Hit]]:
        hits: list[list[Hit]] = []
        for rows in found:
            hits.append([])
            for row in rows:
                item = _item({**row["entity"], "id": row["id"]})
                if where is None or where.matches(item.label, item.metadata):
                    hits[-1].append(Hit(item, self._distance(float(row["distance"]))))
        return hits

    def _search_params(self, limit: int) -> dict[str, int]:
        if self.kind == "hnsw":
            return {"ef": max(self.params["ef_search"], limit)}
        if self.kind in ("ivfflat", "ivfpq"):
            return {"nprobe": self.params["nprobe"]}
        return {}

    def _distance(self, score: float) -> float:
        """Milvus's score as the FAISS engine's distance: L2 (Milvus gives it squared), or
        1 - cos from the inner product of unit vectors."""
        if self.metric == "cosine":
            return max(1.0 - score, 0.0)
        return math.sqrt(max(score, 0.0))

    def set_search_params(self, **params: int) -> None:
        """Change ``ef_search`` (hnsw) or ``nprobe`` (ivfflat, ivfpq)."""
        allowed = {"hnsw": {"ef_search"}, "ivfflat": {"nprobe"}, "ivfpq": {"nprobe"}}
        wrong = set(params) - allowed.get(self.kind, set())
        if wrong:
            raise TripletnetError(f"a {self.kind} index has no search parameter(s) {sorted(wrong)}")
        self.params.update(params)

    # -- writing ------------------------------------------------------------------------------

    def _value(self, key: str) -> str | None:
        with _milvus("read the collection's records"):
            rows = self.client.get(self.name + COMPANION, ids=[key], output_fields=["value"])
        return rows[0]["value"] if rows else None

    @property
    def next_id(self) -> int:
        """The first id no item has had (ids are never reused)."""
        return int(self._value("next_id") or 0)

    def remembered(self, key: str) -> Remembered | None:
        """What the add made with this idempotency key."""
        text = self._value("key:" + key)
        if text is None:
            return None
        digest, rows, pictures = json.loads(text)
        items = tuple(Item(int(i), label, source, fields) for i, label, source, fields in rows)
        return Remembered(digest, items, tuple(bool(p) for p in pictures))

    def add(
        self,
        vectors: np.ndarray,
        labels: Sequence[int | None] | np.ndarray | None = None,
        sources: Sequence[str | None] | None = None,
        thumbnails: Sequence[np.ndarray] | np.ndarray | None = None,
        metadata: Sequence[dict[str, Any] | None] | None = None,
        ids: Sequence[int] | np.ndarray | None = None,
        key: str | None = None,
        digest: str | None = None,
    ) -> np.ndarray:
        """Insert vectors with their labels, sources, thumbnails and metadata; their new ids
        (``ids`` where given: increasing, from ``next_id`` on). The next id is recorded before
        the insert (a failed insert leaves a gap, never a reused id); ``key`` is recorded after
        it, with what it made."""
        vectors, rows = self._new_rows(vectors, labels, sources, thumbnails, metadata)
        count = len(rows)
        if ids is not None and len(ids) != count:
            raise TripletnetError(f"{count} vectors but {len(ids)} ids")
        first = self.next_id
        new = (
            np.arange(first, first + count, dtype=np.int64) if ids is None else _chosen(ids, first)
        )
        if not count:
            return new
        with _milvus("add the items"):
            self.client.upsert(self.name + COMPANION, [_record("next_id", int(new[-1]) + 1)])
            self._insert(new, vectors, rows)
            if key is not None:
                made = [
                    [int(i), row["label"], row["source"], row["metadata"]]
                    for i, row in zip(new, rows, strict=True)
                ]
                text = json.dumps([digest, made, [bool(row["thumbnail"]) for row in rows]])
                self.client.upsert(self.name + COMPANION, [_record("key:" + key, text)])
        self.thumbnails.forget(new.tolist())
        return new

    def insert_share(
        self,
        ids: np.ndarray,
        vectors: np.ndarray,
        labels: Sequence[int | None],
        sources: Sequence[str | None],
        thumbnails: Sequence[np.ndarray] | None,
    ) -> None:
        """Insert one process's share of a new collection with the ids the job gave it (the
        job records the next id: engines/milvus_job.py)."""
        vectors, rows = self._new_rows(vectors, labels, sources, thumbnails, None)
        if len(ids) != len(rows):
            raise TripletnetError(f"{len(rows)} vectors but {len(ids)} ids")
        with _milvus("add the items"):
            self._insert(np.asarray(ids, np.int64), vectors, rows)

    def set_next_id(self, next_id: int) -> None:
        with _milvus("record the next id"):
            self.client.upsert(self.name + COMPANION, [_record("next_id", next_id)])

    def _new_rows(
        self,
        vectors: np.ndarray,
        labels: Sequence[int | None] | np.ndarray | None,
        sources: Sequence[str | None] | None,
        thumbnails: Sequence[np.ndarray] | np.ndarray | None,
        metadata: Sequence[dict[str, Any] | None] | None,
    ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """The checked vectors, and the items' other fields as Milvus rows (no id, no vector)."""
        vectors = self.check_vectors(vectors)
        count = len(vectors)
        given = (("labels", labels), ("sources", sources), ("thumbnails", thumbnails))
        for what, values in (*given, ("metadata", metadata)):
            if values is not None and len(values) != count:
                raise TripletnetError(f"{count} vectors but {len(values)} {what}")
        checked_labels = [None] * count if labels is None else [check_label(y) for y in labels]
        checked = [None] * count if metadata is None else [check_metadata(m) for m in metadata]
        texts = [""] * count if thumbnails is None else [_thumbnail_text(t) for t in thumbnails]
        named = [None] * count if sources is None else list(sources)
        for source in named:
            if source is not None and len(source) > MAX_TEXT:
                raise InvalidInput(f"a source must be at most {MAX_TEXT} characters")
        return vectors, [
            {
                "label": checked_labels[row],
                "source": named[row],
                "metadata": checked[row],
                "thumbnail": texts[row],
            }
            for row in range(count)
        ]

    def _insert(self, ids: np.ndarray, vectors: np.ndarray, rows: list[dict[str, Any]]) -> None:
        for start in range(0, len(rows), INSERT_ROWS):
            batch = [
                {"id": int(ids[row]), "vector": vectors[row].tolist(), **rows[row]}
                for row in range(start, min(start + INSERT_ROWS, len(rows)))
            ]
            self.client.insert(self.name, batch)

    def remove(self, ids: Sequence[int] | np.ndarray) -> int:
        """Delete the items with these ids (unknown ids are ignored); how many went."""
        wanted = sorted({int(i) for i in ids})
        there = [
            int(row["id"])
            for start in range(0, len(wanted), QUERY_IDS)
            for row in self._get(wanted[start : start + QUERY_IDS], [])
        ]
        if there:
            with _milvus("remove the items"):
                self.client.delete(self.name, ids=there)
            self.thumbnails.forget(there)
        return len(there)


def _record(key: str, value: object) -> dict[str, Any]:
    return {"key": key, "value": str(value), "vector": [0.0, 0.0]}


def _chosen(ids: Sequence[int] | np.ndarray, next_id: int) -> np.ndarray:
    """Ids a caller chose, by the FAISS engine's rules (new, increasing, at most MAX_ID)."""
    chosen = [int(i) for i in ids]
    if chosen and chosen[0] < next_id:
        raise ChosenIdError(
            f"id {chosen[0]} is not new: ids are never reused, and this index has given ids up "
            f"to {next_id - 1}; choose {next_id} or more"
        )
    if any(b <= a for a, b in zip(chosen, chosen[1:], strict=False)):
        raise ChosenIdError("chosen ids must be increasing")
    if chosen and chosen[-1] > MAX_ID:
        raise ChosenIdError(f"an id must be at most {MAX_ID}, got {chosen[-1]}")
    return np.asarray(chosen, dtype=np.int64)


def _build_params(kind: str, params: Mapping[str, int]) -> dict[str, int]:
    if kind == "hnsw":
        return {"M": params["M"], "efConstruction": params["ef_construction"]}
    if kind == "ivfflat":
        return {"nlist": params["nlist"]}
    if kind == "ivfpq":
        return {"nlist": params["nlist"], "m": params["m"], "nbits": params["nbits"]}
    return {}


class MilvusLive:
    """The live index of the milvus engine: the collection ``name`` at ``uri``. Its writes run
    one at a time in this process; Milvus applies each at once (no change log), so catching
    up, compacting and repairing have nothing to do."""

    engine = "milvus"

    def __init__(
        self,
        name: str,
        uri: str,
        token: str | None = None,
        mmap: bool = False,
        model: ModelRef | None = None,
    ) -> None:
        if mmap:
            raise TripletnetError(
                "--mmap maps a FAISS index folder; a Milvus collection is served by Milvus"
            )
        self._name = check_name(name)
        self.uri = uri
        self.token = token
        self.mmap = False
        self.model = model
        self._client: Any = None
        self._index: MilvusIndex | None = None
        self._writing = threading.Lock()

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = connect(self.uri, self.token)
        return self._client

    @property
    def name(self) -> str:
        return self._name

    @property
    def index(self) -> MilvusIndex:
        if self._index is None:
            index = MilvusIndex.open(self.client, self._name, self.uri)
            if self.model is not None:
                index.check_model(self.model)
            self._index = index
        return self._index

    def current(self) -> MilvusIndex:
        return self.index

    def write(
        self,
        change: Callable[[MilvusIndex], T],
        applied: Callable[[MilvusIndex], bool] | None = None,
    ) -> T:
        """Run ``change`` (its inserts and deletes are Milvus's commits), one write at a time."""
        index = self.index
        with self._writing:
            return change(index)

    def catch_up(self) -> None:
        """Nothing to do: every read asks Milvus."""

    def reload(self) -> None:
        self._index = None
        self.index  # noqa: B018 - read the manifest again

    def compact(self) -> int:
        """No change log to fold: Milvus compacts its own segments. 0."""
        self.index  # noqa: B018 - a clear error where there is no collection
        return 0

    def describe(self) -> str:
        return f"milvus collection {self._name} at {self.uri}"

    @classmethod
    def create(
        cls,
        name: str,
        uri: str,
        token: str | None,
        *,
        dim: int,
        kind: str,
        metric: str,
        model: ModelRef | None,
        params: Mapping[str, int] | None = None,
        class_names: Sequence[str] = (),
        count: int = 0,
    ) -> MilvusLive:
        """A new collection ``name`` at ``uri`` (replacing one of that name)."""
        live = cls(name, uri, token)
        live._index = MilvusIndex.create(
            live.client, live._name, dim, kind, metric, model, params, class_names, count
        )
        return live

    def promote(self, name: str) -> None:
        """Rename this collection (a job's staging one) and its companion to ``name``,
        replacing a collection of that name."""
        final = check_name(name)
        with _milvus(f"rename collection {self._name} to {final}"):
            for collection in (final + COMPANION, final):
                if self.client.has_collection(collection):
                    self.client.drop_collection(collection)
            self.client.rename_collection(self._name + COMPANION, final + COMPANION)
            self.client.rename_collection(self._name, final)
        self._name, self._index = final, None

    def drop(self) -> None:
        """Drop the collection and its companion (a build that failed)."""
        with _milvus(f"drop collection {self._name}"):
            for collection in (self._name, self._name + COMPANION):
                if self.client.has_collection(collection):
                    self.client.drop_collection(collection)
        self._index = None

    def exists(self) -> bool:
        with _milvus("list the collections"):
            return bool(self.client.has_collection(self._name))


__all__ = [
    "KINDS",
    "MilvusIndex",
    "MilvusLive",
    "check_name",
    "connect",
    "expression",
    "is_lite",
    "literal",
]
