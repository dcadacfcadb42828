"""``tripletnet index build|info|remove|compact|repair``: make and maintain a search index
folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .engine_options import engine_options
from .options import out_option
from .progress import progress_option
from .trust import trust_option

if TYPE_CHECKING:
    from ..search import Collection, Embedder
    from ..search.engines import IndexState, LiveEngine, Target
    from ..world import World

_folder = click.Path(file_okay=False, path_type=Path)
_file = click.Path(dir_okay=False, exists=True, path_type=Path)


@click.group("index")
def index_command() -> None:
    """Build and maintain a similarity-search index.

    Of a trained model's embeddings: build one, show what it holds, remove items, compact it."""


@index_command.command("build")
@click.argument("run_dir", type=_folder)
@click.option(
    "--dataset", help="Index a split of a dataset: a built-in name or a folder/.csv/.npz path."
)
@click.option(
    "--split",
    type=click.Choice(["train", "test", "query", "gallery"]),
    default="test",
    show_default=True,
)
@click.option("--data-dir", type=_folder, help="Folder with the dataset's files.")
@click.option("--limit", type=click.IntRange(min=1), help="Index only the first N samples.")
@click.option(
    "--images",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Index every image under this folder (class subfolders give labels).",
)
@click.option("--vectors", type=_file, help="Index these (N, D) embeddings (.npy) of the run.")
@click.option("--labels", type=_file, help="(N,) int labels (.npy) for --vectors.")
@click.option(
    "--kind",
    type=click.Choice(["exact", "hnsw", "ivfpq", "ivfflat"]),
    default="exact",
    show_default=True,
    help="exact: brute force; hnsw: graph, fast; ivfpq: compressed, small (approximate); "
    "ivfflat: inverted file (--backend milvus only).",
)
@click.option(
    "--refine",
    type=click.IntRange(min=1),
    help="ivfpq: keep the vectors and re-rank REFINE * k candidates by their distance.",
)
@click.option(
    "--refine-store",
    type=click.Choice(["sq8", "float16", "float32"]),
    help="How --refine keeps the vectors: sq8 (1 byte a value, default), float16, float32 (exact).",
)
@out_option("Index folder to write.", folder=True, required=True)
@click.option("--overwrite", is_flag=True, help="Replace the index in --out.")
@engine_options("out")
@trust_option
@progress_option
def build_command(
    run_dir: Path,
    dataset: str | None,
    split: str,
    data_dir: Path | None,
    limit: int | None,
    images: Path | None,
    vectors: Path | None,
    labels: Path | None,
    kind: str,
    refine: int | None,
    refine_store: str | None,
    out: Path,
    overwrite: bool,
    engine: Target,
) -> None:
    """Embed a collection with RUN_DIR's model and write a searchable index folder.

    With --backend milvus, --out names the collection to write in the Milvus at --uri. Under
    torchrun every process embeds its share of the items (docs/search.md)."""
    from ..search.engines import prepare
    from ..search.parts import join
    from ..world import stop

    if sum(source is not None for source in (dataset, images, vectors)) != 1:
        raise click.UsageError("give exactly one of --dataset, --images or --vectors")
    if labels is not None and vectors is None:
        raise click.UsageError("--labels goes with --vectors")
    if refine is not None and kind != "ivfpq":
        raise click.UsageError("--refine re-ranks a compressed index: use it with --kind ivfpq")
    if refine_store is not None and refine is None:
        raise click.UsageError("--refine-store says how --refine keeps vectors: give --refine")
    if kind == "ivfflat" and not engine.milvus:
        raise click.UsageError("--kind ivfflat is a Milvus index: use it with --backend milvus")
    if refine is not None and engine.milvus:
        raise click.UsageError("--refine: the milvus engine does not re-rank")
    world, device = join()
    try:
        if world.main or not engine.milvus:  # Milvus Lite: one process opens a file
            prepare(engine, overwrite)
        _build(world, device, run_dir, dataset, split, data_dir, limit, images, vectors, labels,
               kind, refine, refine_store, out, engine)  # fmt: skip
    finally:
        stop()


