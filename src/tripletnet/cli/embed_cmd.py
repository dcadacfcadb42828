"""``tripletnet embed RUN_DIR``: write embeddings to a .npy file for the user's own use."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from ..errors import TripletnetError
from ..files import load_numeric_npy, save_npy_atomic
from ..training import TrainedRun


@click.command("embed")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--split",
    type=click.Choice(["train", "test"]),
    default="test",
    show_default=True,
    help="Which split of the run's dataset to embed.",
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
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Output .npy."
)
def embed_command(
    run_dir: Path, split: str, input_path: Path | None, labels_out: Path | None, out: Path
) -> None:
    """Embed a split of the run's dataset (or your own array) with the trained net."""
    from ..data import load_dataset
    from ..evaluation.embed import embed
    from ..training import load_run

    run = load_run(run_dir)
    labels = None
    if input_path is not None:
        samples = load_samples(input_path, run)
    else:
        data = load_dataset(run.config.dataset, run.config.data_dir, run.config.download)
        part = data.train if split == "train" else data.test
        samples, labels = part.x, part.y
    embeddings = embed(run.model, samples, run.prepare)
    save_npy_atomic(out, embeddings)
    if labels_out is not None and labels is not None:
        save_npy_atomic(labels_out, labels)
    click.echo(f"wrote {embeddings.shape[0]} x {embeddings.shape[1]} embeddings to {out}")


def load_samples(path: Path, run: TrainedRun) -> np.ndarray:
    """Raw samples from a .npy (never unpickled), checked to be a non-empty (N, *input_shape)
    array of finite numbers; a warning when their range is far from the training data's."""
    input_shape = tuple(run.spec["input_shape"])
    samples = np.asarray(load_numeric_npy(path, "samples"))
    if samples.ndim < 1 or tuple(samples.shape[1:]) != input_shape:
        raise TripletnetError(
            f"{path} has shape {samples.shape}; expected (N, {', '.join(map(str, input_shape))})"
        )
    if not len(samples):
        raise TripletnetError(f"{path} holds no samples (shape {samples.shape})")
    warning = run.normalizer.range_warning(samples)
    if warning:
        click.echo(f"warning: {path}: {warning}", err=True)
    return samples
