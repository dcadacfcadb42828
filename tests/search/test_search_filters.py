"""Filters, re-ranking and memory-mapped loading of the index, against brute force."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest

from tripletnet.errors import TripletnetError
from tripletnet.search import SearchIndex
from tripletnet.search.filters import Filter

DIM = 16


def blobs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Clustered vectors (20 blobs) and a label per vector, with one rare label (7: 12 items)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (20, DIM))
    which = rng.integers(0, 20, n)
    vectors = (centres[which] + 0.3 * rng.normal(0, 1, (n, DIM))).astype(np.float32)
    labels = rng.integers(0, 6, n)
    labels[rng.choice(n, 12, replace=False)] = 7
    return vectors, labels


def brute_force(
    vectors: np.ndarray, queries: np.ndarray, allowed: np.ndarray, k: int
) -> np.ndarray:
    distances = ((queries[:, None, :] - vectors[None, allowed, :]) ** 2).sum(-1)
    return allowed[np.argsort(distances, axis=1, kind="stable")[:, :k]]


def ids(hits: list[list[object]]) -> list[list[int]]:
    return [[hit.item.id for hit in row] for row in hits]  # type: ignore[attr-defined]


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    return float(
        np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)])
    )


N = 6000
VECTORS, LABELS = blobs(N)
QUERIES = blobs(30, seed=1)[0]
SHOPS = ["lyon" if i % 3 else "oslo" for i in range(N)]
METADATA = [{"shop": shop, "new": i % 2 == 0, "year": 2020 + i % 5} for i, shop in enumerate(SHOPS)]
KINDS = [
    ("exact", {}, "sq8"),
    ("hnsw", {}, "sq8"),
    ("ivfpq", {"refine": 10}, "float32"),
    ("ivfpq", {"refine": 10}, "sq8"),
    ("ivfpq", {}, "sq8"),
]


@pytest.fixture(scope="module", params=KINDS, ids=[f"{k}{p}{s}" for k, p, s in KINDS])
def index(request: pytest.FixtureRequest) -> SearchIndex:
    kind, params, store = request.param
    built = SearchIndex(DIM, kind, params=params, refine_store=store)
    built.add(VECTORS, labels=LABELS, metadata=METADATA)
    return built


FILTERS = {
    "labels 1,2 (a third of the items)": (Filter.build([1, 2]), np.isin(LABELS, [1, 2])),
    "rare label 7 (12 items)": (Filter.build([7]), LABELS == 7),
    "labels 0-4 (most items: FAISS's selector)": (Filter.build(range(5)), LABELS < 5),
    "shop oslo": (Filter.build(where={"shop": "oslo"}), np.array([s == "oslo" for s in SHOPS])),
    "label 3 and year 2021 or 2022": (
        Filter.build([3], {"year": [2021, 2022]}),
        (LABELS == 3) & np.isin(np.arange(N) % 5, [1, 2]),
    ),
    "new is true (not 1)": (Filter.build(where={"new": True}), np.arange(N) % 2 == 0),
}


@pytest.mark.parametrize("name", FILTERS)
def test_a_filtered_search_finds_only_allowed_items_and_k_of_them(
    index: SearchIndex, name: str
) -> None:
    where, mask = FILTERS[name]
    allowed = np.flatnonzero(mask)
    truth = brute_force(VECTORS, QUERIES, allowed, 10)
    found = ids(index.search(QUERIES, 10, where))
    assert all(set(row) <= set(allowed.tolist()) for row in found)
    assert all(len(row) == min(10, len(allowed)) for row in found)  # not just fewer results
    lossy = index.kind == "ivfpq" and not index.params["refine"]  # PQ distances, never exact
    exhaustive = index.kind == "exact" or len(allowed) < 4096
    if exhaustive and not lossy and exactly_stored(index):  # every allowed item scored exactly
        assert recall(found, truth) == pytest.approx(1.0)
    else:
        assert recall(found, truth) >= {"hnsw": 0.9}.get(index.kind, 0.5 if lossy else 0.95)


def test_where_the_approximate_search_runs_dry_the_allowed_items_are_searched_exhaustively(
    index: SearchIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tripletnet.search.index.EXHAUSTIVE_BELOW", 0)  # selector first
    allowed = np.flatnonzero(LABELS == 7)
    found = ids(index.search(QUERIES, 10, Filter.build([7])))
    assert all(set(row) <= set(allowed.tolist()) for row in found)
    assert all(len(row) == 10 for row in found)
    if index.kind != "ivfpq" or index.params["refine"]:
        wanted = 1.0 if exactly_stored(index) else 0.95  # sq8: distances to decoded vectors
        assert recall(found, brute_force(VECTORS, QUERIES, allowed, 10)) >= wanted - 1e-9


def exactly_stored(index: SearchIndex) -> bool:
    return index.kind != "ivfpq" or index.refine_store == "float32"


def test_an_integer_does_not_match_a_boolean_field() -> None:
    index = SearchIndex(DIM)
    index.add(VECTORS[:4], metadata=[{"new": True}, {"new": 1}, {"new": "1"}, None])
    found = ids(index.search(VECTORS[:1], 4, Filter.build(where={"new": 1})))
    assert found == [[1]]


def test_a_filter_nothing_matches_finds_nothing(index: SearchIndex) -> None:
    assert ids(index.search(QUERIES[:2], 5, Filter.build([5_000]))) == [[], []]


@pytest.mark.parametrize(
    ("labels", "where", "says"),
    [
        ([], None, "labels must list 1 to"),
        ([-1], None, "from 0 to"),
        ([1.5], None, "integer class id"),
        (None, [1], "where must be a JSON object"),
        (None, {"": 1}, "where field names"),
        (None, {"a": []}, "where.a must list 1 to"),
        (None, {"a": {"b": 1}}, "where.a must be a string, number"),
        (None, {"a": float("nan")}, "where.a must be finite"),
    ],
)
def test_a_bad_filter_is_a_clear_error(labels: object, where: object, says: str) -> None:
    with pytest.raises(TripletnetError, match=says):
        Filter.build(labels, where)  # type: ignore[arg-type]


# how close a re-ranked distance is to the exact one, by store
STORE_TOLERANCE = {"float32": 1e-4, "float16": 2e-3, "sq8": 2e-2}


@pytest.mark.parametrize("store", STORE_TOLERANCE)
def test_re_ranking_finds_the_true_neighbours_that_pq_alone_misses(store: str) -> None:
    truth = brute_force(VECTORS, QUERIES, np.arange(N), 10)
    plain = SearchIndex(DIM, "ivfpq", params={"nprobe": 16})
    plain.add(VECTORS)
    refined = SearchIndex(DIM, "ivfpq", params={"nprobe": 16, "refine": 10}, refine_store=store)
    refined.add(VECTORS)
    plain_recall = recall(ids(plain.search(QUERIES, 10)), truth)
    refined_recall = recall(ids(refined.search(QUERIES, 10)), truth)
    assert refined_recall >= 0.95 and refined_recall > plain_recall + 0.1
    assert refined._vectors.rows.dtype.itemsize == {"float32": 4, "float16": 2, "sq8": 1}[store]  # type: ignore[union-attr]
    exact = ((QUERIES[:1] - VECTORS[truth[0]]) ** 2).sum(1) ** 0.5
    distances = [hit.distance for hit in refined.search(QUERIES[:1], 10)[0]]
    # the stored vectors' distances (exact, or within the store's error), not PQ's
    assert distances == pytest.approx(exact.tolist(), rel=STORE_TOLERANCE[store])
    with pytest.raises(TripletnetError, match="keeps no vectors to re-rank"):
        plain.set_search_params(refine=4)


def test_sq8_is_the_default_store_and_a_bad_store_is_refused() -> None:
    assert SearchIndex(DIM, "ivfpq", params={"refine": 8}).refine_store == "sq8"
    with pytest.raises(TripletnetError, match="unknown refine store 'int4'; choose one of"):
        SearchIndex(DIM, "ivfpq", params={"refine": 8}, refine_store="int4")


def test_sq8_clips_later_vectors_outside_the_learnt_range() -> None:
    index = SearchIndex(DIM, "ivfpq", params={"refine": 8})
    index.add(VECTORS)
    far = np.full((1, DIM), 1e3, np.float32)
    index.add(far)  # beyond every dimension's range: stored at its top, still found
    assert index.search(far, 1)[0][0].item.id == N


def test_an_index_saved_before_refine_store_loads_with_its_float32_vectors(
    tmp_path: Path,
) -> None:
    index = SearchIndex(DIM, "ivfpq", params={"refine": 8}, refine_store="float32")
    index.add(VECTORS)
    folder = index.save(tmp_path / "index")
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["refine_store"]  # as the first re-ranked indexes wrote it
    (folder / "manifest.json").write_text(json.dumps(manifest))
    loaded = SearchIndex.load(tmp_path / "index", mmap=True)
    assert loaded.refine_store == "float32" and not (folder / "vectors-range.npy").exists()
    assert ids(loaded.search(QUERIES, 10)) == ids(index.search(QUERIES, 10))


@pytest.mark.parametrize("store", STORE_TOLERANCE)
def test_metadata_and_stored_vectors_persist_and_load_memory_mapped(
    tmp_path: Path, store: str
) -> None:
    index = SearchIndex(DIM, "ivfpq", params={"refine": 8}, refine_store=store)
    index.add(VECTORS, labels=LABELS, metadata=METADATA)
    index.remove([0, 5, 17])
    index.save(tmp_path / "index")
    assert (tmp_path / "index" / index.version / "vectors.npy").is_file()
    assert (tmp_path / "index" / index.version / "vectors-range.npy").is_file() == (store == "sq8")
    where = Filter.build([1, 2], {"shop": "lyon"})
    expected = ids(index.search(QUERIES, 10, where))
    for mmap in (False, True):
        loaded = SearchIndex.load(tmp_path / "index", mmap=mmap)
        assert loaded.item(4).metadata == METADATA[4] and 5 not in loaded.items
        assert ids(loaded.search(QUERIES, 10, where)) == expected
    assert isinstance(loaded._vectors.rows, np.memmap)  # type: ignore[union-attr]
    assert faiss.downcast_index(loaded._faiss).precomputed_table.size() == 0  # freed: 32 MB at 1M
    with pytest.raises(TripletnetError, match="memory-mapped and is read-only"):
        loaded.add(VECTORS[:1])
    with pytest.raises(TripletnetError, match="memory-mapped and is read-only"):
        loaded.remove([1])


def test_an_hnsw_index_loads_memory_mapped(tmp_path: Path) -> None:
    index = SearchIndex(DIM, "hnsw")
    index.add(VECTORS[:500])
    index.save(tmp_path / "index")
    mapped = SearchIndex.load(tmp_path / "index", mmap=True)
    assert ids(mapped.search(QUERIES, 5)) == ids(index.search(QUERIES, 5))


def test_filters_work_where_faiss_torch_utils_is_imported(index: SearchIndex) -> None:
    import faiss.contrib.torch_utils  # noqa: F401  (pytorch-metric-learning imports it)

    where, mask = FILTERS["labels 0-4 (most items: FAISS's selector)"]
    found = ids(index.search(QUERIES[:3], 10, where))
    assert all(len(row) == 10 and set(row) <= set(np.flatnonzero(mask).tolist()) for row in found)
    assert all(len(row) == 10 for row in ids(index.search(QUERIES[:3], 10, Filter.build([7]))))
