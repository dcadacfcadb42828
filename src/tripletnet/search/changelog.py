"""A version's change log: the adds and removals made since its files were written.

    INDEX_DIR/v000007/changes.log    one line per change: "<crc32, 8 hex digits> <JSON>\\n"

A writer appends a line per change (holding the folder's lock) and fsyncs it before the change
is acknowledged; readers in other processes read the lines past what they have applied and
apply them in order, so an add costs O(change), not O(collection). A record holds everything
the change needs to be replayed exactly: the ids, and for an add the vectors as stored (their
float32 bytes), labels, sources, metadata and thumbnails; arrays are ``np.save`` bytes
(never pickled) in base64. An add may carry the client's idempotency key and a digest of its
request, so a repeated request is answered from the record instead of being applied again.

Only a last line without its newline is a record a crash cut short (or one being written): it is
ignored, never half-applied, and the next append replaces it. A whole line (newline included)
whose checksum or contents fail is damage wherever it is, the last line included: it was
acknowledged once, so it is refused (DamagedLogError, naming the file and the line) rather than
silently dropped; ``repair`` cuts the log there, on an operator's explicit request.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .store import IndexChangedError, IndexFolderError

LOG = "changes.log"


@dataclass(frozen=True)
class Change:
    """One add (ids with their vectors and what the items carry) or removal (ids)."""

    op: str  # "add" or "remove"
    ids: np.ndarray  # int64
    vectors: np.ndarray | None = None  # (n, dim) float32, as the index stores them
    labels: Sequence[int | None] | None = None
    sources: Sequence[str | None] | None = None
    metadata: Sequence[dict[str, Any] | None] | None = None
    thumbnails: Sequence[np.ndarray] | None = None  # uint8 pictures, one per id
    key: str | None = None  # the client's Idempotency-Key (an add)
    digest: str | None = None  # of the request that key came with


def _pack(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _unpack(text: str) -> np.ndarray:
    array: np.ndarray = np.load(io.BytesIO(base64.b64decode(text)), allow_pickle=False)
    return array


def encode(change: Change) -> bytes:
    """The change as one checksummed line."""
    record: dict[str, Any] = {"op": change.op, "ids": _pack(np.asarray(change.ids, np.int64))}
    if change.vectors is not None:
        record["vectors"] = _pack(np.asarray(change.vectors, np.float32))
    for name in ("labels", "sources", "metadata"):
        values = getattr(change, name)
        if values is not None:
            record[name] = list(values)
    if change.thumbnails is not None:
        record["thumbnails"] = [_pack(np.asarray(t, np.uint8)) for t in change.thumbnails]
    if change.key is not None:
        record["key"] = [change.key, change.digest]
    body = json.dumps(record, separators=(",", ":")).encode("utf-8")
    return b"%08x %s\n" % (zlib.crc32(body), body)


def _decode(line: bytes) -> Change | None:
    """The change a line holds, or None if it is damaged (checksum or contents)."""
    crc, _, body = line.partition(b" ")
    try:
        if len(crc) != 8 or int(crc, 16) != zlib.crc32(body):
            return None
        record = json.loads(body)
        vectors = record.get("vectors")
        thumbnails = record.get("thumbnails")
        key, digest = record.get("key") or (None, None)
        return Change(
            record["op"],
            _unpack(record["ids"]),
            None if vectors is None else _unpack(vectors),
            record.get("labels"),
            record.get("sources"),
            record.get("metadata"),
            None if thumbnails is None else [_unpack(t) for t in thumbnails],
            key,
            digest,
        )
    except (ValueError, KeyError, TypeError):
        return None


class DamagedLogError(IndexFolderError):
    """A whole record of a change log fails its checksum: an acknowledged change is unreadable."""

    def __init__(self, path: Path, line: int, offset: int, records_from: int) -> None:
        self.path, self.line, self.offset, self.records_from = path, line, offset, records_from
        super().__init__(
            f"{path} is damaged at line {line} (byte {offset}): a whole record fails its "
            f"checksum, so a change that was acknowledged cannot be read; restore the index "
            f"folder from a backup, or run 'tripletnet index repair {path.parent.parent}' to cut "
            f"the log at that line (it drops that record and the {records_from} whole record(s) "
            "after it, and keeps the cut bytes beside the versions)"
        )


def _line_number(path: Path, offset: int, lines_before: int) -> int:
    """The 1-based number of the line that starts ``lines_before`` lines past byte ``offset``."""
    with open(path, "rb") as handle:
        return handle.read(offset).count(b"\n") + lines_before + 1


def size(path: Path) -> int:
    """The log's length in bytes (0 where there is none yet)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def read(path: Path, offset: int = 0) -> tuple[list[Change], int, int]:
    """The whole records after byte ``offset``, the offset after the last of them, and the
    log's length as read (larger where a record is cut short or still being written)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return [], offset, offset
    changes: list[Change] = []
    end = offset
    lines = data.split(b"\n")
    for number, line in enumerate(lines[:-1]):  # the part after the last newline is unfinished
        change = _decode(line)
        if change is None:  # a whole line: written and acknowledged, not torn
            line_number = _line_number(path, offset, number)
            raise DamagedLogError(path, line_number, end, len(lines) - 2 - number)
        changes.append(change)
        end += len(line) + 1
    return changes, end, offset + len(data)


def repair(path: Path) -> tuple[int, int, Path | None]:
    """Cut the log at its first damaged whole record (and an unfinished last one), durably,
    keeping the cut bytes beside the versions (``INDEX_DIR/v000007.changes.log.cut-<byte>``,
    which no compaction removes); return (records kept, whole records dropped, the file the cut
    bytes went to, None where nothing was cut). The caller holds the folder's lock."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0, 0, None
    lines = data.split(b"\n")
    end = kept = 0
    for line in lines[:-1]:
        if _decode(line) is None:
            break
        kept += 1
        end += len(line) + 1
    if end == len(data):
        return kept, 0, None
    dropped = data[end:].count(b"\n")  # whole records from the damaged one on
    aside = path.parent.parent / f"{path.parent.name}.{path.name}.cut-{end}"
    with open(aside, "wb") as handle:
        handle.write(data[end:])
        handle.flush()
        os.fsync(handle.fileno())
    fd = os.open(path, os.O_WRONLY | getattr(os, "O_BINARY", 0))
    try:
        os.ftruncate(fd, end)
        os.fsync(fd)
    finally:
        os.close(fd)
    return kept, dropped, aside