def _build(
    world: World,
    device: str,
    run_dir: Path,
    dataset: str | None,
    split: str,
    data_dir: Path | None,
    limit: int | None,
    images: Path | None,
    vectors: Path | None,
    labels: Path | None,
    kind: str,
    refine: int | None,
    refine_store: str | None,
    out: Path,
    engine: Target,
) -> None:
    """``index build`` in the job ``world`` (SINGLE: this process alone): every rank embeds
    its shard; rank 0 writes the index (Milvus: rank 0 creates it, and every rank of a server's
    job inserts its shard)."""
    from ..search import Embedder, from_vectors
    from ..search.build import dataset_source, images_source
    from ..search.engines.milvus_job import insert_shards
    from ..search.parts import Parts, collect_shards, embed_shards

    embedder = Embedder.from_run(run_dir).to(device)
    settings: dict[str, Any] = {
        "dim": embedder.dim,
        "kind": kind,
        "metric": embedder.metric,
        "model": embedder.ref,
        "params": None if refine is None else {"refine": refine},
    }
    if vectors is not None:  # nothing to embed: rank 0 alone reads them
        if world.main:
            _create(engine, from_vectors(embedder, vectors, labels), embedder, settings,
                    refine_store, out)  # fmt: skip
        return
    if dataset is not None:
        source = dataset_source(embedder, dataset, split, data_dir, limit)
    else:
        assert images is not None
        source = images_source(embedder, images)
    if not world.distributed:
        _create(engine, source.everything(), embedder, settings, refine_store, out)
        return
    parts = Parts.beside(_parts_place(engine), source.key)
    if engine.milvus:
        embed_shards(world, source, parts)
        names = list(embedder.run.spec.class_names)
        live = insert_shards(world, engine, parts, source.count, class_names=names, **settings)
        if live is not None:
            _report(live.index, out)
    else:
        whole = collect_shards(world, source, parts)
        if whole is not None:
            _create(engine, whole, embedder, settings, refine_store, out)
    if world.main:
        parts.remove()


def _create(
    engine: Target,
    collection: Collection,
    embedder: Embedder,
    settings: dict[str, Any],
    refine_store: str | None,
    out: Path,
) -> None:
    from ..search.engines import create_live

    names = collection.class_names or list(embedder.run.spec.class_names)
    _, index = create_live(
        engine, collection, class_names=names, refine_store=refine_store, **settings
    )
    _report(index, out)


def _report(index: IndexState, out: Path) -> None:
    click.echo(f"indexed {len(index)} items ({index.kind}, dim {index.dim}) in {out}")


def _parts_place(engine: Target) -> Path:
    """Where a job keeps its finished parts: beside the index folder, the Milvus Lite file, or
    (a Milvus server) in the working folder, as COLLECTION.parts."""
    if not engine.milvus:
        return Path(engine.location)
    from ..search.engines.milvus import is_lite

    assert engine.uri is not None
    return (Path(engine.uri).parent if is_lite(engine.uri) else Path()) / engine.collection


@index_command.command("info")
@click.argument("index_dir", type=_folder)
@engine_options("index_dir", opened=True)
def info_command(live: LiveEngine) -> None:
    """Print what an index holds and which model made it."""
    index = live.current()
    model = index.model
    click.echo(f"{len(index)} items, dim {index.dim}, kind {index.kind} {index.params}")
    if live.engine == "faiss":
        click.echo(f"version {index.version}, {index.logged} change(s) in its change log")
    else:
        click.echo(live.describe())
    if model is not None:
        click.echo(f"model {model.fingerprint[:12]} from {model.run_dir}")


@index_command.command("remove")
@click.argument("index_dir", type=_folder)
@click.argument("ids", nargs=-1, required=True, type=int)
@engine_options("index_dir", opened=True)
def remove_command(ids: tuple[int, ...], live: LiveEngine) -> None:
    """Remove items by id; the other ids stay as they are."""
    removed = live.write(lambda index: index.remove(ids))
    if removed:  # folded into a new version at once; nothing removed: the live version stays
        live.compact()
    click.echo(f"removed {removed} of {len(ids)} ids; {len(live.current())} items left")


@index_command.command("compact")
@click.argument("index_dir", type=_folder)
@engine_options("index_dir", opened=True)
def compact_command(live: LiveEngine) -> None:
    """Fold the change log (the service's adds and removals) into a new version."""
    logged = live.compact()
    index = live.current()
    if live.engine != "faiss":
        click.echo(f"nothing to compact: {live.describe()} has no change log; {len(index)} items")
        return
    click.echo(f"compacted {logged} logged change(s); {len(index)} items in {index.version}")


@index_command.command("repair")
@click.argument("index_dir", type=_folder)
def repair_command(index_dir: Path) -> None:
    """Cut a damaged change log at its first bad record (dropping it and every record after
    it; the cut bytes are kept beside the log), then fold what is left into a new version.
    Restore the folder from a backup instead where you have one."""
    from ..search import LiveIndex

    live = LiveIndex(index_dir)
    done = live.repair()
    if done.aside is None:
        click.echo(f"{done.log}: nothing to repair ({done.kept} record(s), all whole)")
        return
    index = live.current()
    click.echo(
        f"repaired {done.log}: kept {done.kept} record(s), dropped {done.dropped} whole "
        f"record(s) from line {done.kept + 1} on (the cut bytes are in {done.aside}); "
        f"{len(index)} items in {index.version}"
    )
