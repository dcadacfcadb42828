"""An in-memory similarity index: FAISS vectors with stable ids, item metadata and thumbnails.

It knows no files: an index folder (its versions and change log) is search/folder.py's, and
the index a service or a command works on, shared with other processes, is search/live.py's.

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
An index whose files are memory-mapped (``read_only``) refuses adds and removals.

Ids are int64 chosen by the index (0, 1, 2, ...; never reused). FAISS keeps them: an IVF index
stores ids in its lists; flat and HNSW indexes are wrapped in IndexIDMap2. A removal never
renumbers the others. Distances are the run's metric: Euclidean (the square root of FAISS's
squared L2), or for a cosine run the cosine distance 1 - cos (vectors are L2-normalised on the
way in, so FAISS's L2 ranks them as cosine similarity does, and 1 - cos = ||a - b||^2 / 2).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np

from ..errors import TripletnetError
from ..metric_names import METRICS
from . import changelog
from .changelog import Change
from .filters import MAX_LABEL, Filter, InvalidInput, Scalar, check_label, check_metadata
from .locking import ReadWriteLock
from .vectors import DEFAULT_STORE, StoredVectors, check_store

KINDS = ("exact", "hnsw", "ivfpq")
DEFAULT_PARAMS: dict[str, dict[str, int]] = {
    "exact": {},
    "hnsw": {"M": 32, "ef_construction": 80, "ef_search": 64},
    # 0: chosen from the data; refine 0: no re-ranking
    "ivfpq": {"nlist": 0, "m": 0, "nbits": 0, "nprobe": 16, "refine": 0},
}
EXHAUSTIVE_BELOW = 4096  # a filter that allows fewer items is searched exhaustively
F32_MAX = float(np.finfo(np.float32).max)
# the largest squared norm of a (Euclidean) vector: ||a - b||^2 <= 2 ||a||^2 + 2 ||b||^2 then
# fits float32; beyond it FAISS's distances overflow to infinity and those items are never found
MAX_SQUARED_NORM = F32_MAX / 4
CHECK_ROWS = 65_536  # vectors checked at once (bounded float64 temporaries)
KEEP_KEYS = 100_000  # idempotency keys remembered (the newest), across compactions
MAX_ID = 2**53 - 1  # the largest id a client may choose (exact in JSON numbers everywhere)
__all__ = [
    "KINDS",
    "MAX_LABEL",
    "ChosenIdError",
    "Hit",
    "Item",
    "MemoryIndex",
    "ModelRef",
    "check_label",
]


class ChosenIdError(TripletnetError):
    """An id a caller chose that the index cannot take: used before, or not increasing."""


@dataclass(frozen=True, slots=True)  # slots: 40 bytes less per item (40 MB a million)
class Item:
    """What the index knows about one vector besides the vector itself."""

    id: int
    label: int | None = None
    source: str | None = None
    metadata: dict[str, Scalar] | None = field(default=None, hash=False, compare=True)


@dataclass(frozen=True)
class Remembered:
    """What an add made under an idempotency key: enough to give its first answer again, even
    after its items were removed."""

    digest: str | None  # of the request the key came with
    items: tuple[Item, ...]
    thumbnails: tuple[bool, ...]  # whether each item had a thumbnail


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


def _search(index: Any, queries: np.ndarray, k: int, params: Any) -> tuple[np.ndarray, np.ndarray]:
    """FAISS's search with search parameters, also where faiss.contrib.torch_utils (imported by
    pytorch-metric-learning) has replaced ``search`` by a wrapper that takes no ``params``."""
    search = getattr(index, "search_numpy", index.search)
    result: tuple[np.ndarray, np.ndarray] = search(queries, k, params=params)
    return result


class MemoryIndex:
    """Vectors of one dimension, searchable by Euclidean distance, with per-item metadata.

    Safe to share between threads: searches run together; an add or a removal runs alone. It
    keeps the adds and removals it makes (``unsaved``) until a save records them (folder.py).
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
        self.keys: OrderedDict[str, Remembered] = OrderedDict()  # the newest KEEP_KEYS
        self.next_id = 0
        self._pending: list[Change] = []  # adds and removals no save has recorded yet
        self._rewrite = False  # a change a log cannot replay (training IVF-PQ): save it whole
        self._faiss: Any = None if kind == "ivfpq" else self._new_faiss()
        refine = self.params.get("refine", 0)
        if refine < 0:
            raise TripletnetError(f"refine must be 0 (off) or a factor of at least 1, got {refine}")
        self.refine_store = check_store(refine_store)  # how re-ranking vectors are kept
        self._vectors = StoredVectors(dim, store=refine_store) if refine else None
        self.read_only = False  # loaded memory-mapped
        self._lock = ReadWriteLock()

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

    def check_vectors(
        self, vectors: np.ndarray | Sequence[float] | Sequence[Sequence[float]]
    ) -> np.ndarray:
        """(N, dim) float32: finite, within float32's range and, for Euclidean distances, of a
        squared norm of at most MAX_SQUARED_NORM; cosine ones scaled to length 1 (norms in
        float64, so large or tiny values do not overflow nor underflow). An InvalidInput that
        says why otherwise. One vector may come as a flat list of numbers (a client's)."""
        try:
            array = np.asarray(vectors)
            if array.dtype.kind != "f":  # integers, numbers in strings (or an error)
                array = array.astype(np.float64)
        except (TypeError, ValueError):
            kind = getattr(vectors, "dtype", type(vectors).__name__)
            raise InvalidInput(f"vectors must be numbers, got {kind}") from None
        if array.ndim == 1:
            if len(array) != self.dim:  # one vector, as a client sends it
                raise InvalidInput(
                    f"the vector has {len(array)} values; this index holds {self.dim}-d vectors"
                )
            array = array[None, :]
        if array.ndim != 2 or array.shape[1] != self.dim:
            raise InvalidInput(
                f"expected vectors of dimension {self.dim}, got an array of shape {array.shape}"
            )
        if not np.isfinite(array).all():
            raise InvalidInput("vectors must be finite (no NaN or infinity)")
        if array.dtype.itemsize > 4 and array.size and max(array.max(), -array.min()) > F32_MAX:
            raise InvalidInput("vectors must be finite in float32 (values within ±3.4e38)")
        array = np.ascontiguousarray(array, dtype=np.float32)
        out = np.empty_like(array) if self.metric == "cosine" else array
        for start in range(0, len(array), CHECK_ROWS):
            part = array[start : start + CHECK_ROWS]
            squared = np.einsum("ij,ij->i", part, part, dtype=np.float64)
            if self.metric == "cosine":
                if not squared.all():
                    raise InvalidInput("a zero vector has no direction: cosine cannot compare it")
                out[start : start + CHECK_ROWS] = part / np.sqrt(squared)[:, None]
            elif squared.max(initial=0.0) > MAX_SQUARED_NORM:
                raise InvalidInput(
                    f"vectors must have a squared norm of at most {MAX_SQUARED_NORM:.2e} (a "
                    f"length of at most {math.sqrt(MAX_SQUARED_NORM):.2e}): the squared "
                    "distances of larger ones overflow float32"
                )
        return out

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
        """Add vectors (with optional labels, sources, thumbnails and metadata); return their
        new ids: ``ids`` where given (new ids, increasing, from ``next_id`` on: an id is never
        used twice), else the next ones. ``key`` (with the request's ``digest``) is remembered
        with the change (``remembered``) so that a repeated request is not applied again."""
        self._check_writable()
        vectors = self.check_vectors(vectors)
        count = len(vectors)
        if ids is not None and len(ids) != count:
            raise TripletnetError(f"{count} vectors but {len(ids)} ids")
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
            if ids is None:
                new = np.arange(self.next_id, self.next_id + count, dtype=np.int64)
            else:
                new = self._chosen_ids(ids)
            change = Change("add", new, vectors, labels, sources, metadata, pictures, key, digest)
            self._rewrite |= self._faiss is None  # it trains the quantisers: a new version
            self._apply(change)
            self._remember(change)
            self._pending.append(change)
        return new

    def _chosen_ids(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Ids a caller chose: whole numbers, increasing, none used before (from next_id on); a
        ChosenIdError (a conflict with the index's ids) otherwise."""
        chosen = [int(i) for i in ids]
        if chosen and chosen[0] < self.next_id:
            raise ChosenIdError(
                f"id {chosen[0]} is not new: ids are never reused, and this index has given "
                f"ids up to {self.next_id - 1}; choose {self.next_id} or more"
            )
        if any(b <= a for a, b in zip(chosen, chosen[1:], strict=False)):
            raise ChosenIdError("chosen ids must be increasing")
        if chosen and chosen[-1] > MAX_ID:
            raise ChosenIdError(f"an id must be at most {MAX_ID}, got {chosen[-1]}")
        return np.asarray(chosen, dtype=np.int64)

    def _remember(self, change: Change) -> None:
        """Keep an add's idempotency key with what it made (the newest KEEP_KEYS keys)."""
        if change.key is None or change.op != "add":
            return
        items = tuple(
            Item(
                int(item_id),
                None if change.labels is None else change.labels[row],
                None if change.sources is None else change.sources[row],
                None if change.metadata is None else change.metadata[row],
            )
            for row, item_id in enumerate(change.ids.tolist())
        )
        pictures = (change.thumbnails is not None,) * len(items)
        self.keys[change.key] = Remembered(change.digest, items, pictures)
        self.keys.move_to_end(change.key)
        while len(self.keys) > KEEP_KEYS:
            self.keys.popitem(last=False)

    def remembered(self, key: str) -> Remembered | None:
        """What the add made with this idempotency key, where it is one of the newest kept."""
        with self._lock.reading():
            return self.keys.get(key)

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
            raise InvalidInput(f"k must be at least 1, got {k}")
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

    # -- changes -------------------------------------------------------------------------------

    @property
    def unsaved(self) -> bool:
        """Whether adds or removals were made that no save has recorded yet."""
        return bool(self._pending)

    def _replay(self, changes: list[Change]) -> None:
        """Make changes recorded elsewhere (a change log), exactly as they were first made."""
        for change in changelog.merged(changes):
            self._apply(change)
        for change in changes:
            self._remember(change)
