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

    A split of the run's dataset, or your own samples (--input), embedded with the trained net."""
    from ..runs import embed, load_run
    from ..runs.data import embed_split, load_data

    run = load_run(run_dir)
    labels = None
    if input_path is not None:
        embeddings = embed(run.model, load_samples(input_path, run), run.prepare)
    else:
        data = load_data(run.config)
        part = {"train": data.train, "test": data.test, "query": data.query}.get(split)
        part = data.gallery if split == "gallery" else part
        if part is None:
            raise TripletnetError(f"{run.config.data.dataset} has no {split} split")
        embedded = embed_split(run.model, part, run.prepare)
        embeddings, labels = embedded.embeddings, embedded.labels
        if embedded.unreadable:
            click.echo(
                f"warning: left out {len(embedded.unreadable)} unreadable images "
                f"(e.g. {embedded.unreadable[0]})",
                err=True,
            )
    save_npy_atomic(out, embeddings)
    if labels_out is not None and labels is not None:
        save_npy_atomic(labels_out, labels)
    click.echo(f"wrote {embeddings.shape[0]} x {embeddings.shape[1]} embeddings to {out}")


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
