"""The live index: the index in one folder, as the service and every command read and change it.

:class:`LiveIndex` is the interface an index engine implements (this one keeps FAISS state in a
versioned folder with a change log: folder.py, store.py, changelog.py). Its contract:

- ``LiveIndex(root, mmap=False, model=None)``: the index at ``root``, read when first used (an
  IndexFolderError that says what is wrong where there is none or it is damaged); ``mmap``:
  mapped from disk, read-only; ``model``: queries' model, which the index must match.
- ``current()``: the state to read (``search``, ``item``, ``items``, ``label_name``, ``dim``,
  ``kind``, ``version``, ``thumbnails``, ``remembered``), first brought up to date with other
  writers' changes where it can be without waiting (a read may lag one catch-up behind).
- ``write(change, applied=None)``: one transaction, alone among all writers (threads and
  processes): bring the state up to date, run ``change(state)`` (it adds or removes), record
  what it changed durably (the commit point), and return its result. A write that fails is
  rolled back (the state is read again) and raises; where the failure came after the commit,
  ``applied(state)`` says whether the change is there all the same, and then it is a success.
- ``catch_up()``: apply other writers' changes now.
- ``compact()``: fold the recorded changes into the stored state; how many were folded.
- ``repair()``: cut damaged records off the recorded changes (an operator's explicit choice).
- ``LiveIndex.create(root, index)``: store a new index at ``root`` (replacing one there).

A refused write applied nothing: ReadOnlyIndexError (mapped from disk), IndexChangedError
(another writer replaced the state under it; the live one is loaded now: repeat the write),
DiskFullError (no room to record it), IndexFolderError (the folder cannot be read or changed;
DamagedLogError: a damaged record), or what ``change`` raised.
"""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ..errors import TripletnetError
from . import changelog
from .changelog import LOG
from .folder import SearchIndex
from .index import ModelRef
from .store import IndexChangedError, IndexFolderError, current_version, index_lock

DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
T = TypeVar("T")

log = logging.getLogger("tripletnet.search")


class ReadOnlyIndexError(TripletnetError):
    """A write to an index that is mapped from disk, read-only."""


class DiskFullError(TripletnetError):
    """A write that could not be recorded: the disk (or the quota) is full. ``reason``: the
    system's words."""

    def __init__(self, root: Path, reason: str) -> None:
        self.reason = reason
        super().__init__(f"disk full: {root} could not record the change ({reason})")


@dataclass(frozen=True)
class Repaired:
    """What ``repair`` did: records kept, whole records dropped, where the cut bytes went (None:
    nothing was cut), and the log it cut."""

    kept: int
    dropped: int
    aside: Path | None
    log: Path