def append(path: Path, changes: Sequence[Change], offset: int) -> int:
    """Append ``changes`` after byte ``offset`` (where the writer's state ends), durably;
    return the log's new length. The caller holds the folder's lock. Records another writer
    appended past ``offset`` are IndexChangedError; a torn record there is cut off first."""
    if size(path) < offset:  # this state holds records the log no longer has
        raise IndexChangedError(
            f"{path} is shorter than the {offset} bytes this index applied; load it again "
            "and repeat the change"
        )
    check_applied(path, offset)
    data = b"".join(encode(change) for change in changes)
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags, 0o666)
    try:
        os.ftruncate(fd, offset)  # drop a torn record a crash left
        os.lseek(fd, offset, os.SEEK_SET)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)  # the commit point: past it the changes are durable
        except BaseException:
            # not committed (disk full, a failed fsync): take back whatever part was written,
            # so the log holds none of it (a service reads the log only under the lock; where
            # even this fails, the service checks the log to say whether the change is in it)
            with contextlib.suppress(OSError):
                os.ftruncate(fd, offset)
                os.fsync(fd)
            raise
    finally:
        os.close(fd)
    return offset + len(data)


def check_applied(path: Path, offset: int) -> None:
    """IndexChangedError where records past ``offset`` were appended by another writer."""
    found, _, _ = read(path, offset)
    if found:
        raise IndexChangedError(
            f"{path.parent.parent} was changed by another process: {len(found)} change(s) were "
            "logged since this index was read; load it again and repeat the change"
        )


def _column(change: Change, name: str) -> list[Any]:
    values = getattr(change, name)
    return [None] * len(change.ids) if values is None else list(values)


def merged(changes: Sequence[Change]) -> list[Change]:
    """The same changes with each run of adds joined into one (so replaying many adds is one
    FAISS add and one copy of the stored vectors); adds with and without thumbnails stay apart."""
    out: list[Change] = []
    for change in changes:
        last = out[-1] if out else None
        if (
            last is None
            or change.op != "add"
            or last.op != "add"
            or (change.thumbnails is None) != (last.thumbnails is None)
        ):
            out.append(change)
            continue
        assert last.vectors is not None and change.vectors is not None
        labels, sources, metadata = (
            _column(last, name) + _column(change, name)
            for name in ("labels", "sources", "metadata")
        )
        thumbnails = (
            None if last.thumbnails is None else [*last.thumbnails, *(change.thumbnails or [])]
        )
        ids = np.concatenate([last.ids, change.ids])
        vectors = np.concatenate([last.vectors, change.vectors])
        out[-1] = Change("add", ids, vectors, labels, sources, metadata, thumbnails)
    return out
