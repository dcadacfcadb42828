"""The change log: records round-trip exactly, a torn last record is ignored, other processes'
changes are replayed without a reload, compaction keeps everything, writers lose nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tripletnet.search import IndexChangedError, IndexFolderError, SearchIndex
from tripletnet.search import folder as folder_module
from tripletnet.search import index as index_module
from tripletnet.search.changelog import LOG, Change, append, encode, merged, read


def clustered(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 5, (6, dim))
    return (centres[rng.integers(0, 6, n)] + rng.normal(0, 1, (n, dim))).astype(np.float32)


def an_add(first: int, count: int = 2, seed: int = 0) -> Change:
    rng = np.random.default_rng(seed)
    return Change(
        "add",
        np.arange(first, first + count, dtype=np.int64),
        rng.normal(0, 1, (count, 8)).astype(np.float32),
        [3, None][:count],
        ["a.png", "ünïcode\nline"][:count],
        [{"shop": "lyon", "price": 2.5}, None][:count],
        [rng.integers(0, 256, (8, 8), dtype=np.uint8) for _ in range(count)],
    )


def same(a: Change, b: Change) -> bool:
    arrays = (a.ids, b.ids), (a.vectors, b.vectors)
    pictures = zip(a.thumbnails or [], b.thumbnails or [], strict=True)
    return (
        a.op == b.op
        and all(x is None and y is None or np.array_equal(x, y) for x, y in arrays)
        and (list(a.labels or []), list(a.sources or []), list(a.metadata or []))
        == (list(b.labels or []), list(b.sources or []), list(b.metadata or []))
        and all(np.array_equal(x, y) and x.dtype == y.dtype for x, y in pictures)
    )


def test_records_round_trip_exactly(tmp_path: Path) -> None:
    log = tmp_path / LOG
    changes = [an_add(0), Change("remove", np.array([1], np.int64)), an_add(2, seed=1)]
    end = append(log, changes[:1], 0)
    end = append(log, changes[1:], end)
    found, applied, seen = read(log)
    assert applied == seen == end == log.stat().st_size
    assert len(found) == 3 and all(same(a, b) for a, b in zip(found, changes, strict=True))
    assert found[0].vectors is not None and found[0].vectors.dtype == np.float32
    assert read(log, applied) == ([], end, end)  # nothing new past the end
    later, _, _ = read(log, len(encode(changes[0])))
    assert len(later) == 2 and later[0].op == "remove"


def test_a_torn_last_record_is_ignored_and_the_next_append_replaces_it(tmp_path: Path) -> None:
    log = tmp_path / LOG
    end = append(log, [an_add(0)], 0)
    whole = encode(an_add(2, seed=1))
    for torn in (whole[:-1], whole[:40], whole[:-30] + b"x" * 29):  # cut short: no newline
        log.write_bytes(log.read_bytes()[:end] + torn)
        found, applied, seen = read(log)
        assert len(found) == 1 and applied == end and seen == end + len(torn)
    end = append(log, [an_add(2, seed=2)], end)  # cuts the torn record off first
    found, applied, _ = read(log)
    assert [c.ids.tolist() for c in found] == [[0, 1], [2, 3]] and applied == end


def test_a_bad_record_before_good_ones_is_refused(tmp_path: Path) -> None:
    log = tmp_path / LOG
    append(log, [an_add(0), an_add(2), an_add(4)], 0)
    data = bytearray(log.read_bytes())
    data[20] ^= 1  # inside the first record
    log.write_bytes(bytes(data))
    with pytest.raises(IndexFolderError, match=f"{LOG} is damaged at line 1 \\(byte 0\\)"):
        read(log)


def test_an_append_past_another_writers_records_is_refused(tmp_path: Path) -> None:
    log = tmp_path / LOG
    mine = append(log, [an_add(0)], 0)
    append(log, [an_add(2)], mine)  # another writer
    with pytest.raises(IndexChangedError, match="1 change"):
        append(log, [an_add(2)], mine)


def test_runs_of_adds_are_merged_for_replay() -> None:
    plain = Change("add", np.array([9], np.int64), np.zeros((1, 8), np.float32))
    out = merged([an_add(0), an_add(2), plain, Change("remove", np.array([0])), an_add(10)])
    assert [c.ids.tolist() for c in out] == [[0, 1, 2, 3], [9], [0], [10, 11]]
    assert out[0].labels == [3, None, 3, None] and out[0].thumbnails is not None


def built(tmp_path: Path, kind: str, params: dict[str, int] | None, store: str) -> SearchIndex:
    index = SearchIndex(16, kind, params=params, refine_store=store)
    index.add(clustered(300), labels=[i % 4 for i in range(300)], sources=[f"s{i}" for i in range(300)])  # fmt: skip
    index.save(tmp_path)
    return index


KINDS = [
    ("exact", None, "sq8"),
    ("hnsw", None, "sq8"),
    ("ivfpq", None, "sq8"),
    ("ivfpq", {"refine": 4}, "sq8"),
    ("ivfpq", {"refine": 4}, "float16"),
    ("ivfpq", {"refine": 4}, "float32"),
]


@pytest.mark.parametrize(("kind", "params", "store"), KINDS)
def test_every_kind_replays_adds_and_removals_as_made(
    tmp_path: Path, kind: str, params: dict[str, int] | None, store: str
) -> None:
    built(tmp_path, kind, params, store)
    writer, reader = SearchIndex.load(tmp_path), SearchIndex.load(tmp_path)
    new = clustered(5, seed=1)
    writer.add(new[:3], labels=[1, 2, 3], metadata=[{"k": 1}, None, {"k": "v"}],
               thumbnails=np.full((3, 4, 4), 7, np.uint8))  # fmt: skip
    writer.remove([0, 7, 301])
    writer.add(new[3:], sources=["x", "y"])
    writer.save_changes(tmp_path)
    assert writer.version == "v000001" and writer.logged == 3  # logged, no new version
    assert reader.behind() and reader.catch_up() and not reader.behind()
    for index in (reader, SearchIndex.load(tmp_path)):
        assert index.items == writer.items and index.next_id == writer.next_id == 305
        assert index.thumbnails.keys() == {300, 302} and index.thumbnails[302][0, 0] == 7
        queries = clustered(20, seed=2)
        got, want = index.search(queries, k=5), writer.search(queries, k=5)
        assert [[h.item.id for h in row] for row in got] == [
            [h.item.id for h in row] for row in want
        ]
        distances = np.array([[h.distance for h in row] for row in got])
        expected = np.array([[h.distance for h in row] for row in want])
        assert np.allclose(distances, expected, rtol=1e-5, atol=1e-5)


def test_a_reader_applies_the_log_without_loading_the_folder_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built(tmp_path, "exact", None, "sq8")
    reader = SearchIndex.load(tmp_path)
    code = (
        "import sys, numpy as np; from tripletnet.search import SearchIndex\n"
        "index = SearchIndex.load(sys.argv[1])\n"
        "index.add(np.full((1, 16), 0.25, np.float32), sources=['other process'])\n"
        "index.remove([4])\n"
        "index.save_changes(sys.argv[1])\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, timeout=120)

    def no_reload(*args: object) -> None:
        raise AssertionError("the folder was read again")

    monkeypatch.setattr(SearchIndex, "_read", no_reload)
    assert reader.behind() and reader.catch_up()
    assert reader.item(300).source == "other process" and 4 not in reader.items
    assert reader.version == "v000001" and len(reader) == 300


def test_compaction_keeps_everything_and_starts_an_empty_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built(tmp_path, "ivfpq", {"refine": 4}, "sq8")
    index = SearchIndex.load(tmp_path)
    index.add(clustered(2, seed=3), labels=[5, 6], metadata=[{"a": True}, None],
              thumbnails=np.ones((2, 4, 4), np.uint8))  # fmt: skip
    index.remove([3])
    index.save_changes(tmp_path)
    before = SearchIndex.load(tmp_path)
    monkeypatch.setattr(folder_module, "COMPACT_BYTES", 0)  # the next append compacts
    index.add(clustered(1, seed=4), sources=["last"])
    index.save_changes(tmp_path)
    assert index.version == "v000002" and index.logged == 0
    after = SearchIndex.load(tmp_path)
    assert after.logged == 0 and not (tmp_path / "v000002" / LOG).exists()
    assert after.items == index.items and after.next_id == 303
    assert {k: v for k, v in after.items.items() if k != 302} == before.items
    assert after.thumbnails.keys() == {300, 301}
    assert after.search(clustered(1, seed=4), k=1)[0][0].item.source == "last"


def test_a_write_based_on_a_state_behind_the_log_is_refused(tmp_path: Path) -> None:
    built(tmp_path, "exact", None, "sq8")
    mine, theirs = SearchIndex.load(tmp_path), SearchIndex.load(tmp_path)
    theirs.remove([1])
    theirs.save_changes(tmp_path)
    mine.remove([2])
    with pytest.raises(IndexChangedError, match="changed by another process"):
        mine.save_changes(tmp_path)
    with pytest.raises(IndexChangedError, match="changed by another process"):
        mine.save(tmp_path)  # a compaction would drop their removal
    assert 1 not in SearchIndex.load(tmp_path).items and 2 in SearchIndex.load(tmp_path).items


def test_training_an_ivfpq_writes_a_version_not_a_record(tmp_path: Path) -> None:
    SearchIndex(16, "ivfpq").save(tmp_path)
    index = SearchIndex.load(tmp_path)
    index.add(clustered(300))
    index.save_changes(tmp_path)
    assert index.version == "v000002" and not (tmp_path / "v000002" / LOG).exists()
    index.add(clustered(1, seed=5))
    index.save_changes(tmp_path)
    assert index.version == "v000002" and len(SearchIndex.load(tmp_path)) == 301


def test_a_memory_mapped_load_refuses_a_log_until_compacted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tripletnet.cli import main

    built(tmp_path, "exact", None, "sq8")
    index = SearchIndex.load(tmp_path)
    index.remove([0])
    index.save_changes(tmp_path)
    with pytest.raises(IndexFolderError, match="index compact"):
        SearchIndex.load(tmp_path, mmap=True)
    assert main(["index", "compact", str(tmp_path)]) == 0
    assert "compacted 1 logged change(s); 299 items in v000002" in capsys.readouterr().out
    assert len(SearchIndex.load(tmp_path, mmap=True)) == 299
    assert main(["index", "compact", str(tmp_path)]) == 0  # nothing logged: no new version
    assert "compacted 0 logged change(s); 299 items in v000002" in capsys.readouterr().out


# -- no acknowledged write lost, none doubled ------------------------------------------------


def test_a_whole_last_record_with_a_bad_checksum_is_refused_not_cut(tmp_path: Path) -> None:
    """A record with its newline was written whole and acknowledged: a bad checksum there is
    damage (naming the file and the line), and no append may write over it."""
    from tripletnet.search.changelog import DamagedLogError

    log = tmp_path / "v000001" / LOG
    log.parent.mkdir()
    end = append(log, [an_add(0), an_add(2)], 0)
    data = bytearray(log.read_bytes())
    data[-20] ^= 1  # inside the last record; its newline stays
    log.write_bytes(bytes(data))
    with pytest.raises(DamagedLogError) as damaged:
        read(log)
    assert damaged.value.line == 2 and damaged.value.records_from == 0
    message = str(damaged.value)
    assert str(log) in message and "at line 2" in message and "index repair" in message
    assert "backup" in message
    later = len(encode(an_add(0)))
    with pytest.raises(DamagedLogError, match="at line 2"):  # read from past line 1, too
        read(log, later)
    with pytest.raises(DamagedLogError):
        append(log, [an_add(4)], later)  # never written over
    assert log.read_bytes() == bytes(data) and log.stat().st_size == end


def test_repair_cuts_at_the_damaged_line_and_keeps_the_cut_bytes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tripletnet.cli import main

    built(tmp_path, "exact", None, "sq8")
    index = SearchIndex.load(tmp_path)
    for n in range(4):
        index.add(clustered(1, seed=10 + n), sources=[f"late {n}"])
        index.save_changes(tmp_path)
    log = tmp_path / "v000001" / LOG
    lines = log.read_bytes().split(b"\n")
    lines[1] = lines[1][:30] + (b"0" if lines[1][30:31] != b"0" else b"1") + lines[1][31:]
    log.write_bytes(b"\n".join(lines))
    assert main(["index", "info", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and err[0].startswith("error: ") and f"{LOG} is damaged at line 2" in err[0]
    )
    assert main(["index", "repair", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "kept 1 record(s), dropped 3 whole record(s) from line 2 on" in out
    aside = next(tmp_path.glob(f"v000001.{LOG}.cut-*"))
    assert aside.read_bytes().count(b"\n") == 3 and aside.name in out
    repaired = SearchIndex.load(tmp_path)
    assert repaired.version == "v000002" and len(repaired) == 301
    assert repaired.item(300).source == "late 0"
    assert main(["index", "repair", str(tmp_path)]) == 0
    assert "nothing to repair" in capsys.readouterr().out


def test_a_failed_append_takes_back_what_it_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Disk full at the fsync (the commit point) or mid-write: the log is as it was."""
    import errno
    import os

    from tripletnet.search import changelog

    log = tmp_path / LOG
    end = append(log, [an_add(0)], 0)
    real_fsync, real_write = os.fsync, os.write
    calls = {"fsync": 0}

    def full_fsync(fd: int) -> None:
        calls["fsync"] += 1
        if calls["fsync"] == 1:  # the append's own fsync; the rollback's passes
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(changelog.os, "fsync", full_fsync)
    with pytest.raises(OSError, match="No space"):
        append(log, [an_add(2)], end)
    assert log.stat().st_size == end and len(read(log)[0]) == 1
    monkeypatch.setattr(changelog.os, "fsync", real_fsync)

    def half_write(fd: int, data: memoryview) -> int:
        if len(data) > 100:
            return real_write(fd, data[: len(data) // 2])
        raise OSError(errno.EDQUOT, "Disk quota exceeded")

    monkeypatch.setattr(changelog.os, "write", half_write)
    with pytest.raises(OSError, match="quota"):
        append(log, [an_add(2), an_add(4)], end)
    assert log.stat().st_size == end and len(read(log)[0]) == 1


def test_a_compaction_that_fails_after_the_commit_keeps_the_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from tripletnet.search import store

    built(tmp_path, "exact", None, "sq8")
    index = SearchIndex.load(tmp_path)
    monkeypatch.setattr(folder_module, "COMPACT_BYTES", 0)  # every append compacts

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "_write_locked", full)
    index.add(clustered(1, seed=7), sources=["committed"])
    index.save_changes(tmp_path)  # no error: the append was the commit
    assert not index.unsaved and index.version == "v000001"
    assert SearchIndex.load(tmp_path).item(300).source == "committed"
    monkeypatch.undo()
    monkeypatch.setattr(folder_module, "COMPACT_BYTES", 0)
    index.add(clustered(1, seed=8))
    index.save_changes(tmp_path)  # space again: compacted
    assert index.version == "v000002" and len(SearchIndex.load(tmp_path)) == 302


def test_idempotency_keys_and_chosen_ids_survive_reloads_and_compaction(tmp_path: Path) -> None:
    from tripletnet.errors import TripletnetError

    built(tmp_path, "ivfpq", {"refine": 4}, "sq8")
    index = SearchIndex.load(tmp_path)
    index.add(clustered(1, seed=1), labels=[2], sources=["k"], key="key-1", digest="d1")
    index.add(clustered(1, seed=2), ids=[1000], thumbnails=np.ones((1, 4, 4), np.uint8))
    index.save_changes(tmp_path)
    for message, ids in (("not new", [999]), ("not new", [5]), ("increasing", [2000, 2000])):
        with pytest.raises(TripletnetError, match=message):
            index.add(clustered(len(ids), seed=3), ids=ids)
    index.remove([300])  # the keyed item; its key's answer stays
    index.save_changes(tmp_path)
    loaded = SearchIndex.load(tmp_path)
    kept = loaded.remembered("key-1")
    assert kept is not None and kept.digest == "d1" and kept.thumbnails == (False,)
    assert kept.items[0].id == 300 and kept.items[0].label == 2 and 300 not in loaded.items
    assert loaded.next_id == 1001 and 1000 in loaded.items
    loaded.save(tmp_path)  # compacted: the keys go into keys.json
    again = SearchIndex.load(tmp_path)
    assert again.logged == 0 and again.remembered("key-1") == kept
    assert (tmp_path / again.version / "keys.json").is_file()  # type: ignore[operator]


def test_only_the_newest_keys_are_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_module, "KEEP_KEYS", 3)
    index = SearchIndex(16)
    for n in range(5):
        index.add(clustered(1, seed=n), key=f"k{n}")
    assert list(index.keys) == ["k2", "k3", "k4"]
