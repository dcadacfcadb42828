"""A collection embedded by the processes of a torchrun job, share by share, kept on disk until
it is whole.

Rank r of W embeds rows ``World.shard(count)`` of the listing (search/build.py's ``Source``),
in pieces of at most PIECE rows, each saved as one file of the parts folder as soon as it is
done (atomically: a piece file is whole or absent). When every rank has finished, rank 0 reads
the pieces in listing order: the collection one process would have embedded, so the index it
writes has the same ids in the same order. A job that stops keeps its finished pieces; the
same command run again (same inputs, model and number of processes) embeds only the missing
ones. The folder's ``key.txt`` names the inputs: a folder left by other inputs is emptied
first, and the folder is removed once the index (or .npy) is written.

    OUT.parts/key.txt                         what was listed (build.py's listing key)
    OUT.parts/rows-000000000-000004096.npz    vectors, thumbnails and items.json of the rows
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from ..collective import summed
from ..errors import TripletnetError
from ..files import write_atomic, write_text_atomic
from ..progress import reset_shown, set_shown
from ..world import World, barrier, start, world_from_environment
from .build import Collection, Source

PIECE = 4096  # rows a piece file holds: what a stopped job loses at most, per rank
KEY_FILE = "key.txt"


class Parts:
    """The parts folder of one build: ``folder`` for the inputs ``key``."""

    def __init__(self, folder: Path, key: str, piece: int = PIECE) -> None:
        self.folder = folder
        self.key = key
        self.piece = piece

    @classmethod
    def beside(cls, out: Path, key: str) -> Parts:
        """The parts folder of the output ``out``: ``OUT.parts`` next to it."""
        return cls(out.parent / f"{out.name}.parts", key)

    def open(self) -> int:
        """Make the folder (emptied where other inputs left it); how many pieces it holds."""
        key_file = self.folder / KEY_FILE
        if self.folder.exists():
            if not self.folder.is_dir() or not (key_file.is_file() or _empty(self.folder)):
                raise TripletnetError(
                    f"{self.folder} is not a parts folder of tripletnet (no {KEY_FILE}), and "
                    "the job keeps its parts there: move it away"
                )
            if key_file.is_file() and key_file.read_text().strip() != self.key:
                shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        if not key_file.is_file():
            write_text_atomic(key_file, self.key + "\n")
        return len(list(self.folder.glob("rows-*.npz")))

    def pieces(self, rows: range) -> list[range]:
        return [
            range(start, min(start + self.piece, rows.stop))
            for start in range(rows.start, rows.stop, self.piece)
        ]

    def path(self, piece: range) -> Path:
        return self.folder / f"rows-{piece.start:09d}-{piece.stop:09d}.npz"

    def save(self, piece: range, part: Collection) -> None:
        items = {
            "labels": part.labels,
            "sources": part.sources,
            "class_names": part.class_names,
            "unreadable": part.unreadable,
        }
        arrays: dict[str, np.ndarray] = {
            "vectors": np.asarray(part.vectors, np.float32),
            "items": np.frombuffer(json.dumps(items).encode(), np.uint8),
        }
        if part.thumbnails is not None:
            arrays["thumbnails"] = _stacked(part.thumbnails)

        def writer(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                np.savez(handle, allow_pickle=False, **arrays)

        write_atomic(self.path(piece), writer)

    def load(self, piece: range) -> Collection:
        path = self.path(piece)
        try:
            with np.load(path, allow_pickle=False) as saved:
                items = json.loads(saved["items"].tobytes())
                thumbnails = saved.get("thumbnails")
                vectors = saved["vectors"]
        except (OSError, ValueError, KeyError) as error:
            raise TripletnetError(
                f"cannot read the finished part {path} ({error}); delete it and run the same "
                "command again"
            ) from None
        return Collection(
            vectors=vectors,
            labels=items["labels"],
            sources=items["sources"],
            thumbnails=None if thumbnails is None else list(thumbnails),
            class_names=items["class_names"],
            unreadable=items["unreadable"],
        )

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _empty(folder: Path) -> bool:
    return not any(folder.iterdir())


def _stacked(thumbnails: list[np.ndarray]) -> np.ndarray:
    """Thumbnails as one uint8 array (those of one model's samples share a shape)."""
    if not thumbnails:
        return np.zeros((0, 1, 1, 1), np.uint8)
    if len({t.shape for t in thumbnails}) != 1:
        raise TripletnetError("thumbnails of different shapes cannot be kept in one part")
    return np.stack(thumbnails).astype(np.uint8)


def join() -> tuple[World, str]:
    """Join the torchrun job this process belongs to, and the device it embeds on: its own
    GPU (LOCAL_RANK) where there are GPUs, else the CPU; (SINGLE, "cpu") outside a job."""
    import torch

    world = world_from_environment()
    cuda = world.distributed and torch.cuda.is_available()
    device = world.device(torch.device("cuda" if cuda else "cpu"))
    return start(device), str(device)


def collect_shards(world: World, source: Source, parts: Parts) -> Collection | None:
    """:func:`embed_shards`, then rank 0 reads the whole collection in listing order (the
    others get None)."""
    embed_shards(world, source, parts)
    if not world.main:
        return None
    return joined([parts.load(piece) for piece in shard_pieces(parts, world.size, source.count)])


def shard_pieces(parts: Parts, size: int, count: int, rank: int | None = None) -> list[range]:
    """The pieces of rank ``rank``'s shard of ``count`` rows (None: of every rank's, in
    order) in a job of ``size`` processes."""
    ranks = range(size) if rank is None else [rank]
    return [piece for r in ranks for piece in parts.pieces(World(r, size).shard(count))]


def embed_shards(world: World, source: Source, parts: Parts) -> None:
    """Every rank embeds the pieces of its shard not saved yet (rank 0 alone draws a progress
    bar) and returns once every rank has. A rank that dies stops the others (``PeerLost``);
    a rank with less left to do waits in rounds of one piece, never a whole share, so a
    resumed job stays within TRIPLETNET_DIST_TIMEOUT."""
    if world.main:
        parts.open()
    barrier(world)
    todo = [p for p in parts.pieces(world.shard(source.count)) if not parts.path(p).is_file()]
    shown = set_shown(False) if not world.main else None  # one bar: rank 0's
    try:
        while _left(world, len(todo)):  # a round a piece: no wait as long as a whole share
            if todo:
                piece = todo.pop(0)
                parts.save(piece, source.collect(piece))
    finally:
        if shown is not None:
            reset_shown(shown)


def _left(world: World, mine: int) -> int:
    """The pieces every rank has left to embed (a collective: each round of the embedding
    loop, so a rank that died stops the others within one piece's time)."""
    return int(summed(world, np.array([mine]))[0])


def joined(parts: list[Collection]) -> Collection:
    """The parts as one collection, in order."""
    vectors = np.concatenate([p.vectors for p in parts])
    thumbnails = None
    if all(p.thumbnails is not None for p in parts):
        thumbnails = [t for p in parts for t in p.thumbnails or []]
    return Collection(
        vectors=vectors,
        labels=[y for p in parts for y in p.labels],
        sources=[s for p in parts for s in p.sources],
        thumbnails=thumbnails,
        class_names=parts[0].class_names,
        unreadable=[u for p in parts for u in p.unreadable],
    )
