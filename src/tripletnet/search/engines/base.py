"""What every index engine gives the CLI and the service: :class:`LiveEngine` (the index as
commands and the service read and change it) and :class:`IndexState` (what ``current()``
returns, and what a write's change is given).

Two engines implement them: ``faiss`` (search/live.py's LiveIndex: a versioned folder with a
change log; the embedded default) and ``milvus`` (engines/milvus.py: one collection of a Milvus
Lite file or a Milvus server). search/engines/__init__.py opens and creates either by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import numpy as np

from ..filters import Filter
from ..index import Hit, Item, ModelRef, Remembered

T = TypeVar("T")


class IndexState(Protocol):
    """An index's state for a read (``search``, ``item``...) or inside a write (``add``,
    ``remove``). ``items`` and ``thumbnails`` are read-only mappings by id (a Milvus state
    asks the server for each; a FAISS state holds them in memory)."""

    @property
    def dim(self) -> int: ...

    @property
    def kind(self) -> str: ...

    @property
    def metric(self) -> str: ...

    @property
    def params(self) -> dict[str, int]: ...

    @property
    def model(self) -> ModelRef | None: ...

    @property
    def version(self) -> str | None:
        """The FAISS folder's live version (None: a state no folder version names)."""
        ...

    @property
    def logged(self) -> int:
        """Changes recorded in a change log not folded yet (0 where there is no log)."""
        ...

    @property
    def items(self) -> Mapping[int, Item]: ...

    @property
    def thumbnails(self) -> Mapping[int, np.ndarray]: ...

    def __len__(self) -> int: ...

    def check_vectors(self, vectors: Any) -> np.ndarray: ...

    def check_model(self, model: ModelRef) -> None: ...

    def search(
        self, queries: np.ndarray, k: int = 10, where: Filter | None = None
    ) -> list[list[Hit]]: ...

    def item(self, item_id: int) -> Item: ...

    def label_name(self, label: int | None) -> str | None: ...

    def remembered(self, key: str) -> Remembered | None: ...

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
    ) -> np.ndarray: ...

    def remove(self, ids: Sequence[int] | np.ndarray) -> int: ...


class LiveEngine(Protocol):
    """The live index of one engine (search/live.py's docstring gives the contract).

    ``engine``: "faiss" or "milvus"; ``name``: the folder's or the collection's name (never a
    server path); ``mmap``: a read-only FAISS folder mapped from disk; ``model``: the queries'
    model, which the index must match."""

    engine: str
    mmap: bool
    model: ModelRef | None

    @property
    def name(self) -> str: ...

    @property
    def index(self) -> IndexState:
        """The state as this process holds it, without catching up."""
        ...

    def current(self) -> IndexState: ...

    def write(
        self,
        change: Callable[[IndexState], T],
        applied: Callable[[IndexState], bool] | None = None,
    ) -> T: ...

    def catch_up(self) -> None: ...

    def compact(self) -> int: ...

    def describe(self) -> str:
        """Where the index lives, in one line (for ``index info``)."""
        ...
