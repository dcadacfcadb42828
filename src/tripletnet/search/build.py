"""Build an index from a dataset split, a folder of images, or a .npy of ready embeddings."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data import ImageFiles, SourceOptions, load_dataset
from ..data.folder import images_below
from ..data.images import IMAGE_SUFFIXES
from ..errors import TripletnetError
from ..files import load_numeric_npy
from ..runs.data import embed_split, load_data
from .embedder import Embedder
from .filters import check_label
from .folder import SearchIndex
from .images import read_image
from .vectors import DEFAULT_STORE


@dataclass
class Collection:
    """Items to index: embeddings with their labels, sources and (optional) thumbnails;
    ``unreadable``: the image files left out."""

    vectors: np.ndarray
    labels: list[int | None]
    sources: list[str | None]
    thumbnails: list[np.ndarray] | None = None
    class_names: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


@dataclass
class Source:
    """Items listed in a fixed order but not embedded yet: ``count`` of them; ``collect(rows)``
    embeds a contiguous range of them (one process's share of a job), ``key`` says what was
    listed (equal keys: the same items in the same order, for the same model)."""

    count: int
    key: str
    collect: Callable[[range], Collection]

    def everything(self) -> Collection:
        return self.collect(range(self.count))


def listing_key(embedder: Embedder, *facts: object) -> str:
    """sha256 of the model's fingerprint and what identifies a listing."""
    text = json.dumps([embedder.ref.fingerprint, *facts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def from_dataset(
    embedder: Embedder,
    name: str,
    split: str = "test",
    data_dir: str | Path | None = None,
    limit: int | None = None,
) -> Collection:
    """A split of a dataset (a built-in name or a folder/CSV/npz path): its labels, sources
    (``NAME:SPLIT:ROW``, or for image files the file's path relative to the dataset's folder,
    so no path of the machine that indexed them is served) and thumbnails. The run's own
    dataset is read as the run read it (image size, split); unreadable files are left out."""
    return dataset_source(embedder, name, split, data_dir, limit).everything()


def dataset_source(
    embedder: Embedder,
    name: str,
    split: str = "test",
    data_dir: str | Path | None = None,
    limit: int | None = None,
) -> Source:
    """:func:`from_dataset`'s items, listed: the split's first ``limit`` rows."""
    config = embedder.run.config
    if data_dir is None and name == config.data.dataset:  # where and how the run found it
        data = load_data(config)
    else:
        options = SourceOptions(config.data.image_size, None, config.optim.seed)
        data = load_dataset(name, data_dir, False, options)
    if data.input_shape != embedder.input_shape:
        raise TripletnetError(
            f"dataset {name} has inputs of shape {list(data.input_shape)} but the model takes "
            f"{list(embedder.input_shape)}; index a dataset the model was trained for"
        )
    whole = {"train": data.train, "test": data.test, "query": data.query, "gallery": data.gallery}[
        split
    ]
    if whole is None:
        raise TripletnetError(f"{name} has no {split} split; choose train or test")
    count = len(whole) if limit is None else min(limit, len(whole))
    files = whole.x if isinstance(whole.x, ImageFiles) else None
    pictures = embedder.raw_format.is_image

    def collect(rows: range) -> Collection:
        part = whole.take(np.arange(rows.start, rows.stop))
        embedded = embed_split(embedder.run.model, part, embedder.run.prepare, embedder.device)
        kept = embedded.kept + rows.start
        return Collection(
            vectors=embedded.embeddings,
            labels=[int(y) for y in embedded.labels],
            sources=[
                _relative(files.path(int(row)), name)
                if files is not None
                else f"{name}:{split}:{row}"
                for row in kept
            ],
            thumbnails=embedder.thumbnails(np.asarray(part.x[embedded.kept])) if pictures else None,
            class_names=data.class_names,
            unreadable=embedded.unreadable,
        )

    files_key = [] if files is None else [_file_facts(files.path(r)) for r in range(count)]
    key = listing_key(embedder, "dataset", name, data_dir, split, count, len(whole), files_key)
    return Source(count, key, collect)


def _file_facts(path: str | Path) -> tuple[str, int, int]:
    """A file's path, size and modification time: a file changed since has other facts."""
    status = os.stat(path)
    return str(path), status.st_size, status.st_mtime_ns


def _relative(path: Path, dataset: str) -> str:
    """An image file's path relative to its dataset: the folder, or the CSV list's folder."""
    root = Path(dataset)
    root = (root if root.is_dir() else root.parent).resolve()
    try:
        return Path(path).resolve().relative_to(root).as_posix()
    except ValueError:  # a built-in dataset's files, or a path the source allowed elsewhere
        return Path(path).name


def from_images(embedder: Embedder, folder: Path) -> Collection:
    """Every image under ``folder``; a class-per-subfolder layout gives labels (sorted names)."""
    return images_source(embedder, folder).everything()


def images_source(embedder: Embedder, folder: Path) -> Source:
    """:func:`from_images`'s items, listed: the image files under ``folder``, sorted."""
    if not folder.is_dir():
        raise TripletnetError(f"--images {folder} is not a folder")
    paths = [Path(found) for found in images_below(str(folder))]
    if not paths:
        raise TripletnetError(f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    classes = sorted({p.relative_to(folder).parts[0] for p in paths if p.parent != folder})
    labelled = all(p.parent != folder for p in paths)

    def collect(rows: range) -> Collection:
        mine = paths[rows.start : rows.stop]
        samples = embedder.samples([read_image(p) for p in mine])
        return Collection(
            vectors=embedder.embed_samples(samples),
            labels=[
                classes.index(p.relative_to(folder).parts[0]) if labelled else None for p in mine
            ],
            sources=[p.relative_to(folder).as_posix() for p in mine],
            thumbnails=embedder.thumbnails(samples),
            class_names=classes if labelled else [],
        )

    facts = [_file_facts(p) for p in paths]
    return Source(len(paths), listing_key(embedder, "images", folder.resolve(), facts), collect)


def from_vectors(embedder: Embedder, vectors: Path, labels: Path | None = None) -> Collection:
    """Embeddings the user made with this run (e.g. ``tripletnet embed``); no thumbnails."""
    array = np.asarray(load_numeric_npy(vectors, "embeddings"))
    if array.ndim != 2 or array.shape[1] != embedder.dim or not len(array):
        raise TripletnetError(
            f"{vectors} has shape {array.shape}; expected (N, {embedder.dim}), "
            "embeddings of the run's model (at least one row)"
        )
    label_list: list[int | None] = [None] * len(array)
    if labels is not None:
        label_array = np.asarray(load_numeric_npy(labels, "labels"))
        if label_array.shape != (len(array),):
            raise TripletnetError(
                f"{labels} has shape {label_array.shape}; expected ({len(array)},)"
            )
        try:
            label_list = [check_label(y) for y in label_array.tolist()]
        except TripletnetError as error:
            raise TripletnetError(f"{labels}: {error}") from None
    return Collection(
        vectors=array.astype(np.float32),
        labels=label_list,
        sources=[f"{vectors.name}:{row}" for row in range(len(array))],
    )


def build_index(
    embedder: Embedder,
    collection: Collection,
    kind: str = "exact",
    params: dict[str, int] | None = None,
    refine_store: str = DEFAULT_STORE,
) -> SearchIndex:
    """Embed nothing more: put the collection's vectors and metadata into a new index."""
    index = SearchIndex(
        embedder.dim, kind, embedder.ref, params, metric=embedder.metric, refine_store=refine_store
    )
    index.class_names = collection.class_names or list(embedder.run.spec.class_names)
    index.add(collection.vectors, collection.labels, collection.sources, collection.thumbnails)
    return index
