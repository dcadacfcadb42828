"""``tripletnet embed RUN_DIR``: write embeddings to a .npy file for the user's own use."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import TripletnetError
from ..files import load_numeric_npy, save_npy_atomic
from .options import out_option
from .progress import progress_option
from .trust import trust_option

if TYPE_CHECKING:
    import numpy as np

    from ..runs import TrainedRun
    from ..search import Embedder
    from ..search.build import Source
    from ..world import World


@click.command("embed")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--split",
    type=click.Choice(["train", "test", "query", "gallery"]),
    default="test",
    show_default=True,
    help="Which split of the run's dataset to embed (unreadable image files are left out).",
)
@click.option(
    "--input",
    "input_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Embed this .npy of raw samples instead, shaped like the dataset's (N, ...).",
)
@click.option(
    "--labels-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the split's labels here (.npy).",
)
@out_option("Output .npy.", required=True)
@trust_option
@progress_option
def embed_command(
    run_dir: Path, split: str, input_path: Path | None, labels_out: Path | None, out: Path
) -> None:
    """Write embeddings of a split (or your own array) to a .npy.

    A split of the run's dataset, or your own samples (--input), embedded with the trained net.
    Under torchrun every process embeds its share of the rows (docs/search.md)."""
    from ..search.parts import join
    from ..world import stop

    world, device = join()
    try:
        _embed(world, device, run_dir, split, input_path, labels_out, out)
    finally:
        stop()


def _embed(
    world: World,
    device: str,
    run_dir: Path,
    split: str,
    input_path: Path | None,
    labels_out: Path | None,
    out: Path,
) -> None:
    """``embed`` in the job ``world``: every rank embeds its shard, rank 0 writes the .npy."""
    import numpy as np

    from ..search import Embedder
    from ..search.parts import Parts, collect_shards

    embedder = Embedder.from_run(run_dir).to(device)
    source = _source(embedder, split, input_path)
    if world.distributed:
        parts = Parts.beside(out, source.key)
        whole = collect_shards(world, source, parts)
        if whole is None:  # rank 0 writes the .npy
            return
    else:
        parts, whole = None, source.everything()
    if whole.unreadable:
        click.echo(
            f"warning: left out {len(whole.unreadable)} unreadable images "
            f"(e.g. {whole.unreadable[0]})",
            err=True,
        )
    save_npy_atomic(out, whole.vectors)
    if labels_out is not None and input_path is None:
        save_npy_atomic(labels_out, np.asarray(whole.labels, dtype=np.int64))
    if parts is not None:
        parts.remove()
    click.echo(f"wrote {whole.vectors.shape[0]} x {whole.vectors.shape[1]} embeddings to {out}")


def _source(embedder: Embedder, split: str, input_path: Path | None) -> Source:
    """The rows to embed: the samples of ``input_path``, or the run's ``split``."""
    import numpy as np

    from ..runs import embed
    from ..runs.data import embed_split, load_data
    from ..search.build import Collection, Source, listing_key

    run = embedder.run
    if input_path is not None:
        samples = load_samples(input_path, run)

        def embed_rows(rows: range) -> Collection:
            vectors = embed(
                run.model, samples[rows.start : rows.stop], run.prepare, None, embedder.device
            )
            return Collection(vectors, [None] * len(rows), [None] * len(rows))

        status = input_path.stat()
        key = listing_key(
            embedder, "input", input_path.resolve(), status.st_size, status.st_mtime_ns
        )
        return Source(len(samples), key, embed_rows)
    data = load_data(run.config)
    part = {"train": data.train, "test": data.test, "query": data.query}.get(split)
    part = data.gallery if split == "gallery" else part
    if part is None:
        raise TripletnetError(f"{run.config.data.dataset} has no {split} split")
    chosen = part

    def embed_split_rows(rows: range) -> Collection:
        embedded = embed_split(
            run.model, chosen.take(np.arange(rows.start, rows.stop)), run.prepare, embedder.device
        )
        count = len(embedded.embeddings)
        labels: list[int | None] = [int(y) for y in embedded.labels]
        return Collection(
            embedded.embeddings, labels, [None] * count, unreadable=embedded.unreadable
        )

    key = listing_key(embedder, "split", run.config.to_dict(), split, len(part))
    return Source(len(part), key, embed_split_rows)


def load_samples(path: Path, run: TrainedRun) -> np.ndarray:
    """Raw samples from a .npy (never unpickled), checked to be a non-empty (N, *input_shape)
    array of finite numbers; a warning when their range is far from the training data's."""
    import numpy as np

    input_shape = run.spec.input_shape
    samples = np.asarray(load_numeric_npy(path, "samples"))
    if samples.ndim < 1 or tuple(samples.shape[1:]) != input_shape:
        raise TripletnetError(
            f"{path} has shape {samples.shape}; expected (N, {', '.join(map(str, input_shape))})"
        )
    if not len(samples):
        raise TripletnetError(f"{path} holds no samples (shape {samples.shape})")
    warning = run.spec.normalizer.range_warning(samples)
    if warning:
        click.echo(f"warning: {path}: {warning}", err=True)
    return samples
