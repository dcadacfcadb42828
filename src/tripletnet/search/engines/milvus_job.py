"""A torchrun job's Milvus collection, from the parts its processes embedded (search/parts.py).

The job writes into a staging collection ``NAME__building`` that becomes ``NAME`` (renamed,
replacing one there) only once every share is in, so a job that stops leaves ``NAME`` as it
was; its rerun makes the staging collection again from the parts kept on disk. Against a
Milvus server every rank inserts its own share, concurrently; Milvus Lite opens its file in one
process only, so there rank 0 inserts every share. Ids are the ones one process gives: each
rank's start after the items of the ranks before it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ...collective import gathered
from ...world import World, barrier
from ..parts import Parts, shard_pieces
from .milvus import MilvusLive, is_lite

if TYPE_CHECKING:
    from . import Target

STAGING = "__building"


def insert_shards(
    world: World, target: Target, parts: Parts, count: int, **settings: Any
) -> MilvusLive | None:
    """Store the job's ``count`` embedded rows as the collection ``target`` (``settings``:
    ``MilvusLive.create``'s, less ``count``); rank 0 gets the live collection, the others None.
    Every rank must have finished its parts (``embed_shards``)."""
    assert target.uri is not None
    lite = is_lite(target.uri)
    rows = sum(len(parts.load(p).vectors) for p in _mine(parts, world, count))
    sizes = [int(n) for n in gathered(world, rows)]
    staging = target.collection + STAGING
    live = None
    if world.main:
        first = parts.load(shard_pieces(parts, world.size, count)[0])
        names = first.class_names or settings.pop("class_names", [])
        settings["class_names"] = names
        live = MilvusLive.create(staging, target.uri, target.token, count=sum(sizes), **settings)
        live.index.set_next_id(sum(sizes))
    barrier(world)
    if lite and world.main:
        assert live is not None
        _insert(live, parts, shard_pieces(parts, world.size, count), 0)
    elif not lite:
        mine = live or MilvusLive(staging, target.uri, target.token)
        _insert(mine, parts, _mine(parts, world, count), sum(sizes[: world.rank]))
    barrier(world)
    if live is not None:
        live.promote(target.collection)
    return live


def _mine(parts: Parts, world: World, count: int) -> list[range]:
    return shard_pieces(parts, world.size, count, world.rank)


def _insert(live: MilvusLive, parts: Parts, pieces: list[range], first: int) -> None:
    """Insert the pieces' items with ids from ``first`` on, in order."""
    for piece in pieces:
        part = parts.load(piece)
        ids = np.arange(first, first + len(part.vectors), dtype=np.int64)
        live.index.insert_share(ids, part.vectors, part.labels, part.sources, part.thumbnails)
        first += len(part.vectors)
