"""An index folder's FAISS state: a :class:`~.index.MemoryIndex` read from, and saved to, the
versions of a folder (store.py) and the live version's change log (changelog.py).

    v000007/manifest.json    format, kind, dim, metric, params, count, next_id, class names, model
    v000007/items.json       columns: ids, labels, sources, thumbnail_ids (and metadata)
    v000007/index.faiss      the FAISS index, serialised (an untrained IVF-PQ has none)
    v000007/thumbnails.npy   (optional) the thumbnails of thumbnail_ids, uint8
    v000007/vectors*.npy     (optional) the vectors an IVF-PQ re-ranks with (vectors.py)
    v000007/keys.json        (optional) the newest idempotency keys with what their adds made
    v000007/changes.log      the adds and removals since (changelog.py)

A :class:`SearchIndex` remembers the version it was read from (or saved as) and how much of
its change log it has applied: ``save_changes`` appends its new changes to that log (group
commit: writers queued behind one append share the next), or writes a new version where the
log cannot take them or has grown past COMPACT_BYTES; ``catch_up`` applies what other
processes appended. Use it through search/live.py's LiveIndex, which holds the folder's lock
across catching up, changing and saving.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from ..errors import TripletnetError
from ..files import load_npy, read_json_object
from . import changelog
from .changelog import LOG, Change
from .index import Item, MemoryIndex, ModelRef, Remembered
from .store import (
    IndexFolderError,
    check_live,
    current_version,
    index_lock,
    live_version_name,
    write_version,
)
from .vectors import DEFAULT_STORE, StoredVectors
from .vectors import FILE as VECTORS_FILE

FORMAT = 1
COMPACT_BYTES = 4 * 2**20  # a change log grown past this is folded into a new version
KEYS_FILE = "keys.json"

log = logging.getLogger("tripletnet.search")


def _drop_precomputed_table(index: Any) -> None:
    """Free an IVF-PQ's precomputed distance table (nlist x m x 256 floats: 32 MB for
    IVF1024,PQ32), which FAISS rebuilds in memory when it reads an index: an index served
    memory-mapped is meant to stay small, and without the table a search computes the few
    probed cells' tables itself (nprobe x m x 256 values per query)."""
    ivf: Any = faiss.downcast_index(faiss.extract_index_ivf(index))
    if hasattr(ivf, "precomputed_table"):
        ivf.use_precomputed_table = -1
        ivf.precomputed_table.resize(0)


def _item_row(item: Item) -> tuple[int, int | None, str | None, dict[str, Any] | None]:
    return item.id, item.label, item.source, item.metadata


class SearchIndex(MemoryIndex):
    """A MemoryIndex that knows the folder version it was read from or saved as, and how much
    of that version's change log it has applied."""

    def __init__(
        self,
        dim: int,
        kind: str = "exact",
        model: ModelRef | None = None,
        params: dict[str, int] | None = None,
        metric: str = "euclidean",
        refine_store: str = DEFAULT_STORE,
    ) -> None:
        super().__init__(dim, kind, model, params, metric, refine_store)
        self._read_from: tuple[Path, str] | None = None  # (index folder, version) on disk
        self._log_end = 0  # the bytes of that version's change log applied to this state
        self._log_seen = 0  # the log's length when it was last read
        self._compact_from = 0  # after a failed compaction: the log length to try again at
        self.logged = 0  # records in that log, all applied here
        self._save_lock = threading.Lock()

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
            # the append was the commit: a compaction that fails (a full disk) loses nothing
            # and must not turn the committed change into an error; it is tried again later
            if end > COMPACT_BYTES and end >= self._compact_from:
                try:
                    self._write(root)
                except Exception as error:
                    self._compact_from = end + COMPACT_BYTES // 4
                    log.warning(
                        "could not compact the change log of %s (%s); the changes are kept in "
                        "the log, and compaction is tried again later",
                        root,
                        error,
                    )

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
            keys = [
                [key, kept.digest, [[*_item_row(i)] for i in kept.items], list(kept.thumbnails)]
                for key, kept in self.keys.items()
            ]
        files = {
            "manifest.json": lambda p: p.write_text(json.dumps(manifest, indent=2) + "\n"),
            "items.json": lambda p: p.write_text(json.dumps(columns)),
        }
        if keys:
            files[KEYS_FILE] = lambda p: p.write_text(json.dumps({"keys": keys}))
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
            self._compact_from = 0
        return version

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
                    self._replay_from(root / version, changes)
            self._log_end = end
            self.logged += len(changes)
        return True

    def _replay_from(self, folder: Path, changes: list[Change]) -> None:
        if changes and self.read_only:
            raise IndexFolderError(
                f"{folder / LOG} holds {len(changes)} change(s) that a memory-mapped index cannot "
                f"apply; run 'tripletnet index compact {folder.parent}' first"
            )
        self._replay(changes)

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
        except changelog.DamagedLogError:
            raise  # it says how to recover already
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
        if (folder / KEYS_FILE).is_file():
            for key, digest, rows, pictures in read_json_object(folder / KEYS_FILE)["keys"]:
                kept = tuple(
                    Item(int(i), label, source, fields) for i, label, source, fields in rows
                )
                index.keys[key] = Remembered(digest, kept, tuple(bool(p) for p in pictures))
        changes, index._log_end, index._log_seen = changelog.read(folder / LOG)
        index._replay_from(folder, changes)
        index.logged = len(changes)
        return index