class LiveIndex:
    """The index in the folder ``root`` (the module's docstring gives the contract): the
    ``faiss`` engine of search/engines/."""

    engine = "faiss"

    def __init__(self, root: str | Path, mmap: bool = False, model: ModelRef | None = None) -> None:
        self.root = Path(root)
        self.mmap = mmap
        self.model = model
        self._index: SearchIndex | None = None
        self._reloading = threading.Lock()
        self._writing = threading.Lock()  # held by this process's writer (one at a time)

    @classmethod
    def create(cls, root: str | Path, index: SearchIndex) -> LiveIndex:
        """Store ``index`` as the new live version of ``root`` (whatever was there before)."""
        index.save(root)
        live = cls(root)
        live._index = index
        return live

    @property
    def name(self) -> str:
        """The folder's name (not its path: messages to clients must not show the server's)."""
        return self.root.name

    def describe(self) -> str:
        """Where the index lives, in one line."""
        return f"faiss folder {self.root}"

    @property
    def index(self) -> SearchIndex:
        """The state as it is now, without catching up (read at first use)."""
        if self._index is None:
            self._index = self._load()
        return self._index

    def _load(self) -> SearchIndex:
        index = SearchIndex.load(self.root, mmap=self.mmap)
        if self.model is not None:
            index.check_model(self.model)
        return index

    def current(self) -> SearchIndex:
        """The index for a read, brought up to date first if another process changed the folder.

        Reads never wait for that: while one thread catches up, the others answer from the
        state they have (a read may lag another process's change by one catch-up)."""
        index = self.index
        if self._writing.locked():  # this process's own write: the writer brings it up to date
            return index
        if index.behind() and self._reloading.acquire(blocking=False):
            try:
                if self.index.behind():
                    self._catch_up_unless_writing()
            except IndexFolderError as error:  # e.g. a version removed while it was read
                log.warning("could not update the index (%s); serving %s", error, index.version)
            finally:
                self._reloading.release()
        return self.index

    def _catch_up_unless_writing(self) -> None:
        """Catch up holding the folder's lock, so that no record is read that its writer may
        still take back (a disk filling up mid-append); where another process holds the lock,
        answer from the state there is and catch up on a later read."""
        from filelock import Timeout

        try:
            held = index_lock(self.root).acquire(timeout=0)
        except Timeout:
            return
        except OSError:  # a folder this process cannot lock (read-only): nobody writes it
            self.catch_up()
            return
        with held:
            self.catch_up()

    def catch_up(self) -> None:
        """Apply the changes other processes logged, or load the live version if it moved."""
        if not self.index.catch_up():
            self.reload()

    def reload(self) -> None:
        """Read the live version again (a slower reload never replaces a newer state)."""
        index = self._load()
        if self._index is None or _number(index) >= _number(self._index):
            self._index = index
        log.info("reloaded the index: version %s, %d items", index.version, len(index))

    def write(
        self,
        change: Callable[[SearchIndex], T],
        applied: Callable[[SearchIndex], bool] | None = None,
    ) -> T:
        """Apply ``change`` to the live state and record it, holding the folder's lock
        throughout; if anything fails, read what is on disk again so no refused change stays.

        The change log's fsync'd append is the commit point: an error means the change is not
        on disk. Where recording fails, ``applied`` (given the state read again) says whether
        the change got there all the same (a failure after the commit): then the answer is the
        change's result. A full disk (ENOSPC, EDQUOT) is a DiskFullError."""
        if self.mmap:
            raise ReadOnlyIndexError(f"{self.root} is mapped from disk, read-only")
        self.index  # noqa: B018 - a clear error where there is no index, before any lock file
        with index_lock(self.root), self._writing:
            made = False
            try:
                self.catch_up()  # a write applies to the live state, so it waits for it
                index = self.index
                result = change(index)
                made = True
                if index.unsaved:
                    index.save_changes(self.root)
                return result
            except IndexChangedError:
                self.reload()
                raise
            except BaseException as error:
                if self.index.unsaved:  # a change made in memory but not saved: drop it
                    try:
                        self.reload()
                    except Exception:  # what the error says stays true: not applied
                        log.exception("could not reload %s after a failed write", self.root)
                    else:
                        if made and applied is not None and applied(self.index):
                            log.warning("a write failed after its change was committed: %r", error)
                            return result
                failure = self._failure(error)
                if failure is error:
                    raise
                raise failure from error

    def _failure(self, error: BaseException) -> BaseException:
        """What a failed write raises: a DiskFullError for a full disk; logged where the folder
        refuses it."""
        if isinstance(error, OSError) and error.errno in DISK_FULL:
            log.error("a write to %s failed, disk full: %s", self.root, error)
            return DiskFullError(self.root, str(error.strerror or error))
        if isinstance(error, IndexFolderError):
            log.error("a write to %s was refused: %s", self.root, error)
        return error

    def compact(self) -> int:
        """Fold the change log into a new version, with no change coming between the read and
        the write; the number of changes folded (none: no new version)."""
        self.index  # noqa: B018 - a clear error where there is no index, before any lock file
        with index_lock(self.root), self._writing:
            self.catch_up()
            logged = self.index.logged
            if logged:
                self.index.save(self.root)
        return logged

    def repair(self) -> Repaired:
        """Cut the live version's change log at its first damaged record (dropping it and every
        record after it; the cut bytes are kept beside the versions), then fold what is left
        into a new version."""
        folder = current_version(self.root)  # a clear error where there is no index
        with index_lock(self.root), self._writing:  # no writer appends while the log is cut
            kept, dropped, aside = changelog.repair(folder / LOG)
            self._index = self._load()
            if self._index.logged:
                self._index.save(self.root)
        return Repaired(kept, dropped, aside, folder / LOG)


def _number(index: SearchIndex) -> int:
    """The number of the version a state was read from (0: none)."""
    return int(index.version[1:]) if index.version else 0


__all__ = [
    "DiskFullError",
    "IndexChangedError",
    "IndexFolderError",
    "LiveIndex",
    "ReadOnlyIndexError",
    "Repaired",
]
