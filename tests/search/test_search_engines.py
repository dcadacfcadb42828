"""Both index engines behind one interface (search/engines/): FAISS folders and Milvus (Lite,
in this process) give the same answers, and the CLI and the service work the same on each."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from tripletnet.cli import main
from tripletnet.search.build import Collection
from tripletnet.search.engines import IndexState, LiveEngine, Target, create_live, open_live
from tripletnet.search.filters import Filter

HAS_MILVUS = importlib.util.find_spec("pymilvus") is not None and (
    importlib.util.find_spec("milvus_lite") is not None
)
needs_milvus = pytest.mark.skipif(
    not HAS_MILVUS, reason='the milvus engine needs pip install "tripletnet[milvus]"'
)
ENGINES = ["faiss", pytest.param("milvus", marks=needs_milvus)]
TRICKY = ["1 or id > 0", 'a"b', "back\\slash", "new\nline", '") or (id > 0', "bell\x07"]


def target(tmp_path: Path, engine: str, name: str = "gallery") -> Target:
    if engine == "faiss":
        return Target(tmp_path / name)
    return Target(name, "milvus", str(tmp_path / "milvus.db"))


def build(
    tmp_path: Path,
    engine: str,
    vectors: np.ndarray,
    labels: list[int | None],
    metric: str = "euclidean",
    name: str = "gallery",
) -> tuple[LiveEngine, IndexState]:
    collection = Collection(vectors, labels, [f"v:{i}" for i in range(len(vectors))])
    return create_live(
        target(tmp_path, engine, name),
        collection,
        dim=vectors.shape[1],
        kind="exact",
        metric=metric,
        model=None,
        class_names=["zero", "one", "two"],
    )


def metadata_of(row: int) -> dict[str, object] | None:
    """Some items with metadata, of every type a filter must tell apart."""
    choices: list[dict[str, object] | None] = [
        {"shop": TRICKY[row // 6 % len(TRICKY)], "n": row % 3},
        {"flag": True, "n": 1},
        {"flag": 1, "n": 1.0},
        {"flag": None},
        None,
        {},
    ]
    return choices[row % len(choices)]


def filled(tmp_path: Path, engine: str, metric: str) -> tuple[LiveEngine, np.ndarray]:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(300, 12)).astype(np.float32)
    live, _ = build(tmp_path, engine, vectors[:200], [i % 3 for i in range(200)], metric)
    extra = vectors[200:]
    live.write(
        lambda index: index.add(
            extra,
            [None if i % 4 == 0 else i % 3 for i in range(100)],
            [f"extra:{i}" for i in range(100)],
            metadata=[metadata_of(i) for i in range(100)],
        )
    )
    return live, rng.normal(size=(5, 12)).astype(np.float32)


FILTERS = [
    None,
    Filter.build([1]),
    Filter.build([0, 2], {"n": 1}),
    Filter.build(None, {"shop": TRICKY}),
    Filter.build(None, {"shop": "1 or id > 0"}),
    Filter.build(None, {"flag": True}),
    Filter.build(None, {"flag": 1}),
    Filter.build(None, {"flag": None}),
    Filter.build(None, {"n": [1, 2]}),
]


@needs_milvus
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_exact_search_gives_the_same_answers_on_both_engines(tmp_path: Path, metric: str) -> None:
    answers = {}
    for engine in ("faiss", "milvus"):
        live, queries = filled(tmp_path, engine, metric)
        index = open_live(target(tmp_path, engine)).current()
        assert len(index) == 300
        answers[engine] = [index.search(queries, 10, where) for where in FILTERS]
    for where, faiss_rows, milvus_rows in zip(
        FILTERS, answers["faiss"], answers["milvus"], strict=True
    ):
        for faiss_hits, milvus_hits in zip(faiss_rows, milvus_rows, strict=True):
            assert [h.item for h in faiss_hits] == [h.item for h in milvus_hits], where
            assert np.allclose(
                [h.distance for h in faiss_hits], [h.distance for h in milvus_hits], atol=1e-5
            )


@pytest.mark.parametrize("engine", ENGINES)
def test_filters_match_values_exactly_and_cannot_be_injected(tmp_path: Path, engine: str) -> None:
    live, queries = filled(tmp_path, engine, "euclidean")
    index = live.current()
    for value in TRICKY:
        hits = index.search(queries[:1], 300, Filter.build(None, {"shop": value}))[0]
        assert hits and all(h.item.metadata == {**h.item.metadata, "shop": value} for h in hits)
    flags = index.search(queries[:1], 300, Filter.build(None, {"flag": True}))[0]
    assert {h.item.metadata["flag"] for h in flags} == {True}  # not the 1s
    ones = index.search(queries[:1], 300, Filter.build(None, {"flag": 1}))[0]
    assert [type(h.item.metadata["flag"]) for h in ones] == [int] * len(ones)
    nulls = index.search(queries[:1], 300, Filter.build(None, {"flag": None}))[0]
    assert nulls and all(h.item.metadata == {"flag": None} for h in nulls)
    labelled = index.search(queries[:1], 300, Filter.build([2]))[0]
    assert labelled and {h.item.label for h in labelled} == {2}


@pytest.mark.parametrize("engine", ENGINES)
def test_adds_and_removals_keep_ids_and_never_reuse_them(tmp_path: Path, engine: str) -> None:
    from tripletnet.search.index import ChosenIdError

    vectors = np.random.default_rng(1).normal(size=(20, 8)).astype(np.float32)
    live, index = build(tmp_path, engine, vectors[:10], [0] * 10)
    assert live.write(lambda state: state.remove([9, 3, 99])) == 2
    assert live.write(lambda state: state.add(vectors[10:12])).tolist() == [10, 11]
    reopened = open_live(target(tmp_path, engine)).current()
    assert len(reopened) == 10 and 3 not in reopened.items and 11 in reopened.items
    assert reopened.item(4).source == "v:4" and reopened.label_name(0) == "zero"
    with pytest.raises(ChosenIdError):
        live.write(lambda state: state.add(vectors[12:13], ids=[5]))
    made = live.write(
        lambda state: state.add(vectors[12:13], [1], ["k"], ids=[50], key="K", digest="D")
    )
    assert made.tolist() == [50]
    kept = open_live(target(tmp_path, engine)).current().remembered("K")
    assert kept is not None and kept.digest == "D" and kept.items[0].id == 50
    assert open_live(target(tmp_path, engine)).current().remembered("other") is None
    nearest = reopened.search(vectors[4], 1)[0][0]
    assert nearest.item.id == 4 and nearest.distance == pytest.approx(0, abs=1e-3)


@pytest.mark.parametrize("engine", ENGINES)
def test_build_info_search_remove_compact_on_the_command_line(
    tmp_path: Path, run_dir: Path, engine: str, capsys: pytest.CaptureFixture[str]
) -> None:
    vectors = np.random.default_rng(2).normal(size=(30, 16)).astype(np.float32)
    np.save(tmp_path / "v.npy", vectors)
    np.save(tmp_path / "q.npy", vectors[3])
    place = ["--backend", "milvus", "--uri", str(tmp_path / "m.db")] if engine == "milvus" else []
    where = "gallery" if engine == "milvus" else str(tmp_path / "gallery")
    build_args = ["index", "build", str(run_dir), "--vectors", str(tmp_path / "v.npy")]
    assert main([*build_args, "--out", where, *place]) == 0
    assert main(["index", "info", where, *place]) == 0
    assert main(["search", where, "--vector", str(tmp_path / "q.npy"), "-k", "2", *place]) == 0
    assert main(["index", "remove", where, "3", *place]) == 0
    assert main(["index", "compact", where, *place]) == 0
    out = capsys.readouterr().out
    assert "indexed 30 items (exact, dim 16)" in out and "30 items, dim 16" in out
    assert out.split("source\n")[1].split()[1] == "3"  # the nearest: itself
    assert "removed 1 of 1 ids; 29 items left" in out
    assert ("milvus collection gallery" in out) == (engine == "milvus")
    assert main([*build_args, "--out", where, *place]) == 2  # there already
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize("engine", ENGINES)
def test_the_service_round_trip(tmp_path: Path, run_dir: Path, engine: str) -> None:
    pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")
    from fastapi.testclient import TestClient

    from tripletnet.search import Embedder
    from tripletnet.service import create_app

    embedder = Embedder.from_run(run_dir)
    vectors = np.random.default_rng(3).normal(size=(40, 16)).astype(np.float32)
    collection = Collection(vectors, [i % 3 for i in range(40)], [f"v:{i}" for i in range(40)])
    where = target(tmp_path, engine)
    create_live(where, collection, dim=16, kind="exact", metric=embedder.metric,
                model=embedder.ref, class_names=[])  # fmt: skip
    place = {"backend": engine, "uri": where.uri}
    with TestClient(create_app(run_dir, str(where.location), **place)) as client:  # type: ignore[arg-type]
        assert client.get("/health").json()["count"] == 40
        body = {"vector": vectors[5].tolist(), "k": 3, "labels": [2]}
        found = client.post("/search", json=body).json()["results"]
        assert found[0]["id"] == 5 and {hit["label"] for hit in found} == {2}
        item = {"vector": vectors[6].tolist(), "label": 1, "metadata": {"shop": 'a"b'}}
        added = client.post("/items", json=item, headers={"Idempotency-Key": "one"})
        again = client.post("/items", json=item, headers={"Idempotency-Key": "one"})
        assert added.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
        assert added.json()["id"] == again.json()["id"] == 40
        hits = client.post(
            "/search", json={"vector": vectors[6].tolist(), "where": {"shop": 'a"b'}}
        )
        assert [hit["id"] for hit in hits.json()["results"]] == [40]
        assert client.get("/items/40").json()["metadata"] == {"shop": 'a"b'}
        assert client.delete("/items/40").json() == {"removed": 40, "count": 40}
        assert client.get("/items/40").status_code == 404
        assert client.delete("/items/40").status_code == 404
        same = {"vector": vectors[7].tolist(), "id": 7, "label": 1, "source": "v:7"}
        assert client.post("/items", json={**same, "label": 2}).status_code == 409
        chosen = client.post("/items", json=same)
        assert chosen.status_code == 200  # an upsert of the item there: it stays
    with TestClient(create_app(run_dir, str(where.location), **place)) as restarted:  # type: ignore[arg-type]
        assert restarted.get("/health").json()["count"] == 40


@needs_milvus
def test_milvus_expressions_escape_every_value() -> None:
    from tripletnet.search.engines.milvus import expression, literal

    assert literal('a"b\\c') == '"a\\"b\\\\c"'
    assert literal("x\ny") == '"x\\ny"'
    assert literal("bell\x07") is None and literal(None) is None and literal(2**70) is None
    assert literal(True) == "true" and literal(3) == "3" and literal(0.5) == "0.5"
    text = expression(Filter.build([3, 1], {'k"ey': "1 or id > 0", "z": None}))
    assert text == 'label in [1, 3] and (metadata["k\\"ey"] == "1 or id > 0")'


@needs_milvus
@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ["index", "info", "g", "--backend", "milvus", "--uri", "http://127.0.0.1:1"],
            "cannot reach",
        ),
        (["index", "info", "g", "--backend", "milvus"], "needs --uri"),
        (["index", "info", "g", "--uri", "x.db"], "--backend milvus"),
        (
            ["index", "info", "no-name", "--backend", "milvus", "--uri", "{t}/m.db"],
            "collection name",
        ),
        (
            ["index", "info", "g", "--backend", "milvus", "--uri", "{t}/nowhere/m.db"],
            "does not exist",
        ),
        (
            ["index", "info", "g", "--backend", "milvus", "--uri", "{t}/m.db"],
            "no tripletnet collection",
        ),
    ],
)
def test_milvus_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], words: str
) -> None:
    assert main([a.replace("{t}", str(tmp_path)) for a in args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and words in err[0], err


def test_a_missing_extra_is_one_error_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "pymilvus", None)  # import pymilvus: ImportError
    args = ["index", "info", "g", "--backend", "milvus", "--uri", str(tmp_path / "m.db")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: the milvus engine needs the 'milvus' extra: pip install \"tripletnet[milvus]\""
    ]
