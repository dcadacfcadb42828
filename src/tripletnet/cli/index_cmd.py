"""``tripletnet index build|info|remove|compact``: make and maintain a search index folder."""

from __future__ import annotations

from pathlib import Path

import click

_folder = click.Path(file_okay=False, path_type=Path)
_file = click.Path(dir_okay=False, exists=True, path_type=Path)


@click.group("index")
def index_command() -> None:
    """Build and maintain a similarity-search index of a trained model's embeddings."""


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
    type=click.Choice(["exact", "hnsw", "ivfpq"]),
    default="exact",
    show_default=True,
    help="exact: brute force; hnsw: graph, fast; ivfpq: compressed, small (approximate).",
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
@click.option("--out", required=True, type=_folder, help="Index folder to write.")
@click.option("--overwrite", is_flag=True, help="Replace the index in --out.")
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
) -> None:
    """Embed a collection with RUN_DIR's model and write a searchable index folder."""
    from ..search import Embedder, build_index, from_dataset, from_images, from_vectors
    from ..search.store import prepare_index_folder
    from ..search.vectors import DEFAULT_STORE

    if sum(source is not None for source in (dataset, images, vectors)) != 1:
        raise click.UsageError("give exactly one of --dataset, --images or --vectors")
    if labels is not None and vectors is None:
        raise click.UsageError("--labels goes with --vectors")
    if refine is not None and kind != "ivfpq":
        raise click.UsageError("--refine re-ranks a compressed index: use it with --kind ivfpq")
    if refine_store is not None and refine is None:
        raise click.UsageError("--refine-store says how --refine keeps vectors: give --refine")
    prepare_index_folder(out, overwrite)
    embedder = Embedder.from_run(run_dir)
    if dataset is not None:
        collection = from_dataset(embedder, dataset, split, data_dir, limit)
    elif images is not None:
        collection = from_images(embedder, images)
    else:
        assert vectors is not None
        collection = from_vectors(embedder, vectors, labels)
    params = None if refine is None else {"refine": refine}
    index = build_index(embedder, collection, kind, params, refine_store or DEFAULT_STORE)
    index.save(out)
    click.echo(f"indexed {len(index)} items ({kind}, dim {index.dim}) in {out}")


@index_command.command("info")
@click.argument("index_dir", type=_folder)
def info_command(index_dir: Path) -> None:
    """Print what an index holds and which model made it."""
    from ..search import SearchIndex

    index = SearchIndex.load(index_dir)
    model = index.model
    click.echo(f"{len(index)} items, dim {index.dim}, kind {index.kind} {index.params}")
    click.echo(f"version {index.version}, {index.logged} change(s) in its change log")
    if model is not None:
        click.echo(f"model {model.fingerprint[:12]} from {model.run_dir}")


@index_command.command("remove")
@click.argument("index_dir", type=_folder)
@click.argument("ids", nargs=-1, required=True, type=int)
def remove_command(index_dir: Path, ids: tuple[int, ...]) -> None:
    """Remove items by id; the other ids stay as they are."""
    from ..search import SearchIndex

    index = SearchIndex.load(index_dir)
    removed = index.remove(ids)
    if removed:  # nothing removed: the live version stays as it is
        index.save(index_dir)
    click.echo(f"removed {removed} of {len(ids)} ids; {len(index)} items left")


@index_command.command("compact")
@click.argument("index_dir", type=_folder)
def compact_command(index_dir: Path) -> None:
    """Fold the change log (the service's adds and removals) into a new version."""
    from ..search import SearchIndex
    from ..search.store import current_version, index_lock

    current_version(index_dir)  # a clear error where there is no index (before any lock file)
    with index_lock(index_dir):  # no change can come between the read and the write
        index = SearchIndex.load(index_dir)
        logged = index.logged
        if logged:
            index.save(index_dir)
    click.echo(f"compacted {logged} logged change(s); {len(index)} items in {index.version}")
