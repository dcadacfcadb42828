"""SearchIndex: build, search, add, remove, persist, reload, model checks, atomic saves, threads."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tripletnet.errors import TripletnetError
from tripletnet.search import (
    KINDS,
    Embedder,
    IndexChangedError,
    IndexFolderError,
    ModelRef,
    SearchIndex,
)
from tripletnet.search import folder as folder_module
from tripletnet.search import store as store_module


def clustered(n: int = 600, dim: int = 16, clusters: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 5, (clusters, dim))
    return (centres[rng.integers(0, clusters, n)] + rng.normal(0, 1, (n, dim))).astype(np.float32)


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_finds_an_indexed_vector_first(kind: str) -> None:
    vectors = clustered()
    index = SearchIndex(16, kind)
    ids = index.add(vectors, labels=list(range(600)))
    assert ids.tolist() == list(range(600))
    hits = index.search(vectors[:20], k=5)
    assert [row[0].item.id for row in hits] == list(range(20))
    assert all(len(row) == 5 for row in hits)
    assert all(row[i].distance <= row[i + 1].distance for row in hits for i in range(4))


def test_exact_distances_are_euclidean() -> None:
    vectors = clustered(50)
    index = SearchIndex(16)
    index.add(vectors)
    hits = index.search(vectors[3], k=50)[0]
    expected = np.sort(np.linalg.norm(vectors - vectors[3], axis=1))
    np.testing.assert_allclose([h.distance for h in hits], expected, atol=1e-3)


@pytest.mark.parametrize("kind", KINDS)
def test_removal_keeps_the_other_ids_and_never_reuses_one(kind: str, tmp_path: Path) -> None:
    vectors = clustered()
    index = SearchIndex(16, kind)
    index.add(vectors[:500])
    assert index.remove([0, 7, 7, 12345]) == 2
    assert len(index) == 498
    survivor = index.search(vectors[8], k=1)[0][0]
    assert survivor.item.id == 8
    assert all(hit.item.id not in (0, 7) for hit in index.search(vectors[7], k=20)[0])
    index.save(tmp_path / "idx")
    reloaded = SearchIndex.load(tmp_path / "idx")
    new_ids = reloaded.add(vectors[500:510])
    assert new_ids.tolist() == list(range(500, 510))
    assert reloaded.search(vectors[505], k=1)[0][0].item.id == 505


def test_save_and_load_keep_items_labels_thumbnails_and_model(tmp_path: Path) -> None:
    model = ModelRef("abc123", {"embedding_dim": 16}, "/runs/x")
    index = SearchIndex(16, "hnsw", model, {"ef_search": 32})
    index.class_names = ["zero", "one"]
    thumbs = np.arange(10 * 4 * 4).reshape(10, 4, 4, 1).astype(np.uint8)
    vectors = clustered(10)
    index.add(vectors, labels=[0, 1] * 5, sources=[f"s{i}" for i in range(10)], thumbnails=thumbs)
    index.save(tmp_path)
    loaded = SearchIndex.load(tmp_path)
    assert (loaded.kind, loaded.dim, loaded.params["ef_search"]) == ("hnsw", 16, 32)
    assert loaded.model == model
    assert loaded.item(3).source == "s3" and loaded.label_name(loaded.item(3).label) == "one"
    np.testing.assert_array_equal(loaded.thumbnails[4], thumbs[4])
    first = [h.item.id for h in index.search(vectors, 3)[0]]
    assert [h.item.id for h in loaded.search(vectors, 3)[0]] == first


def test_bad_input_is_refused_with_a_clear_message() -> None:
    index = SearchIndex(16)
    with pytest.raises(TripletnetError, match="dimension 16"):
        index.add(np.zeros((2, 8), np.float32))
    with pytest.raises(TripletnetError, match="finite"):
        index.add(np.full((1, 16), np.nan, np.float32))
    with pytest.raises(TripletnetError, match="k must be"):
        index.search(np.zeros(16, np.float32), k=0)
    with pytest.raises(TripletnetError, match="2 labels"):
        index.add(np.zeros((3, 16), np.float32), labels=[1, 2])
    with pytest.raises(TripletnetError, match="unknown index kind"):
        SearchIndex(16, "lsh")
    with pytest.raises(TripletnetError, match="at least 64 vectors"):
        SearchIndex(16, "ivfpq").add(clustered(30))
    assert index.search(np.zeros(16, np.float32), k=3) == [[]]


def test_a_query_model_other_than_the_index_model_is_refused(
    embedder: Embedder, other_run_dir: Path
) -> None:
    index = SearchIndex(embedder.dim, model=embedder.ref)
    index.check_model(embedder.ref)
    other = Embedder.from_run(other_run_dir)
    with pytest.raises(TripletnetError, match="does not match the index"):
        index.check_model(other.ref)


def test_a_crash_mid_save_leaves_the_previous_index_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vectors = clustered(40)
    index = SearchIndex(16)
    index.add(vectors[:20])
    first = index.save(tmp_path)
    index.add(vectors[20:])

    def crash(path: Path, *args: object, **kwargs: object) -> None:
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(store_module, "write_text_atomic", crash)  # dies before the switch
    with pytest.raises(OSError, match="simulated"):
        index.save(tmp_path)
    assert store_module.current_version(tmp_path) == first
    assert len(SearchIndex.load(tmp_path)) == 20
    monkeypatch.undo()

    original = Path.write_text
    calls = []

    def dies_on_items(self: Path, *args: object, **kwargs: object) -> int:
        if self.name == "items.json":
            calls.append(self)
            self.write_bytes(b'{"ids": [0, 1')  # half a file, then the process dies
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", dies_on_items)
    with pytest.raises(KeyboardInterrupt):
        index.save(tmp_path)
    monkeypatch.undo()
    assert calls and len(SearchIndex.load(tmp_path)) == 20
    index.save(tmp_path)
    assert len(SearchIndex.load(tmp_path)) == 40
    assert not list(tmp_path.glob(".tmp-*"))
    assert len(list(tmp_path.glob("v*"))) <= store_module.KEEP_VERSIONS


def test_a_folder_that_is_not_an_index_is_named_as_such(tmp_path: Path) -> None:
    with pytest.raises(IndexFolderError, match="not a tripletnet index"):
        SearchIndex.load(tmp_path)
    (tmp_path / "CURRENT").write_text("../../etc\n")
    with pytest.raises(IndexFolderError, match="not a version"):
        SearchIndex.load(tmp_path)


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_concurrent_adds_removes_searches_and_saves_never_corrupt(
    kind: str, tmp_path: Path
) -> None:
    vectors = clustered(400)
    index = SearchIndex(16, kind)
    index.add(vectors[:100])
    errors: list[BaseException] = []

    def guard(work: object) -> threading.Thread:
        def run() -> None:
            try:
                work()  # type: ignore[operator]
            except BaseException as error:  # noqa: BLE001 - reported by the assertion below
                errors.append(error)

        return threading.Thread(target=run)

    def adder(part: int) -> None:
        for start in range(100 + part * 150, 250 + part * 150, 10):
            index.add(vectors[start : start + 10])
            index.save_changes(tmp_path)

    def searcher() -> None:
        for _ in range(60):
            for row in index.search(vectors[:8], k=5):
                assert len({hit.item.id for hit in row}) == len(row) == 5

    def remover() -> None:
        for item_id in range(0, 40, 2):
            index.remove([item_id])
            index.save_changes(tmp_path)

    threads = [guard(lambda p=p: adder(p)) for p in range(2)]
    threads += [guard(searcher) for _ in range(3)] + [guard(remover)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(index) == 400 - 20
    loaded = SearchIndex.load(tmp_path)
    assert len(loaded) == 380 and loaded.next_id == 400
    assert loaded.search(vectors[399], k=1)[0][0].distance < 1e-3  # ids follow the add order


def test_save_changes_writes_only_what_no_save_has_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[Path] = []
    write_version = folder_module.write_version

    def counted(root: Path, files: Any) -> Path:
        written.append(root)
        return write_version(root, files)

    monkeypatch.setattr(folder_module, "write_version", counted)
    index = SearchIndex(16)
    index.add(clustered(20))
    index.save_changes(tmp_path / "a")
    index.save_changes(tmp_path / "a")  # nothing new: no write
    assert written == [tmp_path / "a"]
    index.remove([3])
    index.save_changes(tmp_path / "a")  # appended to the change log: no new version
    index.save_changes(tmp_path / "b")  # another folder has not got it yet
    assert written == [tmp_path / "a", tmp_path / "b"]
    assert len(SearchIndex.load(tmp_path / "a")) == len(SearchIndex.load(tmp_path / "b")) == 19


def test_a_save_over_another_writers_newer_version_is_refused(tmp_path: Path) -> None:
    vectors = clustered(21)
    first = SearchIndex(16)
    first.add(vectors[:20])
    first.save(tmp_path)
    mine, theirs = SearchIndex.load(tmp_path), SearchIndex.load(tmp_path)
    theirs.remove([0])
    theirs.save(tmp_path)
    mine.add(vectors[20:])
    with pytest.raises(IndexChangedError, match="changed by another process: v000002 is live"):
        mine.save_changes(tmp_path)
    assert len(SearchIndex.load(tmp_path)) == 19  # their removal stands
    theirs.remove([1])
    theirs.save(tmp_path)  # the writer of the live version goes on saving
    reread = SearchIndex.load(tmp_path)
    reread.add(vectors[20:])
    reread.save(tmp_path)
    assert len(SearchIndex.load(tmp_path)) == 19
    fresh = SearchIndex(16)
    fresh.add(vectors[:3])
    fresh.save(tmp_path)  # a new index replaces the folder's (as index build --overwrite does)
    assert len(SearchIndex.load(tmp_path)) == 3


WRITER = """
import sys
import numpy as np
from tripletnet.search import IndexChangedError, SearchIndex

root, writer, how = sys.argv[1], int(sys.argv[2]), sys.argv[3]
saved = 0
index = SearchIndex.load(root)
while saved < 4:
    index.add(np.full((1, 4), writer, np.float32), sources=[f"{writer}-{saved}"])
    try:
        getattr(index, how)(root)  # save: a new version; save_changes: a change-log record
    except IndexChangedError:  # another process saved first: read its state, repeat the add
        index = SearchIndex.load(root)
        continue
    saved += 1
"""


@pytest.mark.parametrize("how", ["save", "save_changes"])
def test_writers_in_different_processes_lose_no_change(tmp_path: Path, how: str) -> None:
    SearchIndex(4).save(tmp_path)
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(writer), how])
        for writer in range(3)
    ]
    assert [process.wait(timeout=120) for process in writers] == [0, 0, 0]
    sources = sorted(item.source or "" for item in SearchIndex.load(tmp_path).items.values())
    assert sources == sorted(f"{writer}-{saved}" for writer in range(3) for saved in range(4))
