"""A persistent similarity index: FAISS vectors with stable ids, item metadata and thumbnails.

Kinds, chosen by name (FAISS factory strings in brackets):

- ``exact``: brute-force L2 search [Flat]; exact, O(N D) per query.
- ``hnsw``:  a graph of M neighbours per vector [HNSW32]; approximate, fast at any N.
- ``ivfpq``: an inverted file of ``nlist`` k-means cells, vectors compressed by product
  quantisation to ``m`` codes of ``nbits`` bits [IVF{nlist},PQ{m}x{nbits}]; approximate, small,
  trained on the first vectors added. With ``refine`` R > 0 it also keeps the vectors
  (``vectors.npy``; ``refine_store`` sq8 (default, 1 byte a value), float16 or float32, see
  :mod:`.vectors`) and re-ranks its R * k candidates by their distance to those.

A search can be restricted by a :class:`~.filters.Filter` (labels, metadata fields): FAISS
skips the other ids (an ``IDSelectorBatch`` in the search parameters), and where the
approximate search finds fewer than k allowed items (a rare label in an HNSW graph), the
allowed items are searched exhaustively, so a filtered search is as exact as the index.
An index loaded with ``mmap=True`` maps its files (FAISS ``IO_FLAG_MMAP``, and the stored
vectors) instead of reading them: for collections larger than memory; it is read-only.

Ids are int64 chosen by the index (0, 1, 2, ...; never reused). FAISS keeps them: an IVF index
stores ids in its lists; flat and HNSW indexes are wrapped in IndexIDMap2. A removal never
renumbers the others. Distances are the run's metric: Euclidean (the square root of FAISS's
squared L2), or for a cosine run the cosine distance 1 - cos (vectors are L2-normalised on the
way in, so FAISS's L2 ranks them as cosine similarity does, and 1 - cos = ||a - b||^2 / 2).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from ..errors import TripletnetError
from ..files import load_npy, read_json_object
from . import changelog
from .changelog import LOG, Change
from .filters import Filter, Scalar, check_metadata
from .locking import ReadWriteLock
from .store import (
    IndexFolderError,
    check_live,
    current_version,
    index_lock,
    live_version_name,
    write_version,
)
from .vectors import DEFAULT_STORE, StoredVectors, check_store
from .vectors import FILE as VECTORS_FILE

KINDS = ("exact", "hnsw", "ivfpq")
METRICS = ("euclidean", "cosine")
FORMAT = 1
DEFAULT_PARAMS: dict[str, dict[str, int]] = {
    "exact": {},
    "hnsw": {"M": 32, "ef_construction": 80, "ef_search": 64},
    # 0: chosen from the data; refine 0: no re-ranking
    "ivfpq": {"nlist": 0, "m": 0, "nbits": 0, "nprobe": 16, "refine": 0},
}
EXHAUSTIVE_BELOW = 4096  # a filter that allows fewer items is searched exhaustively
COMPACT_BYTES = 4 * 2**20  # a change log grown past this is folded into a new version


@dataclass(frozen=True, slots=True)  # slots: 40 bytes less per item (40 MB a million)
class Item:
    """What the index knows about one vector besides the vector itself."""

    id: int
    label: int | None = None
    source: str | None = None
    metadata: dict[str, Scalar] | None = field(default=None, hash=False, compare=True)


@dataclass(frozen=True)
class Hit:
    """One neighbour of a query: its item and its Euclidean distance to the query."""

    item: Item
    distance: float


@dataclass
class ModelRef:
    """Which model and preprocessing made the vectors; queries must come from the same one."""

    fingerprint: str
    spec: dict[str, Any] = field(default_factory=dict)
    run_dir: str | None = None


def _ivfpq_shape(dim: int, count: int) -> tuple[int, int, int]:
    """nlist ~ 4 sqrt(N) cells and 2^nbits codes per sub-quantiser, each with >= 39 training
    points (FAISS's rule of thumb); m sub-vectors of >= 4 dimensions."""
    nlist = max(1, min(int(4 * math.sqrt(count)), count // 39))
    nbits = int(min(8, max(4, math.floor(math.log2(max(count, 1) / 39)))))
    m = max(d for d in range(1, dim + 1) if dim % d == 0 and dim // d >= 4) if dim >= 4 else 1
    return nlist, m, nbits


MAX_LABEL = 2**31 - 1


def _search(index: Any, queries: np.ndarray, k: int, params: Any) -> tuple[np.ndarray, np.ndarray]:
    """FAISS's search with search parameters, also where faiss.contrib.torch_utils (imported by
    pytorch-metric-learning) has replaced ``search`` by a wrapper that takes no ``params``."""
    search = getattr(index, "search_numpy", index.search)
    result: tuple[np.ndarray, np.ndarray] = search(queries, k, params=params)
    return result


def _drop_precomputed_table(index: Any) -> None:
    """Free an IVF-PQ's precomputed distance table (nlist x m x 256 floats: 32 MB for
    IVF1024,PQ32), which FAISS rebuilds in memory when it reads an index: an index served
    memory-mapped is meant to stay small, and without the table a search computes the few
    probed cells' tables itself (nprobe x m x 256 values per query)."""
    ivf: Any = faiss.downcast_index(faiss.extract_index_ivf(index))
    if hasattr(ivf, "precomputed_table"):
        ivf.use_precomputed_table = -1
        ivf.precomputed_table.resize(0)


def check_label(label: object) -> int | None:
    """An item's label: None, or a whole number from 0 to MAX_LABEL (a float such as 3.7 or
    1e20 is refused, never truncated)."""
    if label is None:
        return None
    if isinstance(label, bool) or not isinstance(label, int | np.integer | float | np.floating):
        raise TripletnetError(f"a label must be an integer class id, got {label!r}")
    if isinstance(label, float | np.floating) and not float(label).is_integer():
        raise TripletnetError(f"a label must be an integer class id, got {label!r}")
    if not 0 <= label <= MAX_LABEL:
        raise TripletnetError(f"a label must be from 0 to {MAX_LABEL}, got {label!r}")
    return int(label)


class SearchIndex:
    """Vectors of one dimension, searchable by Euclidean distance, with per-item metadata.

    Safe to share between threads: searches run together; an add or a removal runs alone.
    """

    def __init__(
        self,
        dim: int,
        kind: str = "exact",
        model: ModelRef | None = None,
        params: dict[str, int] | None = None,
        metric: str = "euclidean",
        refine_store: str = DEFAULT_STORE,
    ) -> None:
        if metric not in METRICS:
            raise TripletnetError(f"unknown metric {metric!r}; choose one of: {', '.join(METRICS)}")
        if kind not in KINDS:
            raise TripletnetError(f"unknown index kind {kind!r}; choose one of: {', '.join(KINDS)}")
        if dim < 1:
            raise TripletnetError(f"the vector dimension must be at least 1, got {dim}")
        unknown = set(params or {}) - set(DEFAULT_PARAMS[kind])
        if unknown:
            raise TripletnetError(
                f"unknown parameter(s) {sorted(unknown)} for a {kind} index; "
                f"it takes: {sorted(DEFAULT_PARAMS[kind]) or 'none'}"
            )
        self.dim = dim
        self.kind = kind
        self.metric = metric
        self.model = model
        self.params = {**DEFAULT_PARAMS[kind], **(params or {})}
        self.class_names: list[str] = []  # label -> name, where the labels have names
        self.items: dict[int, Item] = {}
        self.thumbnails: dict[int, np.ndarray] = {}
        self.next_id = 0
        self._pending: list[Change] = []  # adds and removals no save has recorded yet
        self._rewrite = False  # a change the log cannot replay (training IVF-PQ): save a version
        self._read_from: tuple[Path, str] | None = None  # (index folder, version) on disk
        self._log_end = 0  # the bytes of that version's change log applied to this state
        self._log_seen = 0  # the log's length when it was last read
        self.logged = 0  # records in that log, all applied here
        self._faiss: Any = None if kind == "ivfpq" else self._new_faiss()
        refine = self.params.get("refine", 0)
        if refine < 0:
            raise TripletnetError(f"refine must be 0 (off) or a factor of at least 1, got {refine}")
        self.refine_store = check_store(refine_store)  # how re-ranking vectors are kept
        self._vectors = StoredVectors(dim, store=refine_store) if refine else None
        self.read_only = False  # loaded memory-mapped
        self._lock = ReadWriteLock()
        self._save_lock = threading.Lock()

    # -- building ------------------------------------------------------------------------------

    def factory_string(self) -> str:
        """The FAISS name of the index kind with its parameters."""
        if self.kind == "exact":
            return "Flat"
        if self.kind == "hnsw":
            return f"HNSW{self.params['M']}"
        return f"IVF{self.params['nlist']},PQ{self.params['m']}x{self.params['nbits']}"

    def _new_faiss(self, training: np.ndarray | None = None) -> faiss.Index:
        if self.kind == "ivfpq":
            assert training is not None
            self._check_ivfpq(training)
        inner: Any = faiss.index_factory(self.dim, self.factory_string())
        if self.kind == "hnsw":
            inner.hnsw.efConstruction = self.params["ef_construction"]
        if training is not None and self.kind == "ivfpq":
            ivf: Any = faiss.downcast_index(inner)
            ivf.do_polysemous_training = False  # slow, and its codes go unused
            ivf.train(training)
        self._tune(inner)
        return inner if self.kind == "ivfpq" else faiss.IndexIDMap2(inner)

    def _check_ivfpq(self, training: np.ndarray) -> None:
        chosen = dict(
            zip(("nlist", "m", "nbits"), _ivfpq_shape(self.dim, len(training)), strict=True)
        )
        for name, value in chosen.items():
            self.params[name] = self.params[name] or value
        if self.dim % self.params["m"]:
            raise TripletnetError(
                f"ivfpq: m={self.params['m']} must divide the dimension {self.dim}"
            )
        min_points = max(64, self.params["nlist"], 2 ** self.params["nbits"])
        if len(training) < min_points:
            raise TripletnetError(
                f"an ivfpq index needs at least {min_points} vectors to train its quantisers, "
                f"got {len(training)}; use --kind exact or hnsw for small collections"
            )

    def _tune(self, index: Any) -> None:
        if isinstance(index, faiss.IndexIDMap2):
            index = index.index
        index = faiss.downcast_index(index)
        if self.kind == "hnsw":
            index.hnsw.efSearch = self.params["ef_search"]
        elif self.kind == "ivfpq":
            index.nprobe = self.params["nprobe"]

    def set_search_params(self, **params: int) -> None:
        """Change ``ef_search`` (hnsw) or ``nprobe`` (ivfpq): the speed/recall trade-off."""
        allowed = {"hnsw": {"ef_search"}, "ivfpq": {"nprobe", "refine"}}.get(self.kind, set())
        if params.get("refine") and self._vectors is None:
            raise TripletnetError(
                "this index keeps no vectors to re-rank with: build it with refine > 0"
            )
        if set(params) - allowed:
            raise TripletnetError(
                f"a {self.kind} index has no search parameter(s) {sorted(set(params) - allowed)}"
            )
        with self._lock.writing():
            self.params.update(params)
            if self._faiss is not None:
                self._tune(self._faiss)

    def check_vectors(self, vectors: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
        """(N, dim) float32, finite; a clear error otherwise."""
        try:
            array = np.asarray(vectors, dtype=np.float32)
        except (TypeError, ValueError):
            kind = getattr(vectors, "dtype", type(vectors).__name__)
            raise TripletnetError(f"vectors must be numbers, got {kind}") from None
        if array.ndim == 1:
            array = array[None, :]
        if array.ndim != 2 or array.shape[1] != self.dim:
            raise TripletnetError(
                f"expected vectors of dimension {self.dim}, got an array of shape {array.shape}"
            )
        if not np.isfinite(array).all():
            raise TripletnetError("vectors must be finite (no NaN or infinity)")
        if self.metric == "cosine":
            norms = np.linalg.norm(array, axis=1, keepdims=True)
            if not norms.all():
                raise TripletnetError("a zero vector has no direction: cosine cannot compare it")
            array = array / norms
        return np.ascontiguousarray(array, dtype=np.float32)

    def add(
        self,
        vectors: np.ndarray,
        labels: Sequence[int | None] | np.ndarray | None = None,
        sources: Sequence[str | None] | None = None,
        thumbnails: Sequence[np.ndarray] | np.ndarray | None = None,
        metadata: Sequence[dict[str, Any] | None] | None = None,
    ) -> np.ndarray:
        """Add vectors (with optional labels, sources, thumbnails and metadata); return their
        new ids."""
        self._check_writable()
        vectors = self.check_vectors(vectors)
        count = len(vectors)
        given = (("labels", labels), ("sources", sources), ("thumbnails", thumbnails))
        for name, values in (*given, ("metadata", metadata)):
            if values is not None and len(values) != count:
                raise TripletnetError(f"{count} vectors but {len(values)} {name}")
        if labels is not None:
            labels = [check_label(label) for label in labels]
        if metadata is not None:
            metadata = [check_metadata(fields) for fields in metadata]
        pictures = None if thumbnails is None else [np.asarray(t, np.uint8) for t in thumbnails]
        with self._lock.writing():
            ids = np.arange(self.next_id, self.next_id + count, dtype=np.int64)
            change = Change("add", ids, vectors, labels, sources, metadata, pictures)
            self._rewrite |= self._faiss is None  # it trains the quantisers: a new version
            self._apply(change)
            self._pending.append(change)
        return ids

    def _apply(self, change: Change) -> None:
        """Make an add or a removal in memory (holding the write lock): a new one, or one
        replayed from the change log, exactly as it was first made."""
        ids = change.ids
        if change.op == "remove":
            self._drop(ids)
            return
        vectors = change.vectors
        assert vectors is not None
        if self._faiss is None:
            self._faiss = self._new_faiss(training=vectors)
        self._faiss.add_with_ids(vectors, ids)
        if self._vectors is not None:
            self._vectors = self._vectors.added(ids, vectors, *self._cells(vectors))
        if len(ids):
            self.next_id = max(self.next_id, int(ids[-1]) + 1)
        for row, item_id in enumerate(ids.tolist()):
            label = None if change.labels is None else change.labels[row]
            source = None if change.sources is None else change.sources[row]
            fields = None if change.metadata is None else change.metadata[row]
            self.items[item_id] = Item(item_id, label, source, fields)
            if change.thumbnails is not None:
                self.thumbnails[item_id] = change.thumbnails[row]

    def _cells(self, vectors: np.ndarray) -> tuple[np.ndarray | None, int]:
        """The inverted-file cells of vectors and how many there are (sq8 quantises by cell)."""
        if self.refine_store != "sq8":
            return None, 1
        ivf: Any = faiss.extract_index_ivf(self._faiss)
        _, cells = ivf.quantizer.search(vectors, 1)
        return cells[:, 0].astype(np.int32), int(ivf.nlist)

    def remove(self, ids: Sequence[int] | np.ndarray) -> int:
        """Remove the items with these ids (unknown ids are ignored); return how many went."""
        self._check_writable()
        with self._lock.writing():
            gone = sorted({int(i) for i in ids} & self.items.keys())
            if not gone or self._faiss is None:
                return 0
            change = Change("remove", np.asarray(gone, dtype=np.int64))
            self._apply(change)
            self._pending.append(change)
            return len(gone)

    def _drop(self, gone: np.ndarray) -> None:
        if self._faiss is None:
            return
        if self.kind == "hnsw":  # an HNSW graph cannot drop nodes: rebuild without them
            self._faiss = self._rebuilt_without(gone)
        else:
            self._faiss.remove_ids(gone)
        if self._vectors is not None:
            self._vectors = self._vectors.without(gone)
        for item_id in gone.tolist():
            self.items.pop(item_id, None)
            self.thumbnails.pop(item_id, None)

    def _check_writable(self) -> None:
        if self.read_only:
            raise TripletnetError(
                "this index was loaded memory-mapped and is read-only; load it without mmap "
                "to add or remove items"
            )

    def _rebuilt_without(self, gone: np.ndarray) -> faiss.Index:
        assert self._faiss is not None
        ids = faiss.vector_to_array(self._faiss.id_map)
        # An explicit numpy output keeps numpy even where faiss.contrib.torch_utils is imported
        # (pytorch-metric-learning imports it, and it makes reconstruct_n return a tensor).
        vectors = np.empty((self._faiss.ntotal, self._faiss.d), dtype=np.float32)
        self._faiss.index.reconstruct_n(0, self._faiss.ntotal, vectors)
        keep = ~np.isin(ids, gone)
        index = self._new_faiss()
        index.add_with_ids(vectors[keep], ids[keep])
        return index

    # -- querying ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.items)

    def search(
        self, queries: np.ndarray, k: int = 10, where: Filter | None = None
    ) -> list[list[Hit]]:
        """The ``k`` nearest items of each query row (among those ``where`` allows), nearest
        first."""
        if k < 1:
            raise TripletnetError(f"k must be at least 1, got {k}")
        queries = self.check_vectors(queries)
        with self._lock.reading():
            if self._faiss is None or not self.items:
                return [[] for _ in queries]
            allowed = None if where is None or where.empty else self._allowed(where)
            k = min(k, len(self.items) if allowed is None else len(allowed))
            if k == 0:
                return [[] for _ in queries]
            if allowed is not None and len(allowed) < EXHAUSTIVE_BELOW:
                squared, ids = self._exhaustive(queries, allowed, k)
            else:
                squared, ids = self._approximate(queries, k, allowed)
                short = np.flatnonzero((ids >= 0).sum(axis=1) < k)
                if allowed is not None and len(short):  # the graph or the probed cells ran dry
                    squared[short], ids[short] = self._exhaustive(queries[short], allowed, k)
            return [
                [
                    Hit(self.items[int(i)], self._distance(float(d)))
                    for d, i in zip(row_d, row_i, strict=True)
                    if i >= 0 and int(i) in self.items
                ]
                for row_d, row_i in zip(squared, ids, strict=True)
            ]

    def _allowed(self, where: Filter) -> np.ndarray:
        """The ids of the items the filter keeps, ascending."""
        kept = [i for i, item in self.items.items() if where.matches(item.label, item.metadata)]
        return np.asarray(sorted(kept), dtype=np.int64)

    def _approximate(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """FAISS's search, restricted to ``allowed`` ids, re-ranked where the index refines."""
        refine = self.params.get("refine", 0) if self._vectors is not None else 0
        wanted = min(k * refine, len(self.items)) if refine else k
        selector = None if allowed is None else faiss.IDSelectorBatch(allowed)
        params: Any = None
        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
            params.efSearch = max(self.params["ef_search"], wanted)
        elif self.kind == "ivfpq":
            params = faiss.SearchParametersIVF()
            params.nprobe = self.params["nprobe"]
        elif selector is not None:
            params = faiss.SearchParameters()
        if selector is not None:
            params.sel = selector
        squared, ids = _search(self._faiss, queries, wanted, params)
        if refine:
            assert self._vectors is not None
            return self._vectors.rerank(queries, ids, k)
        return squared, ids

    def _exhaustive(
        self, queries: np.ndarray, allowed: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact squared L2 to every allowed item (from the stored or the index's vectors;
        a PQ index without stored vectors probes every cell instead)."""
        if self._vectors is not None:
            return self._vectors.rerank(queries, np.tile(allowed, (len(queries), 1)), k)
        if self.kind == "ivfpq":
            params = faiss.SearchParametersIVF()
            params.nprobe = self.params["nlist"]
            params.sel = faiss.IDSelectorBatch(allowed)
            result: tuple[np.ndarray, np.ndarray] = _search(self._faiss, queries, k, params)
            return result
        vectors = np.empty((len(allowed), self.dim), dtype=np.float32)
        self._faiss.reconstruct_batch(allowed, vectors)
        squared, rows = faiss.knn(queries, vectors, k)
        return squared, np.where(rows >= 0, allowed[np.maximum(rows, 0)], -1)

    def _distance(self, squared: float) -> float:
        """FAISS's squared L2 as the index's distance: L2, or 1 - cos on unit vectors."""
        squared = max(squared, 0.0)
        return squared / 2 if self.metric == "cosine" else math.sqrt(squared)

    def label_name(self, label: int | None) -> str | None:
        if label is None:
            return None
        return self.class_names[label] if 0 <= label < len(self.class_names) else str(label)

    def item(self, item_id: int) -> Item:
        if item_id not in self.items:
            raise KeyError(item_id)
        return self.items[item_id]

    def check_model(self, model: ModelRef) -> None:
        """Refuse queries embedded by a different model or preprocessing than the index's."""
        if self.model is None or self.model.fingerprint == model.fingerprint:
            return
        raise TripletnetError(
            "the model does not match the index: the index was built with model "
            f"{self.model.fingerprint[:12]} (run {self.model.run_dir}), the query model is "
            f"{model.fingerprint[:12]} (run {model.run_dir}); embed queries with the index's "
            "model or rebuild the index with 'tripletnet index build'"
        )

    # -- persistence ---------------------------------------------------------------------------

    def manifest(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "kind": self.kind,
            "dim": self.dim,
            "metric": self.metric,
            "params": self.params,
            **({"refine_store": self.refine_store} if self._vectors is not None else {}),
            "count": len(self.items),
            "next_id": self.next_id,
            "class_names": self.class_names,
            "model": None if self.model is None else asdict(self.model),
        }

    def save(self, root: str | Path) -> Path:
        """Write the whole state as a new version of the index folder ``root``, atomically
        (which also compacts the change log); return its path.

        The state is copied under the read lock (searches go on), then written outside it.
        """
        with self._save_lock:
            return self._write(Path(root))

    def save_changes(self, root: str | Path) -> None:
        """Record the changes no save has recorded yet, durably. Where this state was read
        from (or saved as) the live version of ``root``, they are appended to its change log;
        otherwise, or where a change cannot be replayed (training IVF-PQ) or the log has grown
        past COMPACT_BYTES, the whole state is written as a new version. Writers that queue
        behind one save share the next one (group commit)."""
        root = Path(root)
        with self._save_lock:
            if self._read_from is None or self._read_from[0] != root.resolve() or self._rewrite:
                self._write(root)
                return
            with self._lock.reading():
                pending = list(self._pending)
            if not pending:
                return
            version = self._read_from[1]
            with index_lock(root):
                check_live(root, version)
                end = changelog.append(root / version / LOG, pending, self._log_end)
            with self._lock.reading():  # adds and removals hold the write lock
                del self._pending[: len(pending)]
                self._log_end = self._log_seen = end
                self.logged += len(pending)
            if end > COMPACT_BYTES:
                self._write(root)

    def _write(self, root: Path) -> Path:
        with self._lock.reading():
            taken = len(self._pending)
            manifest = self.manifest()
            blob = None if self._faiss is None else faiss.serialize_index(self._faiss)
            ids = list(self.items)
            with_thumbnails = [i for i in ids if i in self.thumbnails]
            columns = {
                "ids": ids,
                "labels": [self.items[i].label for i in ids],
                "sources": [self.items[i].source for i in ids],
                "thumbnail_ids": with_thumbnails,
            }
            if any(self.items[i].metadata is not None for i in ids):
                columns["metadata"] = [self.items[i].metadata for i in ids]
            stored = self._vectors  # replaced, never edited, by adds and removals
            pictures = [self.thumbnails[i] for i in with_thumbnails]
            thumbs = np.stack(pictures) if pictures else None
            log_end = self._log_end
        files = {
            "manifest.json": lambda p: p.write_text(json.dumps(manifest, indent=2) + "\n"),
            "items.json": lambda p: p.write_text(json.dumps(columns)),
        }
        if blob is not None:
            files["index.faiss"] = lambda p: p.write_bytes(blob.tobytes())
        if thumbs is not None:
            files["thumbnails.npy"] = lambda p: np.save(p, thumbs, allow_pickle=False)
        if stored is not None:
            files.update(stored.files())
        here = root.resolve()
        based_on = self._read_from[1] if self._read_from and self._read_from[0] == here else None
        root.mkdir(parents=True, exist_ok=True)
        with index_lock(root):
            if based_on is not None:  # nothing another writer made since may be dropped
                check_live(root, based_on)
                changelog.check_applied(root / based_on / LOG, log_end)
            version = write_version(root, files)
        with self._lock.reading():
            del self._pending[:taken]
            self._rewrite = self._rewrite and blob is None  # an add after the copy trained
            self._read_from = (here, version.name)
            self._log_end = self._log_seen = self.logged = 0
        return version

    @property
    def unsaved(self) -> bool:
        """Whether adds or removals were made since the last load or save."""
        return bool(self._pending)

    def behind(self) -> bool:
        """Whether the folder this state was read from has moved on: another version is live,
        or its change log holds records (another process's changes) not applied here."""
        if self._read_from is None:
            return False
        root, version = self._read_from
        if live_version_name(root) != version:
            return True
        return changelog.size(root / version / LOG) != self._log_seen

    def catch_up(self) -> bool:
        """Apply the records other processes appended to the change log since this state was
        read (none are half-applied); False where another version is live: load that one."""
        if self._read_from is None:
            return True
        with self._save_lock:
            root, version = self._read_from
            if live_version_name(root) != version:
                return False
            changes, end, seen = changelog.read(root / version / LOG, self._log_end)
            self._log_seen = seen
            if changes:
                if self._pending:  # changes made here without theirs: refused
                    changelog.check_applied(root / version / LOG, self._log_end)
                with self._lock.writing():
                    self._replay(root / version, changes)
            self._log_end = end
            self.logged += len(changes)
        return True

    def _replay(self, folder: Path, changes: list[Change]) -> None:
        if changes and self.read_only:
            raise IndexFolderError(
                f"{folder / LOG} holds {len(changes)} change(s) that a memory-mapped index cannot "
                f"apply; run 'tripletnet index compact {folder.parent}' first"
            )
        for change in changelog.merged(changes):
            self._apply(change)

    @property
    def version(self) -> str | None:
        """The name of the version folder this state was read from or last saved as."""
        return None if self._read_from is None else self._read_from[1]

    @classmethod
    def load(cls, root: str | Path, mmap: bool = False) -> SearchIndex:
        """Read the live version of an index folder (never unpickles anything); ``mmap``
        maps its files instead of reading them (read-only; for collections larger than memory)."""
        folder = current_version(root)
        try:
            return cls._read(Path(root), folder, mmap)
        except (TripletnetError, OSError, ValueError, KeyError, TypeError) as error:
            # hand-edited JSON gives KeyError or TypeError
            what = str(error) if isinstance(error, TripletnetError) else f"{folder}: {error!r}"
            raise IndexFolderError(
                f"{what}; restore the index from a backup or rebuild it with "
                "'tripletnet index build --overwrite'"
            ) from None

    @classmethod
    def _read(cls, root: Path, folder: Path, mmap: bool = False) -> SearchIndex:
        manifest = read_json_object(folder / "manifest.json")
        columns = read_json_object(folder / "items.json")
        if manifest.get("format") != FORMAT:
            raise IndexFolderError(
                f"{folder} has index format {manifest.get('format')!r}; this tripletnet reads {FORMAT}"
            )
        model = ModelRef(**manifest["model"]) if manifest.get("model") else None
        metric = manifest.get("metric", "euclidean")  # indexes before metrics: Euclidean
        # re-ranked indexes before refine_store kept float32 vectors
        store = manifest.get("refine_store", "float32")
        index = cls(manifest["dim"], manifest["kind"], model, manifest["params"], metric, store)
        index._read_from = (root.resolve(), folder.name)
        index.next_id = int(manifest["next_id"])
        index.class_names = list(manifest.get("class_names", []))
        if (folder / "index.faiss").is_file():
            try:
                if mmap:
                    flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY
                    loaded: Any = faiss.read_index(str(folder / "index.faiss"), flags)
                else:
                    loaded = faiss.deserialize_index(
                        np.fromfile(folder / "index.faiss", dtype=np.uint8)
                    )
            except RuntimeError:  # faiss's message is a C++ assertion; say what it means
                raise IndexFolderError(
                    f"{folder / 'index.faiss'} is truncated or not a FAISS index"
                ) from None
            index._faiss = loaded
            index._tune(loaded)
            if mmap and manifest["kind"] == "ivfpq":
                _drop_precomputed_table(loaded)
        names = ("ids", "labels", "sources")
        if len({len(columns[name]) for name in names}) != 1:
            raise IndexFolderError(f"{folder / 'items.json'}: its columns differ in length")
        metadata = columns.get("metadata") or [None] * len(columns["ids"])
        if len(metadata) != len(columns["ids"]):
            raise IndexFolderError(f"{folder / 'items.json'}: its columns differ in length")
        rows = zip(*(columns[name] for name in names), metadata, strict=True)
        index.items = {i: Item(i, label, source, fields) for i, label, source, fields in rows}
        index.read_only = mmap
        if index._vectors is not None:
            index._vectors = StoredVectors.load(
                folder, np.asarray(columns["ids"], dtype=np.int64), mmap, store
            )
            if (
                len(index._vectors.ids) != len(index.items)
                or index._vectors.rows.shape[1] != index.dim
            ):
                raise IndexFolderError(f"{folder / VECTORS_FILE} does not match items.json")
        if (folder / "thumbnails.npy").is_file():
            thumbs = load_npy(folder / "thumbnails.npy")
            if len(thumbs) != len(columns["thumbnail_ids"]):
                raise IndexFolderError(f"{folder / 'thumbnails.npy'} does not match items.json")
            index.thumbnails = dict(zip(columns["thumbnail_ids"], thumbs, strict=True))
        stored = 0 if index._faiss is None else index._faiss.ntotal
        if stored != len(index.items):
            raise IndexFolderError(
                f"{folder} is inconsistent: {stored} vectors but {len(index.items)} items"
            )
        changes, index._log_end, index._log_seen = changelog.read(folder / LOG)
        index._replay(folder, changes)
        index.logged = len(changes)
        return index
